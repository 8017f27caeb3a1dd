// Tests of the fer-server binary as deploy scripts and orchestrators see it:
// started as a subprocess on free loopback ports, probed through gRPC health,
// scraped by a real Prometheus server, stopped with SIGTERM under load, killed
// and restarted, left by clients in the middle of their streams. Nothing here
// asserts on timing: waits are for conditions, bounded only to turn a hang
// into a failure.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fer/v1/expression.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/server/server_process.h"
#include "tests/server/server_test_util.h"
#include "tests/server/test_images.h"
#include "tests/support/files.h"
#include "tests/support/free_port.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace fer {
namespace {

namespace fs = std::filesystem;
using fer::v1::ClassifyFrame;
using fer::v1::ClassifyRequest;
using fer::v1::ClassifyResponse;
using fer::v1::ExpressionClassifier;
using fer::v1::FrameResult;
using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;
using test_support::FreePort;
using test_support::HaveProgram;
using test_support::TempDir;
using test_util::Context;
using test_util::Encoded;
using test_util::ExpectOneErrorLine;
using test_util::Fetch;
using test_util::kExitTimeout;
using test_util::kStartTimeout;
using test_util::MetricValue;
using test_util::Process;
using test_util::RunToCompletion;
using test_util::ServerProcess;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::Duration kScrapeTimeout = absl::Seconds(120);

// -------------------------------------------------------- start-up errors

TEST(FerServerTest, AMissingModelFileIsOneClearLineAndAFailedExit) {
  std::string output;
  EXPECT_NE(RunToCompletion({FER_SERVER_BIN, "--model=/nonexistent/model.pt"}, &output), 0);
  ExpectOneErrorLine(output, "/nonexistent/model.pt");
}

TEST(FerServerTest, ACorruptModelFileIsOneClearLineAndAFailedExit) {
  TempDir dir;
  std::ofstream(dir / "corrupt.pt") << "this is not a weight file";
  std::string output;
  EXPECT_NE(RunToCompletion({FER_SERVER_BIN, "--model=" + dir / "corrupt.pt"}, &output), 0);
  ExpectOneErrorLine(output, "corrupt.pt");
}

TEST(FerServerTest, ATruncatedModelFileIsOneClearLineAndAFailedExit) {
  const std::string model = test_support::ReadFile(test_util::TestModelPath());
  ASSERT_GT(model.size(), 1000u);
  TempDir dir;
  for (const size_t kept : {model.size() / 2, model.size() - 100, size_t{512}}) {
    SCOPED_TRACE(kept);
    std::ofstream(dir / "truncated.pt", std::ios::binary) << model.substr(0, kept);
    std::string output;
    EXPECT_NE(RunToCompletion({FER_SERVER_BIN, "--model=" + dir / "truncated.pt"}, &output), 0);
    ExpectOneErrorLine(output, "truncated.pt");
  }
}

TEST(FerServerTest, AForeignFileAsModelIsOneClearLineAndAFailedExit) {
  TempDir dir;
  // An image, and a zip archive (the container format of weight files) that
  // holds something else.
  std::ofstream(dir / "face.png", std::ios::binary) << test_util::BombPng(48, 48);
  ASSERT_EQ(std::system(("cd " + dir.path() + " && echo hello > hello.txt && " +
                         "python3 -c 'import zipfile; zipfile.ZipFile(\"other.zip\", "
                         "\"w\").write(\"hello.txt\")'")
                            .c_str()),
            0);
  for (const std::string name : {"face.png", "other.zip"}) {
    SCOPED_TRACE(name);
    std::string output;
    EXPECT_NE(RunToCompletion({FER_SERVER_BIN, "--model=" + dir / name}, &output), 0);
    ExpectOneErrorLine(output, name);
  }
}

TEST(FerServerTest, NoModelFlagIsOneClearLineAndAFailedExit) {
  std::string output;
  EXPECT_NE(RunToCompletion({FER_SERVER_BIN}, &output), 0);
  ExpectOneErrorLine(output, "--model is required");
}

TEST(FerServerTest, BadFlagValuesAreRefusedNamingTheFlag) {
  // One case per place that checks: the batcher, the service, the binary's
  // own flag checks, the engine.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--max_batch_size=-1", "max_batch_size"},  // 0 means the device's default
      {"--instances=0", "instances"},
      {"--stream_window=0", "stream_window"},
      {"--max_image_bytes=0", "max_image_bytes"},
      {"--device=tpu", "tpu"},
      {"--access_log_sample=0", "--access_log_sample"},
      {"--access_log=/nonexistent/folder/access.log", "/nonexistent/folder/access.log"},
  };
  for (const auto& [flag, text] : cases) {
    SCOPED_TRACE(flag);
    std::string output;
    EXPECT_NE(RunToCompletion(
                  {FER_SERVER_BIN, "--model=" + test_util::TestModelPath(), "--address=127.0.0.1:0",
                   "--metrics_address=127.0.0.1:0", "--http_address=127.0.0.1:0", flag},
                  &output),
              0);
    EXPECT_THAT(output, HasSubstr(text));
    EXPECT_THAT(output, ::testing::Not(HasSubstr("SERVING")));
  }
  std::string output;
  EXPECT_NE(RunToCompletion({FER_SERVER_BIN, "--max_batch_size=many"}, &output), 0);
  EXPECT_THAT(output, HasSubstr("max_batch_size"));
}

