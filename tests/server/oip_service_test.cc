// The Open Inference Protocol front end (server/oip_service.h) through real
// gRPC, with the stubs generated from proto/inference/v2/grpc_predict_v2.proto
// as a client that speaks the protocol. The service under it serves a fake
// engine (tests/support/fake_engine.h), whose answers are a function of each
// face's pixels, so that ModelInfer can be held to what Classify answers for
// the same images. Nothing waits on the clock; deadlines only bound a hang.
#include "server/oip_service.h"

#include <gmock/gmock.h>
#include <google/protobuf/unknown_field_set.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fer/v1/expression.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "inference/v2/grpc_predict_v2.grpc.pb.h"
#include "server/fer_server.h"
#include "server/server_metrics.h"
#include "server/service.h"
#include "tests/server/raw_call.h"
#include "tests/server/server_test_util.h"
#include "tests/server/synthetic_face.h"
#include "tests/support/fake_engine.h"

namespace fer {
namespace {

using inference::GRPCInferenceService;
using inference::ModelInferRequest;
using inference::ModelInferResponse;
using test_support::FakeEngine;
using test_util::RawStream;
using ::testing::HasSubstr;

constexpr auto kCallDeadline = std::chrono::seconds(120);
constexpr int kMaxFaces = 4;

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + kCallDeadline);
  return context;
}

using test_util::FacePng;

std::vector<std::string> Faces(int count) {
  std::vector<std::string> faces;
  for (int i = 0; i < count; ++i) faces.push_back(FacePng(i));
  return faces;
}

std::string LittleEndian32(uint32_t value) {
  std::string out;
  for (int b = 0; b < 4; ++b) out.push_back(static_cast<char>((value >> (8 * b)) & 0xFF));
  return out;
}

// Triton's raw layout of a BYTES tensor: each element's 4-byte little-endian
// length, then its bytes.
std::string RawBytesTensor(const std::vector<std::string>& elements) {
  std::string raw;
  for (const std::string& e : elements) raw += LittleEndian32(e.size()) + e;
  return raw;
}

// A request for faces: IMAGE of shape [N], in bytes_contents or raw.
ModelInferRequest InferRequest(const std::vector<std::string>& faces, bool raw) {
  ModelInferRequest request;
  request.set_model_name(kOipModelName);
  request.set_id("request-7");
  ModelInferRequest::InferInputTensor* input = request.add_inputs();
  input->set_name(kOipInputName);
  input->set_datatype("BYTES");
  input->add_shape(faces.size());
  if (raw) {
    request.add_raw_input_contents(RawBytesTensor(faces));
  } else {
    for (const std::string& face : faces) input->mutable_contents()->add_bytes_contents(face);
  }
  return request;
}

std::vector<float> DecodeFp32(const std::string& raw) {
  std::vector<float> values(raw.size() / 4);
  for (size_t i = 0; i < values.size(); ++i) {
    uint32_t bits = 0;
    for (int b = 0; b < 4; ++b) {
      bits |= static_cast<uint32_t>(static_cast<unsigned char>(raw[4 * i + b])) << (8 * b);
    }
    std::memcpy(&values[i], &bits, sizeof(bits));
  }
  return values;
}

