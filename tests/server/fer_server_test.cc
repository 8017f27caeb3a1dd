// Tests of the fer-server binary as deploy scripts and orchestrators see it:
// started as a subprocess on free loopback ports, probed through gRPC health,
// scraped by a real Prometheus server, stopped with SIGTERM under load.
// Nothing here asserts on timing: waits are for conditions, bounded only to
// turn a hang into a failure.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fer/v1/expression.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/server/server_test_util.h"
#include "tests/server/test_images.h"

extern char** environ;

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
using test_util::Encoded;
using test_util::FreePort;
using test_util::MetricValue;
using ::testing::HasSubstr;

// Bounds that only turn a hang into a failure.
constexpr absl::Duration kStartTimeout = absl::Seconds(120);
constexpr absl::Duration kExitTimeout = absl::Seconds(120);
constexpr absl::Duration kScrapeTimeout = absl::Seconds(120);
constexpr auto kCallDeadline = std::chrono::seconds(120);
constexpr char kDrainTimeoutFlag[] = "--drain_timeout=60s";
constexpr int kReconnectBackoffMs = 100;

std::string ReadAll(const std::string& path) { return test_images::ReadFile(path); }

// A scratch folder, removed at the end.
class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/fer_server_test_XXXXXX";
    path_ = mkdtemp(pattern);
  }
  ~TempDir() {
    std::error_code error;
    fs::remove_all(path_, error);
  }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A child process, its stdout and stderr in one log file; killed if still
// running when destroyed.
class Process {
 public:
  Process(const std::vector<std::string>& argv, const std::string& log_path) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    std::vector<char*> args;
    for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    if (posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
  }
  ~Process() {
    if (running()) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  bool running() {
    if (pid_ <= 0 || exited_) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      status_ = status;
      return false;
    }
    return true;
  }
  void Signal(int signal) {
    if (running()) kill(pid_, signal);
  }
  // The exit status once the process has exited within timeout; -1 if it is
  // still running then (or died of a signal).
  int WaitExit(absl::Duration timeout) {
    const absl::Time give_up = absl::Now() + timeout;
    while (running() && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(20));
    if (!exited_) return -1;
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : -1;
  }

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
};

// Runs argv to completion; returns its exit status, its output in *output.
int RunToCompletion(const std::vector<std::string>& argv, std::string* output) {
  TempDir dir;
  Process process(argv, dir / "out.log");
  const int status = process.WaitExit(kExitTimeout);
  *output = ReadAll(dir / "out.log");
  return status;
}

// GET url with curl; empty on failure.
std::string Fetch(const std::string& url) {
  FILE* pipe = popen(("curl -fsS --max-time 10 '" + url + "' 2>/dev/null").c_str(), "r");
  if (pipe == nullptr) return "";
  std::string body;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof(buffer), pipe)) body.append(buffer, n);
  pclose(pipe);
  return body;
}

bool HaveProgram(const std::string& name) {
  return std::system(("command -v " + name + " > /dev/null 2>&1").c_str()) == 0;
}

// A fer-server subprocess on free loopback ports, serving the test model.
class ServerProcess {
 public:
  explicit ServerProcess(const TempDir& dir, std::vector<std::string> extra_flags = {})
      : log_path_(dir / "server.log"), grpc_port_(FreePort()), metrics_port_(FreePort()) {
    std::vector<std::string> argv = {FER_SERVER_BIN,
                                     "--model=" + test_util::TestModelPath(),
                                     absl::StrCat("--address=127.0.0.1:", grpc_port_),
                                     absl::StrCat("--metrics_address=127.0.0.1:", metrics_port_),
                                     "--device=cpu",
                                     "--max_batch_size=8",
                                     "--max_queue_delay_us=1000",
                                     kDrainTimeoutFlag};
    argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
    process_ = std::make_unique<Process>(argv, log_path_);
    // Retry connecting often while the server starts, instead of gRPC's
    // default exponential backoff of up to minutes.
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, kReconnectBackoffMs);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, kReconnectBackoffMs);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, kReconnectBackoffMs);
    channel_ = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", grpc_port_),
                                         grpc::InsecureChannelCredentials(), args);
    stub_ = ExpressionClassifier::NewStub(channel_);
    health_ = Health::NewStub(channel_);
  }

  // Waits until health says SERVING; false if the process dies or it takes
  // longer than kStartTimeout.
  bool WaitServing() {
    const absl::Time give_up = absl::Now() + kStartTimeout;
    while (absl::Now() < give_up && process_->running()) {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      HealthCheckRequest request;
      request.set_service("fer.v1.ExpressionClassifier");
      HealthCheckResponse response;
      if (health_->Check(&context, request, &response).ok() &&
          response.status() == HealthCheckResponse::SERVING) {
        return true;
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    return false;
  }

  std::string Metrics() const {
    return Fetch(absl::StrCat("http://127.0.0.1:", metrics_port_, "/metrics"));
  }
  std::string Log() const { return ReadAll(log_path_); }

  Process& process() { return *process_; }
  ExpressionClassifier::Stub* stub() { return stub_.get(); }
  Health::Stub* health() { return health_.get(); }
  int metrics_port() const { return metrics_port_; }

 private:
  const std::string log_path_;
  const int grpc_port_;
  const int metrics_port_;
  std::unique_ptr<Process> process_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<ExpressionClassifier::Stub> stub_;
  std::unique_ptr<Health::Stub> health_;
};

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + kCallDeadline);
  return context;
}

