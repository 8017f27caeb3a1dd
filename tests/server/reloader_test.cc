// BackgroundReloader: requests return at once, requests during a run become
// one more run, and Cancel drops what was asked for but lets the run in
// progress end. A gate holds each run, so nothing here depends on timing.
#include "server/reloader.h"

#include <condition_variable>
#include <mutex>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace fer {
namespace {

constexpr absl::Duration kWaitLimit = absl::Seconds(60);

// A reload that counts its starts and waits, each run, until the gate is
// opened for it.
class GatedReload {
 public:
  void operator()() {
    std::unique_lock<std::mutex> lock(mu_);
    ++started_;
    changed_.notify_all();
    changed_.wait(lock, [this] { return opened_ >= started_; });
  }
  // Lets one more run end (one that has started or the next one).
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    ++opened_;
    changed_.notify_all();
  }
  // Waits (bounded) until `count` runs have started; returns whether they did.
  bool WaitStarted(int count) {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, absl::ToChronoNanoseconds(kWaitLimit),
                             [&] { return started_ >= count; });
  }
  int started() {
    std::lock_guard<std::mutex> lock(mu_);
    return started_;
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  int started_ = 0;
  int opened_ = 0;
};

bool WaitRuns(const BackgroundReloader& reloader, int count) {
  const absl::Time give_up = absl::Now() + kWaitLimit;
  while (reloader.runs() < count && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(1));
  return reloader.runs() >= count;
}

TEST(BackgroundReloaderTest, ARequestReturnsWhileItsReloadIsStillRunning) {
  GatedReload gate;
  BackgroundReloader reloader([&gate] { gate(); });
  reloader.Request();  // returns although the run cannot end until Open
  ASSERT_TRUE(gate.WaitStarted(1));
  EXPECT_EQ(reloader.runs(), 0);
  gate.Open();
  EXPECT_TRUE(WaitRuns(reloader, 1));
}

TEST(BackgroundReloaderTest, RequestsDuringARunBecomeExactlyOneMoreRun) {
  GatedReload gate;
  BackgroundReloader reloader([&gate] { gate(); });
  reloader.Request();
  ASSERT_TRUE(gate.WaitStarted(1));
  for (int i = 0; i < 3; ++i) reloader.Request();
  gate.Open();
  ASSERT_TRUE(gate.WaitStarted(2));
  gate.Open();
  ASSERT_TRUE(WaitRuns(reloader, 2));
  reloader.Cancel();
  gate.Open();  // would let a third run end, were there one
  EXPECT_EQ(gate.started(), 2);
  EXPECT_EQ(reloader.runs(), 2);
}

TEST(BackgroundReloaderTest, CancelDropsTheRequestedRunAndTheRunningOneEnds) {
  GatedReload gate;
  int runs_after_destruction = -1;
  {
    BackgroundReloader reloader([&gate] { gate(); });
    reloader.Request();
    ASSERT_TRUE(gate.WaitStarted(1));
    reloader.Request();  // pending behind the running one
    reloader.Cancel();   // returns while the run is held
    reloader.Request();  // ignored from now on
    gate.Open();
    ASSERT_TRUE(WaitRuns(reloader, 1));
    runs_after_destruction = reloader.runs();
  }  // the destructor returns: the thread has ended
  EXPECT_EQ(runs_after_destruction, 1);
  EXPECT_EQ(gate.started(), 1);
}

TEST(BackgroundReloaderTest, NothingRunsWithoutARequest) {
  GatedReload gate;
  {
    BackgroundReloader reloader([&gate] { gate(); });
  }
  EXPECT_EQ(gate.started(), 0);
}

}  // namespace
}  // namespace fer
