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

namespace fer {

// Parses a subcommand's flags; returns false (after printing why) when the
// command line has positional arguments it does not take.
bool ParseCommandFlags(int argc, char** argv, const char* usage);

// Prints "fer-model <command>: <message>" on stderr and returns 1.
int Fail(const char* command, const absl::Status& status);

// --threads resolved: UsableCpuCount() for 0, else the flag (negative values
// are the caller's to refuse).
int ThreadsFlag();

// Parses "1,8,32" into positive integers.
absl::Status ParseIntList(const std::string& text, const char* what, std::vector<int>* out);

}  // namespace fer

#endif  // FER_MODEL_TOOLS_FLAGS_UTIL_H_
