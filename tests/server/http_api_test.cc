// The HTTP/JSON API (server/http_api.h) over real loopback HTTP, written byte
// by byte (tests/support/loopback_client.h) so that a test controls every
// header and what is (not) sent of a body. The service under it serves a fake
// engine (tests/support/fake_engine.h), whose answers are a function of each
// face's pixels, so that HTTP answers are held to what gRPC's Classify
// answers for the same images. Nothing waits on the clock but the deadline
// test, which waits for a deadline to have passed; other bounds only turn a
// hang into a failure.
#include "server/http_api.h"

#include <gmock/gmock.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "fer/v1/expression.grpc.pb.h"
#include "server/oip_service.h"
#include "server/server_metrics.h"
#include "server/service.h"
#include "tests/server/server_test_util.h"
#include "tests/server/synthetic_face.h"
#include "tests/support/fake_engine.h"
#include "tests/support/loopback_client.h"
#include "tests/support/parallel_for.h"

namespace fer {
namespace {

using test_support::FakeEngine;
using ::testing::HasSubstr;
using Json = nlohmann::json;

constexpr auto kCallDeadline = std::chrono::seconds(120);
constexpr int kMaxFaces = 4;
constexpr int64_t kMaxBodyBytes = 64 << 10;

using test_util::FacePng;

// What came back from one request: the status code, the head and the body
// parsed as JSON (null when there is none or it is not JSON).
struct Answer {
  int status = 0;
  std::string head;
  std::string body;
  Json json;
};

Answer ParseAnswer(const std::string& response) {
  Answer answer;
  const size_t end = response.find("\r\n\r\n");
  answer.head = response.substr(0, end);
  if (response.size() > 12) absl::SimpleAtoi(response.substr(9, 3), &answer.status);
  answer.body = test_support::HttpBody(response);
  answer.json = Json::parse(answer.body, nullptr, /*allow_exceptions=*/false);
  return answer;
}

// The request line and headers of a request that closes its connection.
std::string Head(const std::string& method, const std::string& target,
                 const std::string& headers = "") {
  return absl::StrCat(method, " ", target, " HTTP/1.1\r\nHost: 127.0.0.1\r\n", headers,
                      "Connection: close\r\n\r\n");
}

std::string Post(const std::string& target, const std::string& type, const std::string& body) {
  return Head("POST", target,
              absl::StrCat(type.empty() ? "" : absl::StrCat("Content-Type: ", type, "\r\n"),
                           "Content-Length: ", body.size(), "\r\n")) +
         body;
}

std::string JsonFaces(const std::vector<std::string>& faces, const std::string& extra = "") {
  std::string body = R"({"faces": [)";
  for (size_t i = 0; i < faces.size(); ++i) {
    absl::StrAppend(&body, i > 0 ? ", " : "", "\"", absl::Base64Escape(faces[i]), "\"");
  }
  return absl::StrCat(body, "]", extra, "}");
}

std::vector<float> Probabilities(const Json& prediction) {
  return prediction.at("probabilities").get<std::vector<float>>();
}

// An ExpressionService on a FakeEngine, with ExpressionClassifier on a
// loopback gRPC server (to compare with) and an HttpApi on a free port; Start
// is separate, so that readiness can be seen before it.
class HttpApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const ServiceOptions options = test_util::TestServiceOptions(kMaxFaces);
    metrics_ = std::make_unique<ServerMetrics>(MetricsOptions());
    auto service = ExpressionService::Create(options, &fake_, metrics_.get());
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = std::move(*service);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    classifier_ = fer::v1::ExpressionClassifier::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
    HttpApiOptions http;
    http.address = "127.0.0.1:0";
    http.max_body_bytes = kMaxBodyBytes;
    auto api = HttpApi::Start(http, service_.get(), metrics_.get());
    ASSERT_TRUE(api.ok()) << api.status();
    api_ = std::move(*api);
  }

