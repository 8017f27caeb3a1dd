// ProgressBar: the line it formats, one line per tenth when not on a terminal,
// in-place redraws on one, and safe use from several threads.
#include "model/common/progress.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "tests/support/parallel_for.h"

namespace fer {
namespace {

// Everything written to a FILE* during the test.
class Capture {
 public:
  Capture() : file_(std::tmpfile()) {}
  ~Capture() { std::fclose(file_); }
  std::FILE* file() { return file_; }
  std::string Text() {
    std::fflush(file_);
    std::rewind(file_);
    std::string text;
    for (int c; (c = std::fgetc(file_)) != EOF;) text.push_back(static_cast<char>(c));
    return text;
  }

 private:
  std::FILE* file_;
};

size_t Count(const std::string& text, char c) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), c));
}

TEST(ProgressBarTest, FormatsDoneTotalRateEtaAndSuffix) {
  const std::string line =
      ProgressBar::FormatLine("train", 12900, 28700, 4.0, false, "loss 1.23 acc 0.45");
  EXPECT_EQ(line,
            "train [########............]  44%  12.9k/28.7k  3225/s  ETA 4.9s  loss 1.23 acc 0.45");
  EXPECT_EQ(ProgressBar::FormatLine("pack", 50, 50, 125.0, true, ""),
            "pack [####################] 100%  50/50  0.4/s  2:05");
  EXPECT_EQ(ProgressBar::FormatLine("read", 1500000, 0, 3.0, false, ""), "read 1.5M  500k/s");
}

TEST(ProgressBarTest, PrintsALinePerTenthWhenNotOnATerminal) {
  Capture out;
  {
    ProgressBar bar("decode", 1000, out.file(), /*redraw=*/false);
    for (size_t done = 1; done <= 1000; ++done) bar.Update(done);
    bar.Finish("done");
    bar.Update(5);  // ignored after Finish
  }
  const std::string text = out.Text();
  EXPECT_EQ(Count(text, '\n'), 10u) << text;  // 10%, 20%, ... 90%, then Finish at 100%
  EXPECT_EQ(Count(text, '\r'), 0u);
  EXPECT_NE(text.find(" 10%  100/1000"), std::string::npos) << text;
  EXPECT_NE(text.find("100%  1000/1000"), std::string::npos) << text;
  EXPECT_NE(text.find("done\n"), std::string::npos) << text;
}

TEST(ProgressBarTest, RedrawsInPlaceOnATerminalAndEndsTheLine) {
  Capture out;
  {
    ProgressBar bar("epoch 1", 10, out.file(), /*redraw=*/true);
    bar.Update(10, "a much longer suffix than the next one");
    bar.Finish("short");
  }
  const std::string text = out.Text();
  EXPECT_EQ(Count(text, '\n'), 1u) << text;
  EXPECT_EQ(text.back(), '\n');
  EXPECT_GE(Count(text, '\r'), 2u);
  // The shorter final line is padded over the longer one before it.
  const std::string last = text.substr(text.rfind('\r') + 1);
  EXPECT_NE(last.find("short "), std::string::npos) << last;
}

TEST(ProgressBarTest, AnUnfinishedBarStillEndsItsLine) {
  Capture out;
  {
    ProgressBar bar("x", 10, out.file(), /*redraw=*/true);
    bar.Update(10);
  }
  EXPECT_EQ(out.Text().back(), '\n');
  Capture log;
  {
    ProgressBar bar("y", 100, log.file(), /*redraw=*/false);
    bar.Update(45);  // prints the 40% line
    bar.Update(47);  // nothing new
  }
  const std::string text = log.Text();
  EXPECT_EQ(Count(text, '\n'), 2u) << text;
  EXPECT_NE(text.find(" 47%  47/100"), std::string::npos) << text;
}

TEST(ProgressBarTest, UpdatesFromManyThreadsAreSafe) {
  Capture out;
  ProgressBar bar("threads", 4000, out.file(), /*redraw=*/false);
  test_support::ParallelFor(4, [&bar](int t) {
    for (size_t i = 1; i <= 1000; ++i) bar.Update(t * 1000 + i, "working");
  });
  bar.Finish();
  const std::string text = out.Text();
  EXPECT_GE(Count(text, '\n'), 1u);
  EXPECT_LE(Count(text, '\n'), 11u);
}

}  // namespace
}  // namespace fer
