#include "model/training/tools/data_input.h"

#include <cstdio>
#include <filesystem>
#include <optional>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "model/common/progress.h"
#include "model/training/readers.h"
#include "model/training/tools/flags_util.h"

namespace fer {
namespace {

absl::StatusOr<PackedDataset> ReadFolder(const std::string& path, int channels, const char* command,
                                         std::vector<std::string>* sources) {
  ReaderOptions options;
  options.channels = channels;
  options.threads = ThreadsFlag();
  options.max_pixels = absl::GetFlag(FLAGS_max_image_pixels);
  std::optional<ProgressBar> bar;
  options.progress = [&bar](size_t done, size_t total) {
    if (total == 0) return;
    if (!bar) bar.emplace("decode", total);
    bar->Update(done);
  };
  absl::StatusOr<ReadResult> read = ReadImageFolder(path, options);
  if (bar) bar->Finish();
  if (!read.ok()) return read.status();
  const std::string summary = read->report.Summary();
  if (read->data.size() == 0) {
    const std::string why = absl::StrReplaceAll(summary, {{"\n", "; "}});
    return absl::InvalidArgumentError(absl::StrCat("no faces found in image folder ", path,
                                                   why.empty() ? "" : " (", why,
                                                   why.empty() ? "" : ")"));
  }
  for (absl::string_view line : absl::StrSplit(summary, '\n', absl::SkipEmpty())) {
    std::fprintf(stderr, "fer-model %s: %s: %s\n", command, path.c_str(),
                 std::string(line).c_str());
  }
  if (sources != nullptr) *sources = std::move(read->sources);
  return std::move(read->data);
}

}  // namespace

absl::StatusOr<PackedDataset> ReadDataSet(const std::string& path, int channels,
                                          const char* command, std::vector<std::string>* sources) {
  std::error_code error;
  if (sources != nullptr) sources->clear();
  if (std::filesystem::is_directory(path, error)) {
    return ReadFolder(path, channels, command, sources);
  }
  return PackedDataset::Read(path);
}

}  // namespace fer