  void TearDown() override {
    fake_.Open();
    if (service_ != nullptr) service_->Drain(absl::Seconds(60));
    api_.reset();
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now() + kCallDeadline);
    service_.reset();
  }

  void Start() { ASSERT_TRUE(service_->Start().ok()); }

  Answer Exchange(const std::string& request) {
    return ParseAnswer(test_support::HttpExchange(api_->port(), request));
  }
  Answer Get(const std::string& path) { return Exchange(Head("GET", path)); }

  // gRPC Classify of faces: its status, and its predictions in *response.
  grpc::Status Classify(const std::vector<std::string>& faces, fer::v1::ClassifyResponse* response,
                        bool ten_crop = false, bool attention = false) {
    fer::v1::ClassifyRequest request;
    for (const std::string& face : faces) request.add_faces()->set_encoded(face);
    request.mutable_options()->set_ten_crop(ten_crop);
    request.mutable_options()->set_attention(attention);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
    return classifier_->Classify(&context, request, response);
  }

  double Requests(const std::string& code) const {
    return test_util::MetricValue(
        metrics_->Serialize(),
        absl::StrCat(R"(fer_requests_total{code=")", code, R"(",rpc="HttpClassify"})"));
  }

  FakeEngine fake_;
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<ExpressionService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<fer::v1::ExpressionClassifier::Stub> classifier_;
  std::unique_ptr<HttpApi> api_;
};

TEST_F(HttpApiTest, AnImageBodyIsAnsweredAsClassifyAnswersIt) {
  Start();
  const std::string face = FacePng(3);
  fer::v1::ClassifyResponse expected;
  ASSERT_TRUE(Classify({face}, &expected).ok());
  for (const std::string type : {"image/png", "image/jpeg", "application/octet-stream", ""}) {
    SCOPED_TRACE(type);
    const Answer answer = Exchange(Post("/v1/classify", type, face));
    ASSERT_EQ(answer.status, 200) << answer.body;
    EXPECT_THAT(answer.head, HasSubstr("Content-Type: application/json"));
    ASSERT_EQ(answer.json["predictions"].size(), 1u);
    const Json& prediction = answer.json["predictions"][0];
    const auto& probabilities = expected.predictions(0).probabilities();
    EXPECT_EQ(Probabilities(prediction),
              std::vector<float>(probabilities.begin(), probabilities.end()));
    EXPECT_EQ(prediction["label"], expected.predictions(0).top_label_name());
    EXPECT_EQ(prediction["confidence"].get<float>(), expected.predictions(0).confidence());
    EXPECT_FALSE(prediction.contains("attention"));
    EXPECT_EQ(answer.json["model_version"], fake_.meta().version);
    EXPECT_EQ(answer.json["model_version"], expected.model_version());
  }
  // ten_crop from the query, as Classify's option.
  fer::v1::ClassifyResponse ten;
  ASSERT_TRUE(Classify({face}, &ten, /*ten_crop=*/true).ok());
  const Answer answer = Exchange(Post("/v1/classify?ten_crop=true", "image/png", face));
  ASSERT_EQ(answer.status, 200) << answer.body;
  const auto& probabilities = ten.predictions(0).probabilities();
  EXPECT_EQ(Probabilities(answer.json["predictions"][0]),
            std::vector<float>(probabilities.begin(), probabilities.end()));
  EXPECT_EQ(Requests("OK"), 5);
}

TEST_F(HttpApiTest, AJsonBodyClassifiesEveryFaceInOrder) {
  Start();
  const std::vector<std::string> faces = {FacePng(1), FacePng(2)};
  fer::v1::ClassifyResponse expected;
  ASSERT_TRUE(Classify(faces, &expected).ok());
  const Answer answer =
      Exchange(Post("/v1/classify", "application/json; charset=utf-8", JsonFaces(faces)));
  ASSERT_EQ(answer.status, 200) << answer.body;
  ASSERT_EQ(answer.json["predictions"].size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const auto& probabilities = expected.predictions(i).probabilities();
    EXPECT_EQ(Probabilities(answer.json["predictions"][i]),
              std::vector<float>(probabilities.begin(), probabilities.end()));
  }
  EXPECT_NE(Probabilities(answer.json["predictions"][0]),
            Probabilities(answer.json["predictions"][1]));
  EXPECT_EQ(answer.json["model_version"], fake_.meta().version);
}