// A loopback port held by a listening socket of the test's own, for as long
// as the object lives; port() is 0 if the socket could not be set up.
class HeldPort {
 public:
  HeldPort() : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    if (fd_ >= 0 && bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
        listen(fd_, 1) == 0 &&
        getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
      port_ = ntohs(address.sin_port);
    }
  }
  ~HeldPort() {
    if (fd_ >= 0) close(fd_);
  }
  HeldPort(const HeldPort&) = delete;
  HeldPort& operator=(const HeldPort&) = delete;

  int port() const { return port_; }

 private:
  const int fd_;
  int port_ = 0;
};

TEST(FerServerTest, ATakenMetricsPortIsAClearErrorAndAFailedExit) {
  const HeldPort held;
  ASSERT_GT(held.port(), 0);
  const int port = held.port();

  std::string output;
  EXPECT_NE(RunToCompletion(
                {FER_SERVER_BIN, "--model=" + test_util::TestModelPath(), "--address=127.0.0.1:0",
                 absl::StrCat("--metrics_address=127.0.0.1:", port), "--http_address=127.0.0.1:0"},
                &output),
            0);
  EXPECT_THAT(output, HasSubstr(absl::StrCat("cannot serve metrics on 127.0.0.1:", port)));
}

TEST(FerServerTest, ATakenHttpPortIsAClearErrorAndAFailedExit) {
  const HeldPort held;
  ASSERT_GT(held.port(), 0);
  const int port = held.port();

  std::string output;
  EXPECT_EQ(RunToCompletion(
                {FER_SERVER_BIN, "--model=" + test_util::TestModelPath(), "--address=127.0.0.1:0",
                 "--metrics_address=127.0.0.1:0", absl::StrCat("--http_address=127.0.0.1:", port)},
                &output),
            1);
  ExpectOneErrorLine(output, absl::StrCat("cannot listen for HTTP on 127.0.0.1:", port));
}

// 64 idle connections and 4 that have sent only part of a request, all held
// open, do not keep fer-server's /metrics from answering (they blocked it for
// 30 s when civetweb served it). curl's --max-time 10 only bounds a hang.
TEST(FerServerTest, MetricsAnswerWhileIdleAndSlowConnectionsAreOpen) {
  TempDir dir;
  ServerProcess server(dir);
  ASSERT_TRUE(server.WaitServing()) << server.Log();
  std::vector<int> hostile;
  for (int i = 0; i < 68; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<uint16_t>(server.metrics_port()));
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    if (i >= 64) ASSERT_EQ(send(fd, "GET /met", 8, MSG_NOSIGNAL), 8);
    hostile.push_back(fd);
  }
  const std::string metrics = server.Metrics();
  for (int fd : hostile) close(fd);
  EXPECT_EQ(MetricValue(metrics, "fer_faces_total"), 0) << metrics;
  EXPECT_GT(MetricValue(metrics, "process_resident_memory_bytes"), 0) << metrics;
  EXPECT_GT(MetricValue(metrics, "process_open_fds"), 0) << metrics;
}

TEST(FerServerTest, HelpfullListsEveryFlagTheDeployFilesPass) {
  std::string help;
  RunToCompletion({FER_SERVER_BIN, "--helpfull"}, &help);
  std::ifstream flags(std::string(FER_SOURCE_DIR) + "/tests/deploy/fer_server_flags.txt");
  std::string flag;
  int checked = 0;
  while (std::getline(flags, flag)) {
    if (flag.empty() || flag[0] == '#') continue;
    EXPECT_THAT(help, HasSubstr("--" + flag + " ")) << flag;
    ++checked;
  }
  EXPECT_GT(checked, 0);
  for (const char* more : {"--max_faces_per_request", "--max_image_bytes", "--max_image_pixels",
                           "--stream_window", "--warmup"}) {
    EXPECT_THAT(help, HasSubstr(more));
  }
}

