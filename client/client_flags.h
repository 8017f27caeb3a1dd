// Flags every fer-client command shares, and the command-line conventions:
// `fer-client COMMAND [--flag=value ...] [ARG ...]`, one clear line on stderr
// and a non-zero exit for any error (2 for a bad command line, 1 otherwise).
#ifndef FER_CLIENT_CLIENT_FLAGS_H_
#define FER_CLIENT_CLIENT_FLAGS_H_

#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

// Names that scripts and dashboards rely on (README.md, docs/client.md): stable.
ABSL_DECLARE_FLAG(std::string, target);
ABSL_DECLARE_FLAG(int, deadline_ms);
ABSL_DECLARE_FLAG(bool, tls);
ABSL_DECLARE_FLAG(std::string, tls_ca);
ABSL_DECLARE_FLAG(std::string, tls_cert);
ABSL_DECLARE_FLAG(std::string, tls_key);
ABSL_DECLARE_FLAG(bool, json);
ABSL_DECLARE_FLAG(bool, csv);
ABSL_DECLARE_FLAG(bool, ten_crop);

namespace fer::client {

// Exit status for a command line that cannot be run (unknown or missing
// arguments); errors met while running exit with 1.
inline constexpr int kUsageExit = 2;

// Parses the flags of one command (argv[0] is the command name) and returns
// its positional arguments. Unknown flags make Abseil print the problem and
// exit non-zero; a fer-client flag that this command does not use prints one
// line naming it (CheckFlagsOfCommand) and exits 1. --help lists the common
// flags and those defined in command_file (pass __FILE__).
std::vector<std::string> ParseCommandFlags(int argc, char** argv, const char* usage,
                                           const char* command_file);

// INVALID_ARGUMENT naming every fer-client flag that `command` does not use
// (the per-command table in client_flags.cc) but that holds a value other
// than its default (from the command line, --flagfile or --fromenv), and
// which command it is for.
absl::Status CheckFlagsOfCommand(absl::string_view command);

// Prints "fer-client <command>: <message>" on stderr; returns 1.
int Fail(const char* command, const absl::Status& status);
// Prints "fer-client <command>: <message>" and the usage line; returns kUsageExit.
int UsageError(const char* command, const std::string& message, const char* usage);

// --deadline_ms as a duration; INVALID_ARGUMENT unless positive.
absl::Status CheckDeadlineFlag();
absl::Duration DeadlineFromFlag();

}  // namespace fer::client

#endif  // FER_CLIENT_CLIENT_FLAGS_H_
