// A one-line terminal progress bar for long offline jobs (packing, training,
// evaluation): done/total, rate, ETA and a free-text suffix such as
// "loss 1.23 acc 0.45".
//
// On a terminal the line is redrawn in place (carriage return), at most ten
// times a second. Anywhere else (a log file, CI) a full line is printed each
// time another tenth of the total is done (the last by Finish, with the time
// taken), so logs stay short and readable.
//
// Thread-safe: Update and Finish may be called from several threads.
#ifndef FER_MODEL_PROGRESS_H_
#define FER_MODEL_PROGRESS_H_

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>

namespace fer {

class ProgressBar {
 public:
  // Draws on stderr, in place when stderr is a terminal. total 0 means
  // unknown: the bar then shows the count and rate only.
  ProgressBar(std::string label, size_t total);
  // Draws on out; redraw picks in-place redrawing (true) or a line per tenth.
  ProgressBar(std::string label, size_t total, std::FILE* out, bool redraw);
  // Ends the line if Finish was not called (printing the state reached in
  // line mode), so that whatever is printed next starts on a fresh line.
  ~ProgressBar();

  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // Reports that done of total units are complete; suffix replaces the
  // previous one. done may exceed total (the bar then shows 100%).
  void Update(size_t done, std::string_view suffix = {});
  // Prints the final state and ends the line; later calls do nothing. An
  // empty suffix keeps the last one.
  void Finish(std::string_view suffix = {});

  // The text of one line, e.g.
  // "pack [#########...........]  45%  12.9k/28.7k  3.21k/s  ETA 0:04  loss 1.2"
  // (finished: the elapsed time instead of the ETA). Exposed for tests.
  static std::string FormatLine(std::string_view label, size_t done, size_t total, double elapsed_s,
                                bool finished, std::string_view suffix);

 private:
  void Draw(bool finished);  // requires mu_

  const std::string label_;
  const size_t total_;
  std::FILE* const out_;
  const bool redraw_;
  const std::chrono::steady_clock::time_point start_;

  std::mutex mu_;
  size_t done_ = 0;
  std::string suffix_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point last_draw_;
  size_t printed_done_ = 0;  // done_ when the last line was drawn
  int last_tenth_ = 0;       // line mode: the last tenth printed
  size_t drawn_width_ = 0;   // redraw mode: length of the line on screen
};

}  // namespace fer

#endif  // FER_MODEL_PROGRESS_H_
