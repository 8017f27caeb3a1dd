// The stream-window rules (server/stream_window.h), one event at a time: no
// gRPC, no threads, no clock.
#include "server/stream_window.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace fer {
namespace {

using State = StreamWindow::State;
using Step = StreamWindow::Step;
using Ending = StreamWindow::Ending;

constexpr size_t kNoByteBound = size_t{1} << 40;

// Reads frames (each to be classified, of `bytes` wire bytes) for as long as
// the window asks for reads; returns their sequence numbers.
std::vector<uint64_t> ReadWhileAsked(StreamWindow* window, size_t bytes) {
  std::vector<uint64_t> seqs;
  while (window->NextStep() == Step::kRead) {
    window->ReadDone(true);
    seqs.push_back(window->AddFrame(bytes));
  }
  return seqs;
}

TEST(StreamWindowTest, AFreshWindowReadsOneFrameAtATime) {
  StreamWindow window(4, kNoByteBound);
  EXPECT_EQ(window.state(), State::kReading);
  EXPECT_EQ(window.NextStep(), Step::kRead);
  EXPECT_TRUE(window.read_pending());
  EXPECT_EQ(window.NextStep(), Step::kWait);  // one read outstanding at most
  window.ReadDone(true);
  EXPECT_EQ(window.AddFrame(10), 0u);
  EXPECT_EQ(window.NextStep(), Step::kRead);
}

TEST(StreamWindowTest, NeverReadsMoreThanTheWindowAheadOfTheWrittenAnswers) {
  StreamWindow window(3, kNoByteBound);
  std::vector<uint64_t> seqs = ReadWhileAsked(&window, 1);
  ASSERT_EQ(seqs.size(), 3u);
  EXPECT_EQ(window.frames_held(), 3u);
  EXPECT_EQ(window.state(), State::kPaused);
  EXPECT_EQ(window.NextStep(), Step::kWait);

  // An answered frame frees its place only once its answer is written.
  window.Answered(seqs[0]);
  EXPECT_EQ(window.NextStep(), Step::kWrite);
  EXPECT_EQ(window.NextStep(), Step::kWait);
  EXPECT_EQ(window.state(), State::kPaused);
  window.WriteDone(true);
  EXPECT_EQ(window.frames_held(), 2u);
  EXPECT_EQ(window.state(), State::kReading);
  EXPECT_EQ(ReadWhileAsked(&window, 1).size(), 1u);
  EXPECT_EQ(window.frames_held(), 3u);
}

TEST(StreamWindowTest, StopsReadingWhileTheFramesBeingClassifiedHoldTheByteBound) {
  StreamWindow window(100, 1000);
  // One frame of any size is read; then none while 1000 bytes are held.
  ASSERT_EQ(window.NextStep(), Step::kRead);
  window.ReadDone(true);
  const uint64_t big = window.AddFrame(5000);
  EXPECT_EQ(window.bytes_in_flight(), 5000u);
  EXPECT_EQ(window.state(), State::kPaused);
  EXPECT_EQ(window.NextStep(), Step::kWait);
  // Classified: its bytes are free even before its answer is written.
  window.Answered(big);
  EXPECT_EQ(window.bytes_in_flight(), 0u);
  EXPECT_EQ(window.NextStep(), Step::kWrite);
  EXPECT_EQ(window.NextStep(), Step::kRead);

  // Frames answered at once hold no bytes; frames below the bound add up.
  window.ReadDone(true);
  window.AddAnsweredFrame();
  EXPECT_EQ(window.bytes_in_flight(), 0u);
  std::vector<uint64_t> small = ReadWhileAsked(&window, 400);
  EXPECT_EQ(small.size(), 3u);  // 400, 800, then 1200 >= 1000 stops
  EXPECT_EQ(window.bytes_in_flight(), 1200u);
  EXPECT_EQ(window.state(), State::kPaused);
}

TEST(StreamWindowTest, AnswersAreWrittenInReadOrderWhateverOrderTheyFinishIn) {
  StreamWindow window(5, kNoByteBound);
  std::vector<uint64_t> seqs = ReadWhileAsked(&window, 1);
  ASSERT_EQ(seqs.size(), 5u);
  std::vector<uint64_t> written;
  // Tracks the oldest held frame's number, as the reactor's deque does.
  uint64_t oldest = 0;
  auto write_all_due = [&] {
    while (window.NextStep() == Step::kWrite) {
      written.push_back(oldest++);
      window.WriteDone(true);
    }
  };
  for (uint64_t seq : {seqs[3], seqs[1], seqs[4]}) {
    window.Answered(seq);
    write_all_due();
  }
  EXPECT_TRUE(written.empty());  // frame 0 is not answered: nothing may go
  window.Answered(seqs[0]);
  write_all_due();
  EXPECT_EQ(written, (std::vector<uint64_t>{0, 1}));
  window.Answered(seqs[2]);
  write_all_due();
  EXPECT_EQ(written, (std::vector<uint64_t>{0, 1, 2, 3, 4}));
}

TEST(StreamWindowTest, OnlyOneWriteIsOutstandingAtATime) {
  StreamWindow window(4, kNoByteBound);
  std::vector<uint64_t> seqs = ReadWhileAsked(&window, 1);
  window.Answered(seqs[0]);
  window.Answered(seqs[1]);
  EXPECT_EQ(window.NextStep(), Step::kWrite);
  EXPECT_TRUE(window.write_pending());
  EXPECT_EQ(window.NextStep(), Step::kWait);
  window.WriteDone(true);
  EXPECT_EQ(window.NextStep(), Step::kWrite);
}

TEST(StreamWindowTest, AHalfCloseAnswersWhatWasReadThenFinishesOk) {
  StreamWindow window(4, kNoByteBound);
  std::vector<uint64_t> seqs = ReadWhileAsked(&window, 1);
  ASSERT_EQ(seqs.size(), 4u);
  window.Answered(seqs[0]);
  ASSERT_EQ(window.NextStep(), Step::kWrite);
  window.WriteDone(true);
  ASSERT_EQ(window.NextStep(), Step::kRead);
  window.ReadDone(false);  // the client half-closed
  EXPECT_EQ(window.state(), State::kDraining);
  EXPECT_EQ(window.ending(), Ending::kClientClosed);
  EXPECT_EQ(window.NextStep(), Step::kWait);  // three frames still held
  for (size_t i = 1; i < seqs.size(); ++i) {
    window.Answered(seqs[i]);
    EXPECT_EQ(window.NextStep(), Step::kWrite);
    EXPECT_NE(window.NextStep(), Step::kFinish);  // not while a write is outstanding
    window.WriteDone(true);
  }
  EXPECT_EQ(window.NextStep(), Step::kFinish);
  EXPECT_TRUE(window.finishing());
  EXPECT_EQ(window.NextStep(), Step::kWait);  // finished once
}

TEST(StreamWindowTest, DrainRefusesNewFramesAnswersTheHeldOnesAndEndsUnavailable) {
  StreamWindow window(4, kNoByteBound);
  ASSERT_EQ(window.NextStep(), Step::kRead);
  window.ReadDone(true);
  const uint64_t first = window.AddFrame(1);
  ASSERT_EQ(window.NextStep(), Step::kRead);  // a read is outstanding when the drain begins
  window.BeginDrain();
  EXPECT_EQ(window.state(), State::kDraining);
  EXPECT_TRUE(window.refuses_frames());
  EXPECT_EQ(window.NextStep(), Step::kWait);
  // The frame that still arrives is answered at once (refused) in its turn.
  window.ReadDone(true);
  window.AddAnsweredFrame();
  EXPECT_EQ(window.NextStep(), Step::kWait);  // the first is not answered yet
  window.Answered(first);
  ASSERT_EQ(window.NextStep(), Step::kWrite);
  window.WriteDone(true);
  ASSERT_EQ(window.NextStep(), Step::kWrite);
  window.WriteDone(true);
  EXPECT_EQ(window.NextStep(), Step::kFinish);
  EXPECT_EQ(window.ending(), Ending::kServerDrained);
}

TEST(StreamWindowTest, ADrainedStreamWhoseClientThenClosesEndsOk) {
  StreamWindow window(4, kNoByteBound);
  ASSERT_EQ(window.NextStep(), Step::kRead);
  window.BeginDrain();
  window.ReadDone(false);
  EXPECT_EQ(window.ending(), Ending::kClientClosed);
  EXPECT_EQ(window.NextStep(), Step::kFinish);

  StreamWindow closed_first(4, kNoByteBound);
  ASSERT_EQ(closed_first.NextStep(), Step::kRead);
  closed_first.ReadDone(false);
  closed_first.BeginDrain();
  EXPECT_EQ(closed_first.ending(), Ending::kClientClosed);
  EXPECT_EQ(closed_first.NextStep(), Step::kFinish);
}

TEST(StreamWindowTest, AFailedWriteDiscardsTheRestAndEndsAsClientGone) {
  StreamWindow window(4, kNoByteBound);
  std::vector<uint64_t> seqs = ReadWhileAsked(&window, 1);
  for (uint64_t seq : seqs) window.Answered(seq);
  ASSERT_EQ(window.NextStep(), Step::kWrite);
  window.WriteDone(false);
  EXPECT_EQ(window.state(), State::kDraining);
  EXPECT_EQ(window.ending(), Ending::kClientGone);
  for (size_t i = 1; i < seqs.size(); ++i) EXPECT_EQ(window.NextStep(), Step::kDiscard);
  EXPECT_EQ(window.frames_held(), 0u);
  EXPECT_EQ(window.NextStep(), Step::kFinish);
  // A half-close or a drain does not change how a gone client's stream ends.
  window.ReadDone(false);
  window.BeginDrain();
  EXPECT_EQ(window.ending(), Ending::kClientGone);
}

TEST(StreamWindowTest, AFrameStillBeingClassifiedHoldsUpTheFinish) {
  StreamWindow window(4, kNoByteBound);
  ASSERT_EQ(window.NextStep(), Step::kRead);
  window.ReadDone(true);
  const uint64_t seq = window.AddFrame(1);
  ASSERT_EQ(window.NextStep(), Step::kRead);
  window.ReadDone(false);
  EXPECT_EQ(window.NextStep(), Step::kWait);
  EXPECT_EQ(window.state(), State::kDraining);
  window.Answered(seq);
  ASSERT_EQ(window.NextStep(), Step::kWrite);
  window.WriteDone(true);
  EXPECT_EQ(window.NextStep(), Step::kFinish);
}

TEST(StreamWindowTest, FinishNowEndsAStreamAndIgnoresLaterEvents) {
  StreamWindow window(4, kNoByteBound);
  ASSERT_EQ(window.NextStep(), Step::kRead);
  window.FinishNow();
  EXPECT_EQ(window.state(), State::kFinishing);
  window.ReadDone(false);  // the pending read, completed by the finish
  window.BeginDrain();
  EXPECT_EQ(window.state(), State::kFinishing);
  EXPECT_FALSE(window.read_pending());
  EXPECT_EQ(window.NextStep(), Step::kWait);
}

}  // namespace
}  // namespace fer
