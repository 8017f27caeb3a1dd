// The smallest C++ client of fer-server: classifies the face images given on
// the command line in one Classify call and prints each one's top label; with
// --attention first, also each face's attention map's shape and center share.
//   classify_example localhost:50051 a.jpg b.png
//   classify_example --attention localhost:50051 a.jpg
// docs/client.md walks through it; tests/client runs it against a real server.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "fer/v1/expression.grpc.pb.h"

int main(int argc, char** argv) {
  const bool attention = argc > 1 && std::string(argv[1]) == "--attention";
  if (attention) {
    --argc;
    ++argv;
  }
  if (argc < 3) {
    std::cerr << "usage: classify_example [--attention] HOST:PORT IMAGE...\n";
    return 2;
  }
  auto channel = grpc::CreateChannel(argv[1], grpc::InsecureChannelCredentials());
  auto stub = fer::v1::ExpressionClassifier::NewStub(channel);

  // One request, many faces: the server batches them and answers in order.
  // Files go as they are (JPEG, PNG, WebP, BMP); the server decodes them.
  fer::v1::ClassifyRequest request;
  for (int i = 2; i < argc; ++i) {
    std::ifstream file(argv[i], std::ios::binary);
    if (!file) {
      std::cerr << argv[i] << ": cannot open file\n";
      return 1;
    }
    std::ostringstream bytes;
    bytes << file.rdbuf();
    request.add_faces()->set_encoded(bytes.str());
  }
  // Maps come from the same forward pass; unasked, none is computed or sent.
  request.mutable_options()->set_attention(attention);

  grpc::ClientContext context;  // one per call
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  fer::v1::ClassifyResponse response;
  const grpc::Status status = stub->Classify(&context, request, &response);
  if (!status.ok()) {
    // INVALID_ARGUMENT names the bad face; RESOURCE_EXHAUSTED: retry later.
    std::cerr << "Classify failed: " << status.error_code() << ": " << status.error_message()
              << "\n";
    return 1;
  }
  for (int i = 0; i < response.predictions_size(); ++i) {
    const fer::v1::Prediction& prediction = response.predictions(i);
    std::cout << argv[i + 2] << " " << prediction.top_label_name() << " "
              << prediction.confidence();
    if (attention) {
      // values: height x width floats, row-major; cell (r, c) is centred on
      // pixel (16 r, 16 c) of the face resized to ModelInfo.input_size.
      const fer::v1::AttentionMap& map = prediction.attention();
      std::cout << " attention " << map.height() << "x" << map.width() << " center_share "
                << map.center_share();
    }
    std::cout << "\n";
  }
  return 0;
}
