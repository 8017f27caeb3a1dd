// fer-server as a subprocess given bad files: paths that are not readable
// regular files, weight files holding NaN, a model whose answers overflow to
// NaN. Each ends start-up with one line on stderr and exit status 1, never an
// abort or a server that answers NaN. And the thread counts of the start-up
// line are the numbers used, not 0.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "model/common/cpu_count.h"
#include "tests/server/broken_models.h"
#include "tests/server/server_process.h"
#include "tests/server/server_test_util.h"
#include "tests/support/temp_dir.h"

namespace fer {
namespace {

using test_support::TempDir;
using test_util::ExpectOneErrorLine;
using test_util::kExitTimeout;
using test_util::RunToCompletion;
using test_util::ServerProcess;
using ::testing::HasSubstr;

// fer-server serving model on free ports; its exit status, its output
// (stdout and stderr) in *output.
int RunServer(const std::string& model, std::string* output) {
  return RunToCompletion(
      {FER_SERVER_BIN, "--model=" + model, "--address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
       "--http_address=127.0.0.1:0", "--device=cpu"},
      output);
}

TEST(FerServerFaultsTest, AModelPathThatIsNotAReadableFileIsOneLineAndExitOne) {
  TempDir dir;
  ASSERT_EQ(::mkfifo((dir / "fifo.pt").c_str(), 0600), 0);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {dir.path(), "is a directory, not a file"},
      {"/proc/self/mem", "cannot read weight file /proc/self/mem: "},
      {dir / "fifo.pt", "is a fifo, not a regular file"},
      {"/dev/zero", "is a device, not a regular file"},
  };
  for (const auto& [path, message] : cases) {
    SCOPED_TRACE(path);
    std::string output;
    EXPECT_EQ(RunServer(path, &output), 1) << output;
    ExpectOneErrorLine(output, "cannot read weight file " + path);
    EXPECT_THAT(output, HasSubstr(message));
  }
}

TEST(FerServerFaultsTest, AWeightFileHoldingNanIsRefusedNamingTheTensor) {
  TempDir dir;
  const std::string tensor = "layer3.1.conv2.weight";
  ASSERT_TRUE(
      test_util::WriteModelWithNan(test_util::TestModelPath(), dir / "nan.pt", tensor).ok());
  std::string output;
  EXPECT_EQ(RunServer(dir / "nan.pt", &output), 1) << output;
  ExpectOneErrorLine(output, dir / "nan.pt");
  EXPECT_THAT(output, HasSubstr(tensor + " holds NaN or infinite values"));
}

TEST(FerServerFaultsTest, AModelThatAnswersNanIsRefusedAtWarmUp) {
  TempDir dir;
  ASSERT_TRUE(test_util::WriteOverflowingModel(test_util::TestModelPath(), dir / "big.pt").ok());
  std::string output;
  EXPECT_EQ(RunServer(dir / "big.pt", &output), 1) << output;
  // The start-up line and the untrained-model warning come first.
  EXPECT_THAT(output, HasSubstr("fer-server: the model answers NaN or infinite probabilities in "
                                "the warm-up batch on instance 0"))
      << output;
  EXPECT_THAT(output, ::testing::Not(HasSubstr("SERVING")));
}

TEST(FerServerFaultsTest, TheStartUpLineNamesTheThreadCountsUsed) {
  TempDir dir;
  {
    // Both defaults (0): the CPUs this process may use, as numbers.
    ServerProcess server(dir);
    ASSERT_TRUE(server.WaitServing()) << server.Log();
    const int cpus = UsableCpuCount();
    EXPECT_THAT(server.Log(),
                HasSubstr(absl::StrCat(" threads=", cpus, " preprocess_threads=", cpus, ";")))
        << server.Log();
    server.process().Signal(SIGTERM);
    EXPECT_EQ(server.process().WaitExit(kExitTimeout), 0) << server.Log();
  }
  ServerProcess server(dir, {"--threads=3", "--preprocess_threads=1"},
                       grpc::InsecureChannelCredentials(), {}, "explicit.log");
  ASSERT_TRUE(server.WaitServing()) << server.Log();
  EXPECT_THAT(server.Log(), HasSubstr(" threads=3 preprocess_threads=1;")) << server.Log();
  server.process().Signal(SIGTERM);
  EXPECT_EQ(server.process().WaitExit(kExitTimeout), 0) << server.Log();
}

}  // namespace
}  // namespace fer
