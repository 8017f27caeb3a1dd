#include "client/client_flags.h"

#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

ABSL_FLAG(std::string, target, "localhost:50051",
          "fer-server address, host:port (any gRPC target: dns:///, unix:, ...)");
ABSL_FLAG(int, deadline_ms, 30000,
          "deadline of each call in milliseconds; stream: of each frame's answer");
ABSL_FLAG(bool, tls, false,
          "use TLS with the system's root certificates (implied by --tls_ca/--tls_cert)");
ABSL_FLAG(std::string, tls_ca, "", "PEM file of the root certificates that sign the server's");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate chain, for mutual TLS");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(bool, json, false, "print JSON (one object per line) instead of text");
ABSL_FLAG(bool, csv, false, "print CSV with a header row instead of text");
ABSL_FLAG(bool, ten_crop, false,
          "classify, stream, bench: average ten crops per face on the server (10x compute)");

namespace fer::client {
namespace {

absl::string_view Basename(absl::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == absl::string_view::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::vector<std::string> ParseCommandFlags(int argc, char** argv, const char* usage,
                                           const char* command_file) {
  const absl::string_view command_base = Basename(command_file);
  absl::FlagsUsageConfig config;
  config.contains_help_flags = [command_base](absl::string_view file) {
    const absl::string_view base = Basename(file);
    return base == command_base || base == Basename(__FILE__);
  };
  absl::SetFlagsUsageConfig(config);
  absl::SetProgramUsageMessage(usage);
  const std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  return std::vector<std::string>(rest.begin() + 1, rest.end());
}

int Fail(const char* command, const absl::Status& status) {
  std::fprintf(stderr, "fer-client %s: %s\n", command, std::string(status.message()).c_str());
  return 1;
}

int UsageError(const char* command, const std::string& message, const char* usage) {
  std::fprintf(stderr, "fer-client %s: %s\nusage: %s\n", command, message.c_str(), usage);
  return kUsageExit;
}

absl::Status CheckDeadlineFlag() {
  if (absl::GetFlag(FLAGS_deadline_ms) <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--deadline_ms must be positive, not ", absl::GetFlag(FLAGS_deadline_ms)));
  }
  return absl::OkStatus();
}

absl::Duration DeadlineFromFlag() { return absl::Milliseconds(absl::GetFlag(FLAGS_deadline_ms)); }

}  // namespace fer::client
