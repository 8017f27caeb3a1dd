// Helpers shared by the fer-model subcommands.
#ifndef FER_MODEL_TOOLS_FLAGS_UTIL_H_
#define FER_MODEL_TOOLS_FLAGS_UTIL_H_

#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/status/status.h"

// Flags several subcommands share (names fixed by the interface contract).
ABSL_DECLARE_FLAG(std::string, model);
ABSL_DECLARE_FLAG(std::string, out);
ABSL_DECLARE_FLAG(std::string, data);
ABSL_DECLARE_FLAG(std::string, device);
ABSL_DECLARE_FLAG(std::string, precision);
ABSL_DECLARE_FLAG(int, threads);
ABSL_DECLARE_FLAG(bool, json);
ABSL_DECLARE_FLAG(uint64_t, seed);
ABSL_DECLARE_FLAG(int64_t, max_image_pixels);

namespace fer {

// "fer-model 0.1.0 (LibTorch 1.13.0)": what --version prints.
std::string VersionText();

// Parses the flags of the subcommand argv[0]; returns false (after printing
// why) when the command line has positional arguments it does not take.
// Exits the process itself, as Abseil does for its own errors, for:
//   --help, --helpshort: usage and the subcommand's flags (those of the
//     table in flags_util.cc), exit 0;
//   a fer-model flag the subcommand does not use, given on the command line
//     or through --flagfile/--fromenv: one line naming it and the
//     subcommand(s) it is for, exit 1.
// --helpfull, --version and the other Abseil flags keep their meaning, with
// file names relative to the project.
bool ParseCommandFlags(int argc, char** argv, const char* usage);

// The flags subcommand `command` uses, in the order --help lists them; empty
// for an unknown command.
std::vector<std::string> FlagsOfCommand(const std::string& command);

// Prints "fer-model <command>: <message>" on stderr and returns 1.
int Fail(const char* command, const absl::Status& status);

// --threads resolved: UsableCpuCount() for 0, else the flag (negative values
// are the caller's to refuse).
int ThreadsFlag();

// Parses "1,8,32" into positive integers.
absl::Status ParseIntList(const std::string& text, const char* what, std::vector<int>* out);

}  // namespace fer

#endif  // FER_MODEL_TOOLS_FLAGS_UTIL_H_