// --help lists every flag fer-server defines (the same set as --helpfull's
// server section), under a file name relative to the project; --version names
// the project's version and LibTorch's, not Abseil's build mode.
TEST(FerServerTest, HelpListsEveryServerFlagAndVersionNamesTheProject) {
  std::string help, full, version;
  RunToCompletion({FER_SERVER_BIN, "--help"}, &help);
  RunToCompletion({FER_SERVER_BIN, "--helpfull"}, &full);
  EXPECT_THAT(help, Not(HasSubstr("No flags matched")));
  EXPECT_THAT(help, HasSubstr("  Flags from server/server_main.cc:\n"));
  const std::regex flag_line(R"(\n    --([a-z0-9_]+) \()");
  auto flags_of = [&](const std::string& text) {
    std::set<std::string> names;
    for (std::sregex_iterator it(text.begin(), text.end(), flag_line), end; it != end; ++it) {
      names.insert((*it)[1]);
    }
    return names;
  };
  const std::set<std::string> listed = flags_of(help);
  EXPECT_GT(listed.size(), 20u) << help;
  for (const char* flag : {"address", "metrics_address", "model", "preprocess_threads", "warmup"}) {
    EXPECT_TRUE(listed.count(flag)) << flag;
  }
  for (const std::string& flag : flags_of(full)) {
    if (flag == "flagfile" || flag == "fromenv" || flag == "tryfromenv" || flag == "undefok") {
      continue;  // Abseil's own, listed by --helpfull only
    }
    EXPECT_TRUE(listed.count(flag)) << flag;
  }
  EXPECT_THAT(full, Not(HasSubstr(FER_SOURCE_DIR)));
  EXPECT_THAT(full, Not(HasSubstr("Flags from /")));
  EXPECT_THAT(full, Not(HasSubstr("Flags from ..")));

  EXPECT_EQ(RunToCompletion({FER_SERVER_BIN, "--version"}, &version), 0);
  EXPECT_TRUE(std::regex_match(
      version,
      std::regex(
          R"(fer-server [0-9]+\.[0-9]+\.[0-9]+ \(LibTorch [0-9]+\.[0-9]+\.[0-9]+[^)]*\)\n)")))
      << version;
}

// ------------------------------------------------------------ HTTP API

// The HTTP status code curl got for args (a URL and curl options); its body
// in *body.
int CurlStatus(const std::string& args, std::string* body, const std::string& dir) {
  std::string code;
  const std::string out = dir + "/curl.out";
  test_support::RunShell("curl -sS --max-time 120 -o '" + out + "' -w '%{http_code}' " + args,
                         &code);
  *body = test_support::ReadFile(out);
  int status = 0;
  return absl::SimpleAtoi(code, &status) ? status : -1;
}

// What the README promises: `curl --data-binary @face.jpg .../v1/classify`
// against the binary, answered as gRPC's Classify answers the same bytes, and
// counted and drained like any call.
TEST(FerServerTest, CurlClassifiesAFaceOverHttpAsGrpcDoes) {
  const std::vector<std::string> faces = test_util::RealFaces(1);
  if (faces.empty()) GTEST_SKIP() << test_images::SkipMessage();
  if (!HaveProgram("curl")) GTEST_SKIP() << "needs curl on PATH (Debian: curl)";
  TempDir dir;
  ServerProcess server(dir);
  ASSERT_TRUE(server.WaitServing()) << server.Log();
  ASSERT_TRUE(test_support::WriteFile(dir / "face.jpg", faces[0]));
  std::string body;
  ASSERT_EQ(CurlStatus(server.http_url() + "/v2/health/ready", &body, dir.path()), 200);

  ASSERT_EQ(
      CurlStatus("--data-binary @'" + dir / "face.jpg" + "' " + server.http_url() + "/v1/classify",
                 &body, dir.path()),
      200)
      << body;
  const nlohmann::json answer = nlohmann::json::parse(body);
  ClassifyRequest request;
  *request.add_faces() = Encoded(faces[0]);
  ClassifyResponse expected;
  ASSERT_TRUE(server.stub()->Classify(Context().get(), request, &expected).ok());
  const auto& probabilities = expected.predictions(0).probabilities();
  EXPECT_EQ(answer["predictions"][0]["probabilities"].get<std::vector<float>>(),
            std::vector<float>(probabilities.begin(), probabilities.end()));
  EXPECT_EQ(answer["predictions"][0]["label"], expected.predictions(0).top_label_name());
  EXPECT_EQ(answer["model_version"], expected.model_version());
  EXPECT_FALSE(expected.model_version().empty());

  EXPECT_EQ(CurlStatus("-H 'Content-Type: text/plain' --data-binary @'" + dir / "face.jpg" + "' " +
                           server.http_url() + "/v1/classify",
                       &body, dir.path()),
            415);
  EXPECT_EQ(MetricValue(server.Metrics(), R"(fer_requests_total{code="OK",rpc="HttpClassify"})"),
            1);
  server.process().Signal(SIGTERM);
  EXPECT_EQ(server.process().WaitExit(kExitTimeout), 0);
  EXPECT_THAT(server.Log(), HasSubstr("HTTP API on http://127.0.0.1:"));
  EXPECT_THAT(server.Log(), HasSubstr("HttpClassify OK=1 INVALID_ARGUMENT=1"));
}

