#include "model/common/user_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace fer {
namespace {

constexpr size_t kReadChunkBytes = size_t{1} << 20;

std::string Subject(const std::string& path, absl::string_view what) {
  return what.empty() ? path : absl::StrCat(what, " ", path);
}

absl::Status CannotRead(absl::StatusCode code, const std::string& path, absl::string_view what,
                        absl::string_view reason) {
  return absl::Status(code, absl::StrCat("cannot read ", Subject(path, what), ": ", reason));
}

absl::StatusCode CodeOfErrno(int error) {
  switch (error) {
    case ENOENT:
    case ENOTDIR:
      return absl::StatusCode::kNotFound;
    case EACCES:
    case EPERM:
      return absl::StatusCode::kPermissionDenied;
    default:
      return absl::StatusCode::kUnavailable;
  }
}

// What a non-regular file is, for the message.
const char* KindOf(mode_t mode) {
  if (S_ISDIR(mode)) return "is a directory, not a file";
  if (S_ISFIFO(mode)) return "is a fifo, not a regular file";
  if (S_ISSOCK(mode)) return "is a socket, not a regular file";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "is a device, not a regular file";
  return "is not a regular file";
}

// Appends the rest of file to out, up to max_bytes. Reads into the capacity
// already reserved first, so a file whose size was known is read in one go.
template <typename Buffer>
absl::Status ReadAll(std::FILE* file, const std::string& path, absl::string_view what,
                     size_t max_bytes, Buffer* out) {
  for (;;) {
    const size_t old_size = out->size();
    const size_t room = out->capacity() > old_size ? out->capacity() - old_size : kReadChunkBytes;
    out->resize(old_size + room);
    const size_t got = std::fread(out->data() + old_size, 1, room, file);
    out->resize(old_size + got);
    if (out->size() > max_bytes) {
      return CannotRead(absl::StatusCode::kInvalidArgument, path, what,
                        absl::StrCat("larger than ", max_bytes, " bytes"));
    }
    if (got < room) break;
  }
  if (std::ferror(file)) {
    const int error = errno;
    return CannotRead(absl::StatusCode::kUnavailable, path, what, std::strerror(error));
  }
  return absl::OkStatus();
}

template <typename Buffer>
absl::StatusOr<Buffer> ReadWhole(const std::string& path, absl::string_view what,
                                 size_t max_bytes) {
  absl::StatusOr<UniqueFile> file = OpenRegularFile(path, what);
  if (!file.ok()) return file.status();
  Buffer contents;
  // The stat size is a hint only (0 for /proc files): reading goes to the end.
  struct stat info;
  if (::fstat(::fileno(file->get()), &info) == 0 && info.st_size > 0) {
    if (static_cast<uint64_t>(info.st_size) > max_bytes) {
      return CannotRead(absl::StatusCode::kInvalidArgument, path, what,
                        absl::StrCat("larger than ", max_bytes, " bytes"));
    }
    contents.reserve(static_cast<size_t>(info.st_size) + 1);
  }
  if (absl::Status s = ReadAll(file->get(), path, what, max_bytes, &contents); !s.ok()) return s;
  return contents;
}

}  // namespace

absl::StatusOr<UniqueFile> OpenRegularFile(const std::string& path, absl::string_view what) {
  // O_NONBLOCK: opening a fifo for reading would otherwise wait for a writer.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int error = errno;
    return CannotRead(CodeOfErrno(error), path, what,
                      error == ENOENT ? "does not exist" : std::strerror(error));
  }
  struct stat info;
  if (::fstat(fd, &info) != 0) {
    const int error = errno;
    ::close(fd);
    return CannotRead(absl::StatusCode::kUnavailable, path, what, std::strerror(error));
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    return CannotRead(absl::StatusCode::kInvalidArgument, path, what, KindOf(info.st_mode));
  }
  // Regular files never block; clear the flag so reads behave as usual.
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  std::FILE* file = ::fdopen(fd, "rb");
  if (file == nullptr) {
    const int error = errno;
    ::close(fd);
    return CannotRead(absl::StatusCode::kUnavailable, path, what, std::strerror(error));
  }
  return UniqueFile(file);
}

absl::StatusOr<std::string> ReadRegularFile(const std::string& path, absl::string_view what,
                                            size_t max_bytes) {
  return ReadWhole<std::string>(path, what, max_bytes);
}

absl::StatusOr<std::vector<char>> ReadRegularFileBytes(const std::string& path,
                                                       absl::string_view what, size_t max_bytes) {
  return ReadWhole<std::vector<char>>(path, what, max_bytes);
}

}  // namespace fer
