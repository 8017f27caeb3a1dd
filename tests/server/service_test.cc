// End-to-end tests of the ExpressionClassifier service: a real FerServer (gRPC
// on loopback, health, the batcher, the preprocessing pool) in this process,
// called through real gRPC channels with real FER2013 faces. The tests that
// check what the model answers serve the small test model (ServiceTest); the
// others serve a fake engine (FakeEngineServiceTest, tests/support), which is
// faster and can hold batches at a gate. Nothing here waits on the clock:
// every wait is for a condition, with generous deadlines that only bound a
// hang.
#include <gmock/gmock.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/unknown_field_set.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fer/v1/expression.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "model/core/attention_quality.h"
#include "model/core/engine.h"
#include "model/core/image_ops.h"
#include "server/fer_server.h"
#include "server/preprocess.h"
#include "server/request_faces.h"
#include "tests/server/raw_call.h"
#include "tests/server/server_test_util.h"
#include "tests/server/test_images.h"
#include "tests/support/fake_engine.h"

namespace fer {
namespace {

using fer::v1::ClassifyFrame;
using fer::v1::ClassifyRequest;
using fer::v1::ClassifyResponse;
using fer::v1::ExpressionClassifier;
using fer::v1::FrameResult;
using fer::v1::Prediction;
using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;
using test_support::FakeEngine;
using test_util::Encoded;
using test_util::MetricValue;
using test_util::RealFaces;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Bounds on waits for conditions (a hang fails the test instead of blocking).
constexpr auto kCallDeadline = std::chrono::seconds(120);
constexpr absl::Duration kConditionTimeout = absl::Seconds(120);
// Probabilities computed by the server and by the engine directly may differ
// in the last bits, since batches differ in composition.
constexpr float kProbabilityTolerance = 1e-4f;

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + kCallDeadline);
  return context;
}

// Polls cond until it holds or kConditionTimeout passes.
template <typename Cond>
bool WaitFor(Cond cond) {
  const absl::Time give_up = absl::Now() + kConditionTimeout;
  while (!cond()) {
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

class ServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    EngineOptions options;
    options.device = "cpu";
    auto engine = Engine::Load(test_util::TestModelPath(), options);
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = engine->release();
  }
  static void TearDownTestSuite() {
    delete engine_;
    engine_ = nullptr;
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(60));
  }

  // Options for a test server: loopback, no metrics port, short batching delay.
  static FerServerOptions TestOptions() {
    FerServerOptions options;
    options.address = "127.0.0.1:0";
    options.metrics_address = "";
    options.http_address = "";
    options.service = test_util::TestServiceOptions(16);
    return options;
  }

  // Creates the server (NOT_SERVING) and a channel to it; Start is separate.
  void CreateServer(const FerServerOptions& options) {
    auto server =
        FerServer::Create(options, serving_engine_ != nullptr ? serving_engine_ : engine_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = ExpressionClassifier::NewStub(channel_);
    health_ = Health::NewStub(channel_);
  }
  void StartServer(const FerServerOptions& options = TestOptions()) {
    CreateServer(options);
    ASSERT_TRUE(server_->Start().ok());
  }

  grpc::Status Classify(const ClassifyRequest& request, ClassifyResponse* response) {
    return stub_->Classify(Context().get(), request, response);
  }

  HealthCheckResponse::ServingStatus Health(const std::string& service) {
    HealthCheckRequest request;
    request.set_service(service);
    HealthCheckResponse response;
    const grpc::Status status = health_->Check(Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.status();
  }

  // What the engine says about faces, computed directly (no server): one row
  // of probabilities per face, ten crops averaged when ten_crop.
  static std::vector<std::vector<float>> Expected(const std::vector<std::string>& faces,
                                                  bool ten_crop) {
    PreprocessOptions options;
    options.input_size = engine_->meta().input_size;
    options.gray = engine_->meta().input_channels() == 1;
    const int crops = ten_crop ? kTenCropCount : 1;
    const int classes = engine_->num_classes();
    std::unique_ptr<Runner> runner = engine_->NewRunner();
    std::vector<std::vector<float>> rows;
    for (const std::string& face : faces) {
      ImageInput input;
      input.encoded = face;
      std::vector<uint8_t> pixels;
      EXPECT_TRUE(Preprocess(input, options, ten_crop, &pixels).ok());
      std::vector<float> probabilities(crops * classes);
      EXPECT_TRUE(runner->Classify(pixels.data(), crops, probabilities.data()).ok());
      std::vector<float> mean(classes, 0.0f);
      for (int i = 0; i < crops * classes; ++i) mean[i % classes] += probabilities[i] / crops;
      rows.push_back(mean);
    }
    return rows;
  }

  static void ExpectPrediction(const Prediction& prediction, const std::vector<float>& expected) {
    ASSERT_EQ(prediction.probabilities_size(), engine_->num_classes());
    float sum = 0;
    int top = 0;
    for (int c = 0; c < prediction.probabilities_size(); ++c) {
      EXPECT_NEAR(prediction.probabilities(c), expected[c], kProbabilityTolerance) << "class " << c;
      sum += prediction.probabilities(c);
      if (prediction.probabilities(c) > prediction.probabilities(top)) top = c;
    }
    EXPECT_NEAR(sum, 1.0f, 1e-4f);
    EXPECT_EQ(prediction.top_label(), static_cast<uint32_t>(top));
    EXPECT_EQ(prediction.top_label_name(), engine_->meta().labels[top]);
    EXPECT_EQ(prediction.confidence(), prediction.probabilities(top));
  }

  static Engine* engine_;             // the small test model
  Engine* serving_engine_ = nullptr;  // what the server serves, if not engine_
  std::unique_ptr<FerServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<ExpressionClassifier::Stub> stub_;
  std::unique_ptr<Health::Stub> health_;
};

Engine* ServiceTest::engine_ = nullptr;

// The same server on a FakeEngine: for tests of the service's own behaviour,
// not of the model's answers. The gate is opened before the server shuts down,
// so that a failing test cannot leave a batch held.
class FakeEngineServiceTest : public ServiceTest {
 protected:
  static void SetUpTestSuite() {}  // no model to load
  static void TearDownTestSuite() {}

  void SetUp() override { serving_engine_ = &fake_; }
  void TearDown() override {
    fake_.Open();
    ServiceTest::TearDown();
  }

  // What the fake answers for image, preprocessed as the server does.
  std::vector<float> FakeExpected(const fer::v1::Image& image) const {
    PreprocessOptions options;
    options.input_size = fake_.meta().input_size;
    options.gray = true;
    std::vector<uint8_t> pixels;
    EXPECT_TRUE(Preprocess(ToImageInput(image), options, false, &pixels).ok());
    return FakeEngine::Probabilities(pixels.data(), pixels.size(), fake_.num_classes());
  }

  FakeEngine fake_;
};

#define REQUIRE_FACES(faces, n)                        \
  const std::vector<std::string> faces = RealFaces(n); \
  if (faces.size() < static_cast<size_t>(n)) {         \
    GTEST_SKIP() << test_images::SkipMessage();        \
  }

// ------------------------------------------------------------------- unary

TEST_F(ServiceTest, ClassifyAnswersEveryFaceInRequestOrderAsTheEngineWould) {
  REQUIRE_FACES(faces, 14);
  const std::vector<std::vector<float>> expected = Expected(faces, false);
  StartServer();
  ClassifyRequest request;
  for (const std::string& face : faces) *request.add_faces() = Encoded(face);
  ClassifyResponse response;
  const grpc::Status status = Classify(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.predictions_size(), 14);
  for (int i = 0; i < 14; ++i) {
    SCOPED_TRACE(absl::StrCat("face ", i));
    ExpectPrediction(response.predictions(i), expected[i]);
  }
  // The same faces in the opposite order come back in that order.
  ClassifyRequest reversed;
  for (int i = 13; i >= 0; --i) *reversed.add_faces() = Encoded(faces[i]);
  ASSERT_TRUE(Classify(reversed, &response).ok());
  for (int i = 0; i < 14; ++i) {
    SCOPED_TRACE(absl::StrCat("reversed face ", i));
    ExpectPrediction(response.predictions(i), expected[13 - i]);
  }
}

TEST_F(ServiceTest, TenCropAveragesTheTenCropsOfEachFace) {
  REQUIRE_FACES(faces, 2);
  const std::vector<std::vector<float>> expected = Expected(faces, true);
  StartServer();
  ClassifyRequest request;
  for (const std::string& face : faces) *request.add_faces() = Encoded(face);
  request.mutable_options()->set_ten_crop(true);
  ClassifyResponse response;
  ASSERT_TRUE(Classify(request, &response).ok());
  ASSERT_EQ(response.predictions_size(), 2);
  for (int i = 0; i < 2; ++i) ExpectPrediction(response.predictions(i), expected[i]);
}

TEST_F(ServiceTest, RawPixelsAreClassifiedLikeTheEncodedImage) {
  REQUIRE_FACES(faces, 1);
  const cv::Mat grey = test_images::Decode(faces[0], cv::IMREAD_GRAYSCALE);
  const cv::Mat bgr = test_images::Tint(grey);
  const cv::Mat rgb = [&] {
    cv::Mat out;
    cv::cvtColor(bgr, out, cv::COLOR_BGR2RGB);
    return out;
  }();
  StartServer();
  ClassifyRequest request;
  *request.add_faces() = Encoded(faces[0]);
  auto add_raw = [&](const cv::Mat& image, fer::v1::RawImage::ChannelOrder order) {
    fer::v1::RawImage* raw = request.add_faces()->mutable_raw();
    raw->set_width(image.cols);
    raw->set_height(image.rows);
    raw->set_channels(image.channels());
    raw->set_channel_order(order);
    raw->set_pixels(
        std::string(reinterpret_cast<const char*>(image.data), image.total() * image.elemSize()));
  };
  add_raw(grey, fer::v1::RawImage::CHANNEL_ORDER_UNSPECIFIED);
  add_raw(bgr, fer::v1::RawImage::CHANNEL_ORDER_BGR);
  add_raw(rgb, fer::v1::RawImage::CHANNEL_ORDER_RGB);
  ClassifyResponse response;
  const grpc::Status status = Classify(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.predictions_size(), 4);
  // The grey raw face is the decoded JPEG exactly; the two colour ones are the
  // same colour image in two channel orders.
  for (int c = 0; c < engine_->num_classes(); ++c) {
    EXPECT_NEAR(response.predictions(1).probabilities(c), response.predictions(0).probabilities(c),
                kProbabilityTolerance);
    EXPECT_NEAR(response.predictions(3).probabilities(c), response.predictions(2).probabilities(c),
                kProbabilityTolerance);
  }
}

TEST_F(FakeEngineServiceTest, ConcurrentClientsAreAllAnswered) {
  REQUIRE_FACES(faces, 7);
  StartServer();
  constexpr int kClients = 8;
  constexpr int kRequestsPerClient = 3;
  std::atomic<int> answered{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int r = 0; r < kRequestsPerClient; ++r) {
        ClassifyRequest request;
        const int n = 1 + (c + r) % 3;
        for (int i = 0; i < n; ++i) *request.add_faces() = Encoded(faces[(c + i) % faces.size()]);
        ClassifyResponse response;
        const grpc::Status status = Classify(request, &response);
        EXPECT_TRUE(status.ok()) << status.error_message();
        EXPECT_EQ(response.predictions_size(), n);
        answered.fetch_add(1);
      }
    });
  }
  for (std::thread& client : clients) client.join();
  EXPECT_EQ(answered.load(), kClients * kRequestsPerClient);
  const std::string metrics = server_->metrics()->Serialize();
  EXPECT_EQ(MetricValue(metrics, "fer_requests_total{rpc=\"Classify\",code=\"OK\"}"),
            kClients * kRequestsPerClient);
  EXPECT_EQ(MetricValue(metrics, "fer_inflight_requests"), 0);
}

