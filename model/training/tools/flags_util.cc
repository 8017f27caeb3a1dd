#include "model/training/tools/flags_util.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "model/common/cli_flags.h"
#include "model/common/cpu_count.h"
#include "model/core/torch_version.h"
#include "model/training/readers.h"

ABSL_FLAG(std::string, model, "", "weight file to read");
ABSL_FLAG(std::string, out, "", "file to write");
ABSL_FLAG(std::string, data, "",
          "data set: a packed file or an image folder (one folder per class); for pack also an "
          "Aff-Wild2 annotation folder or FER2013 CSV");
ABSL_FLAG(std::string, device, "auto", "auto, cpu, cuda or cuda:N");
ABSL_FLAG(std::string, precision, "fp32", "fp32, bf16 or fp16 (CUDA)");
ABSL_FLAG(int, threads, 0,
          "CPU threads (intra-op for LibTorch; loaders for data); 0: the CPUs this process may "
          "use (its affinity mask, limited by its cgroup CPU quota)");
ABSL_FLAG(bool, json, false, "print machine-readable JSON instead of tables");
ABSL_FLAG(uint64_t, seed, 0, "random seed of initialisation, shuffling and augmentation");
ABSL_FLAG(int64_t, max_image_pixels, fer::kDefaultMaxImagePixels,
          "images read (folders, Aff-Wild2 frames) whose header declares more pixels (width x "
          "height) are skipped and counted, never decoded");

namespace fer {

namespace {

// The one list of which subcommand uses which flag: a fer-model flag given to
// a subcommand that does not use it is an error, so that
// `fer-model eval --epochs=3` is not silently ignored. A new flag must be
// added here, or no subcommand accepts it (a test checks that each is listed).
const std::map<std::string, std::vector<std::string>>& CommandFlags() {
  static const auto* const table = new std::map<std::string, std::vector<std::string>>{
      {"init",
       {"out", "num_classes", "attention_kernel", "attention", "input_size", "color", "seed"}},
      {"info", {"model", "json"}},
      {"convert", {"model", "out", "half"}},
      {"bench",
       {"model", "batch_sizes", "thread_counts", "precisions", "seconds", "warmup", "device",
        "precision", "threads", "attention_maps", "json"}},
      {"pack",
       {"data", "out", "format", "images", "size", "color", "usage", "stride", "extra", "recrop",
        "max_image_pixels", "threads"}},
      {"train",
       {"data",
        "val",
        "out",
        "init",
        "epochs",
        "batch_size",
        "lr",
        "momentum",
        "weight_decay",
        "lr_decay",
        "decay_from",
        "flip",
        "random_crop",
        "train_input_size",
        "input_blur",
        "color",
        "loader_threads",
        "steps_per_epoch",
        "max_minutes",
        "checkpoint",
        "log",
        "trained_on",
        "model_version",
        "max_image_pixels",
        "device",
        "precision",
        "threads",
        "seed"}},
      {"eval",
       {"model", "data", "ten_crop", "json", "csv", "png", "probabilities", "eval_batch_size",
        "max_image_pixels", "device", "precision", "threads"}},
      {"explain",
       {"model", "data", "patches_from", "png", "csv", "count", "columns", "size", "misalign",
        "misalign_fraction", "max_image_pixels", "device", "precision", "threads", "seed"}},
  };
  return *table;
}

// Flags defined in fer-model's own sources; Abseil's (--flagfile, --help,
// ...) are every command's.
bool IsToolFlag(const absl::CommandLineFlag& flag) {
  return absl::StartsWith(cli::ShownFilename(flag.Filename()), "model/training/tools/");
}

bool Uses(const std::string& command, absl::string_view name) {
  const std::vector<std::string> flags = FlagsOfCommand(command);
  return std::find(flags.begin(), flags.end(), name) != flags.end();
}

// "--epochs is not a flag of eval (it is for train); see fer-model eval --help"
std::string ForeignFlagsMessage(const std::string& command, const std::vector<std::string>& names) {
  std::vector<std::string> users;
  for (const auto& [other, flags] : CommandFlags()) {
    if (std::find(flags.begin(), flags.end(), names.front()) != flags.end()) {
      users.push_back(other);
    }
  }
  return cli::ForeignFlagsMessage("fer-model", command, names, users);
}

void ExitIfForeign(const std::string& command, const std::vector<std::string>& names) {
  if (names.empty()) return;
  std::fprintf(stderr, "fer-model %s: %s\n", command.c_str(),
               ForeignFlagsMessage(command, names).c_str());
  std::exit(1);
}

}  // namespace

std::string VersionText() {
  return absl::StrCat("fer-model ", cli::ProjectVersion(), " (LibTorch ", TorchVersion(), ")");
}

std::vector<std::string> FlagsOfCommand(const std::string& command) {
  const auto entry = CommandFlags().find(command);
  return entry == CommandFlags().end() ? std::vector<std::string>() : entry->second;
}

bool ParseCommandFlags(int argc, char** argv, const char* usage) {
  const std::string command = argv[0];
  const bool shares_file = command == "init" || command == "info" || command == "convert";
  cli::ConfigureUsage({shares_file ? "init_info_command.cc" : absl::StrCat(command, "_command.cc")},
                      VersionText());
  absl::SetProgramUsageMessage(usage);
  if (cli::AsksForPlainHelp(argc, argv)) {
    std::printf("%s\n\n  Flags of fer-model %s:\n%s\nTry --helpfull for every flag.\n", usage,
                command.c_str(), cli::DescribeFlags(FlagsOfCommand(command)).c_str());
    std::exit(0);
  }
  auto foreign = [&command](const absl::CommandLineFlag& flag) {
    return IsToolFlag(flag) && !Uses(command, flag.Name());
  };
  ExitIfForeign(command, cli::ForeignFlagsInArgs(argc, argv, foreign));
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  // Again after parsing: --flagfile and --fromenv set flags too.
  ExitIfForeign(command, cli::ForeignFlagsSet(foreign));
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