// An ExpressionService on a FakeEngine with an OipService on it, both on one
// loopback gRPC server; Start is separate, so that readiness can be seen
// before it.
class OipServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const ServiceOptions options = test_util::TestServiceOptions(kMaxFaces);
    metrics_ = std::make_unique<ServerMetrics>(MetricsOptions());
    auto service = ExpressionService::Create(options, &fake_, metrics_.get());
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = std::move(*service);
    oip_ = std::make_unique<OipService>(service_.get(), &fake_, metrics_.get(), kMaxFaces);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    builder.RegisterService(oip_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    channel_ =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
    stub_ = GRPCInferenceService::NewStub(channel_);
    classifier_ = fer::v1::ExpressionClassifier::NewStub(channel_);
  }

  void TearDown() override {
    fake_.Open();
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now() + kCallDeadline);
    oip_.reset();
    service_.reset();  // drains; the gRPC server has stopped
  }

  void Start() {
    ASSERT_TRUE(service_->Start().ok());
    warmup_faces_ = fake_.faces_received();
  }
  // Faces the model was given since Start (its warm-up batch left out).
  int64_t ModelFaces() const { return fake_.faces_received() - warmup_faces_; }

  grpc::Status Infer(const ModelInferRequest& request, ModelInferResponse* response) {
    return stub_->ModelInfer(Context().get(), request, response);
  }

  bool ServerReady() {
    inference::ServerReadyResponse response;
    EXPECT_TRUE(stub_->ServerReady(Context().get(), {}, &response).ok());
    return response.ready();
  }

  grpc::Status ModelReady(const std::string& name, const std::string& version, bool* ready) {
    inference::ModelReadyRequest request;
    request.set_name(name);
    request.set_version(version);
    inference::ModelReadyResponse response;
    const grpc::Status status = stub_->ModelReady(Context().get(), request, &response);
    *ready = response.ready();
    return status;
  }

  // Classify's probabilities for faces, row after row.
  std::vector<float> ClassifyRows(const std::vector<std::string>& faces, bool ten_crop) {
    fer::v1::ClassifyRequest request;
    for (const std::string& face : faces) request.add_faces()->set_encoded(face);
    request.mutable_options()->set_ten_crop(ten_crop);
    fer::v1::ClassifyResponse response;
    const grpc::Status status = classifier_->Classify(Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::vector<float> rows;
    for (const fer::v1::Prediction& p : response.predictions()) {
      rows.insert(rows.end(), p.probabilities().begin(), p.probabilities().end());
    }
    return rows;
  }

  // Classify's attention maps for faces (asked for), face after face.
  std::vector<float> ClassifyMaps(const std::vector<std::string>& faces) {
    fer::v1::ClassifyRequest request;
    for (const std::string& face : faces) request.add_faces()->set_encoded(face);
    request.mutable_options()->set_attention(true);
    fer::v1::ClassifyResponse response;
    const grpc::Status status = classifier_->Classify(Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::vector<float> maps;
    for (const fer::v1::Prediction& p : response.predictions()) {
      maps.insert(maps.end(), p.attention().values().begin(), p.attention().values().end());
    }
    return maps;
  }

  // Expects status INVALID_ARGUMENT with a message containing what.
  void ExpectInvalid(const ModelInferRequest& request, const std::string& what) {
    ModelInferResponse response;
    const grpc::Status status = Infer(request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(what));
  }

  FakeEngine fake_;
  int64_t warmup_faces_ = 0;
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<ExpressionService> service_;
  std::unique_ptr<OipService> oip_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<GRPCInferenceService::Stub> stub_;
  std::unique_ptr<fer::v1::ExpressionClassifier::Stub> classifier_;
};

TEST_F(OipServiceTest, LiveAlwaysReadyOnlyOnceStarted) {
  inference::ServerLiveResponse live;
  ASSERT_TRUE(stub_->ServerLive(Context().get(), {}, &live).ok());
  EXPECT_TRUE(live.live());
  EXPECT_FALSE(ServerReady());
  bool ready = true;
  ASSERT_TRUE(ModelReady(kOipModelName, "", &ready).ok());
  EXPECT_FALSE(ready);
  // Before Start, inference is refused as Classify is.
  ModelInferResponse response;
  EXPECT_EQ(Infer(InferRequest(Faces(1), false), &response).error_code(),
            grpc::StatusCode::UNAVAILABLE);

  Start();
  EXPECT_TRUE(ServerReady());
  ASSERT_TRUE(ModelReady(kOipModelName, "", &ready).ok());
  EXPECT_TRUE(ready);
  ASSERT_TRUE(ModelReady(kOipModelName, fake_.meta().version, &ready).ok());
  EXPECT_TRUE(ready);
}

TEST_F(OipServiceTest, UnknownModelOrVersionIsNotFound) {
  Start();
  bool ready = true;
  EXPECT_EQ(ModelReady("resnet", "", &ready).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(ModelReady(kOipModelName, "no-such-version", &ready).error_code(),
            grpc::StatusCode::NOT_FOUND);
  inference::ModelMetadataRequest metadata;
  metadata.set_name("resnet");
  inference::ModelMetadataResponse described;
  EXPECT_EQ(stub_->ModelMetadata(Context().get(), metadata, &described).error_code(),
            grpc::StatusCode::NOT_FOUND);
  ModelInferRequest request = InferRequest(Faces(1), false);
  request.set_model_name("resnet");
  ModelInferResponse response;
  const grpc::Status status = Infer(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("lla-net"));
}

TEST_F(OipServiceTest, MetadataDescribesTheModelsTensors) {
  inference::ServerMetadataResponse server;
  ASSERT_TRUE(stub_->ServerMetadata(Context().get(), {}, &server).ok());
  EXPECT_EQ(server.name(), "fer-server");
  EXPECT_FALSE(server.version().empty());

  inference::ModelMetadataRequest request;
  request.set_name(kOipModelName);
  inference::ModelMetadataResponse model;
  ASSERT_TRUE(stub_->ModelMetadata(Context().get(), request, &model).ok());
  EXPECT_EQ(model.name(), "lla-net");
  EXPECT_EQ(model.platform(), "pytorch_libtorch");
  ASSERT_EQ(model.inputs_size(), 1);
  EXPECT_EQ(model.inputs(0).name(), "IMAGE");
  EXPECT_EQ(model.inputs(0).datatype(), "BYTES");
  EXPECT_THAT(model.inputs(0).shape(), ::testing::ElementsAre(-1));
  ASSERT_EQ(model.outputs_size(), 2);
  EXPECT_EQ(model.outputs(0).name(), "PROBABILITIES");
  EXPECT_EQ(model.outputs(0).datatype(), "FP32");
  EXPECT_THAT(model.outputs(0).shape(), ::testing::ElementsAre(-1, 7));
  // The fake has attention maps, 2 x 2 for its 32 x 32 faces.
  EXPECT_EQ(model.outputs(1).name(), "ATTENTION");
  EXPECT_EQ(model.outputs(1).datatype(), "FP32");
  EXPECT_THAT(model.outputs(1).shape(), ::testing::ElementsAre(-1, 2, 2));
}

TEST_F(OipServiceTest, BytesContentsAnswerFp32ContentsAsClassifyWould) {
  Start();
  const std::vector<std::string> faces = Faces(3);
  const std::vector<float> expected = ClassifyRows(faces, false);
  ASSERT_EQ(expected.size(), 21u);
  ModelInferResponse response;
  const grpc::Status status = Infer(InferRequest(faces, false), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.model_name(), "lla-net");
  EXPECT_EQ(response.id(), "request-7");
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).name(), "PROBABILITIES");
  EXPECT_EQ(response.outputs(0).datatype(), "FP32");
  EXPECT_THAT(response.outputs(0).shape(), ::testing::ElementsAre(3, 7));
  EXPECT_EQ(response.raw_output_contents_size(), 0);
  EXPECT_THAT(response.outputs(0).contents().fp32_contents(),
              ::testing::Pointwise(::testing::FloatEq(), expected));
}

