// The fer-server binary reloading --model on SIGHUP while clients keep
// calling: no call fails, answers admitted after the reload and /metrics name
// the new version, and a corrupt file or one that fails its warm-up leaves the
// old model serving.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fer/v1/expression.grpc.pb.h"
#include "tests/server/broken_models.h"
#include "tests/server/server_process.h"
#include "tests/server/server_test_util.h"
#include "tests/server/test_images.h"
#include "tests/support/temp_dir.h"

namespace fer {
namespace {

using test_util::kCallDeadline;
using test_util::kStartTimeout;
using test_util::MetricValue;
using test_util::ServerProcess;
using ::testing::HasSubstr;

// The test model (meta version "untrained", as `fer-model init` writes it).
constexpr char kFirstVersion[] = "untrained";
constexpr char kSecondVersion[] = "reloaded-v2";

// Puts the file at from in place of to in one rename, as a deploy would, so
// that the server never reads half a file.
void ReplaceFile(const std::string& from, const std::string& to) {
  ASSERT_EQ(std::rename(from.c_str(), to.c_str()), 0) << from << " -> " << to;
}

// Waits (at most kStartTimeout) until fer_model_reloads_total{result} reaches
// count; returns whether it did.
bool WaitForReloads(const ServerProcess& server, const std::string& result, int count) {
  const std::string series = absl::StrCat("fer_model_reloads_total{result=\"", result, "\"}");
  const absl::Time give_up = absl::Now() + kStartTimeout;
  while (absl::Now() < give_up) {
    if (MetricValue(server.Metrics(), series) >= count) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return false;
}

fer::v1::ClassifyRequest SyntheticRequest(int shade) {
  fer::v1::ClassifyRequest request;
  *request.add_faces() =
      test_util::Encoded(test_images::Encode(cv::Mat(48, 48, CV_8UC1, cv::Scalar(shade)), ".png"));
  return request;
}

// Unary clients that call until told to stop, counting failures and wrong
// versions. The test moves them through phases: kBefore (no reload asked for:
// every answer is the first version), kReloading (a SIGHUP was sent: either
// version) and kAfter (the reload was counted: every call started from then on
// must be answered by the second version, through a failed reload too). A
// call is judged by the phase at its end when that is kBefore, else by the
// phase at its start: the only versions causality allows.
class Clients {
 public:
  enum Phase { kBefore, kReloading, kAfter };

  Clients(ServerProcess* server, int count) {
    for (int c = 0; c < count; ++c) {
      threads_.emplace_back([this, server, c] { Run(server, c); });
    }
  }
  ~Clients() { Stop(); }

  void SetPhase(Phase phase) {
    std::lock_guard<std::mutex> lock(mu_);
    phase_ = phase;
    answered_since_ = 0;
  }
  // Calls answered that started in the current phase.
  int answered_since() {
    std::lock_guard<std::mutex> lock(mu_);
    return answered_since_;
  }
  void Stop() {
    stop_.store(true);
    for (std::thread& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
  }
  int failed() const { return failed_.load(); }
  int wrong_version() const { return wrong_version_.load(); }

 private:
  Phase phase() {
    std::lock_guard<std::mutex> lock(mu_);
    return phase_;
  }

  void Run(ServerProcess* server, int c) {
    auto stub = fer::v1::ExpressionClassifier::NewStub(server->NewChannel());
    for (int call = 0; !stop_.load(); ++call) {
      const Phase started = phase();
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
      fer::v1::ClassifyResponse response;
      const grpc::Status status =
          stub->Classify(&context, SyntheticRequest(30 * c + call % 7), &response);
      if (!status.ok()) {
        failed_.fetch_add(1);
        ADD_FAILURE() << "client " << c << ": " << status.error_message();
        continue;
      }
      std::lock_guard<std::mutex> lock(mu_);
      const char* expected = phase_ == kBefore   ? kFirstVersion
                             : started == kAfter ? kSecondVersion
                                                 : nullptr;
      if (expected != nullptr && response.model_version() != expected) {
        wrong_version_.fetch_add(1);
        ADD_FAILURE() << "client " << c << " got " << response.model_version() << ", expected "
                      << expected;
      }
      if (started == phase_) ++answered_since_;
    }
  }

  std::atomic<bool> stop_{false};
  std::atomic<int> failed_{0};
  std::atomic<int> wrong_version_{0};
  std::mutex mu_;
  Phase phase_ = kBefore;   // guarded by mu_
  int answered_since_ = 0;  // guarded by mu_
  std::vector<std::thread> threads_;
};

// Waits (at most kStartTimeout) until clients have had `calls` answers since
// the current phase began.
bool WaitForAnswers(Clients* clients, int calls) {
  const absl::Time give_up = absl::Now() + kStartTimeout;
  while (absl::Now() < give_up) {
    if (clients->answered_since() >= calls) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

TEST(FerServerReloadTest, SighupSwapsTheModelUnderLoadAndABadFileKeepsTheOldOne) {
  const test_support::TempDir dir("fer_server_reload_test_");
  const std::string model = dir / "model.pt";
  const std::string next = dir / "next.pt";
  ASSERT_TRUE(
      test_util::WriteModelWithVersion(test_util::TestModelPath(), model, kFirstVersion).ok());
  ASSERT_TRUE(
      test_util::WriteModelWithVersion(test_util::TestModelPath(), next, kSecondVersion).ok());
  // The queue's time bound would refuse calls on a busy machine; this test is
  // about the reload.
  ServerProcess server(dir, {"--model=" + model, "--max_queue_time=1h", "--instances=2"});
  ASSERT_TRUE(server.WaitServing()) << server.Log();

  constexpr int kClients = 4;
  constexpr int kAnswers = 20;  // per phase, over all clients
  Clients clients(&server, kClients);
  ASSERT_TRUE(WaitForAnswers(&clients, kAnswers)) << server.Log();

  // A good new file: swapped in without a failed call.
  ReplaceFile(next, model);
  clients.SetPhase(Clients::kReloading);
  server.process().Signal(SIGHUP);
  ASSERT_TRUE(WaitForReloads(server, "ok", 1)) << server.Log();
  clients.SetPhase(Clients::kAfter);
  ASSERT_TRUE(WaitForAnswers(&clients, kAnswers)) << server.Log();
  std::string metrics = server.Metrics();
  EXPECT_EQ(MetricValue(metrics, absl::StrCat("fer_model_info{device=\"cpu\",precision=\"fp32\","
                                              "version=\"",
                                              kSecondVersion, "\"}")),
            1)
      << metrics;
  EXPECT_THAT(metrics, ::testing::Not(HasSubstr("version=\"untrained\"")));

  // A corrupt file: the reload fails, the served model stays.
  {
    std::ofstream out(next, std::ios::binary);
    out << "not a weight file";
  }
  ReplaceFile(next, model);
  server.process().Signal(SIGHUP);
  ASSERT_TRUE(WaitForReloads(server, "failed", 1)) << server.Log();
  clients.SetPhase(Clients::kAfter);  // counts afresh
  ASSERT_TRUE(WaitForAnswers(&clients, kAnswers)) << server.Log();

  // A file that loads but answers NaN: refused at its warm-up, before serving.
  ASSERT_TRUE(test_util::WriteOverflowingModel(test_util::TestModelPath(), next).ok());
  ReplaceFile(next, model);
  server.process().Signal(SIGHUP);
  ASSERT_TRUE(WaitForReloads(server, "failed", 2)) << server.Log();
  clients.SetPhase(Clients::kAfter);
  ASSERT_TRUE(WaitForAnswers(&clients, kAnswers)) << server.Log();
  clients.Stop();
  EXPECT_EQ(clients.failed(), 0);
  EXPECT_EQ(clients.wrong_version(), 0);
  metrics = server.Metrics();
  EXPECT_EQ(MetricValue(metrics, "fer_model_reloads_total{result=\"ok\"}"), 1);
  EXPECT_EQ(MetricValue(metrics, "fer_model_reloads_total{result=\"failed\"}"), 2);
  EXPECT_EQ(MetricValue(metrics, absl::StrCat("fer_model_info{device=\"cpu\",precision=\"fp32\","
                                              "version=\"",
                                              kSecondVersion, "\"}")),
            1);
  EXPECT_EQ(MetricValue(metrics, "fer_requests_total{rpc=\"Classify\",code=\"UNAVAILABLE\"}"), 0);

  // Still drains as before; the log says what each reload did, one line each.
  server.process().Signal(SIGTERM);
  EXPECT_EQ(server.process().WaitExit(test_util::kExitTimeout), 0) << server.Log();
  const std::string log = server.Log();
  EXPECT_THAT(log, HasSubstr(absl::StrCat("serving version \"", kSecondVersion, "\"\n")));
  EXPECT_THAT(log, HasSubstr(absl::StrCat("reload of ", model, " failed, still serving version \"",
                                          kSecondVersion, "\": ")));
  EXPECT_THAT(log, HasSubstr("NaN or infinite probabilities in the warm-up batch"));
  EXPECT_THAT(log, HasSubstr("; in flight 0"));
}

}  // namespace
}  // namespace fer
