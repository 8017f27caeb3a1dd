#include "model/tools/flags_util.h"

#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "model/cpu_count.h"

ABSL_FLAG(std::string, model, "", "weight file to read");
ABSL_FLAG(std::string, out, "", "file to write");
ABSL_FLAG(std::string, data, "",
          "data set: a packed file, or for pack an image tree, Aff-Wild2 "
          "annotation folder or FER2013 CSV");
ABSL_FLAG(std::string, device, "auto", "auto, cpu, cuda or cuda:N");
ABSL_FLAG(std::string, precision, "fp32", "fp32, bf16 or fp16 (CUDA)");
ABSL_FLAG(int, threads, 0,
          "CPU threads (intra-op for LibTorch; loaders for data); 0: the CPUs this process may "
          "use (its affinity mask, limited by its cgroup CPU quota)");
ABSL_FLAG(bool, json, false, "print machine-readable JSON instead of tables");
ABSL_FLAG(uint64_t, seed, 0, "random seed of initialisation, shuffling and augmentation");

namespace fer {

bool ParseCommandFlags(int argc, char** argv, const char* usage) {
  absl::SetProgramUsageMessage(usage);
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) {
    std::fprintf(stderr, "fer-model %s: unexpected argument \"%s\" (flags are --name=value)\n",
                 argv[0], rest[1]);
    return false;
  }
  return true;
}

int Fail(const char* command, const absl::Status& status) {
  std::fprintf(stderr, "fer-model %s: %s\n", command, std::string(status.message()).c_str());
  return 1;
}

int ThreadsFlag() {
  const int threads = absl::GetFlag(FLAGS_threads);
  return threads == 0 ? UsableCpuCount() : threads;
}

absl::Status ParseIntList(const std::string& text, const char* what, std::vector<int>* out) {
  out->clear();
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int value = 0;
    if (!absl::SimpleAtoi(part, &value) || value < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", what, ": \"", part, "\" is not a positive integer"));
    }
    out->push_back(value);
  }
  if (out->empty()) return absl::InvalidArgumentError(absl::StrCat("--", what, " is empty"));
  return absl::OkStatus();
}

}  // namespace fer
