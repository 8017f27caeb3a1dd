#include "client/image_files.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "model/common/user_file.h"

namespace fer::client {
namespace {

namespace fs = std::filesystem;

constexpr std::array<absl::string_view, 5> kImageExtensions = {".jpg", ".jpeg", ".png", ".bmp",
                                                               ".webp"};

}  // namespace

bool HasImageExtension(absl::string_view path) {
  for (absl::string_view extension : kImageExtensions) {
    if (absl::EndsWithIgnoreCase(path, extension)) return true;
  }
  return false;
}

absl::StatusOr<std::vector<std::string>> ListImageFiles(const std::vector<std::string>& paths) {
  if (paths.empty()) return absl::InvalidArgumentError("no image files or folders given");
  std::vector<std::string> files;
  for (const std::string& path : paths) {
    std::error_code error;
    const fs::file_status status = fs::status(path, error);
    if (error || !fs::exists(status)) {
      return absl::NotFoundError(absl::StrCat(path, ": no such file or directory"));
    }
    if (!fs::is_directory(status)) {
      files.push_back(path);
      continue;
    }
    std::vector<std::string> found;
    for (fs::recursive_directory_iterator
             it(path, fs::directory_options::follow_directory_symlink, error),
         end;
         !error && it != end; it.increment(error)) {
      if (it->is_regular_file(error) && HasImageExtension(it->path().string())) {
        found.push_back(it->path().string());
      }
    }
    if (error) {
      return absl::NotFoundError(absl::StrCat(path, ": cannot list folder: ", error.message()));
    }
    if (found.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": no images (.jpg .jpeg .png .bmp .webp) in this folder"));
    }
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

absl::StatusOr<std::string> ReadFileBytes(const std::string& path) {
  // The shared reader refuses folders, fifos and devices and reports read
  // errors (a stream library would throw on them).
  absl::StatusOr<std::string> bytes = ReadRegularFile(path);
  if (bytes.status().code() == absl::StatusCode::kNotFound) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open file"));
  }
  return bytes;
}

}  // namespace fer::client
