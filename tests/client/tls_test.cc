// fer-client over TLS: server authentication with --tls_ca, mutual TLS with
// --tls_cert/--tls_key, and one clear line for every way it can go wrong.
// The server is an in-process gRPC server with only the standard health
// service, so that these tests see the client alone (fer-server's own TLS is
// tested in tests/server/server_tls_test.cc); certificates are made at test
// time by tests/make_test_certificates.sh, and the tests skip without openssl.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "fer/v1/expression.grpc.pb.h"
#include "tests/support/files.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace fer::client {
namespace {

namespace fs = std::filesystem;
using test_support::RunResult;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class ClientTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = std::make_unique<test_support::TempDir>("fer_client_tls_");
    dir_ = scratch_->path();
    const RunResult made = test_support::Run(
        {std::string(FER_SOURCE_DIR) + "/tests/make_test_certificates.sh", dir_}, dir_);
    have_certificates_ = made.exit_code == 0 && fs::exists(dir_ + "/client.pem");
    if (!have_certificates_) skip_reason_ = "cannot make certificates with openssl: " + made.err;
  }
  static void TearDownTestSuite() { scratch_.reset(); }

  void SetUp() override {
    if (!have_certificates_) GTEST_SKIP() << skip_reason_;
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  // Starts a TLS server with the health service; require_client_certificate
  // makes it mutual TLS.
  void StartServer(bool require_client_certificate) {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::SslServerCredentialsOptions options(
        require_client_certificate ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                   : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    options.pem_root_certs = test_support::ReadFile(dir_ + "/ca.pem");
    options.pem_key_cert_pairs.push_back({test_support::ReadFile(dir_ + "/server.key"),
                                          test_support::ReadFile(dir_ + "/server.pem")});
    grpc::ServerBuilder builder;
    // The health service rides on a server with at least one service of its
    // own.
    builder.RegisterService(&unimplemented_);
    int port = 0;
    builder.AddListeningPort("localhost:0", grpc::SslServerCredentials(options), &port);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port, 0);
    target_ = "localhost:" + std::to_string(port);
  }

  RunResult Health(std::vector<std::string> flags) {
    flags.insert(flags.begin(),
                 {FER_CLIENT_BINARY, "health", "--target=" + target_, "--deadline_ms=5000"});
    return test_support::Run(flags, dir_);
  }

  static std::unique_ptr<test_support::TempDir> scratch_;
  static std::string dir_;
  static bool have_certificates_;
  static std::string skip_reason_;
  fer::v1::ExpressionClassifier::Service unimplemented_;
  std::unique_ptr<grpc::Server> server_;
  std::string target_;
};

std::unique_ptr<test_support::TempDir> ClientTlsTest::scratch_;
std::string ClientTlsTest::dir_;
bool ClientTlsTest::have_certificates_ = false;
std::string ClientTlsTest::skip_reason_;

TEST_F(ClientTlsTest, ServingOverTlsWithTheServersCa) {
  StartServer(false);
  const RunResult result = Health({"--tls_ca=" + dir_ + "/ca.pem"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "status: SERVING\n");
}

TEST_F(ClientTlsTest, PlaintextAgainstATlsServerCannotReachIt) {
  StartServer(false);
  const RunResult result = Health({});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, StartsWith("fer-client health: cannot reach " + target_));
}

TEST_F(ClientTlsTest, AnUntrustedServerCertificateIsRefused) {
  StartServer(false);
  const RunResult result = Health({"--tls_ca=" + dir_ + "/other_ca.pem"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, StartsWith("fer-client health: cannot reach " + target_));
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
}

TEST_F(ClientTlsTest, MutualTlsNeedsTheClientCertificate) {
  StartServer(true);
  const RunResult without = Health({"--tls_ca=" + dir_ + "/ca.pem"});
  EXPECT_EQ(without.exit_code, 1);
  const RunResult with =
      Health({"--tls_ca=" + dir_ + "/ca.pem", "--tls_cert=" + dir_ + "/client.pem",
              "--tls_key=" + dir_ + "/client.key"});
  EXPECT_EQ(with.exit_code, 0) << with.err;
}

TEST_F(ClientTlsTest, BadTlsFlagsAreOneClearLine) {
  target_ = "localhost:1";  // never contacted
  const std::string missing = dir_ + "/missing.pem";
  const RunResult no_file = Health({"--tls_ca=" + missing});
  EXPECT_EQ(no_file.exit_code, 1);
  EXPECT_EQ(no_file.err, "fer-client health: --tls_ca: " + missing + ": cannot open file\n");
  const RunResult half = Health({"--tls_cert=" + dir_ + "/client.pem"});
  EXPECT_EQ(half.exit_code, 1);
  EXPECT_EQ(half.err, "fer-client health: --tls_cert and --tls_key go together\n");
}

}  // namespace
}  // namespace fer::client