struct BadInput {
  std::string name;
  fer::v1::Image image;
  std::string reason;  // expected in the message after "face 1: "
};

TEST_F(FakeEngineServiceTest, EveryBadFaceIsInvalidArgumentNamingItsIndexAndReason) {
  REQUIRE_FACES(faces, 1);
  const cv::Mat grey = test_images::Decode(faces[0], cv::IMREAD_GRAYSCALE);
  std::vector<BadInput> cases;
  cases.push_back({"bad bytes", Encoded("this is not an image at all"), "unrecognised image data"});
  cases.push_back({"TIFF", Encoded(test_images::Encode(grey, ".tiff")),
                   "TIFF images are not accepted; send JPEG, PNG, WebP or BMP"});
  cases.push_back(
      {"huge declared PNG", Encoded(test_util::BombPng(100000, 100000)), "more than the limit"});
  cases.push_back(
      {"truncated JPEG", Encoded(faces[0].substr(0, faces[0].size() / 2)), "truncated"});
  {
    fer::v1::Image raw;
    raw.mutable_raw()->set_width(48);
    raw.mutable_raw()->set_height(48);
    raw.mutable_raw()->set_channels(1);
    raw.mutable_raw()->set_pixels(std::string(48 * 48 - 1, '\x80'));
    cases.push_back({"raw with the wrong byte count", raw, "raw pixels are 2303 bytes"});
  }
  {
    fer::v1::Image raw;
    raw.mutable_raw()->set_width(4000000000u);
    raw.mutable_raw()->set_height(4000000000u);
    raw.mutable_raw()->set_channels(3);
    raw.mutable_raw()->set_pixels("tiny");
    cases.push_back({"raw with an absurd size", raw, "more than the limit"});
  }
  cases.push_back({"no data", fer::v1::Image(), "image is empty"});
  cases.push_back({"empty encoded bytes", Encoded(""), "image is empty"});

  StartServer();
  for (const BadInput& bad : cases) {
    SCOPED_TRACE(bad.name);
    ClassifyRequest request;
    *request.add_faces() = Encoded(faces[0]);
    *request.add_faces() = bad.image;
    ClassifyResponse response;
    const grpc::Status status = Classify(request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_THAT(status.error_message(), StartsWith("face 1: "));
    EXPECT_THAT(status.error_message(), HasSubstr(bad.reason));
    EXPECT_EQ(response.predictions_size(), 0);
  }
  // The server is unharmed.
  ClassifyRequest good;
  *good.add_faces() = Encoded(faces[0]);
  ClassifyResponse response;
  EXPECT_TRUE(Classify(good, &response).ok());
  EXPECT_EQ(MetricValue(server_->metrics()->Serialize(),
                        "fer_requests_total{rpc=\"Classify\",code=\"INVALID_ARGUMENT\"}"),
            cases.size());
}

TEST_F(FakeEngineServiceTest, EmptyAndOversizedRequestsAreInvalidArgument) {
  REQUIRE_FACES(faces, 1);
  StartServer();
  ClassifyResponse response;
  grpc::Status status = Classify(ClassifyRequest(), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("no faces"));

  ClassifyRequest too_many;
  for (int i = 0; i < TestOptions().service.max_faces_per_request + 1; ++i) {
    *too_many.add_faces() = Encoded(faces[0]);
  }
  status = Classify(too_many, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("17 faces in one request; the limit is 16"));
}

// A ten-crop request that needs more slots than the whole queue has could
// never be admitted: retrying cannot help, so it is refused as the request's
// fault, not as a full queue. (A full queue, RESOURCE_EXHAUSTED, is exercised
// under load by the soak test.)
TEST_F(FakeEngineServiceTest, ATenCropRequestLargerThanTheWholeQueueIsInvalidArgument) {
  REQUIRE_FACES(faces, 1);
  FerServerOptions options = TestOptions();
  options.service.batching.max_queue_faces = 8;
  options.service.max_faces_per_request = 8;
  StartServer(options);
  ClassifyRequest request;
  *request.add_faces() = Encoded(faces[0]);
  request.mutable_options()->set_ten_crop(true);  // ten model faces > 8
  ClassifyResponse response;
  const grpc::Status status = Classify(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("needs 10 queue slots"));
  EXPECT_THAT(status.error_message(), HasSubstr("holds 8"));
  EXPECT_EQ(MetricValue(server_->metrics()->Serialize(),
                        "fer_dropped_faces_total{reason=\"queue_full\"}"),
            0);

  // Without ten-crop the same face fits.
  request.mutable_options()->set_ten_crop(false);
  EXPECT_TRUE(Classify(request, &response).ok());
}

TEST_F(FakeEngineServiceTest, ACallWhoseDeadlineHasPassedEndsDeadlineExceeded) {
  REQUIRE_FACES(faces, 1);
  StartServer();
  ClassifyRequest request;
  *request.add_faces() = Encoded(faces[0]);
  ClassifyResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() - std::chrono::seconds(1));
  EXPECT_EQ(stub_->Classify(&context, request, &response).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(Classify(request, &response).ok());
}

TEST_F(ServiceTest, GetModelInfoDescribesTheModelAndTheLimits) {
  FerServerOptions options = TestOptions();
  options.service.preprocess.max_encoded_bytes = 12345;
  StartServer(options);
  fer::v1::ModelInfo info;
  ASSERT_TRUE(stub_->GetModelInfo(Context().get(), fer::v1::GetModelInfoRequest(), &info).ok());
  ASSERT_EQ(info.labels_size(), 7);
  EXPECT_EQ(info.labels(0), engine_->meta().labels[0]);
  EXPECT_EQ(info.input_size(), 32u);
  EXPECT_EQ(info.color(), "gray3");
  EXPECT_EQ(info.trained_on(), "untrained");
  // The test model is the default LLA-Net (fer-model init); its parameter count
  // does not depend on the input size, so it is the specification's 23,715,783.
  EXPECT_GT(info.parameters(), 0u);
  EXPECT_EQ(info.parameters(), static_cast<uint64_t>(engine_->num_parameters()));
  EXPECT_EQ(info.parameters(), 23715783u);
  EXPECT_EQ(info.device(), "cpu");
  EXPECT_EQ(info.precision(), "fp32");
  EXPECT_EQ(info.max_batch_size(), 8u);
  EXPECT_EQ(info.max_queue_delay_us(), 1000u);
  EXPECT_EQ(info.max_queue_faces(), 4096u);
  EXPECT_EQ(info.max_faces_per_request(), 16u);
  EXPECT_EQ(info.max_image_bytes(), 12345u);
  EXPECT_EQ(info.instances(), 1u);
}

// ----------------------------------------------------------------- streams

TEST_F(ServiceTest, StreamFramesAreAnsweredInOrderWithTheirIds) {
  REQUIRE_FACES(faces, 7);
  FerServerOptions options = TestOptions();
  options.service.stream_window = 2;  // far fewer than the frames sent
  const std::vector<std::vector<float>> single = Expected(faces, false);
  const std::vector<std::vector<float>> ten_crop = Expected(faces, true);
  StartServer(options);
  const std::string tiff =
      test_images::Encode(test_images::Decode(faces[0], cv::IMREAD_GRAYSCALE), ".tiff");

  constexpr int kFrames = 24;
  std::vector<ClassifyFrame> frames(kFrames);
  for (int f = 0; f < kFrames; ++f) {
    frames[f].set_frame_id(1000 - 7 * f);  // ids need not be contiguous or rising
    const int n = f % 4;                   // 0..3 faces; 0 is answered with none
    for (int i = 0; i < n; ++i) *frames[f].add_faces() = Encoded(faces[(f + i) % faces.size()]);
    if (f == 5) *frames[f].add_faces() = Encoded(tiff);  // a bad frame: face 1
  }
  frames[9].mutable_options()->set_ten_crop(true);

  auto context = Context();
  auto stream = stub_->ClassifyStream(context.get());
  std::thread writer([&] {
    for (const ClassifyFrame& frame : frames) {
      if (!stream->Write(frame)) break;
    }
    stream->WritesDone();
  });
  std::vector<FrameResult> results;
  FrameResult result;
  while (stream->Read(&result)) results.push_back(result);
  writer.join();
  const grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();

  ASSERT_EQ(results.size(), static_cast<size_t>(kFrames));
  for (int f = 0; f < kFrames; ++f) {
    SCOPED_TRACE(absl::StrCat("frame ", f));
    EXPECT_EQ(results[f].frame_id(), frames[f].frame_id());
    if (f == 5) {
      EXPECT_EQ(results[f].status().code(), grpc::StatusCode::INVALID_ARGUMENT);
      EXPECT_THAT(results[f].status().message(), StartsWith("face 1: TIFF"));
      EXPECT_EQ(results[f].predictions_size(), 0);
    } else {
      EXPECT_EQ(results[f].status().code(), 0) << results[f].status().message();
      ASSERT_EQ(results[f].predictions_size(), frames[f].faces_size());
      for (int i = 0; i < frames[f].faces_size(); ++i) {
        const int face = (f + i) % faces.size();
        ExpectPrediction(results[f].predictions(i), f == 9 ? ten_crop[face] : single[face]);
      }
    }
  }
}

TEST_F(FakeEngineServiceTest, StreamsBeyondTheLimitAreRefusedWithResourceExhausted) {
  REQUIRE_FACES(faces, 1);
  FerServerOptions options = TestOptions();
  options.service.max_concurrent_streams = 1;
  StartServer(options);
  ClassifyFrame frame;
  frame.set_frame_id(1);
  *frame.add_faces() = Encoded(faces[0]);

  auto first_context = Context();
  auto first = stub_->ClassifyStream(first_context.get());
  FrameResult result;
  ASSERT_TRUE(first->Write(frame));
  ASSERT_TRUE(first->Read(&result));  // the first stream is open and registered
  EXPECT_EQ(MetricValue(server_->metrics()->Serialize(), "fer_active_streams"), 1);

  auto second_context = Context();
  auto second = stub_->ClassifyStream(second_context.get());
  second->Write(frame);
  EXPECT_FALSE(second->Read(&result));
  const grpc::Status refused = second->Finish();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), HasSubstr("too many open streams"));

  first->WritesDone();
  EXPECT_FALSE(first->Read(&result));
  EXPECT_TRUE(first->Finish().ok());
  EXPECT_TRUE(WaitFor(
      [&] { return MetricValue(server_->metrics()->Serialize(), "fer_active_streams") == 0; }));
}

