// Command-line conventions every binary of the project shares, on top of
// Abseil flags: --help lists the flags of this binary (or subcommand) only,
// --helpfull shows where each flag is defined relative to the project (never
// the path of the machine that built it), --version prints the project's
// version, and a flag of the binary that the subcommand does not use is an
// error rather than silently ignored. No LibTorch, gRPC or OpenCV in here.
#ifndef FER_MODEL_CLI_FLAGS_H_
#define FER_MODEL_CLI_FLAGS_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/strings/string_view.h"

namespace fer::cli {

// The project version of CMake's project() ("0.1.0").
std::string ProjectVersion();

// A flag's defining file as --helpfull shows it: from the project's top
// folder (client/, model/, server/) or Abseil's (absl/) on, e.g.
// "server/server_main.cc" for "../server/server_main.cc" or
// "/home/me/fer/server/server_main.cc"; other paths lose their leading "./"
// and "../" parts only.
std::string ShownFilename(absl::string_view file);

// Sets Abseil's usage hooks for this process: --help and --helpshort list the
// flags defined in files whose base name is one of help_files, --helpfull
// all, file names go through ShownFilename, and --version prints
// version_text (a trailing newline is added). Call before parsing.
void ConfigureUsage(std::vector<std::string> help_files, std::string version_text);

// The flag a command-line token sets, as Abseil reads it (-x, --x, --x=v,
// --nox for a bool), or null for positional arguments and unknown names;
// *takes_next when its value is the next token.
const absl::CommandLineFlag* FlagOfToken(absl::string_view token, bool* takes_next);

using FlagFilter = std::function<bool(const absl::CommandLineFlag&)>;

// Before parsing: the names (sorted, unique) of the flags that argv[1..]
// sets (up to a "--") and for which `foreign` is true. Run before Abseil
// parses, so that a foreign flag is named as such even when its value would
// not parse.
std::vector<std::string> ForeignFlagsInArgs(int argc, char** argv, const FlagFilter& foreign);

// After parsing: the names (sorted) of the flags for which `foreign` is true
// and that hold a value other than their default, which is how --flagfile and
// --fromenv set them too. (Abseil 20220623 keeps IsSpecifiedOnCommandLine
// private.)
std::vector<std::string> ForeignFlagsSet(const FlagFilter& foreign);

// The one-line refusal of flags a command does not use: "--epochs is not a
// flag of eval (it is for train); see fer-model eval --help". names: sorted,
// not empty; users: the commands that use names.front() (named only when
// there is one name).
std::string ForeignFlagsMessage(absl::string_view binary, absl::string_view command,
                                const std::vector<std::string>& names,
                                const std::vector<std::string>& users);

// True when argv[1..] (up to a "--") holds --help or --helpshort (one or two
// dashes, no value): the plain requests for a command's own flags. The
// other help flags (--helpfull, --help=substring, ...) stay Abseil's.
bool AsksForPlainHelp(int argc, char** argv);

// The help of the named flags, in that order, as Abseil prints it:
// "    --name (help text); default: value;" per flag. Unknown names are
// skipped.
std::string DescribeFlags(const std::vector<std::string>& names);

}  // namespace fer::cli

#endif  // FER_MODEL_CLI_FLAGS_H_
