// fer-server with --tls_cert/--tls_key (TLS) and --tls_client_ca (mutual
// TLS), as a subprocess: who is served and who is refused, through gRPC
// channels and through fer-client's matching flags, and how bad TLS flags end
// start-up. Certificates are made at test time by
// tests/make_test_certificates.sh; the tests skip without openssl.
#include <gmock/gmock.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fer/v1/expression.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/server/server_process.h"
#include "tests/server/server_test_util.h"
#include "tests/server/test_images.h"
#include "tests/support/files.h"
#include "tests/support/temp_dir.h"

namespace fer {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;
using test_support::TempDir;
using test_util::ExpectOneErrorLine;
using test_util::kExitTimeout;
using test_util::Process;
using test_util::RunToCompletion;
using test_util::ServerProcess;
using ::testing::HasSubstr;

constexpr auto kHandshakeDeadline = std::chrono::seconds(10);

class ServerTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string output;
    if (RunToCompletion(
            {std::string(FER_SOURCE_DIR) + "/tests/make_test_certificates.sh", dir_.path()},
            &output) != 0) {
      GTEST_SKIP() << "cannot make certificates with openssl: " << output;
    }
  }

  std::string Pem(const std::string& name) const { return test_support::ReadFile(dir_ / name); }
  std::string File(const std::string& name) const { return dir_ / name; }

  // TLS credentials trusting ca (a file name in the folder), presenting
  // client (NAME.pem and NAME.key) when given.
  std::shared_ptr<grpc::ChannelCredentials> Tls(const std::string& ca,
                                                const std::string& client = "") const {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = Pem(ca);
    if (!client.empty()) {
      options.pem_cert_chain = Pem(client + ".pem");
      options.pem_private_key = Pem(client + ".key");
    }
    return grpc::SslCredentials(options);
  }

  std::vector<std::string> TlsFlags(bool mutual) const {
    std::vector<std::string> flags = {"--tls_cert=" + File("server.pem"),
                                      "--tls_key=" + File("server.key")};
    if (mutual) flags.push_back("--tls_client_ca=" + File("ca.pem"));
    return flags;
  }

  // The status of a health check made over a fresh channel with credentials.
  static grpc::Status Check(const ServerProcess& server,
                            std::shared_ptr<grpc::ChannelCredentials> credentials) {
    auto health = Health::NewStub(server.NewChannel(std::move(credentials)));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + kHandshakeDeadline);
    HealthCheckRequest request;
    HealthCheckResponse response;
    grpc::Status status = health->Check(&context, request, &response);
    if (status.ok() && response.status() != HealthCheckResponse::SERVING) {
      return grpc::Status(grpc::StatusCode::INTERNAL, "not SERVING");
    }
    return status;
  }

  // fer-client bench sending a few synthetic faces with extra flags; its exit
  // status, its output in *output.
  int ClientBench(const ServerProcess& server, const std::vector<std::string>& flags,
                  std::string* output) const {
    std::vector<std::string> argv = {FER_CLIENT_BIN,
                                     "bench",
                                     "--target=localhost:" + std::to_string(server.ports().grpc),
                                     "--requests=4",
                                     "--concurrency=2",
                                     "--deadline_ms=60000"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    return RunToCompletion(argv, output);
  }

  TempDir dir_;
};