// The stream's window through the real service. Each frame's one face is a
// batch of its own and the instances outnumber the window, so every frame the
// server has read and not yet answered waits inside the fake engine, where it
// is counted. With the batches held, the server reads stream_window frames of
// a client that has sent many, and no more until their answers are written;
// the test lets each window's frames through in turn, and every frame is
// answered in order.
TEST_F(FakeEngineServiceTest, AStreamReadsAtMostStreamWindowFramesAheadOfItsAnswers) {
  constexpr int kWindow = 3;
  constexpr int kFrames = 24;
  constexpr int kSide = 8;
  FerServerOptions options = TestOptions();
  options.service.stream_window = kWindow;
  options.service.batching.max_batch_size = 1;
  options.service.batching.num_instances = kWindow + 5;
  StartServer(options);
  const int64_t warmup = fake_.faces_received();  // Start's warm-up batches
  fake_.Hold();

  std::vector<ClassifyFrame> frames(kFrames);
  for (int f = 0; f < kFrames; ++f) {
    frames[f].set_frame_id(500 + f);
    fer::v1::RawImage* raw = frames[f].add_faces()->mutable_raw();
    raw->set_width(kSide);
    raw->set_height(kSide);
    raw->set_channels(1);
    std::string pixels(kSide * kSide, '\0');
    for (size_t i = 0; i < pixels.size(); ++i)
      pixels[i] = static_cast<char>((f * 37 + i * 7) % 251);
    raw->set_pixels(pixels);
  }
  auto context = Context();
  auto stream = stub_->ClassifyStream(context.get());
  std::atomic<bool> written{false};
  std::thread writer([&] {
    for (const ClassifyFrame& frame : frames) {
      if (!stream->Write(frame)) break;
    }
    stream->WritesDone();
    written = true;
  });
  std::vector<FrameResult> results;
  std::thread reader([&] {
    FrameResult result;
    while (stream->Read(&result)) results.push_back(result);
  });

  // The frames are small, so that gRPC's flow control lets the client send
  // them all while the server reads none: only the window holds the server
  // back. Whatever the order the frames of a window finish in, the next window
  // is read only once they are all written.
  EXPECT_TRUE(WaitFor([&] { return written.load(); }));
  for (int read = kWindow;; read += kWindow) {
    const int64_t expected = warmup + std::min(read, kFrames);
    const bool reached = fake_.WaitForFacesReceived(expected, kConditionTimeout);
    EXPECT_TRUE(reached) << "the server read " << fake_.faces_received() - warmup << " frames";
    EXPECT_EQ(fake_.faces_received(), expected) << "read beyond the window";
    if (!reached || read >= kFrames) break;
    fake_.Let(kWindow);
  }
  fake_.Open();
  writer.join();
  reader.join();
  const grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(fake_.max_faces_inside(), kWindow);

  ASSERT_EQ(results.size(), static_cast<size_t>(kFrames));
  for (int f = 0; f < kFrames; ++f) {
    SCOPED_TRACE(absl::StrCat("frame ", f));
    EXPECT_EQ(results[f].frame_id(), frames[f].frame_id());
    EXPECT_EQ(results[f].status().code(), 0) << results[f].status().message();
    ASSERT_EQ(results[f].predictions_size(), 1);
    const std::vector<float> expected = FakeExpected(frames[f].faces(0));
    EXPECT_THAT(results[f].predictions(0).probabilities(), ::testing::ElementsAreArray(expected));
  }
}