TEST_F(OipServiceTest, RawInputContentsAnswerRawOutputContentsAsClassifyWould) {
  Start();
  const std::vector<std::string> faces = Faces(4);
  for (bool ten_crop : {false, true}) {
    SCOPED_TRACE(ten_crop ? "ten-crop" : "one crop");
    const std::vector<float> expected = ClassifyRows(faces, ten_crop);
    ModelInferRequest request = InferRequest(faces, true);
    if (ten_crop) (*request.mutable_parameters())["ten_crop"].set_bool_param(true);
    ModelInferResponse response;
    const grpc::Status status = Infer(request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.outputs_size(), 1);
    EXPECT_THAT(response.outputs(0).shape(), ::testing::ElementsAre(4, 7));
    EXPECT_EQ(response.outputs(0).contents().fp32_contents_size(), 0);
    ASSERT_EQ(response.raw_output_contents_size(), 1);
    EXPECT_THAT(DecodeFp32(response.raw_output_contents(0)),
                ::testing::Pointwise(::testing::FloatEq(), expected));
  }
  // Ten-crop asks the model for ten crops per face.
  EXPECT_EQ(ModelFaces(), 2 * (4 + 4 * 10));
}

TEST_F(OipServiceTest, MalformedRawContentsAreInvalidArgument) {
  Start();
  const std::vector<std::string> faces = Faces(2);
  ModelInferRequest request = InferRequest(faces, true);
  // The second element's length runs past the end.
  request.set_raw_input_contents(
      0, RawBytesTensor({faces[0]}) + LittleEndian32(faces[1].size() + 1) + faces[1]);
  ExpectInvalid(request, "element 1 says");
  // A length prefix cut short.
  request.set_raw_input_contents(0, RawBytesTensor({faces[0]}) + std::string("\x05\x00", 2));
  ExpectInvalid(request, "before the length of element 1");
  // Bytes after the elements the shape names.
  request.set_raw_input_contents(0, RawBytesTensor(faces) + "x");
  ExpectInvalid(request, "after its 2 elements");
  // Raw contents and contents at once.
  request = InferRequest(faces, true);
  request.mutable_inputs(0)->mutable_contents()->add_bytes_contents(faces[0]);
  ExpectInvalid(request, "raw_input_contents must hold one entry");
  // A bad image is refused by the shared preprocessing, naming the face.
  request = InferRequest({faces[0], "not an image"}, true);
  ExpectInvalid(request, "face 1:");
  EXPECT_EQ(ModelFaces(), 0);
}

