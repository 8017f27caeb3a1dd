#include "server/stream_window.h"

namespace fer {

StreamWindow::StreamWindow(int window_frames, size_t max_bytes_in_flight)
    : window_frames_(static_cast<size_t>(window_frames)),
      max_bytes_in_flight_(max_bytes_in_flight) {}

StreamWindow::State StreamWindow::state() const {
  if (state_ == State::kReading && !read_pending_ && !HasRoom()) return State::kPaused;
  return state_;
}

bool StreamWindow::HasRoom() const {
  return frames_.size() < window_frames_ && bytes_in_flight_ < max_bytes_in_flight_;
}

// The ending when reasons pile up: a failed write outranks everything, and a
// half-close outranks a drain (the client had sent all it meant to).
StreamWindow::Ending StreamWindow::Outranking(Ending current, Ending why) {
  if (current == Ending::kClientGone || why == Ending::kClientGone) return Ending::kClientGone;
  if (current == Ending::kClientClosed || why == Ending::kClientClosed) {
    return Ending::kClientClosed;
  }
  return Ending::kServerDrained;
}

void StreamWindow::StopReading(Ending why) {
  if (state_ == State::kFinishing) return;
  state_ = State::kDraining;
  ending_ = Outranking(ending_, why);
}

void StreamWindow::ReadDone(bool got_frame) {
  read_pending_ = false;
  if (!got_frame) StopReading(Ending::kClientClosed);
}

uint64_t StreamWindow::AddFrame(size_t wire_bytes) {
  frames_.push_back(Slot{wire_bytes, false});
  bytes_in_flight_ += wire_bytes;
  return front_seq_ + frames_.size() - 1;
}

uint64_t StreamWindow::AddAnsweredFrame() {
  frames_.push_back(Slot{0, true});
  return front_seq_ + frames_.size() - 1;
}

void StreamWindow::Answered(uint64_t seq) {
  Slot& slot = frames_[seq - front_seq_];
  bytes_in_flight_ -= slot.wire_bytes;
  slot.wire_bytes = 0;
  slot.answered = true;
}

void StreamWindow::WriteDone(bool ok) {
  write_pending_ = false;
  frames_.pop_front();
  ++front_seq_;
  if (!ok) StopReading(Ending::kClientGone);
}

void StreamWindow::BeginDrain() {
  drain_requested_ = true;
  StopReading(Ending::kServerDrained);
}

StreamWindow::Step StreamWindow::NextStep() {
  if (state_ == State::kFinishing) return Step::kWait;
  if (!write_pending_ && !frames_.empty() && frames_.front().answered) {
    if (ending_ == Ending::kClientGone) {
      frames_.pop_front();
      ++front_seq_;
      return Step::kDiscard;
    }
    write_pending_ = true;
    return Step::kWrite;
  }
  if (state_ == State::kReading) {
    if (read_pending_ || !HasRoom()) return Step::kWait;
    read_pending_ = true;
    return Step::kRead;
  }
  // A read still outstanding is fine: gRPC completes it (unsuccessfully) as
  // part of finishing.
  if (write_pending_ || !frames_.empty()) return Step::kWait;
  state_ = State::kFinishing;
  return Step::kFinish;
}

}  // namespace fer