// ------------------------------------------ malformed and hostile messages
// Sent as raw bytes through the generic stub: what a client with a broken or
// hostile serializer sends.

using test_util::kClassifyMethod;
using test_util::kClassifyStreamMethod;
using test_util::RawStream;
using test_util::RawUnary;

// Wire-format pieces for hand-made messages.
std::string WireVarint(uint64_t value) {
  std::string out;
  for (; value >= 0x80; value >>= 7) out.push_back(static_cast<char>((value & 0x7f) | 0x80));
  out.push_back(static_cast<char>(value));
  return out;
}
std::string WireLen(uint32_t field, const std::string& payload) {
  return WireVarint((field << 3) | 2) + WireVarint(payload.size()) + payload;
}
// count empty Image entries of field `field` (faces: 1 in a request, 2 in a
// frame): two bytes each on the wire.
std::string EmptyFaces(uint32_t field, int64_t count) {
  const std::string one = WireLen(field, "");
  std::string out;
  out.reserve(one.size() * count);
  for (int64_t i = 0; i < count; ++i) out += one;
  return out;
}
// An unknown varint field (number 99): what a newer client may add.
const std::string kUnknownField = WireVarint((99 << 3) | 0) + WireVarint(1);

TEST_F(ServiceTest, AMalformedRequestIsInvalidArgumentNamingTheByteAndIsCounted) {
  REQUIRE_FACES(faces, 1);
  StartServer();
  const std::vector<std::string> malformed = {
      "this is not a protobuf message",
      WireVarint((1 << 3) | 2) + WireVarint(100) + "a face cut short",
      std::string(1, '\0'),
  };
  for (const std::string& bytes : malformed) {
    SCOPED_TRACE(bytes);
    std::string response;
    const grpc::Status status =
        RawUnary(channel_, kClassifyMethod, bytes, &response, kCallDeadline);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_THAT(status.error_message(), StartsWith("malformed fer.v1.ClassifyRequest at byte "));
    EXPECT_TRUE(response.empty());
  }
  EXPECT_EQ(MetricValue(server_->metrics()->Serialize(),
                        "fer_requests_total{rpc=\"Classify\",code=\"INVALID_ARGUMENT\"}"),
            malformed.size());

  // Well-formed bytes, with a field this server does not know (a newer
  // client's), are answered as a typed client's request is.
  ClassifyRequest good;
  *good.add_faces() = Encoded(faces[0]);
  std::string response;
  const grpc::Status status =
      RawUnary(channel_, kClassifyMethod, good.SerializeAsString() + kUnknownField, &response,
               kCallDeadline);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ClassifyResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(response));
  ASSERT_EQ(parsed.predictions_size(), 1);
  ExpectPrediction(parsed.predictions(0), Expected(faces, false)[0]);
}

TEST_F(FakeEngineServiceTest, AFloodOfEmptyImagesOrUnknownFieldsIsRefusedBeforeItIsParsed) {
  StartServer();
  constexpr int64_t kFaces = int64_t{1} << 20;  // 2 MiB on the wire
  std::string response;
  grpc::Status status =
      RawUnary(channel_, kClassifyMethod, EmptyFaces(1, kFaces), &response, kCallDeadline);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "1048576 faces in one request; the limit is 16");

  std::string unknown_flood = WireLen(1, WireLen(1, "x"));
  for (int i = 0; i < 4096; ++i) unknown_flood += kUnknownField;
  status = RawUnary(channel_, kClassifyMethod, unknown_flood, &response, kCallDeadline);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("4096 fields this server does not know"));
  EXPECT_EQ(MetricValue(server_->metrics()->Serialize(),
                        "fer_requests_total{rpc=\"Classify\",code=\"INVALID_ARGUMENT\"}"),
            2);
}

