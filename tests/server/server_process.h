// The fer-server binary as deploy scripts and orchestrators see it, for the
// tests that run it as a subprocess (fer_server_test, server_tls_test,
// soak_test, ...): child processes, a server on free loopback ports with
// channels to it, its one-line refusals, and its /metrics and resident memory.
// Scratch folders, spawning and free ports come from tests/support.
// Waits are for conditions, bounded only to turn a hang into a failure.
#ifndef FER_TESTS_SERVER_SERVER_PROCESS_H_
#define FER_TESTS_SERVER_SERVER_PROCESS_H_

#include <gmock/gmock.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fer/v1/expression.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/server/server_test_util.h"
#include "tests/support/files.h"
#include "tests/support/free_port.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace fer {
namespace test_util {

// Bounds that only turn a hang into a failure.
inline constexpr absl::Duration kStartTimeout = absl::Seconds(120);
inline constexpr absl::Duration kExitTimeout = absl::Seconds(120);
inline constexpr auto kCallDeadline = std::chrono::seconds(120);
// The servers under test drain for up to this long on SIGTERM.
inline constexpr char kDrainTimeoutFlag[] = "--drain_timeout=60s";
inline constexpr int kReconnectBackoffMs = 100;

// A child process, its stdout and stderr in one log file; killed if still
// running when destroyed.
class Process {
 public:
  Process(const std::vector<std::string>& argv, const std::string& log_path)
      : pid_(test_support::Spawn(argv, log_path, log_path)) {}
  ~Process() {
    if (running()) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
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
  // The signal that ended the process, once it has ended; 0 otherwise.
  int TermSignal() {
    running();
    return exited_ && WIFSIGNALED(status_) ? WTERMSIG(status_) : 0;
  }

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
};

// Runs argv to completion; returns its exit status, its output in *output.
inline int RunToCompletion(const std::vector<std::string>& argv, std::string* output) {
  const test_support::TempDir dir("fer_server_test_");
  Process process(argv, dir / "out.log");
  const int status = process.WaitExit(kExitTimeout);
  *output = test_support::ReadFile(dir / "out.log");
  return status;
}

// GET url with curl; empty on failure.
inline std::string Fetch(const std::string& url) {
  std::string body;
  test_support::RunShell("curl -fsS --max-time 10 '" + url + "' 2>/dev/null", &body);
  return body;
}

// fer-server's refusals: exactly one line, "fer-server: ...", holding text.
inline void ExpectOneErrorLine(const std::string& output, const std::string& text) {
  EXPECT_THAT(output, ::testing::StartsWith("fer-server: ")) << output;
  EXPECT_EQ(std::count(output.begin(), output.end(), '\n'), 1) << output;
  EXPECT_THAT(output, ::testing::HasSubstr(text)) << output;
}

// Resident memory of process pid in bytes (VmRSS), -1 if unknown.
inline int64_t ResidentBytes(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoll(line.c_str() + 6, nullptr, 10) * 1024;
  }
  return -1;
}

// Channel arguments that retry connecting often while a server starts,
// instead of gRPC's default exponential backoff of up to minutes. The minimum
// backoff is left alone: gRPC also takes it as the time a connection attempt,
// TLS handshake included, may last.
inline grpc::ChannelArguments FastReconnect() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, kReconnectBackoffMs);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, kReconnectBackoffMs);
  return args;
}

// Loopback ports of a server; 0: a free one.
struct Ports {
  int grpc = 0;
  int metrics = 0;
  int http = 0;
};

// A fer-server subprocess on loopback serving the test model, and a channel
// to it made with the given credentials (plaintext by default).
class ServerProcess {
 public:
  explicit ServerProcess(
      const test_support::TempDir& dir, std::vector<std::string> extra_flags = {},
      std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials(),
      Ports ports = {}, const std::string& log_name = "server.log")
      : log_path_(dir / log_name),
        grpc_port_(ports.grpc != 0 ? ports.grpc : test_support::FreePort()),
        metrics_port_(ports.metrics != 0 ? ports.metrics : test_support::FreePort()),
        http_port_(ports.http != 0 ? ports.http : test_support::FreePort()) {
    std::vector<std::string> argv = {FER_SERVER_BIN,
                                     "--model=" + TestModelPath(),
                                     absl::StrCat("--address=127.0.0.1:", grpc_port_),
                                     absl::StrCat("--metrics_address=127.0.0.1:", metrics_port_),
                                     absl::StrCat("--http_address=127.0.0.1:", http_port_),
                                     "--device=cpu",
                                     "--max_batch_size=8",
                                     "--max_queue_delay_us=1000",
                                     kDrainTimeoutFlag};
    argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
    process_ = std::make_unique<Process>(argv, log_path_);
    channel_ = NewChannel(std::move(credentials));
    stub_ = fer::v1::ExpressionClassifier::NewStub(channel_);
    health_ = grpc::health::v1::Health::NewStub(channel_);
  }

  // A fresh channel (its own connection) to the server.
  std::shared_ptr<grpc::Channel> NewChannel(std::shared_ptr<grpc::ChannelCredentials> credentials =
                                                grpc::InsecureChannelCredentials()) const {
    grpc::ChannelArguments args = FastReconnect();
    // Distinct arguments keep gRPC from sharing one connection between
    // channels.
    args.SetInt("fer.test.channel", next_channel_++);
    return grpc::CreateCustomChannel(target(), credentials, args);
  }

  // Waits until health says SERVING; false if the process dies or it takes
  // longer than kStartTimeout.
  bool WaitServing() {
    const absl::Time give_up = absl::Now() + kStartTimeout;
    while (absl::Now() < give_up && process_->running()) {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      grpc::health::v1::HealthCheckRequest request;
      request.set_service("fer.v1.ExpressionClassifier");
      grpc::health::v1::HealthCheckResponse response;
      const grpc::Status status = health_->Check(&context, request, &response);
      if (status.ok() && response.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
        return true;
      }
      last_health_error_ = status.ok() ? "NOT_SERVING" : status.error_message();
      absl::SleepFor(absl::Milliseconds(100));
    }
    return false;
  }

  std::string Metrics() const {
    return Fetch(absl::StrCat("http://127.0.0.1:", metrics_port_, "/metrics"));
  }
  // The server's log, and why the last health check in WaitServing failed.
  std::string Log() const {
    return test_support::ReadFile(log_path_) + "(last health check: " + last_health_error_ + ")";
  }
  std::string target() const { return absl::StrCat("127.0.0.1:", grpc_port_); }

  Process& process() { return *process_; }
  fer::v1::ExpressionClassifier::Stub* stub() { return stub_.get(); }
  grpc::health::v1::Health::Stub* health() { return health_.get(); }
  Ports ports() const { return {grpc_port_, metrics_port_, http_port_}; }
  int metrics_port() const { return metrics_port_; }
  // The HTTP API's base URL, http://127.0.0.1:PORT.
  std::string http_url() const { return absl::StrCat("http://127.0.0.1:", http_port_); }

 private:
  const std::string log_path_;
  const int grpc_port_;
  const int metrics_port_;
  const int http_port_;
  mutable int next_channel_ = 0;
  std::string last_health_error_;
  std::unique_ptr<Process> process_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<fer::v1::ExpressionClassifier::Stub> stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

inline std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + kCallDeadline);
  return context;
}

}  // namespace test_util
}  // namespace fer

#endif  // FER_TESTS_SERVER_SERVER_PROCESS_H_
