#include "model/common/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace fer {
namespace {

constexpr int kBarWidth = 20;
// Redrawing faster than this only costs terminal time.
constexpr std::chrono::milliseconds kRedrawInterval(100);
// Without a known total, line mode prints this often.
constexpr std::chrono::seconds kUnknownTotalInterval(10);

// 950, 12.9k, 3.21M: short enough for one line, precise enough to read.
std::string Compact(double value) {
  if (value < 10000) {
    return value >= 100 || value == std::floor(value) ? absl::StrFormat("%.0f", value)
                                                      : absl::StrFormat("%.3g", value);
  }
  static constexpr const char* kUnits[] = {"k", "M", "G", "T"};
  int unit = -1;
  while (value >= 1000 && unit < 3) {
    value /= 1000;
    ++unit;
  }
  return absl::StrFormat("%.*f%s", value < 100 ? 1 : 0, value, kUnits[unit]);
}

// 9.2s, 4:05, 1:02:03.
std::string Duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  if (seconds < 60) return absl::StrFormat("%.1fs", seconds);
  const long s = std::lround(seconds);
  if (s < 3600) return absl::StrFormat("%d:%02d", s / 60, s % 60);
  return absl::StrFormat("%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60);
}

}  // namespace

ProgressBar::ProgressBar(std::string label, size_t total)
    : ProgressBar(std::move(label), total, stderr, isatty(fileno(stderr)) != 0) {}

ProgressBar::ProgressBar(std::string label, size_t total, std::FILE* out, bool redraw)
    : label_(std::move(label)),
      total_(total),
      out_(out),
      redraw_(redraw),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

ProgressBar::~ProgressBar() {
  std::lock_guard<std::mutex> lock(mu_);
  // An unfinished bar ends its line (or, in line mode, prints where it got
  // to) without claiming completion.
  if (!finished_ && redraw_ && drawn_width_ > 0) std::fputc('\n', out_);
  if (!finished_ && !redraw_ && done_ != printed_done_) Draw(false);
  std::fflush(out_);
}

void ProgressBar::Update(size_t done, std::string_view suffix) {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  done_ = done;
  if (!suffix.empty()) suffix_ = std::string(suffix);
  const auto now = std::chrono::steady_clock::now();
  if (redraw_) {
    if (now - last_draw_ >= kRedrawInterval || (total_ > 0 && done >= total_)) Draw(false);
    return;
  }
  if (total_ == 0) {
    if (now - last_draw_ >= kUnknownTotalInterval) Draw(false);
    return;
  }
  // The last tenth is left to Finish (or the destructor), which adds the time.
  const int tenth = static_cast<int>(std::min<size_t>(10, done * 10 / total_));
  if (tenth > last_tenth_ && tenth < 10) {
    last_tenth_ = tenth;
    Draw(false);
  }
}

void ProgressBar::Finish(std::string_view suffix) {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  if (!suffix.empty()) suffix_ = std::string(suffix);
  Draw(true);
  finished_ = true;
}

void ProgressBar::Draw(bool finished) {
  const auto now = std::chrono::steady_clock::now();
  last_draw_ = now;
  printed_done_ = done_;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const std::string line = FormatLine(label_, done_, total_, elapsed, finished, suffix_);
  if (redraw_) {
    // Pad over the remains of a longer previous line instead of relying on
    // terminal escape codes.
    const size_t pad = drawn_width_ > line.size() ? drawn_width_ - line.size() : 0;
    std::fprintf(out_, "\r%s%*s%s", line.c_str(), static_cast<int>(pad), "", finished ? "\n" : "");
    drawn_width_ = line.size();
  } else {
    std::fprintf(out_, "%s\n", line.c_str());
  }
  std::fflush(out_);
}

std::string ProgressBar::FormatLine(std::string_view label, size_t done, size_t total,
                                    double elapsed_s, bool finished, std::string_view suffix) {
  const double rate = elapsed_s > 0 ? static_cast<double>(done) / elapsed_s : 0.0;
  std::string line(label);
  if (total > 0) {
    const double fraction = std::min(1.0, static_cast<double>(done) / static_cast<double>(total));
    const int filled = static_cast<int>(fraction * kBarWidth);
    absl::StrAppend(&line, " [", std::string(filled, '#'), std::string(kBarWidth - filled, '.'),
                    "] ", absl::StrFormat("%3d%%", static_cast<int>(fraction * 100)), "  ",
                    Compact(static_cast<double>(done)), "/", Compact(static_cast<double>(total)));
  } else {
    absl::StrAppend(&line, " ", Compact(static_cast<double>(done)));
  }
  absl::StrAppend(&line, "  ", Compact(rate), "/s");
  if (finished) {
    absl::StrAppend(&line, "  ", Duration(elapsed_s));
  } else if (total > 0 && rate > 0 && done < total) {
    absl::StrAppend(&line, "  ETA ", Duration(static_cast<double>(total - done) / rate));
  }
  if (!suffix.empty())
    absl::StrAppend(&line, "  ", absl::string_view(suffix.data(), suffix.size()));
  return line;
}

}  // namespace fer