// The stream's promise holds for bytes that are not a frame: every frame is
// answered exactly once, in order, and the frames after a bad one too.
TEST_F(ServiceTest, MalformedFramesAreAnsweredInOrderAndTheStreamGoesOn) {
  REQUIRE_FACES(faces, 2);
  FerServerOptions options = TestOptions();
  options.service.stream_window = 2;  // fewer than the frames sent
  const std::vector<std::vector<float>> expected = Expected(faces, false);
  StartServer(options);

  struct Sent {
    std::string bytes;
    uint64_t id;          // the id the answer must carry
    int faces;            // -1: the answer is INVALID_ARGUMENT
    std::string message;  // its message starts so
  };
  auto frame = [&](uint64_t id, int n) {
    ClassifyFrame f;
    f.set_frame_id(id);
    for (int i = 0; i < n; ++i) *f.add_faces() = Encoded(faces[i]);
    return f.SerializeAsString();
  };
  const std::string malformed = "malformed fer.v1.ClassifyFrame at byte ";
  const std::vector<Sent> sent = {
      {frame(10, 1), 10, 1, ""},
      {"this is not a protobuf message", 0, -1, malformed},
      {frame(12, 2), 12, 2, ""},
      // The id is read before the bytes go wrong, so the answer carries it.
      {frame(13, 0) + WireVarint((2 << 3) | 2) + WireVarint(100) + "cut short", 13, -1, malformed},
      {frame(14, 0) + EmptyFaces(2, 17), 14, -1, "17 faces in one request; the limit is 16"},
      {std::string(1, '\0'), 0, -1, malformed},
      {frame(16, 1) + kUnknownField, 16, 1, ""},
      {frame(17, 0), 17, 0, ""},
  };

  RawStream stream(channel_, kClassifyStreamMethod, kCallDeadline);
  for (const Sent& s : sent) ASSERT_TRUE(stream.Write(s.bytes));
  ASSERT_TRUE(stream.WritesDone());
  std::vector<FrameResult> results;
  std::string bytes;
  while (stream.Read(&bytes)) {
    ASSERT_TRUE(results.emplace_back().ParseFromString(bytes));
  }
  const grpc::Status status = stream.Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();

  ASSERT_EQ(results.size(), sent.size());
  int invalid = 0;
  for (size_t f = 0; f < sent.size(); ++f) {
    SCOPED_TRACE(absl::StrCat("frame ", f));
    EXPECT_EQ(results[f].frame_id(), sent[f].id);
    if (sent[f].faces < 0) {
      ++invalid;
      EXPECT_EQ(results[f].status().code(), grpc::StatusCode::INVALID_ARGUMENT);
      EXPECT_THAT(results[f].status().message(), StartsWith(sent[f].message));
      EXPECT_EQ(results[f].predictions_size(), 0);
    } else {
      EXPECT_EQ(results[f].status().code(), 0) << results[f].status().message();
      ASSERT_EQ(results[f].predictions_size(), sent[f].faces);
      for (int i = 0; i < sent[f].faces; ++i) {
        ExpectPrediction(results[f].predictions(i), expected[i]);
      }
    }
  }
  const std::string metrics = server_->metrics()->Serialize();
  EXPECT_EQ(
      MetricValue(metrics, "fer_requests_total{rpc=\"ClassifyStream\",code=\"INVALID_ARGUMENT\"}"),
      invalid);
  EXPECT_EQ(MetricValue(metrics, "fer_requests_total{rpc=\"ClassifyStream\",code=\"OK\"}"),
            sent.size() - invalid);
}

// Reflection answers from the descriptors, whatever the methods' handlers
// take: the service is listed, and described with its typed messages.
// Reflection's own messages are read field by field
// (test_util::LengthDelimited), since gRPC installs no C++ stubs for them.

TEST_F(FakeEngineServiceTest, ReflectionListsTheServiceAndDescribesItsTypedMethods) {
  StartServer();
  // grpc.reflection.v1alpha: request list_services = 7, file_containing_symbol
  // = 4; response list_services_response = 6 (service = 1, name = 1),
  // file_descriptor_response = 4 (file_descriptor_proto = 1).
  RawStream stream(channel_, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                   kCallDeadline);
  ASSERT_TRUE(stream.Write(WireLen(7, "")));
  std::string answer;
  ASSERT_TRUE(stream.Read(&answer));
  std::vector<std::string> names;
  for (const std::string& list : test_util::LengthDelimited(answer, 6)) {
    for (const std::string& service : test_util::LengthDelimited(list, 1)) {
      for (const std::string& name : test_util::LengthDelimited(service, 1)) names.push_back(name);
    }
  }
  EXPECT_THAT(names, ::testing::Contains("fer.v1.ExpressionClassifier"));

  ASSERT_TRUE(stream.Write(WireLen(4, "fer.v1.ExpressionClassifier")));
  ASSERT_TRUE(stream.Read(&answer));
  const google::protobuf::ServiceDescriptorProto* service = nullptr;
  std::vector<google::protobuf::FileDescriptorProto> files;
  for (const std::string& response : test_util::LengthDelimited(answer, 4)) {
    for (const std::string& file : test_util::LengthDelimited(response, 1)) {
      ASSERT_TRUE(files.emplace_back().ParseFromString(file));
    }
  }
  for (const google::protobuf::FileDescriptorProto& file : files) {
    for (const auto& s : file.service()) {
      if (file.package() == "fer.v1" && s.name() == "ExpressionClassifier") service = &s;
    }
  }
  ASSERT_NE(service, nullptr);
  std::map<std::string, const google::protobuf::MethodDescriptorProto*> methods;
  for (const auto& method : service->method()) methods[method.name()] = &method;
  ASSERT_EQ(methods.count("Classify"), 1u);
  EXPECT_EQ(methods["Classify"]->input_type(), ".fer.v1.ClassifyRequest");
  EXPECT_EQ(methods["Classify"]->output_type(), ".fer.v1.ClassifyResponse");
  ASSERT_EQ(methods.count("ClassifyStream"), 1u);
  EXPECT_EQ(methods["ClassifyStream"]->input_type(), ".fer.v1.ClassifyFrame");
  EXPECT_EQ(methods["ClassifyStream"]->output_type(), ".fer.v1.FrameResult");
  EXPECT_TRUE(methods["ClassifyStream"]->client_streaming());
  EXPECT_TRUE(methods["ClassifyStream"]->server_streaming());
  ASSERT_TRUE(stream.WritesDone());
  EXPECT_FALSE(stream.Read(&answer));
  EXPECT_TRUE(stream.Finish().ok());
}

// ----------------------------------------------------- health and draining