// ---------------------------------------------------------------- serving

// What one unary client of a draining server saw: its OK answers, and the
// status that ended its run.
struct UnaryOutcome {
  int ok = 0;
  grpc::Status last;
};

// Sends request until the server refuses it; each answer must hold two
// predictions (the request's two faces).
void SendUntilRefused(ServerProcess* server, const ClassifyRequest& request,
                      UnaryOutcome* outcome) {
  for (;;) {
    ClassifyResponse response;
    const grpc::Status status = server->stub()->Classify(Context().get(), request, &response);
    if (!status.ok()) {
      outcome->last = status;
      return;
    }
    EXPECT_EQ(response.predictions_size(), 2);
    ++outcome->ok;
  }
}

// A stream client: one thread writes frames (one face each) until writing
// fails, another reads every answer, which must be OK.
class FrameStream {
 public:
  FrameStream(ServerProcess* server, const std::vector<std::string>& faces)
      : context_(Context()), stream_(server->stub()->ClassifyStream(context_.get())) {
    writer_ = std::thread([this, &faces] {
      for (uint64_t id = 1;; ++id) {
        ClassifyFrame frame;
        frame.set_frame_id(id);
        *frame.add_faces() = Encoded(faces[id % faces.size()]);
        if (!stream_->Write(frame)) return;
      }
    });
    reader_ = std::thread([this] {
      FrameResult result;
      while (stream_->Read(&result)) {
        EXPECT_EQ(result.status().code(), 0) << result.status().message();
        answered_ids_.push_back(result.frame_id());
      }
    });
  }

  // A test that stopped early cancels the stream rather than leave the
  // threads running.
  ~FrameStream() {
    if (reader_.joinable()) {
      context_->TryCancel();
      Finish();
    }
  }
  FrameStream(const FrameStream&) = delete;
  FrameStream& operator=(const FrameStream&) = delete;

  // Waits for both threads once the server has ended the stream; its status.
  grpc::Status Finish() {
    reader_.join();
    writer_.join();
    return stream_->Finish();
  }
  // The ids of the answered frames, in the order they came (after Finish).
  const std::vector<uint64_t>& answered_ids() const { return answered_ids_; }

 private:
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientReaderWriter<ClassifyFrame, FrameResult>> stream_;
  std::vector<uint64_t> answered_ids_;
  std::thread writer_;
  std::thread reader_;
};

// Waits (at most kStartTimeout) until the server has answered `calls`
// Classify calls OK.
void WaitForClassifyAnswers(const ServerProcess& server, int calls) {
  const absl::Time give_up = absl::Now() + kStartTimeout;
  while (absl::Now() < give_up &&
         MetricValue(server.Metrics(), "fer_requests_total{rpc=\"Classify\",code=\"OK\"}") <
             calls) {
    absl::SleepFor(absl::Milliseconds(50));
  }
}

// Every unary client had answers and then was refused ("shutting down"), or,
// arriving as the gRPC server closed, refused by gRPC itself before reaching
// the service (UNAVAILABLE when it could not connect, CANCELLED when the call
// raced the close). Returns their OK answers in all.
int ExpectAnsweredThenRefused(const std::vector<UnaryOutcome>& outcomes) {
  int total_ok = 0;
  for (size_t c = 0; c < outcomes.size(); ++c) {
    SCOPED_TRACE(absl::StrCat("client ", c));
    EXPECT_GT(outcomes[c].ok, 0);
    total_ok += outcomes[c].ok;
    EXPECT_THAT(outcomes[c].last.error_code(),
                ::testing::AnyOf(grpc::StatusCode::UNAVAILABLE, grpc::StatusCode::CANCELLED))
        << outcomes[c].last.error_message();
  }
  return total_ok;
}

