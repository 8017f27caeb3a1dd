#include "server/access_log.h"

#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "model/common/json_text.h"

namespace fer {
namespace {

constexpr char kStderrPath[] = "-";
constexpr uint64_t kFixedOne = uint64_t{1} << 32;  // sampling's 1.0
constexpr char kReplacement[] = "\xEF\xBF\xBD";    // U+FFFD
constexpr char kCutMark[] = "...";

// Length of the valid UTF-8 sequence at s[at], or 0 if there is none.
size_t Utf8SequenceLength(absl::string_view s, size_t at) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char lead = byte(at);
  if (lead < 0x80) return 1;
  size_t length = 0;
  unsigned char low = 0x80, high = 0xBF;  // the range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;  // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  if (s.size() - at < length) return 0;
  if (byte(at + 1) < low || byte(at + 1) > high) return 0;
  for (size_t i = 2; i < length; ++i) {
    if (byte(at + i) < 0x80 || byte(at + i) > 0xBF) return 0;
  }
  return length;
}

// s with each byte that is not part of valid UTF-8 replaced by U+FFFD, cut to
// at most max_bytes of s (on a character boundary, then kCutMark), so that
// JsonString makes valid JSON of it.
std::string CleanUtf8(absl::string_view s, size_t max_bytes) {
  std::string out;
  out.reserve(std::min(s.size(), max_bytes) + sizeof(kCutMark));
  size_t at = 0;
  while (at < s.size()) {
    const size_t length = Utf8SequenceLength(s, at);
    if (at + std::max<size_t>(length, 1) > max_bytes) {
      out += kCutMark;
      break;
    }
    if (length == 0) {
      out += kReplacement;
      ++at;
    } else {
      out.append(s.data() + at, length);
      at += length;
    }
  }
  return out;
}

std::string JsonText(absl::string_view s, size_t max_bytes = absl::string_view::npos) {
  return JsonString(CleanUtf8(s, max_bytes));
}

std::string Milliseconds(absl::Duration duration) {
  return JsonNumber(absl::ToDoubleMilliseconds(duration), 3);
}

// Rounded up, so that 1/K logs call K - 1, 2K - 1, ... and not one later
// (the excess, under 2^-32 per call, adds a line in billions of calls).
uint64_t SampleStep(double sample) {
  if (!(sample < 1.0)) return kFixedOne;
  return std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(sample * kFixedOne)));
}

// The file for path, opened for append (created 0644), or the error naming
// it; stderr's descriptor for "-".
absl::StatusOr<int> OpenLog(const std::string& path) {
  if (path == kStderrPath) return STDERR_FILENO;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int error = errno;
    return absl::InvalidArgumentError(
        absl::StrCat("--access_log: cannot open ", path, " for append: ", std::strerror(error)));
  }
  return fd;
}

// Writes all of data to fd, through EINTR and short writes.
bool WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