TEST_F(FakeEngineServiceTest, HealthIsNotServingUntilStartedAndCallsWaitForIt) {
  REQUIRE_FACES(faces, 1);
  CreateServer(TestOptions());
  EXPECT_EQ(Health(""), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(Health(kHealthServiceName), HealthCheckResponse::NOT_SERVING);
  ClassifyRequest request;
  *request.add_faces() = Encoded(faces[0]);
  ClassifyResponse response;
  const grpc::Status early = Classify(request, &response);
  EXPECT_EQ(early.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(early.error_message(), HasSubstr("starting"));

  ASSERT_TRUE(server_->Start().ok());
  EXPECT_EQ(Health(""), HealthCheckResponse::SERVING);
  EXPECT_EQ(Health(kHealthServiceName), HealthCheckResponse::SERVING);
  EXPECT_TRUE(Classify(request, &response).ok());
}

TEST_F(FakeEngineServiceTest, ShutdownSaysNotServingAndFinishesAcceptedWork) {
  REQUIRE_FACES(faces, 8);
  FerServerOptions options = TestOptions();
  options.service.batching.max_batch_size = 4;
  options.service.max_faces_per_request = 8;
  StartServer(options);

  // A health watcher, to see the transition while the drain runs.
  grpc::ClientContext watch_context;
  HealthCheckRequest watch_request;
  auto watch = health_->Watch(&watch_context, watch_request);
  HealthCheckResponse health;
  ASSERT_TRUE(watch->Read(&health));
  EXPECT_EQ(health.status(), HealthCheckResponse::SERVING);

  // An open stream with a frame answered, then a request large enough to take
  // several batches, held in the model: both accepted before the drain.
  auto stream_context = Context();
  auto stream = stub_->ClassifyStream(stream_context.get());
  ClassifyFrame frame;
  frame.set_frame_id(7);
  *frame.add_faces() = Encoded(faces[0]);
  ASSERT_TRUE(stream->Write(frame));
  FrameResult result;
  ASSERT_TRUE(stream->Read(&result));
  EXPECT_EQ(result.frame_id(), 7u);

  const int64_t before = fake_.faces_received();
  fake_.Hold();
  ClassifyRequest big;
  for (const std::string& face : faces) *big.add_faces() = Encoded(face);
  big.mutable_options()->set_ten_crop(true);  // 80 model faces, 20 batches
  ClassifyResponse big_response;
  grpc::Status big_status;
  std::thread big_call([&] { big_status = Classify(big, &big_response); });
  // The big request is in the batcher: its first batch waits in the model.
  ASSERT_TRUE(fake_.WaitForFacesReceived(before + 1, kConditionTimeout));
  std::thread shutdown([&] { server_->Shutdown(absl::Seconds(120)); });

  ASSERT_TRUE(watch->Read(&health));
  EXPECT_EQ(health.status(), HealthCheckResponse::NOT_SERVING);
  // The idle stream is ended, UNAVAILABLE, once its frames are answered.
  EXPECT_FALSE(stream->Read(&result));
  const grpc::Status stream_status = stream->Finish();
  EXPECT_EQ(stream_status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(stream_status.error_message(), HasSubstr("shutting down"));

  // The drain has begun with none of the big request's faces classified: it
  // is still answered in full.
  EXPECT_EQ(fake_.faces_finished(), before);
  fake_.Open();
  big_call.join();
  shutdown.join();
  EXPECT_TRUE(big_status.ok()) << big_status.error_message();
  EXPECT_EQ(big_response.predictions_size(), 8);
  EXPECT_EQ(fake_.faces_finished(), before + 80);
  watch_context.TryCancel();
  watch->Finish();
}

TEST_F(FakeEngineServiceTest, MetricsExpositionPassesPromtool) {
  REQUIRE_FACES(faces, 2);
  StartServer();
  ClassifyRequest request;
  for (const std::string& face : faces) *request.add_faces() = Encoded(face);
  ClassifyResponse response;
  ASSERT_TRUE(Classify(request, &response).ok());
  fer::v1::ModelInfo info;
  ASSERT_TRUE(stub_->GetModelInfo(Context().get(), fer::v1::GetModelInfoRequest(), &info).ok());

  const std::string metrics = server_->metrics()->Serialize();
  std::string promtool;
  EXPECT_EQ(test_util::PromtoolCheckMetrics(metrics, &promtool), 0) << promtool;
  EXPECT_EQ(MetricValue(metrics, "fer_faces_total"), 2);
  EXPECT_EQ(MetricValue(metrics, "fer_requests_total{rpc=\"Classify\",code=\"OK\"}"), 1);
  EXPECT_EQ(MetricValue(metrics, "fer_requests_total{rpc=\"GetModelInfo\",code=\"OK\"}"), 1);
  EXPECT_EQ(MetricValue(metrics, "fer_requests_total{rpc=\"ClassifyStream\",code=\"OK\"}"), 0);
  EXPECT_EQ(MetricValue(metrics, "fer_request_duration_seconds_count{rpc=\"Classify\"}"), 1);
  EXPECT_GE(MetricValue(metrics, "fer_batch_size_sum"), 2);
  EXPECT_EQ(MetricValue(metrics, "fer_queue_duration_seconds_count"), 2);
  EXPECT_EQ(MetricValue(metrics, "fer_queue_capacity_faces"), 4096);
  EXPECT_EQ(
      MetricValue(metrics, "fer_model_info{version=\"fake\",device=\"cpu\",precision=\"fp32\"}"),
      1);
  for (const char* reason : {"cancelled", "deadline", "failed", "shutdown", "late", "queue_full"}) {
    EXPECT_EQ(
        MetricValue(metrics, absl::StrCat("fer_dropped_faces_total{reason=\"", reason, "\"}")), 0)
        << reason;
  }
}

// ------------------------------------------------------------------ reload

// A grey face that needs no data set: the reload tests are about which model
// answers, not what it answers.
fer::v1::Image SyntheticFace(int shade) {
  return Encoded(test_images::Encode(cv::Mat(48, 48, CV_8UC1, cv::Scalar(shade)), ".png"));
}

std::unique_ptr<Engine> FakeModel(const std::string& version, int input_size = 32) {
  auto engine = std::make_unique<FakeEngine>(input_size);
  engine->set_version(version);
  return engine;
}

TEST_F(FakeEngineServiceTest, AnswersAndFramesNameTheModelVersion) {
  StartServer();
  ClassifyRequest request;
  *request.add_faces() = SyntheticFace(90);
  ClassifyResponse response;
  ASSERT_TRUE(Classify(request, &response).ok());
  EXPECT_EQ(response.model_version(), "fake");

  auto context = Context();
  auto stream = stub_->ClassifyStream(context.get());
  ClassifyFrame frame;
  frame.set_frame_id(7);
  *frame.add_faces() = SyntheticFace(90);
  ASSERT_TRUE(stream->Write(frame));
  ASSERT_TRUE(stream->Write(ClassifyFrame()));  // no faces: answered at once
  ASSERT_TRUE(stream->WritesDone());
  FrameResult result;
  ASSERT_TRUE(stream->Read(&result));
  EXPECT_EQ(result.status().code(), 0) << result.status().message();
  EXPECT_EQ(result.model_version(), "fake");
  ASSERT_TRUE(stream->Read(&result));
  EXPECT_EQ(result.model_version(), "fake");
  EXPECT_FALSE(stream->Read(&result));
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(FakeEngineServiceTest, ACallInFlightDuringAReloadFinishesOnTheModelItStartedOn) {
  StartServer();
  const int64_t warm_up_faces = fake_.faces_received();
  fake_.Hold();  // the first call waits inside the old model
  ClassifyResponse before;
  std::thread first([&] {
    ClassifyRequest request;
    *request.add_faces() = SyntheticFace(60);
    const grpc::Status status = Classify(request, &before);
    EXPECT_TRUE(status.ok()) << status.error_message();
  });
  ASSERT_TRUE(fake_.WaitForFacesReceived(warm_up_faces + 1, kConditionTimeout));

  // Warmed up and swapped in while the old model still holds a batch.
  ASSERT_TRUE(server_->ReloadModel(FakeModel("v2")).ok());
  EXPECT_EQ(server_->model_version(), "v2");
  fer::v1::ModelInfo info;
  ASSERT_TRUE(stub_->GetModelInfo(Context().get(), fer::v1::GetModelInfoRequest(), &info).ok());
  EXPECT_EQ(info.version(), "v2");

  ClassifyResponse after;
  std::thread second([&] {
    ClassifyRequest request;
    *request.add_faces() = SyntheticFace(200);
    const grpc::Status status = Classify(request, &after);
    EXPECT_TRUE(status.ok()) << status.error_message();
  });
  fake_.Open();
  first.join();
  second.join();
  EXPECT_EQ(before.model_version(), "fake");
  EXPECT_EQ(after.model_version(), "v2");
  EXPECT_EQ(fake_.faces_received(), warm_up_faces + 1);  // the second call ran on v2

  const std::string metrics = server_->metrics()->Serialize();
  EXPECT_EQ(MetricValue(metrics, "fer_model_reloads_total{result=\"ok\"}"), 1);
  EXPECT_EQ(MetricValue(metrics, "fer_model_reloads_total{result=\"failed\"}"), 0);
  EXPECT_EQ(
      MetricValue(metrics, "fer_model_info{version=\"v2\",device=\"cpu\",precision=\"fp32\"}"), 1);
  EXPECT_EQ(metrics.find("version=\"fake\""), std::string::npos) << metrics;
}

TEST_F(FakeEngineServiceTest, AReloadUnderConcurrentLoadFailsNoCall) {
  FerServerOptions options = TestOptions();
  options.service.batching.num_instances = 2;
  StartServer(options);
  constexpr int kClients = 6;
  constexpr int kCallsAfterReload = 5;  // per client, started after the swap
  std::atomic<bool> reloaded{false};
  std::atomic<int> calls_before{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      int after = 0;
      while (after < kCallsAfterReload) {
        const bool started_after = reloaded.load();
        ClassifyRequest request;
        for (int i = 0; i <= c % 3; ++i) *request.add_faces() = SyntheticFace(40 * c + i);
        ClassifyResponse response;
        const grpc::Status status = Classify(request, &response);
        if (!status.ok()) {
          failed.fetch_add(1);
          ADD_FAILURE() << status.error_message();
          return;
        }
        if (started_after) {
          EXPECT_EQ(response.model_version(), "v2");
          ++after;
        } else {
          EXPECT_THAT(response.model_version(), ::testing::AnyOf("fake", "v2"));
          calls_before.fetch_add(1);
        }
      }
    });
  }
  // Calls are flowing before the reload begins.
  ASSERT_TRUE(WaitFor([&] { return calls_before.load() >= kClients; }));
  ASSERT_TRUE(server_->ReloadModel(FakeModel("v2")).ok());
  reloaded.store(true);
  for (std::thread& client : clients) client.join();
  EXPECT_EQ(failed.load(), 0);
  const std::string metrics = server_->metrics()->Serialize();
  EXPECT_EQ(MetricValue(metrics, "fer_model_reloads_total{result=\"ok\"}"), 1);
}

TEST_F(FakeEngineServiceTest, AFailedReloadKeepsTheOldModelServingAndIsCounted) {
  StartServer();
  const absl::Status unreadable =
      server_->ReloadModel(absl::DataLossError("model.pt: not a weight file"));
  EXPECT_TRUE(absl::IsDataLoss(unreadable)) << unreadable;
  // Another input size needs a restart (the preprocessing is sized for it).
  const absl::Status other_size = server_->ReloadModel(FakeModel("v64", 64));
  EXPECT_TRUE(absl::IsFailedPrecondition(other_size)) << other_size;
  EXPECT_THAT(std::string(other_size.message()), ::testing::HasSubstr("restart"));
  EXPECT_EQ(server_->model_version(), "fake");

  ClassifyRequest request;
  *request.add_faces() = SyntheticFace(120);
  ClassifyResponse response;
  ASSERT_TRUE(Classify(request, &response).ok());
  EXPECT_EQ(response.model_version(), "fake");
  const std::string metrics = server_->metrics()->Serialize();
  EXPECT_EQ(MetricValue(metrics, "fer_model_reloads_total{result=\"ok\"}"), 0);
  EXPECT_EQ(MetricValue(metrics, "fer_model_reloads_total{result=\"failed\"}"), 2);
  EXPECT_EQ(
      MetricValue(metrics, "fer_model_info{version=\"fake\",device=\"cpu\",precision=\"fp32\"}"),
      1);
}

TEST_F(FakeEngineServiceTest, AReloadAfterDrainIsRefusedAndChangesNothing) {
  StartServer();
  server_->Shutdown(absl::Seconds(10));
  const absl::Status status = server_->ReloadModel(FakeModel("v2"));
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_EQ(server_->model_version(), "fake");
}

// --------------------------------------------------------- attention maps

// A grey PNG of width x height whose pixels differ from place to place (and
// with seed), so that every cell of the fake's map differs.
std::string GradientPng(int width, int height, int seed) {
  cv::Mat image(height, width, CV_8UC1);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      image.at<uint8_t>(y, x) = static_cast<uint8_t>((3 * x + 5 * y + 40 * seed) % 256);
    }
  }
  return test_images::Encode(image, ".png");
}