TEST_F(OipServiceTest, WrongInputsOutputsAndParametersAreInvalidArgument) {
  Start();
  const std::vector<std::string> faces = Faces(2);
  ModelInferRequest request = InferRequest(faces, false);
  request.mutable_inputs(0)->set_name("INPUT0");
  ExpectInvalid(request, "takes one input, IMAGE");
  request = InferRequest(faces, false);
  request.mutable_inputs(0)->set_datatype("FP32");
  ExpectInvalid(request, "IMAGE is BYTES");
  request = InferRequest(faces, false);
  request.mutable_inputs(0)->add_shape(1);
  ExpectInvalid(request, "shape [N]");
  request = InferRequest(faces, false);
  *request.add_inputs() = request.inputs(0);
  ExpectInvalid(request, "the request has 2");
  request = InferRequest(faces, false);
  request.mutable_inputs(0)->set_shape(0, 3);
  ExpectInvalid(request, "has shape [3] but 2 elements");
  request = InferRequest(faces, false);
  request.add_outputs()->set_name("LOGITS");
  ExpectInvalid(request, "outputs are PROBABILITIES and ATTENTION");
  request = InferRequest(faces, false);
  request.add_outputs()->set_name("ATTENTION");
  request.add_outputs()->set_name("ATTENTION");
  ExpectInvalid(request, "ATTENTION is asked for twice");
  request = InferRequest(faces, false);
  (*request.mutable_parameters())["ten_crop"].set_string_param("yes");
  ExpectInvalid(request, "ten_crop is a bool_param");
  EXPECT_EQ(ModelFaces(), 0);

  // Asking for PROBABILITIES by name is fine.
  request = InferRequest(faces, false);
  request.add_outputs()->set_name("PROBABILITIES");
  ModelInferResponse response;
  EXPECT_TRUE(Infer(request, &response).ok());
}

TEST_F(OipServiceTest, MoreFacesThanTheLimitOrNoneAreInvalidArgument) {
  Start();
  ExpectInvalid(InferRequest(Faces(kMaxFaces + 1), false), "the limit is 4");
  ExpectInvalid(InferRequest(Faces(kMaxFaces + 1), true), "the limit is 4");
  ExpectInvalid(InferRequest({}, false), "no faces");
  EXPECT_EQ(ModelFaces(), 0);
  ModelInferResponse response;
  EXPECT_TRUE(Infer(InferRequest(Faces(kMaxFaces), false), &response).ok());
}