// The stream had every frame it sent answered in order, then UNAVAILABLE.
void ExpectStreamAnsweredInOrderThenRefused(const grpc::Status& status,
                                            const std::vector<uint64_t>& answered_ids) {
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("shutting down"));
  ASSERT_FALSE(answered_ids.empty());
  for (size_t i = 0; i < answered_ids.size(); ++i) EXPECT_EQ(answered_ids[i], i + 1);
}

// The load tests below are about signals, not admission: on a slow or busy
// machine the batcher's time estimate could otherwise refuse their clients
// RESOURCE_EXHAUSTED ("about 11s of work (limit 10s)") before the signal.
constexpr char kNoQueueTimeBound[] = "--max_queue_time=1h";

// SIGTERM while clients keep sending: health turns NOT_SERVING, every request
// the server accepted is answered (OK), the others are refused UNAVAILABLE
// (never dropped, cancelled or cut off), the open stream gets every frame it
// sent answered in order and then UNAVAILABLE, and the process exits 0.
TEST(FerServerTest, SigtermUnderLoadAnswersEveryAcceptedRequestAndExitsZero) {
  const std::vector<std::string> faces = test_util::RealFaces(7);
  if (faces.size() < 7) GTEST_SKIP() << test_images::SkipMessage();
  TempDir dir;
  ServerProcess server(dir, {kNoQueueTimeBound});
  ASSERT_TRUE(server.WaitServing()) << server.Log();
  EXPECT_THAT(server.Log(), HasSubstr("WARNING"));
  EXPECT_THAT(server.Log(), HasSubstr("UNTRAINED"));

  grpc::ClientContext watch_context;
  auto watch = server.health()->Watch(&watch_context, HealthCheckRequest());
  HealthCheckResponse health;
  ASSERT_TRUE(watch->Read(&health));
  EXPECT_EQ(health.status(), HealthCheckResponse::SERVING);

  // Unary clients, each sending until it is refused, and a stream client.
  constexpr int kClients = 4;
  std::vector<UnaryOutcome> outcomes(kClients);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    ClassifyRequest request;
    *request.add_faces() = Encoded(faces[c]);
    *request.add_faces() = Encoded(faces[c + 1]);
    clients.emplace_back(SendUntilRefused, &server, request, &outcomes[c]);
  }
  FrameStream stream(&server, faces);

  // SIGTERM once every client has had answers.
  WaitForClassifyAnswers(server, 2 * kClients);
  server.process().Signal(SIGTERM);
  ASSERT_TRUE(watch->Read(&health));
  EXPECT_EQ(health.status(), HealthCheckResponse::NOT_SERVING);
  for (std::thread& client : clients) client.join();
  const grpc::Status stream_status = stream.Finish();
  EXPECT_EQ(server.process().WaitExit(kExitTimeout), 0) << server.Log();

  // The server's own account: nothing accepted is still in flight, and it
  // answered exactly the calls and frames the clients received.
  const int total_ok = ExpectAnsweredThenRefused(outcomes);
  const std::string log = server.Log();
  const size_t stopped = log.find("fer-server: stopped; requests answered: ");
  ASSERT_NE(stopped, std::string::npos) << log;
  const std::string summary = log.substr(stopped, log.find('\n', stopped) - stopped);
  // The count ends at a space (more codes follow) or a comma (none do).
  EXPECT_THAT(summary, ::testing::ContainsRegex(absl::StrCat("Classify OK=", total_ok, "[ ,]")));
  EXPECT_THAT(summary, HasSubstr(absl::StrCat("ClassifyStream OK=", stream.answered_ids().size())));
  EXPECT_THAT(summary, ::testing::EndsWith("; in flight 0"));
  ExpectStreamAnsweredInOrderThenRefused(stream_status, stream.answered_ids());
  watch_context.TryCancel();
  watch->Finish();
}