absl::Status AccessLog::ValidateOptions(const AccessLogOptions& options) {
  if (!(options.sample > 0.0 && options.sample <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--access_log_sample must be in (0, 1], got ", options.sample));
  }
  if (!options.enabled() || options.path == kStderrPath) return absl::OkStatus();
  absl::StatusOr<int> fd = OpenLog(options.path);
  if (!fd.ok()) return fd.status();
  ::close(*fd);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<AccessLog>> AccessLog::Open(const AccessLogOptions& options,
                                                           size_t max_queued_lines) {
  if (!options.enabled()) return absl::InvalidArgumentError("the access log has no path");
  if (absl::Status status = ValidateOptions(options); !status.ok()) return status;
  absl::StatusOr<int> fd = OpenLog(options.path);
  if (!fd.ok()) return fd.status();
  return std::unique_ptr<AccessLog>(
      new AccessLog(options, *fd, std::max<size_t>(1, max_queued_lines)));
}

AccessLog::AccessLog(const AccessLogOptions& options, int fd, size_t max_queued_lines)
    : options_(options),
      max_queued_lines_(max_queued_lines),
      step_(SampleStep(options.sample)),
      fd_(fd),
      writer_(&AccessLog::WriterLoop, this) {}

AccessLog::~AccessLog() {
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    stop_ = true;
  }
  queue_cv_.notify_all();
  writer_.join();
  if (fd_ != STDERR_FILENO) ::close(fd_);
}

bool AccessLog::Sample() {
  if (step_ >= kFixedOne) return true;
  const uint64_t n = counter_.fetch_add(1, std::memory_order_relaxed);
  // The fraction of n * step_ (mod 2^32, exact in 64-bit wrap-around) plus
  // one more step crosses 1.0 exactly floor(N * sample) times in N calls.
  const uint64_t fraction = (n * step_) & (kFixedOne - 1);
  return fraction + step_ >= kFixedOne;
}

std::string AccessLog::FormatLine(const AccessLogEntry& e, double sample) {
  std::string line = absl::StrCat(
      "{\"time\":",
      JsonString(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", e.time, absl::UTCTimeZone())),
      ",\"method\":", JsonText(e.method), ",\"peer\":", JsonText(e.peer),
      ",\"status\":", JsonText(absl::StatusCodeToString(e.code)));
  if (e.code != absl::StatusCode::kOk) {
    absl::StrAppend(&line, ",\"message\":", JsonText(e.message, kMaxMessageBytes));
  }
  absl::StrAppend(&line, ",\"faces\":", e.faces);
  if (e.frames >= 0) absl::StrAppend(&line, ",\"frames\":", e.frames);
  if (e.frame_errors >= 0) absl::StrAppend(&line, ",\"frame_errors\":", e.frame_errors);
  absl::StrAppend(&line, ",\"queue_ms\":", Milliseconds(e.queue),
                  ",\"model_ms\":", Milliseconds(e.model), ",\"total_ms\":", Milliseconds(e.total),
                  ",\"model_version\":", JsonText(e.model_version, kMaxMessageBytes),
                  ",\"sampled\":", JsonNumber(sample), "}\n");
  return line;
}

void AccessLog::Record(const AccessLogEntry& entry) {
  std::string line = FormatLine(entry, options_.sample);
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    if (queue_.size() < max_queued_lines_) {
      queue_.push_back(std::move(line));
      ++queued_total_;
      if (queue_.size() == 1) queue_cv_.notify_all();
      return;
    }
  }
  dropped_.fetch_add(1, std::memory_order_relaxed);
  if (options_.on_dropped) options_.on_dropped();
}

void AccessLog::WriterLoop() {
  std::deque<std::string> lines;
  std::unique_lock<std::mutex> lock(queue_mu_);
  for (;;) {
    queue_cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stop_, and everything is written
    lines.swap(queue_);
    lock.unlock();
    WriteLines(lines);
    const size_t written = lines.size();
    lines.clear();
    lock.lock();
    written_total_ += written;
    queue_cv_.notify_all();  // Flush waits for written_total_
  }
}

void AccessLog::WriteLines(const std::deque<std::string>& lines) {
  std::lock_guard<std::mutex> lock(fd_mu_);
  std::string chunk;
  size_t chunk_lines = 0;
  auto write_chunk = [&] {
    if (chunk_lines == 0) return;
    if (!WriteAll(fd_, chunk)) {
      dropped_.fetch_add(chunk_lines, std::memory_order_relaxed);
      if (options_.on_dropped) {
        for (size_t i = 0; i < chunk_lines; ++i) options_.on_dropped();
      }
    }
    chunk.clear();
    chunk_lines = 0;
  };
  for (const std::string& line : lines) {
    if (chunk.size() + line.size() > PIPE_BUF) write_chunk();
    chunk += line;
    ++chunk_lines;
  }
  write_chunk();
}

absl::Status AccessLog::Reopen() {
  if (options_.path == kStderrPath) return absl::OkStatus();
  absl::StatusOr<int> fd = OpenLog(options_.path);
  if (!fd.ok()) return fd.status();
  int old = 0;
  {
    std::lock_guard<std::mutex> lock(fd_mu_);
    old = fd_;
    fd_ = *fd;
  }
  ::close(old);
  return absl::OkStatus();
}

void AccessLog::Flush() {
  std::unique_lock<std::mutex> lock(queue_mu_);
  const uint64_t target = queued_total_;
  queue_cv_.wait(lock, [&] { return written_total_ >= target; });
}

}  // namespace fer