TEST_F(ServerTlsTest, TlsServesClientsThatTrustItsCaAndRefusesPlaintext) {
  ServerProcess server(dir_, TlsFlags(/*mutual=*/false), Tls("ca.pem"));
  ASSERT_TRUE(server.WaitServing()) << server.Log();
  EXPECT_THAT(server.Log(), HasSubstr(", TLS)"));
  // Valid for 30 days: no expiry warning.
  EXPECT_THAT(server.Log(), ::testing::Not(HasSubstr("WARNING: --tls_cert")));

  EXPECT_EQ(Check(server, grpc::InsecureChannelCredentials()).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Check(server, Tls("other_ca.pem")).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(Check(server, Tls("ca.pem")).ok());

  std::string output;
  EXPECT_EQ(ClientBench(server, {"--tls_ca=" + File("ca.pem")}, &output), 0) << output;
  EXPECT_NE(ClientBench(server, {}, &output), 0);
  EXPECT_THAT(output, HasSubstr("cannot reach"));

  // Only the calls that got through were counted.
  const std::string metrics = server.Metrics();
  EXPECT_EQ(test_util::MetricValue(metrics, "fer_requests_total{rpc=\"Classify\",code=\"OK\"}"), 4)
      << metrics;
  server.process().Signal(SIGTERM);
  EXPECT_EQ(server.process().WaitExit(kExitTimeout), 0) << server.Log();
}

TEST_F(ServerTlsTest, MutualTlsServesOnlyClientsWithACertificateItsCaSigned) {
  ServerProcess server(dir_, TlsFlags(/*mutual=*/true), Tls("ca.pem", "client"));
  ASSERT_TRUE(server.WaitServing()) << server.Log();
  EXPECT_THAT(server.Log(), HasSubstr(", mutual TLS)"));

  EXPECT_EQ(Check(server, grpc::InsecureChannelCredentials()).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Check(server, Tls("ca.pem")).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Check(server, Tls("ca.pem", "rogue")).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(Check(server, Tls("ca.pem", "client")).ok());

  std::string output;
  EXPECT_NE(ClientBench(server, {"--tls_ca=" + File("ca.pem")}, &output), 0);
  EXPECT_THAT(output, HasSubstr("cannot reach"));
  EXPECT_EQ(ClientBench(server,
                        {"--tls_ca=" + File("ca.pem"), "--tls_cert=" + File("client.pem"),
                         "--tls_key=" + File("client.key")},
                        &output),
            0)
      << output;
  server.process().Signal(SIGTERM);
  EXPECT_EQ(server.process().WaitExit(kExitTimeout), 0) << server.Log();
}

TEST_F(ServerTlsTest, BadTlsFlagsEndStartUpNamingTheFlag) {
  std::ofstream(dir_ / "not-pem.txt") << "hello";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--tls_cert=" + File("server.pem")}, "--tls_cert and --tls_key go together"},
      {{"--tls_key=" + File("server.key")}, "--tls_cert and --tls_key go together"},
      {{"--tls_client_ca=" + File("ca.pem")}, "--tls_client_ca needs --tls_cert and --tls_key"},
      {{"--tls_cert=" + File("missing.pem"), "--tls_key=" + File("server.key")},
       "--tls_cert: cannot read " + File("missing.pem")},
      {{"--tls_cert=" + File("server.pem"), "--tls_key=" + File("not-pem.txt")},
       "--tls_key: " + File("not-pem.txt") + " holds no PEM private key"},
      {{"--tls_cert=" + File("server.pem"), "--tls_key=" + File("server.key"),
        "--tls_client_ca=" + File("server.key")},
       "--tls_client_ca: " + File("server.key") + " holds no PEM certificate"},
      {{"--tls_cert=" + File("server.pem"), "--tls_key=" + File("client.key")},
       "--tls_key not the key of --tls_cert"},
  };
  for (const auto& [flags, message] : cases) {
    SCOPED_TRACE(message);
    std::vector<std::string> argv = {FER_SERVER_BIN, "--model=" + test_util::TestModelPath(),
                                     "--address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
                                     "--http_address=127.0.0.1:0"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    std::string output;
    EXPECT_EQ(RunToCompletion(argv, &output), 1);
    EXPECT_THAT(output, HasSubstr("fer-server: ")) << output;
    EXPECT_THAT(output, HasSubstr(message)) << output;
    EXPECT_THAT(output, ::testing::Not(HasSubstr("SERVING")));
  }
}

// fer-server with extra flags on the test model; its exit status, its
// output (stdout and stderr) in *output.
int RunServer(const std::vector<std::string>& flags, std::string* output) {
  std::vector<std::string> argv = {FER_SERVER_BIN, "--model=" + test_util::TestModelPath(),
                                   "--address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
                                   "--http_address=127.0.0.1:0"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return RunToCompletion(argv, output);
}

TEST_F(ServerTlsTest, TlsPathsThatAreNotReadableFilesAreOneLineAndExitOne) {
  ASSERT_EQ(::mkfifo(File("fifo.pem").c_str(), 0600), 0);
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--tls_cert=" + dir_.path(), "--tls_key=" + File("server.key")},
       "--tls_cert: cannot read " + dir_.path() + ": is a directory, not a file"},
      {{"--tls_cert=" + File("server.pem"), "--tls_key=" + dir_.path()},
       "--tls_key: cannot read " + dir_.path() + ": is a directory, not a file"},
      {{"--tls_cert=" + File("server.pem"), "--tls_key=" + File("server.key"),
        "--tls_client_ca=" + dir_.path()},
       "--tls_client_ca: cannot read " + dir_.path() + ": is a directory, not a file"},
      {{"--tls_cert=/proc/self/mem", "--tls_key=" + File("server.key")},
       "--tls_cert: cannot read /proc/self/mem: "},
      {{"--tls_cert=" + File("server.pem"), "--tls_key=" + File("fifo.pem")},
       "--tls_key: cannot read " + File("fifo.pem") + ": is a fifo, not a regular file"},
  };
  for (const auto& [flags, message] : cases) {
    SCOPED_TRACE(message);
    std::string output;
    EXPECT_EQ(RunServer(flags, &output), 1) << output;
    ExpectOneErrorLine(output, message);
  }
}

TEST_F(ServerTlsTest, ACertificateOutsideItsValidityIsRefusedWithItsDates) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"expired", "expired at 2020-01-02 00:00:00 UTC"},
      {"not_yet_valid", "is not valid until 2099-01-01 00:00:00 UTC"},
  };
  for (const auto& [name, message] : cases) {
    SCOPED_TRACE(name);
    std::string output;
    EXPECT_EQ(RunServer({"--tls_cert=" + File(name + ".pem"), "--tls_key=" + File(name + ".key")},
                        &output),
              1)
        << output;
    ExpectOneErrorLine(output, "--tls_cert: " + File(name + ".pem") + ": certificate 1 of 1 (" +
                                   "/CN=localhost) " + message);
  }
}

TEST_F(ServerTlsTest, ACertificateEndingWithinAWeekStartsWithALoudWarning) {
  ServerProcess server(dir_,
                       {"--tls_cert=" + File("expiring.pem"), "--tls_key=" + File("expiring.key")},
                       Tls("ca.pem"));
  ASSERT_TRUE(server.WaitServing()) << server.Log();
  EXPECT_THAT(server.Log(), HasSubstr("fer-server: WARNING: --tls_cert: " + File("expiring.pem") +
                                      ": certificate 1 of 1 (/CN=localhost) expires at "))
      << server.Log();
  EXPECT_TRUE(Check(server, Tls("ca.pem")).ok());
  server.process().Signal(SIGTERM);
  EXPECT_EQ(server.process().WaitExit(kExitTimeout), 0) << server.Log();
}

}  // namespace
}  // namespace fer