std::vector<float> MapValues(const Prediction& prediction) {
  return {prediction.attention().values().begin(), prediction.attention().values().end()};
}

// The service on fakes with 112 x 112 faces (7 x 7 maps) and without
// attention modules, beside the fixture's 32 x 32 one.
class AttentionServiceTest : public FakeEngineServiceTest {
 protected:
  // The map the fake gives image, preprocessed as the server does; with
  // ten_crop, the centre crop's (the one the service answers with).
  static std::vector<float> FakeMap(const FakeEngine& fake, const std::string& image,
                                    bool ten_crop) {
    PreprocessOptions options;
    options.input_size = fake.meta().input_size;
    options.gray = true;
    ImageInput input;
    input.encoded = image;
    std::vector<uint8_t> pixels;
    EXPECT_TRUE(Preprocess(input, options, ten_crop, &pixels).ok());
    const size_t offset = ten_crop ? kTenCropCentreBox * fake.face_bytes() : 0;
    return fake.AttentionMap(pixels.data() + offset);
  }

  fer::v1::ModelInfo Info() {
    fer::v1::ModelInfo info;
    EXPECT_TRUE(stub_->GetModelInfo(Context().get(), fer::v1::GetModelInfoRequest(), &info).ok());
    return info;
  }

  FakeEngine fake112_{112};
  FakeEngine no_maps_{32, /*attention=*/false};
};

TEST_F(AttentionServiceTest, MapsArePresentExactlyWhenAskedAndAreTheModelsOwn) {
  serving_engine_ = &fake112_;
  StartServer();
  const fer::v1::ModelInfo info = Info();
  EXPECT_EQ(info.attention_height(), 7u);
  EXPECT_EQ(info.attention_width(), 7u);
  const std::vector<std::string> images = {GradientPng(80, 96, 0), GradientPng(112, 112, 1),
                                           GradientPng(50, 40, 2)};
  ClassifyRequest request;
  for (const std::string& image : images) *request.add_faces() = Encoded(image);
  ClassifyResponse plain;
  ASSERT_TRUE(Classify(request, &plain).ok());
  ASSERT_EQ(plain.predictions_size(), 3);
  for (const Prediction& prediction : plain.predictions()) EXPECT_FALSE(prediction.has_attention());
  // Nobody asked: the model was given no room for maps.
  EXPECT_EQ(fake112_.faces_with_maps(), 0);

  request.mutable_options()->set_attention(true);
  ClassifyResponse mapped;
  const grpc::Status status = Classify(request, &mapped);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(mapped.predictions_size(), 3);
  EXPECT_EQ(fake112_.faces_with_maps(), 3);
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(absl::StrCat("face ", i));
    const Prediction& prediction = mapped.predictions(i);
    ASSERT_TRUE(prediction.has_attention());
    EXPECT_EQ(prediction.attention().height(), 7u);
    EXPECT_EQ(prediction.attention().width(), 7u);
    const std::vector<float> values = MapValues(prediction);
    EXPECT_EQ(values, FakeMap(fake112_, images[i], false));
    EXPECT_FLOAT_EQ(prediction.attention().center_share(), AttentionCenterShare(values, 7, 7));
    // Asking for maps changes nothing else.
    EXPECT_THAT(prediction.probabilities(),
                ::testing::ElementsAreArray(plain.predictions(i).probabilities()));
  }
  // Faces differ, so their maps do: each got its own.
  EXPECT_NE(MapValues(mapped.predictions(0)), MapValues(mapped.predictions(1)));
}

TEST_F(AttentionServiceTest, ATenCropFaceAnswersWithItsCentreCropsMap) {
  serving_engine_ = &fake112_;
  StartServer();
  const std::vector<std::string> images = {GradientPng(90, 120, 3), GradientPng(130, 128, 4)};
  ClassifyRequest request;
  for (const std::string& image : images) *request.add_faces() = Encoded(image);
  request.mutable_options()->set_ten_crop(true);
  request.mutable_options()->set_attention(true);
  ClassifyResponse response;
  const grpc::Status status = Classify(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.predictions_size(), 2);
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE(absl::StrCat("face ", i));
    const std::vector<float> values = MapValues(response.predictions(i));
    EXPECT_EQ(values, FakeMap(fake112_, images[i], /*ten_crop=*/true));
    // Not the single-crop map: the centre crop sees the face at 128 px.
    EXPECT_NE(values, FakeMap(fake112_, images[i], false));
  }
}