// The output is exactly one line, and it starts with "fer-server: ".
void ExpectOneErrorLine(const std::string& output, const std::string& text) {
  EXPECT_THAT(output, ::testing::StartsWith("fer-server: ")) << output;
  EXPECT_EQ(std::count(output.begin(), output.end(), '\n'), 1) << output;
  EXPECT_THAT(output, HasSubstr(text));
}

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

TEST(FerServerTest, NoModelFlagIsOneClearLineAndAFailedExit) {
  std::string output;
  EXPECT_NE(RunToCompletion({FER_SERVER_BIN}, &output), 0);
  ExpectOneErrorLine(output, "--model is required");
}

TEST(FerServerTest, BadFlagValuesAreRefusedNamingTheFlag) {
  // One case per place that checks: the batcher, the service, the binary's
  // own flag checks, the engine.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--max_batch_size=0", "max_batch_size"},
      {"--instances=0", "instances"},
      {"--stream_window=0", "stream_window"},
      {"--max_image_bytes=0", "max_image_bytes"},
      {"--device=tpu", "tpu"},
  };
  for (const auto& [flag, text] : cases) {
    SCOPED_TRACE(flag);
    std::string output;
    EXPECT_NE(RunToCompletion({FER_SERVER_BIN, "--model=" + test_util::TestModelPath(),
                               "--address=127.0.0.1:0", "--metrics_address=127.0.0.1:0", flag},
                              &output),
              0);
    EXPECT_THAT(output, HasSubstr(text));
    EXPECT_THAT(output, ::testing::Not(HasSubstr("SERVING")));
  }
  std::string output;
  EXPECT_NE(RunToCompletion({FER_SERVER_BIN, "--max_batch_size=many"}, &output), 0);
  EXPECT_THAT(output, HasSubstr("max_batch_size"));
}