TEST_F(OipServiceTest, DrainAnswersUnavailable) {
  Start();
  ModelInferResponse response;
  ASSERT_TRUE(Infer(InferRequest(Faces(1), true), &response).ok());
  service_->Drain(absl::Seconds(60));
  EXPECT_FALSE(ServerReady());
  bool ready = true;
  ASSERT_TRUE(ModelReady(kOipModelName, "", &ready).ok());
  EXPECT_FALSE(ready);
  const grpc::Status status = Infer(InferRequest(Faces(1), true), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("shutting down"));
}

TEST_F(OipServiceTest, EachModelInferIsCountedUnderItsOwnRpc) {
  Start();
  ModelInferResponse response;
  ASSERT_TRUE(Infer(InferRequest(Faces(2), false), &response).ok());
  ExpectInvalid(InferRequest(Faces(kMaxFaces + 1), false), "limit");
  const std::string exposition = metrics_->Serialize();
  EXPECT_EQ(test_util::MetricValue(exposition, R"(fer_requests_total{code="OK",rpc="ModelInfer"})"),
            1);
  EXPECT_EQ(test_util::MetricValue(
                exposition, R"(fer_requests_total{code="INVALID_ARGUMENT",rpc="ModelInfer"})"),
            1);
  EXPECT_EQ(test_util::MetricValue(exposition, R"(fer_requests_total{code="OK",rpc="Classify"})"),
            0);
  EXPECT_EQ(test_util::MetricValue(exposition, "fer_faces_total"), 2);
}

