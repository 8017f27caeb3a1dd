// fer-model: offline tools for LLA-Net weight files and data sets.
#include <cstdio>
#include <cstring>
#include <string>

#include "model/training/tools/commands.h"
#include "model/training/tools/flags_util.h"

namespace {

constexpr char kUsage[] =
    "usage: fer-model COMMAND [--flags]\n"
    "  init   write a freshly initialised weight file (--out)\n"
    "  info   print a weight file's meta and parameter count (--model)\n"
    "  bench  raw forward throughput and latency (--model, --batch_sizes, --threads, "
    "--precision, --device)\n"
    "  pack   read a data set once into a packed file (--data, --out)\n"
    "  train  train LLA-Net on packed sets or image folders (--data, --val, --out)\n"
    "  eval   accuracy, F1, challenge score and confusion matrix (--model, --data)\n"
    "  convert  rewrite a weight file, --half to store it at fp16 (--model, --out)\n"
    "  explain  faces with their attention maps as a PNG grid and CSV (--model, --data, --png)\n"
    "Run `fer-model COMMAND --help` for a command's flags, `fer-model --version` for the "
    "version.\n";

struct Command {
  const char* name;
  int (*run)(int, char**);
};

constexpr Command kCommands[] = {
    {"init", fer::RunInit},       {"info", fer::RunInfo},       {"bench", fer::RunBench},
    {"pack", fer::RunPack},       {"train", fer::RunTrain},     {"eval", fer::RunEval},
    {"convert", fer::RunConvert}, {"explain", fer::RunExplain},
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "help") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (std::strcmp(argv[1], "--version") == 0 || std::strcmp(argv[1], "-version") == 0) {
    std::printf("%s\n", fer::VersionText().c_str());
    return 0;
  }
  for (const Command& command : kCommands) {
    if (std::strcmp(argv[1], command.name) == 0) return command.run(argc - 1, argv + 1);
  }
  std::fprintf(stderr, "fer-model: unknown command \"%s\"\n%s", argv[1], kUsage);
  return 2;
}
