// Finds and reads the image files fer-client sends. The client never decodes
// them: the encoded bytes go to the server as they are, which checks formats
// and limits in one place for every client.
#ifndef FER_CLIENT_IMAGE_FILES_H_
#define FER_CLIENT_IMAGE_FILES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fer::client {

// True for the extensions of the formats the server accepts (.jpg .jpeg .png
// .bmp .webp, any case).
bool HasImageExtension(absl::string_view path);

// Expands command-line paths into image files. A file is kept as given,
// whatever its extension (the server says what is wrong with it); a directory
// is walked recursively and contributes its files with an image extension,
// sorted by path so runs are repeatable. Errors (NOT_FOUND or
// INVALID_ARGUMENT, naming the path): a path that does not exist, a directory
// without images, or no paths at all.
absl::StatusOr<std::vector<std::string>> ListImageFiles(const std::vector<std::string>& paths);

// The whole file, or an error naming the path: NOT_FOUND "PATH: cannot open
// file", or ReadRegularFile's errors (a folder, fifo or device, a read error).
absl::StatusOr<std::string> ReadFileBytes(const std::string& path);

}  // namespace fer::client

#endif  // FER_CLIENT_IMAGE_FILES_H_