// attention, from the query or the JSON body, answers each face's map as
// Classify does with ClassifyOptions.attention.
TEST_F(HttpApiTest, AttentionAnswersTheMapsClassifyAnswers) {
  Start();
  const std::vector<std::string> faces = {FacePng(3), FacePng(4)};
  fer::v1::ClassifyResponse expected;
  ASSERT_TRUE(Classify(faces, &expected, /*ten_crop=*/false, /*attention=*/true).ok());
  ASSERT_TRUE(expected.predictions(0).has_attention());
  const Answer one = Exchange(Post("/v1/classify?attention=true", "image/png", faces[0]));
  const Answer both = Exchange(
      Post("/v1/classify", "application/json", JsonFaces(faces, R"(, "attention": true)")));
  ASSERT_EQ(one.status, 200) << one.body;
  ASSERT_EQ(both.status, 200) << both.body;
  ASSERT_EQ(both.json["predictions"].size(), 2u);
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE(i);
    const fer::v1::AttentionMap& map = expected.predictions(i).attention();
    const Json& got = both.json["predictions"][i].at("attention");
    EXPECT_EQ(got["height"], map.height());
    EXPECT_EQ(got["width"], map.width());
    EXPECT_EQ(got["values"].get<std::vector<float>>(),
              std::vector<float>(map.values().begin(), map.values().end()));
    EXPECT_EQ(got["center_share"].get<float>(), map.center_share());
  }
  EXPECT_EQ(one.json["predictions"][0].at("attention"), both.json["predictions"][0]["attention"]);
  EXPECT_NE(both.json["predictions"][0]["attention"]["values"],
            both.json["predictions"][1]["attention"]["values"]);
}