// The exposition passes promtool, and a real Prometheus server scraping it
// returns our counters through its query API.
TEST(FerServerTest, PrometheusScrapesTheCountersOfARealServer) {
  const std::vector<std::string> faces = test_util::RealFaces(2);
  if (faces.size() < 2) GTEST_SKIP() << test_images::SkipMessage();
  if (!HaveProgram("prometheus") || !HaveProgram("promtool") || !HaveProgram("curl")) {
    GTEST_SKIP() << "needs prometheus, promtool and curl on PATH (Debian: prometheus, curl)";
  }
  TempDir dir;
  ServerProcess server(dir);
  ASSERT_TRUE(server.WaitServing()) << server.Log();

  constexpr int kGood = 3;
  for (int i = 0; i < kGood; ++i) {
    ClassifyRequest request;
    for (const std::string& face : faces) *request.add_faces() = Encoded(face);
    ClassifyResponse response;
    ASSERT_TRUE(server.stub()->Classify(Context().get(), request, &response).ok());
  }
  ClassifyRequest bad;
  *bad.add_faces() = Encoded("not an image");
  ClassifyResponse response;
  EXPECT_EQ(server.stub()->Classify(Context().get(), bad, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  const std::string metrics = server.Metrics();
  std::string promtool;
  EXPECT_EQ(test_util::PromtoolCheckMetrics(metrics, &promtool), 0) << promtool;
  EXPECT_EQ(MetricValue(metrics, "fer_faces_total"), kGood * 2);

  const int prometheus_port = FreePort();
  std::ofstream(dir / "prometheus.yml")
      << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
      << "scrape_configs:\n  - job_name: fer-server\n    static_configs:\n"
      << "      - targets: ['127.0.0.1:" << server.metrics_port() << "']\n";
  Process prometheus({"/usr/bin/env", "prometheus", "--config.file=" + dir / "prometheus.yml",
                      "--storage.tsdb.path=" + dir / "tsdb",
                      absl::StrCat("--web.listen-address=127.0.0.1:", prometheus_port)},
                     dir / "prometheus.log");

  // Prometheus's answer for an instant query, e.g. "...,\"3\"]}]}}".
  auto query = [&](const std::string& promql) {
    std::string encoded;
    for (char c : promql) {
      if (isalnum(static_cast<unsigned char>(c)) || c == '_') {
        encoded += c;
      } else {
        encoded += absl::StrFormat("%%%02X", static_cast<unsigned char>(c));
      }
    }
    return Fetch(
        absl::StrCat("http://127.0.0.1:", prometheus_port, "/api/v1/query?query=", encoded));
  };
  const std::string ok_query =
      "fer_requests_total{job=\"fer-server\",rpc=\"Classify\",code=\"OK\"}";
  const absl::Time give_up = absl::Now() + kScrapeTimeout;
  std::string answer;
  while (absl::Now() < give_up && prometheus.running()) {
    answer = query(ok_query);
    if (answer.find(absl::StrCat(",\"", kGood, "\"]")) != std::string::npos) break;
    absl::SleepFor(absl::Milliseconds(250));
  }
  EXPECT_THAT(answer, HasSubstr(absl::StrCat(",\"", kGood, "\"]")))
      << answer << "\n"
      << test_support::ReadFile(dir / "prometheus.log");
  EXPECT_THAT(query("fer_requests_total{rpc=\"Classify\",code=\"INVALID_ARGUMENT\"}"),
              HasSubstr(",\"1\"]"));
  EXPECT_THAT(query("fer_faces_total"), HasSubstr(absl::StrCat(",\"", kGood * 2, "\"]")));
  EXPECT_THAT(query("fer_model_info"), HasSubstr("\"device\":\"cpu\""));
  EXPECT_THAT(query("up{job=\"fer-server\"}"), HasSubstr(",\"1\"]"));

  prometheus.Signal(SIGTERM);
  EXPECT_EQ(prometheus.WaitExit(kExitTimeout), 0);
  server.process().Signal(SIGTERM);
  EXPECT_EQ(server.process().WaitExit(kExitTimeout), 0) << server.Log();
}

// ----------------------------------------------------------------- faults

// The server still serves (a bad image reaches the service and is judged on
// its merits), then drains on SIGTERM with nothing left in flight.
void ExpectServingThenDrain(ServerProcess* server) {
  ClassifyRequest request;
  *request.add_faces() = Encoded(test_util::BombPng(48, 48));
  ClassifyResponse response;
  EXPECT_EQ(server->stub()->Classify(Context().get(), request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  server->process().Signal(SIGTERM);
  EXPECT_EQ(server->process().WaitExit(kExitTimeout), 0) << server->Log();
  EXPECT_THAT(server->Log(), HasSubstr("; in flight 0"));
}

// --access_log with --access_log_sample=0.5: every second call is one JSON
// line in the file; after the file is renamed (log rotation), SIGUSR1 makes
// the server write to a new one, without a reload, and the server still
// drains and exits 0.
TEST(FerServerTest, TheAccessLogWritesSampledLinesAndIsReopenedOnSigusr1) {
  TempDir dir;
  const std::string log = dir / "access.log";
  ServerProcess server(dir, {"--access_log=" + log, "--access_log_sample=0.5"});
  ASSERT_TRUE(server.WaitServing()) << server.Log();
  ClassifyRequest request;
  *request.add_faces() =
      Encoded(test_images::Encode(cv::Mat(48, 48, CV_8UC1, cv::Scalar(90)), ".png"));
  auto classify = [&](int calls) {
    for (int i = 0; i < calls; ++i) {
      ClassifyResponse response;
      ASSERT_TRUE(server.stub()->Classify(Context().get(), request, &response).ok());
    }
  };
  // Lines are written by the server's writer thread, soon after each call.
  auto wait_for_lines = [](const std::string& path, size_t lines) {
    const absl::Time give_up = absl::Now() + kStartTimeout;
    std::string text;
    while (absl::Now() < give_up) {
      text = test_support::ReadFile(path);
      if (static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) >= lines) break;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return text;
  };
  classify(4);
  const std::string before = wait_for_lines(log, 2);
  fs::rename(log, log + ".1");
  server.process().Signal(SIGUSR1);
  const absl::Time give_up = absl::Now() + kStartTimeout;
  while (!fs::exists(log) && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(20));
  ASSERT_TRUE(fs::exists(log)) << server.Log();
  classify(2);
  const std::string after = wait_for_lines(log, 1);
  const std::string metrics = server.Metrics();
  server.process().Signal(SIGTERM);
  EXPECT_EQ(server.process().WaitExit(kExitTimeout), 0) << server.Log();

  EXPECT_EQ(test_support::ReadFile(log + ".1"), before);
  EXPECT_EQ(std::count(before.begin(), before.end(), '\n'), 2) << before;
  EXPECT_EQ(test_support::ReadFile(log), after);
  EXPECT_EQ(std::count(after.begin(), after.end(), '\n'), 1) << after;
  for (const std::string& text : {before, after}) {
    EXPECT_THAT(text, HasSubstr("\"method\":\"Classify\",\"peer\":\"ipv"));
    EXPECT_THAT(text, HasSubstr("\"status\":\"OK\",\"faces\":1,"));
    EXPECT_THAT(text, HasSubstr("\"sampled\":0.5}\n"));
  }
  // Each line is JSON to a parser that is not the server's.
  std::string parsed;
  EXPECT_EQ(test_support::RunShell("python3 -c 'import json, sys\nfor path in sys.argv[1:]:\n"
                                   "    for line in open(path): json.loads(line)' " +
                                       log + " " + log + ".1 2>&1",
                                   &parsed),
            0)
      << parsed;
  EXPECT_THAT(server.Log(), HasSubstr("fer-server: access log to " + log + ", sampling 0.5"));
  EXPECT_THAT(server.Log(), Not(HasSubstr("reloading")));
  EXPECT_EQ(MetricValue(metrics, "fer_access_log_dropped_total"), 0) << metrics;
}

// SIGKILL under load: the clients' calls end (UNAVAILABLE, never a hang), and
// a server started again on the same ports serves normally, with fresh
// counters.
TEST(FerServerTest, AfterSigkillUnderLoadARestartOnTheSamePortsServesNormally) {
  const std::vector<std::string> faces = test_util::RealFaces(2);
  if (faces.size() < 2) GTEST_SKIP() << test_images::SkipMessage();
  TempDir dir;
  test_util::Ports ports;
  {
    ServerProcess server(dir, {kNoQueueTimeBound}, grpc::InsecureChannelCredentials(), {},
                         "first.log");
    ports = server.ports();
    ASSERT_TRUE(server.WaitServing()) << server.Log();
    constexpr int kClients = 4;
    std::atomic<int> answered{0};
    std::vector<grpc::StatusCode> last(kClients, grpc::StatusCode::OK);
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&, c] {
        ClassifyRequest request;
        for (const std::string& face : faces) *request.add_faces() = Encoded(face);
        for (;;) {
          ClassifyResponse response;
          const grpc::Status status = server.stub()->Classify(Context().get(), request, &response);
          if (!status.ok()) {
            last[c] = status.error_code();
            return;
          }
          ++answered;
        }
      });
    }
    const absl::Time give_up = absl::Now() + kStartTimeout;
    while (answered < kClients && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(20));
    server.process().Signal(SIGKILL);
    for (std::thread& client : clients) client.join();
    EXPECT_EQ(server.process().WaitExit(kExitTimeout), -1);
    EXPECT_EQ(server.process().TermSignal(), SIGKILL);
    for (int c = 0; c < kClients; ++c) {
      EXPECT_EQ(last[c], grpc::StatusCode::UNAVAILABLE) << "client " << c;
    }
  }

  ServerProcess again(dir, {}, grpc::InsecureChannelCredentials(), ports, "second.log");
  ASSERT_TRUE(again.WaitServing()) << again.Log();
  ClassifyRequest request;
  for (const std::string& face : faces) *request.add_faces() = Encoded(face);
  ClassifyResponse response;
  ASSERT_TRUE(again.stub()->Classify(Context().get(), request, &response).ok());
  EXPECT_EQ(response.predictions_size(), 2);
  const std::string metrics = again.Metrics();
  EXPECT_EQ(MetricValue(metrics, "fer_requests_total{rpc=\"Classify\",code=\"OK\"}"), 1) << metrics;
  again.process().Signal(SIGTERM);
  EXPECT_EQ(again.process().WaitExit(kExitTimeout), 0) << again.Log();
}

// Stream clients killed (SIGKILL: their connections simply close) while
// frames are in flight: the server ends those streams, keeps nothing of them
// (no active stream, nothing in flight), serves the next caller, and still
// drains cleanly.
TEST(FerServerTest, ClientsVanishingMidStreamLeaveTheServerServing) {
  TempDir dir;
  ServerProcess server(dir);
  ASSERT_TRUE(server.WaitServing()) << server.Log();
  const std::string frames_ok = "fer_requests_total{rpc=\"ClassifyStream\",code=\"OK\"}";

  // Open loop: frames start faster than the CPU classifies them, so every
  // stream has frames in flight when its client dies.
  constexpr int kStreams = 4;
  Process client({FER_CLIENT_BIN, "bench", "--target=" + server.target(), "--mode=stream",
                  absl::StrCat("--concurrency=", kStreams), "--rate=500", "--duration=600s"},
                 dir / "client.log");
  const absl::Time give_up = absl::Now() + kStartTimeout;
  std::string metrics;
  do {
    absl::SleepFor(absl::Milliseconds(20));
    metrics = server.Metrics();
  } while (absl::Now() < give_up && client.running() &&
           !(MetricValue(metrics, frames_ok) >= 2 * kStreams &&
             MetricValue(metrics, "fer_active_streams") == kStreams));
  ASSERT_TRUE(client.running()) << test_support::ReadFile(dir / "client.log");
  EXPECT_EQ(MetricValue(metrics, "fer_active_streams"), kStreams) << metrics;
  client.Signal(SIGKILL);
  EXPECT_EQ(client.WaitExit(kExitTimeout), -1);

  // The server notices the closed connections and lets go of the streams.
  const absl::Time settle = absl::Now() + kStartTimeout;
  do {
    absl::SleepFor(absl::Milliseconds(50));
    metrics = server.Metrics();
  } while (absl::Now() < settle && (MetricValue(metrics, "fer_active_streams") != 0 ||
                                    MetricValue(metrics, "fer_inflight_requests") != 0));
  EXPECT_EQ(MetricValue(metrics, "fer_active_streams"), 0) << metrics;
  EXPECT_EQ(MetricValue(metrics, "fer_inflight_requests"), 0) << metrics;

  ExpectServingThenDrain(&server);
}

// --max_connection_age: a connection older than the age is closed once its
// grace (--drain_timeout) has passed, even under a call that never ends, so
// that clients reconnect (and a load balancer can place them anew); new
// calls simply go over a fresh connection.
TEST(FerServerTest, MaxConnectionAgeClosesOldConnectionsAndCallsReconnect) {
  TempDir dir;
  ServerProcess server(dir, {"--max_connection_age=1s", "--drain_timeout=1s"});
  ASSERT_TRUE(server.WaitServing()) << server.Log();

  ClassifyFrame frame;
  frame.set_frame_id(1);
  *frame.add_faces() = Encoded(test_util::BombPng(48, 48));
  auto context = Context();
  auto stream = server.stub()->ClassifyStream(context.get());
  ASSERT_TRUE(stream->Write(frame));
  FrameResult result;
  ASSERT_TRUE(stream->Read(&result));
  EXPECT_EQ(result.status().code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  // The stream stays open (no WritesDone) until the server closes the
  // connection under it.
  EXPECT_FALSE(stream->Read(&result));
  const grpc::Status ended = stream->Finish();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::UNAVAILABLE) << ended.error_message();

  ExpectServingThenDrain(&server);
}

}  // namespace
}  // namespace fer
