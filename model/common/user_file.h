// Reading the files a user names on the command line (weight files, TLS PEM
// files, data sets): one place that refuses what is not a readable regular
// file, so that every binary fails the same way, with one clear message,
// instead of throwing from deep inside a stream library. Abseil only.
#ifndef FER_MODEL_USER_FILE_H_
#define FER_MODEL_USER_FILE_H_

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fer {

// An open stdio file, closed when destroyed.
struct FileCloser {
  void operator()(std::FILE* file) const {
    if (file != nullptr) std::fclose(file);
  }
};
using UniqueFile = std::unique_ptr<std::FILE, FileCloser>;

// Opens path for reading if it names a regular file (symbolic links
// followed). Never blocks: a fifo is refused, not waited on. Errors read
// "cannot read <what> <path>: <reason>" (what may be empty), with reason
// "does not exist", "Permission denied", "is a directory", "is a fifo, not a
// regular file" and so on; codes NOT_FOUND, PERMISSION_DENIED,
// INVALID_ARGUMENT (not a regular file) or UNAVAILABLE (other I/O errors).
absl::StatusOr<UniqueFile> OpenRegularFile(const std::string& path, absl::string_view what = "");

// The default bound of ReadRegularFile: far above any weight or PEM file, so
// that only a mistaken path (a disk image, a log) is refused by it.
inline constexpr size_t kMaxUserFileBytes = size_t{4} << 30;

// The whole contents of the regular file at path: OpenRegularFile, then reads
// to the end of the file (not to its stat size, which /proc files report as
// 0). A read error (EIO from /proc/self/mem, EISDIR, ...) is UNAVAILABLE in
// the same form; a file larger than max_bytes is INVALID_ARGUMENT.
absl::StatusOr<std::string> ReadRegularFile(const std::string& path, absl::string_view what = "",
                                            size_t max_bytes = kMaxUserFileBytes);
absl::StatusOr<std::vector<char>> ReadRegularFileBytes(const std::string& path,
                                                       absl::string_view what = "",
                                                       size_t max_bytes = kMaxUserFileBytes);

}  // namespace fer

#endif  // FER_MODEL_USER_FILE_H_