TEST(FerServerTest, ATakenMetricsPortIsAClearErrorAndAFailedExit) {
  // Hold a listening socket on the port.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const int port = ntohs(address.sin_port);

  std::string output;
  EXPECT_NE(
      RunToCompletion({FER_SERVER_BIN, "--model=" + test_util::TestModelPath(),
                       "--address=127.0.0.1:0", absl::StrCat("--metrics_address=127.0.0.1:", port)},
                      &output),
      0);
  EXPECT_THAT(output, HasSubstr(absl::StrCat("cannot serve metrics on 127.0.0.1:", port)));
  close(fd);
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

// ---------------------------------------------------------------- serving

// SIGTERM while clients keep sending: health turns NOT_SERVING, every request
// the server accepted is answered (OK), the others are refused UNAVAILABLE
// (never dropped, cancelled or cut off), the open stream gets every frame it
// sent answered in order and then UNAVAILABLE, and the process exits 0.
TEST(FerServerTest, SigtermUnderLoadAnswersEveryAcceptedRequestAndExitsZero) {
  const std::vector<std::string> faces = test_util::RealFaces(7);
  if (faces.size() < 7) GTEST_SKIP() << test_images::SkipMessage();
  TempDir dir;
  ServerProcess server(dir);
  ASSERT_TRUE(server.WaitServing()) << server.Log();
  EXPECT_THAT(server.Log(), HasSubstr("WARNING"));
  EXPECT_THAT(server.Log(), HasSubstr("UNTRAINED"));

  grpc::ClientContext watch_context;
  auto watch = server.health()->Watch(&watch_context, HealthCheckRequest());
  HealthCheckResponse health;
  ASSERT_TRUE(watch->Read(&health));
  EXPECT_EQ(health.status(), HealthCheckResponse::SERVING);

  // Unary clients: each sends until it is refused.
  struct Outcome {
    int ok = 0;
    grpc::Status last;
  };
  constexpr int kClients = 4;
  std::vector<Outcome> outcomes(kClients);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      ClassifyRequest request;
      *request.add_faces() = Encoded(faces[c]);
      *request.add_faces() = Encoded(faces[c + 1]);
      for (;;) {
        ClassifyResponse response;
        const grpc::Status status = server.stub()->Classify(Context().get(), request, &response);
        if (!status.ok()) {
          outcomes[c].last = status;
          return;
        }
        EXPECT_EQ(response.predictions_size(), 2);
        ++outcomes[c].ok;
      }
    });
  }
  // A stream client: writes frames until writing fails; reads every answer.
  auto stream_context = Context();
  auto stream = server.stub()->ClassifyStream(stream_context.get());
  std::atomic<uint64_t> frames_written{0};
  std::thread stream_writer([&] {
    for (uint64_t id = 1;; ++id) {
      ClassifyFrame frame;
      frame.set_frame_id(id);
      *frame.add_faces() = Encoded(faces[id % faces.size()]);
      if (!stream->Write(frame)) return;
      frames_written = id;
    }
  });
  std::vector<uint64_t> answered_ids;
  std::thread stream_reader([&] {
    FrameResult result;
    while (stream->Read(&result)) {
      EXPECT_EQ(result.status().code(), 0) << result.status().message();
      answered_ids.push_back(result.frame_id());
    }
  });

  // Load is on once every client has had answers.
  const absl::Time give_up = absl::Now() + kStartTimeout;
  while (absl::Now() < give_up &&
         MetricValue(server.Metrics(), "fer_requests_total{rpc=\"Classify\",code=\"OK\"}") <
             2 * kClients) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  server.process().Signal(SIGTERM);

  ASSERT_TRUE(watch->Read(&health));
  EXPECT_EQ(health.status(), HealthCheckResponse::NOT_SERVING);
  for (std::thread& client : clients) client.join();
  stream_reader.join();
  stream_writer.join();
  const grpc::Status stream_status = stream->Finish();
  EXPECT_EQ(server.process().WaitExit(kExitTimeout), 0) << server.Log();

  // The server's own account: nothing accepted is still in flight, and it
  // answered exactly the calls and frames the clients received.
  int total_ok = 0;
  for (int c = 0; c < kClients; ++c) {
    SCOPED_TRACE(absl::StrCat("client ", c));
    EXPECT_GT(outcomes[c].ok, 0);
    total_ok += outcomes[c].ok;
    // Refused ("shutting down"), or, arriving as the gRPC server closed,
    // refused by gRPC itself before reaching the service (UNAVAILABLE when it
    // could not connect, CANCELLED when the call raced the close).
    EXPECT_THAT(outcomes[c].last.error_code(),
                ::testing::AnyOf(grpc::StatusCode::UNAVAILABLE, grpc::StatusCode::CANCELLED))
        << outcomes[c].last.error_message();
  }
  const std::string log = server.Log();
  const size_t stopped = log.find("fer-server: stopped; requests answered: ");
  ASSERT_NE(stopped, std::string::npos) << log;
  const std::string summary = log.substr(stopped, log.find('\n', stopped) - stopped);
  EXPECT_THAT(summary, HasSubstr(absl::StrCat("Classify OK=", total_ok, " ")));
  EXPECT_THAT(summary, HasSubstr(absl::StrCat("ClassifyStream OK=", answered_ids.size())));
  EXPECT_THAT(summary, ::testing::EndsWith("; in flight 0"));
  EXPECT_EQ(stream_status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << stream_status.error_message();
  EXPECT_THAT(stream_status.error_message(), HasSubstr("shutting down"));
  ASSERT_FALSE(answered_ids.empty());
  for (size_t i = 0; i < answered_ids.size(); ++i) EXPECT_EQ(answered_ids[i], i + 1);
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
      << ReadAll(dir / "prometheus.log");
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

}  // namespace
}  // namespace fer