TEST_F(AttentionServiceTest, ABatchMixingCallsWithAndWithoutMapsAnswersMapsOnlyToThoseThatAsked) {
  serving_engine_ = &fake112_;
  FerServerOptions options = TestOptions();
  // Two one-face calls form one batch by size; the delay bounds a hang only.
  options.service.batching.max_batch_size = 2;
  options.service.batching.max_queue_delay = absl::Seconds(60);
  StartServer(options);
  ClassifyRequest asks, does_not;
  *asks.add_faces() = Encoded(GradientPng(64, 64, 5));
  asks.mutable_options()->set_attention(true);
  *does_not.add_faces() = Encoded(GradientPng(64, 64, 6));
  ClassifyResponse asked_answer, other_answer;
  grpc::Status asked_status, other_status;
  std::thread first([&] { asked_status = Classify(asks, &asked_answer); });
  std::thread second([&] { other_status = Classify(does_not, &other_answer); });
  first.join();
  second.join();
  ASSERT_TRUE(asked_status.ok()) << asked_status.error_message();
  ASSERT_TRUE(other_status.ok()) << other_status.error_message();
  // One batch of both faces, given room for maps because one face asked.
  EXPECT_EQ(fake112_.faces_with_maps(), 2);
  ASSERT_EQ(asked_answer.predictions_size(), 1);
  ASSERT_EQ(other_answer.predictions_size(), 1);
  EXPECT_EQ(MapValues(asked_answer.predictions(0)),
            FakeMap(fake112_, asks.faces(0).encoded(), false));
  EXPECT_FALSE(other_answer.predictions(0).has_attention());
}

TEST_F(AttentionServiceTest, StreamFramesCarryMapsWhenTheirOptionsAsk) {
  serving_engine_ = &fake112_;
  StartServer();
  constexpr int kFrames = 6;
  std::vector<ClassifyFrame> frames(kFrames);
  for (int f = 0; f < kFrames; ++f) {
    frames[f].set_frame_id(f);
    for (int i = 0; i <= f % 2; ++i) *frames[f].add_faces() = Encoded(GradientPng(70, 70, f + i));
    frames[f].mutable_options()->set_attention(f % 3 != 0);
  }
  auto context = Context();
  auto stream = stub_->ClassifyStream(context.get());
  for (const ClassifyFrame& frame : frames) ASSERT_TRUE(stream->Write(frame));
  stream->WritesDone();
  std::vector<FrameResult> results;
  FrameResult result;
  while (stream->Read(&result)) results.push_back(result);
  ASSERT_TRUE(stream->Finish().ok());
  ASSERT_EQ(results.size(), static_cast<size_t>(kFrames));
  for (int f = 0; f < kFrames; ++f) {
    SCOPED_TRACE(absl::StrCat("frame ", f));
    ASSERT_EQ(results[f].status().code(), 0) << results[f].status().message();
    ASSERT_EQ(results[f].predictions_size(), frames[f].faces_size());
    for (int i = 0; i < frames[f].faces_size(); ++i) {
      const Prediction& prediction = results[f].predictions(i);
      if (!frames[f].options().attention()) {
        EXPECT_FALSE(prediction.has_attention());
        continue;
      }
      EXPECT_EQ(MapValues(prediction), FakeMap(fake112_, frames[f].faces(i).encoded(), false));
      EXPECT_FLOAT_EQ(prediction.attention().center_share(),
                      AttentionCenterShare(MapValues(prediction), 7, 7));
    }
  }
}

TEST_F(AttentionServiceTest, AModelWithoutAttentionRefusesMapsAtAdmission) {
  serving_engine_ = &no_maps_;
  StartServer();
  const fer::v1::ModelInfo info = Info();
  EXPECT_EQ(info.attention_height(), 0u);
  EXPECT_EQ(info.attention_width(), 0u);
  const int64_t warmed_up = no_maps_.faces_received();
  ClassifyRequest request;
  *request.add_faces() = Encoded(GradientPng(40, 40, 0));
  request.mutable_options()->set_attention(true);
  ClassifyResponse response;
  const grpc::Status refused = Classify(request, &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(refused.error_message(), HasSubstr("has no attention maps"));
  EXPECT_EQ(no_maps_.faces_received(), warmed_up);  // refused before the model

  // A stream's frame is refused alone; the stream and other frames go on.
  auto context = Context();
  auto stream = stub_->ClassifyStream(context.get());
  ClassifyFrame frame;
  *frame.add_faces() = request.faces(0);
  frame.mutable_options()->set_attention(true);
  ASSERT_TRUE(stream->Write(frame));
  frame.mutable_options()->set_attention(false);
  ASSERT_TRUE(stream->Write(frame));
  stream->WritesDone();
  FrameResult first, second;
  ASSERT_TRUE(stream->Read(&first));
  ASSERT_TRUE(stream->Read(&second));
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(first.status().code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(second.status().code(), 0);
  EXPECT_EQ(second.predictions_size(), 1);

  request.mutable_options()->set_attention(false);
  EXPECT_TRUE(Classify(request, &response).ok());
}

// The real engine: the map the service answers is the one Runner::Classify
// gives for the same preprocessed face, alone or as a ten-crop's centre.
TEST_F(ServiceTest, MapsAreTheEnginesForTheSameFace) {
  REQUIRE_FACES(faces, 3);
  ASSERT_GT(engine_->attention_size(), 0u) << "the test model has attention modules";
  StartServer();
  PreprocessOptions preprocess;
  preprocess.input_size = engine_->meta().input_size;
  preprocess.gray = engine_->meta().input_channels() == 1;
  std::unique_ptr<Runner> runner = engine_->NewRunner();
  for (bool ten_crop : {false, true}) {
    SCOPED_TRACE(ten_crop ? "ten-crop" : "one crop");
    ClassifyRequest request;
    for (const std::string& face : faces) *request.add_faces() = Encoded(face);
    request.mutable_options()->set_attention(true);
    request.mutable_options()->set_ten_crop(ten_crop);
    ClassifyResponse response;
    const grpc::Status status = Classify(request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.predictions_size(), 3);
    const int crops = ten_crop ? kTenCropCount : 1;
    const size_t map_size = engine_->attention_size();
    for (int i = 0; i < 3; ++i) {
      ImageInput input;
      input.encoded = faces[i];
      std::vector<uint8_t> pixels;
      ASSERT_TRUE(Preprocess(input, preprocess, ten_crop, &pixels).ok());
      std::vector<float> probabilities(crops * engine_->num_classes());
      std::vector<float> maps(crops * map_size);
      ASSERT_TRUE(runner->Classify(pixels.data(), crops, probabilities.data(), maps.data()).ok());
      const float* expected = maps.data() + (ten_crop ? kTenCropCentreBox * map_size : 0);
      const Prediction& prediction = response.predictions(i);
      EXPECT_EQ(prediction.attention().height(),
                static_cast<uint32_t>(engine_->attention_height()));
      EXPECT_EQ(prediction.attention().width(), static_cast<uint32_t>(engine_->attention_width()));
      ASSERT_EQ(prediction.attention().values_size(), static_cast<int>(map_size));
      for (size_t k = 0; k < map_size; ++k) {
        // Batches of other composition may differ in the last bits.
        EXPECT_NEAR(prediction.attention().values(k), expected[k], 1e-4f) << "face " << i;
      }
    }
  }
}

}  // namespace
}  // namespace fer