// The service as fer-server registers it: health reports on it, and
// reflection lists it.
TEST(OipFerServerTest, FerServerServesItWithHealthAndReflection) {
  FakeEngine fake;
  FerServerOptions options;
  options.address = "127.0.0.1:0";
  options.metrics_address = "";
  options.http_address = "";
  options.service.preprocess_threads = 1;
  auto server = FerServer::Create(options, &fake);
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*server)->port()),
                                     grpc::InsecureChannelCredentials());
  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::health::v1::HealthCheckRequest check;
  check.set_service(kOipServiceName);
  grpc::health::v1::HealthCheckResponse answer;
  ASSERT_TRUE(health->Check(Context().get(), check, &answer).ok());
  EXPECT_EQ(answer.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  ASSERT_TRUE((*server)->Start().ok());
  ASSERT_TRUE(health->Check(Context().get(), check, &answer).ok());
  EXPECT_EQ(answer.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  auto stub = GRPCInferenceService::NewStub(channel);
  ModelInferResponse response;
  ASSERT_TRUE(stub->ModelInfer(Context().get(), InferRequest(Faces(1), true), &response).ok());
  EXPECT_EQ(response.raw_output_contents(0).size(), 7 * sizeof(float));

  // grpc.reflection.v1alpha: list_services = 7 in the request;
  // list_services_response = 6 (service = 1, name = 1) in the answer.
  RawStream stream(channel, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                   kCallDeadline);
  ASSERT_TRUE(stream.Write(std::string("\x3a\x00", 2)));
  std::string listed;
  ASSERT_TRUE(stream.Read(&listed));
  std::vector<std::string> names;
  for (const std::string& list : test_util::LengthDelimited(listed, 6)) {
    for (const std::string& service : test_util::LengthDelimited(list, 1)) {
      for (const std::string& name : test_util::LengthDelimited(service, 1)) names.push_back(name);
    }
  }
  EXPECT_THAT(names, ::testing::Contains("inference.GRPCInferenceService"));
  ASSERT_TRUE(stream.WritesDone());
  EXPECT_FALSE(stream.Read(&listed));
  EXPECT_TRUE(stream.Finish().ok());
  (*server)->Shutdown(absl::Seconds(60));
}

TEST_F(OipServiceTest, AttentionIsAnsweredOnlyWhenListedInTheRequestedOrder) {
  Start();
  const std::vector<std::string> faces = Faces(3);
  const std::vector<float> probabilities = ClassifyRows(faces, false);
  ModelInferResponse plain;
  ASSERT_TRUE(Infer(InferRequest(faces, false), &plain).ok());
  ASSERT_EQ(plain.outputs_size(), 1);  // none listed: PROBABILITIES alone
  EXPECT_EQ(plain.outputs(0).name(), "PROBABILITIES");
  EXPECT_EQ(fake_.faces_with_maps(), 0);  // and no map was computed

  const std::vector<float> maps = ClassifyMaps(faces);
  ASSERT_EQ(maps.size(), 3u * 4u);
  for (bool raw : {false, true}) {
    SCOPED_TRACE(raw ? "raw" : "contents");
    ModelInferRequest request = InferRequest(faces, raw);
    request.add_outputs()->set_name("ATTENTION");
    request.add_outputs()->set_name("PROBABILITIES");
    ModelInferResponse response;
    const grpc::Status status = Infer(request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.outputs_size(), 2);
    EXPECT_EQ(response.outputs(0).name(), "ATTENTION");
    EXPECT_EQ(response.outputs(0).datatype(), "FP32");
    EXPECT_THAT(response.outputs(0).shape(), ::testing::ElementsAre(3, 2, 2));
    EXPECT_EQ(response.outputs(1).name(), "PROBABILITIES");
    EXPECT_THAT(response.outputs(1).shape(), ::testing::ElementsAre(3, 7));
    std::vector<float> got_maps, got_probabilities;
    if (raw) {
      ASSERT_EQ(response.raw_output_contents_size(), 2);
      got_maps = DecodeFp32(response.raw_output_contents(0));
      got_probabilities = DecodeFp32(response.raw_output_contents(1));
    } else {
      const auto& m = response.outputs(0).contents().fp32_contents();
      const auto& p = response.outputs(1).contents().fp32_contents();
      got_maps.assign(m.begin(), m.end());
      got_probabilities.assign(p.begin(), p.end());
    }
    EXPECT_THAT(got_maps, ::testing::Pointwise(::testing::FloatEq(), maps));
    EXPECT_THAT(got_probabilities, ::testing::Pointwise(::testing::FloatEq(), probabilities));
  }

  // ATTENTION alone answers ATTENTION alone.
  ModelInferRequest request = InferRequest(faces, false);
  request.add_outputs()->set_name("ATTENTION");
  ModelInferResponse response;
  ASSERT_TRUE(Infer(request, &response).ok());
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).name(), "ATTENTION");
}

// A model without attention modules: no ATTENTION in its metadata, and
// asking for it is Classify's INVALID_ARGUMENT.
TEST(OipServiceNoAttentionTest, MetadataOmitsAttentionAndAskingIsInvalidArgument) {
  FakeEngine fake(32, /*attention=*/false);
  ServiceOptions options;
  options.batching.max_queue_time = absl::InfiniteDuration();
  options.preprocess_threads = 1;
  options.max_faces_per_request = kMaxFaces;
  ServerMetrics metrics{MetricsOptions()};
  auto service = ExpressionService::Create(options, &fake, &metrics);
  ASSERT_TRUE(service.ok()) << service.status();
  OipService oip(service->get(), &fake, &metrics, kMaxFaces);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&oip);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE((*service)->Start().ok());
  auto stub = GRPCInferenceService::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  inference::ModelMetadataRequest metadata;
  metadata.set_name(kOipModelName);
  inference::ModelMetadataResponse described;
  ASSERT_TRUE(stub->ModelMetadata(Context().get(), metadata, &described).ok());
  ASSERT_EQ(described.outputs_size(), 1);
  EXPECT_EQ(described.outputs(0).name(), "PROBABILITIES");
  ModelInferRequest request = InferRequest(Faces(1), false);
  request.add_outputs()->set_name("ATTENTION");
  ModelInferResponse response;
  const grpc::Status status = stub->ModelInfer(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("has no attention maps"));
  server->Shutdown(std::chrono::system_clock::now() + kCallDeadline);
}

}  // namespace
}  // namespace fer
