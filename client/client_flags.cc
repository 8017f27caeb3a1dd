#include "client/client_flags.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "model/common/cli_flags.h"

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

// The one list of which command uses which flag. A fer-client flag given on
// the command line of a command that does not use it is an error, so that
// `fer-client info --concurrency=7` is not silently ignored. A new flag must
// be added here, or every command refuses it.
const std::vector<absl::string_view>& CommonFlags() {
  static const auto* const flags = new std::vector<absl::string_view>{
      "target", "deadline_ms", "tls", "tls_ca", "tls_cert", "tls_key"};
  return *flags;
}

const std::map<absl::string_view, std::vector<absl::string_view>>& CommandFlags() {
  static const auto* const table = new std::map<absl::string_view, std::vector<absl::string_view>>{
      {"classify", {"batch", "json", "csv", "ten_crop", "attention"}},
      {"stream",
       {"camera", "cascade", "no_detect", "min_face", "window", "smooth", "track_iou", "annotate",
        "annotate_attention", "max_frames", "progress", "json", "csv", "ten_crop"}},
      {"bench",
       {"concurrency", "rate", "duration", "requests", "faces_per_request", "mode", "images",
        "ten_crop", "attention_maps", "json"}},
      {"info", {"json"}},
      {"health", {"service"}},
  };
  return *table;
}

bool Contains(const std::vector<absl::string_view>& names, absl::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// Flags defined in client/ sources; Abseil's own (--flagfile, --help, ...)
// are left to Abseil.
bool IsClientFlag(const absl::CommandLineFlag& flag) {
  const std::string file = flag.Filename();
  const size_t slash = file.rfind('/');
  if (slash == std::string::npos) return false;
  const absl::string_view folder = absl::string_view(file).substr(0, slash);
  return folder == "client" || absl::EndsWith(folder, "/client");
}

bool Allowed(absl::string_view command, absl::string_view name) {
  if (Contains(CommonFlags(), name)) return true;
  const auto entry = CommandFlags().find(command);
  return entry != CommandFlags().end() && Contains(entry->second, name);
}

// "--concurrency is not a flag of info (it is for bench)", for the sorted names.
absl::Status ForeignFlagsError(absl::string_view command, const std::vector<std::string>& names) {
  std::vector<std::string> users;
  for (const auto& [other, flags] : CommandFlags()) {
    if (Contains(flags, names.front())) users.emplace_back(other);
  }
  return absl::InvalidArgumentError(cli::ForeignFlagsMessage("fer-client", command, names, users));
}

// A fer-client flag that `command` does not use.
bool Foreign(absl::string_view command, const absl::CommandLineFlag& flag) {
  return IsClientFlag(flag) && !Allowed(command, flag.Name());
}

}  // namespace

std::vector<std::string> ParseCommandFlags(int argc, char** argv, const char* usage,
                                           const char* command_file) {
  const absl::string_view file = command_file;
  // --help lists the common flags and the command's own.
  cli::ConfigureUsage({std::string(file.substr(file.rfind('/') + 1)), "client_flags.cc"},
                      absl::StrCat("fer-client ", cli::ProjectVersion()));
  absl::SetProgramUsageMessage(usage);
  const absl::string_view command = argv[0];
  // Before parsing, so that a foreign flag is named as such even when its
  // value would not parse (`bench --csv=x`).
  const std::vector<std::string> named = cli::ForeignFlagsInArgs(
      argc, argv, [command](const absl::CommandLineFlag& flag) { return Foreign(command, flag); });
  if (!named.empty()) std::exit(Fail(argv[0], ForeignFlagsError(command, named)));
  const std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  // Again after parsing: --flagfile and --fromenv set flags too.
  if (absl::Status status = CheckFlagsOfCommand(command); !status.ok()) {
    std::exit(Fail(argv[0], status));
  }
  return std::vector<std::string>(rest.begin() + 1, rest.end());
}

absl::Status CheckFlagsOfCommand(absl::string_view command) {
  const std::vector<std::string> foreign = cli::ForeignFlagsSet(
      [command](const absl::CommandLineFlag& flag) { return Foreign(command, flag); });
  if (foreign.empty()) return absl::OkStatus();
  return ForeignFlagsError(command, foreign);
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