TEST_F(HttpApiTest, ErrorsCarryGrpcsCodeAndMessage) {
  Start();
  const int64_t model_faces = fake_.faces_received();
  // An image the decoder refuses: gRPC's message, word for word.
  fer::v1::ClassifyResponse unused;
  const grpc::Status grpc_status = Classify({FacePng(1), "not an image"}, &unused);
  ASSERT_EQ(grpc_status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  Answer answer =
      Exchange(Post("/v1/classify", "application/json", JsonFaces({FacePng(1), "not an image"})));
  EXPECT_EQ(answer.status, 400);
  EXPECT_EQ(answer.json["error"]["code"], "INVALID_ARGUMENT");
  EXPECT_EQ(answer.json["error"]["message"], grpc_status.error_message());

  const std::vector<std::string> too_many(kMaxFaces + 1, FacePng(1));
  const grpc::Status over = Classify(too_many, &unused);
  answer = Exchange(Post("/v1/classify", "application/json", JsonFaces(too_many)));
  EXPECT_EQ(answer.status, 400);
  EXPECT_EQ(answer.json["error"]["message"], over.error_message());

  answer = Exchange(Post("/v1/classify", "application/json", R"({"faces": ["%%%"]})"));
  EXPECT_EQ(answer.status, 400);
  EXPECT_THAT(answer.json["error"]["message"].get<std::string>(), HasSubstr("face 0: not"));

  answer = Exchange(Post("/v1/classify?timeout_ms=soon", "image/png", FacePng(1)));
  EXPECT_EQ(answer.status, 400);
  EXPECT_THAT(answer.json["error"]["message"].get<std::string>(), HasSubstr("timeout_ms"));
  EXPECT_EQ(Requests("INVALID_ARGUMENT"), 4);
  EXPECT_EQ(fake_.faces_received(), model_faces);  // every one refused before the model
}

TEST_F(HttpApiTest, AnotherContentTypeIs415) {
  Start();
  const Answer answer = Exchange(Post("/v1/classify", "image/gif", FacePng(1)));
  EXPECT_EQ(answer.status, 415);
  EXPECT_EQ(answer.json["error"]["code"], "INVALID_ARGUMENT");
  EXPECT_THAT(answer.json["error"]["message"].get<std::string>(), HasSubstr("image/gif"));
}

// The client sends the headers only: an answer proves the body was not
// waited for, let alone read.
TEST_F(HttpApiTest, ABodyOverTheLimitIs413BeforeItIsSent) {
  Start();
  const Answer answer = Exchange(
      Head("POST", "/v1/classify",
           absl::StrCat("Content-Type: image/png\r\nContent-Length: ", kMaxBodyBytes + 1, "\r\n")));
  EXPECT_EQ(answer.status, 413);
  EXPECT_EQ(answer.json["error"]["code"], "RESOURCE_EXHAUSTED");
  EXPECT_THAT(answer.json["error"]["message"].get<std::string>(),
              HasSubstr(absl::StrCat("the limit is ", kMaxBodyBytes, " bytes")));

  // A chunked body is counted as it comes: refused once it is complete.
  std::string chunked =
      Head("POST", "/v1/classify", "Content-Type: image/png\r\nTransfer-Encoding: chunked\r\n");
  const std::string chunk(16 << 10, 'x');
  for (int i = 0; i < 5; ++i)
    absl::StrAppend(&chunked, absl::Hex(chunk.size()), "\r\n", chunk, "\r\n");
  absl::StrAppend(&chunked, "0\r\n\r\n");
  EXPECT_EQ(Exchange(chunked).status, 413);
  EXPECT_EQ(Requests("RESOURCE_EXHAUSTED"), 2);
  // One at the limit is read and classified.
  EXPECT_EQ(Exchange(Post("/v1/classify", "image/png", FacePng(1))).status, 200);
}

TEST_F(HttpApiTest, UnknownPathsAre404AndOtherMethods405) {
  Start();
  Answer answer = Get("/v1/nothing");
  EXPECT_EQ(answer.status, 404);
  EXPECT_EQ(answer.json["error"]["code"], "NOT_FOUND");
  answer = Get("/v1/classify");
  EXPECT_EQ(answer.status, 405);
  EXPECT_THAT(answer.head, HasSubstr("Allow: POST"));
  answer = Exchange(Post("/v2/health/ready", "image/png", "x"));
  EXPECT_EQ(answer.status, 405);
  EXPECT_THAT(answer.head, HasSubstr("Allow: GET, HEAD"));
  EXPECT_EQ(Requests("UNIMPLEMENTED"), 1);  // the GET of /v1/classify
}

TEST_F(HttpApiTest, ReadyOnlyWhileServingLiveThroughout) {
  EXPECT_EQ(Get("/v2/health/live").status, 200);
  EXPECT_EQ(Get("/v2/health/ready").status, 503);
  EXPECT_EQ(Get("/v2/models/lla-net/ready").status, 503);
  Answer answer = Exchange(Post("/v1/classify", "image/png", FacePng(1)));
  EXPECT_EQ(answer.status, 503);
  EXPECT_EQ(answer.json["error"]["code"], "UNAVAILABLE");
  Start();
  EXPECT_EQ(Get("/v2/health/ready").status, 200);
  EXPECT_EQ(Get("/v2/models/lla-net/ready").status, 200);
  service_->Drain(absl::Seconds(60));
  EXPECT_EQ(Get("/v2/health/live").status, 200);
  EXPECT_EQ(Get("/v2/health/ready").status, 503);
  answer = Exchange(Post("/v1/classify", "image/png", FacePng(1)));
  EXPECT_EQ(answer.status, 503);
  EXPECT_THAT(answer.json["error"]["message"].get<std::string>(), HasSubstr("shutting down"));
  EXPECT_EQ(Requests("UNAVAILABLE"), 2);
}

// Live follows the batcher: 503 while a batch is stuck in the model past the
// liveness timeout, 200 again once batches finish. Polls for each state
// (bounded) rather than timing it.
TEST_F(HttpApiTest, LiveIs503WhileTheModelIsStalled) {
  Start();
  HttpApiOptions options;
  options.address = "127.0.0.1:0";
  options.liveness_timeout = absl::Milliseconds(100);
  auto watched = HttpApi::Start(options, service_.get(), metrics_.get());
  ASSERT_TRUE(watched.ok()) << watched.status();
  auto live = [&] {
    return ParseAnswer(
               test_support::HttpExchange((*watched)->port(), Head("GET", "/v2/health/live")))
        .status;
  };
  auto wait_for = [&](int status) {
    const absl::Time give_up = absl::Now() + absl::Seconds(60);
    while (live() != status && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(20));
    return live() == status;
  };
  EXPECT_EQ(live(), 200);
  fake_.Hold();
  const int64_t before = fake_.faces_received();
  Answer answer;
  std::thread client([&] { answer = Exchange(Post("/v1/classify", "image/png", FacePng(1))); });
  ASSERT_TRUE(fake_.WaitForFacesReceived(before + 1, absl::Seconds(60)));
  EXPECT_TRUE(wait_for(503));
  EXPECT_EQ(
      ParseAnswer(test_support::HttpExchange((*watched)->port(), Head("GET", "/v2/health/ready")))
          .status,
      503);
  fake_.Open();
  client.join();
  EXPECT_EQ(answer.status, 200);
  EXPECT_TRUE(wait_for(200));
}

// A request in the model when Drain begins is answered; Stop then returns.
TEST_F(HttpApiTest, DrainAnswersTheRequestInFlight) {
  Start();
  fake_.Hold();
  const int64_t before = fake_.faces_received();
  Answer answer;
  std::thread client([&] { answer = Exchange(Post("/v1/classify", "image/png", FacePng(1))); });
  ASSERT_TRUE(fake_.WaitForFacesReceived(before + 1, absl::Seconds(60)));
  std::thread drain([&] { service_->Drain(absl::Seconds(60)); });
  fake_.Open();
  drain.join();
  client.join();
  EXPECT_EQ(answer.status, 200) << answer.body;
  api_->Stop();
  EXPECT_EQ(Requests("OK"), 1);
}

// Many clients at once, some refused: each request is answered once, with
// its own face's probabilities, and counted once.
TEST_F(HttpApiTest, ConcurrentRequestsAreEachAnsweredOnceWithTheirOwnFace) {
  Start();
  constexpr int kClients = 8;
  constexpr int kEach = 12;
  std::vector<std::vector<float>> expected;
  for (int seed = 0; seed < kEach; ++seed) {
    fer::v1::ClassifyResponse response;
    ASSERT_TRUE(Classify({FacePng(seed)}, &response).ok());
    const auto& p = response.predictions(0).probabilities();
    expected.emplace_back(p.begin(), p.end());
  }
  std::vector<int> ok(kClients, 0), refused(kClients, 0);
  test_support::ParallelFor(kClients, [&](int client) {
    for (int i = 0; i < kEach; ++i) {
      if ((client + i) % 4 == 0) {
        refused[client] += Exchange(Post("/v1/classify", "image/gif", "x")).status == 415;
        continue;
      }
      const Answer answer = Exchange(Post("/v1/classify", "image/png", FacePng(i)));
      ok[client] +=
          answer.status == 200 && Probabilities(answer.json["predictions"][0]) == expected[i];
    }
  });
  int total_ok = 0, total_refused = 0;
  for (int c = 0; c < kClients; ++c) {
    total_ok += ok[c];
    total_refused += refused[c];
  }
  EXPECT_EQ(total_ok + total_refused, kClients * kEach);
  EXPECT_EQ(total_refused, kClients * kEach / 4);
  EXPECT_EQ(Requests("OK"), total_ok);
  EXPECT_EQ(Requests("INVALID_ARGUMENT"), total_refused);
}

TEST_F(HttpApiTest, APassedDeadlineIs504) {
  Start();
  fake_.Hold();
  const int64_t before = fake_.faces_received();
  Answer answer;
  std::thread client(
      [&] { answer = Exchange(Post("/v1/classify?timeout_ms=100", "image/png", FacePng(1))); });
  ASSERT_TRUE(fake_.WaitForFacesReceived(before + 1, absl::Seconds(60)));
  absl::SleepFor(absl::Milliseconds(200));  // past the deadline, with the face in the model
  fake_.Open();
  client.join();
  EXPECT_EQ(answer.status, 504) << answer.body;
  EXPECT_EQ(answer.json["error"]["code"], "DEADLINE_EXCEEDED");
}

TEST_F(HttpApiTest, ModelDocumentsAreGetModelInfosAndTheOipMetadata) {
  Start();
  Answer answer = Get("/v1/model");
  ASSERT_EQ(answer.status, 200);
  EXPECT_EQ(answer.json["version"], fake_.meta().version);
  EXPECT_EQ(answer.json["max_faces_per_request"], kMaxFaces);
  EXPECT_EQ(answer.json["labels"].size(), fake_.meta().labels.size());
  answer = Get("/v2/models/lla-net");
  ASSERT_EQ(answer.status, 200);
  EXPECT_EQ(answer.json["name"], kOipModelName);
  EXPECT_EQ(answer.json["inputs"][0]["name"], kOipInputName);
  EXPECT_EQ(answer.json["outputs"][0]["name"], kOipOutputName);
  EXPECT_EQ(answer.json["outputs"][0]["shape"][1], fake_.num_classes());
  EXPECT_EQ(Get("/v2").json["name"], "fer-server");
}

TEST(HttpApiStartTest, ATakenPortIsUnavailableNamingTheAddress) {
  FakeEngine fake;
  ServerMetrics metrics{MetricsOptions()};
  ServiceOptions options;
  options.preprocess_threads = 1;
  auto service = ExpressionService::Create(options, &fake, &metrics);
  ASSERT_TRUE(service.ok());
  HttpApiOptions http;
  http.address = "127.0.0.1:0";
  auto first = HttpApi::Start(http, service->get(), &metrics);
  ASSERT_TRUE(first.ok()) << first.status();
  http.address = absl::StrCat("127.0.0.1:", (*first)->port());
  auto second = HttpApi::Start(http, service->get(), &metrics);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(second.status().message()), HasSubstr(http.address));
  http.address = "no-port";
  EXPECT_EQ(HttpApi::Start(http, service->get(), &metrics).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace fer
