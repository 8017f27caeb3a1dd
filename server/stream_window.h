// The bookkeeping of one ClassifyStream: which frames it has read and not yet
// answered, whether it may read another, which answer to write next, and when
// the stream is over. No gRPC, no threads and no clock: the stream's reactor
// (server/service_calls.h) tells it what happened under the reactor's mutex
// and carries out the steps it returns, so that the rules can be tested one
// event at a time.
//
// The rules:
//  - at most `window_frames` frames are held: read and not yet fully written;
//  - no frame is read while the frames being classified hold
//    `max_bytes_in_flight` wire bytes or more (one frame of any size is always
//    read: the receive limit bounds it);
//  - answers are written one at a time, in the order the frames were read,
//    whatever order they are answered in;
//  - once the client half-closes, the server drains or a write fails, no
//    further read starts; the frames held are answered (or, when the client
//    is gone, dropped) and then the stream finishes.
#ifndef FER_SERVER_STREAM_WINDOW_H_
#define FER_SERVER_STREAM_WINDOW_H_

#include <cstddef>
#include <cstdint>
#include <deque>

namespace fer {

class StreamWindow {
 public:
  // Where the stream stands.
  enum class State {
    kReading,    // reads while the window has room (a read may be outstanding)
    kPaused,     // the window is full (in frames or bytes): no read until a frame is answered
    kDraining,   // reads no more: answers the frames it holds, then finishes
    kFinishing,  // Finish is due or called; every later event is ignored
  };
  // Why reading stopped: what the stream ends with.
  enum class Ending {
    kNone,           // still reading
    kClientClosed,   // the client half-closed (or the read side failed): OK
    kServerDrained,  // the server is draining and the client had not closed: UNAVAILABLE
    kClientGone,     // a write failed: CANCELLED, and nothing more is written
  };
  // What the stream is to do now. NextStep returns one at a time; the caller
  // carries each out and asks again until kWait.
  enum class Step {
    kWait,     // nothing until the next event
    kWrite,    // start writing the oldest frame's answer; WriteDone follows
    kDiscard,  // drop the oldest frame (answered, but the client is gone)
    kRead,     // start reading a frame; ReadDone follows
    kFinish,   // finish the stream, as ending() says
  };

  // Requires window_frames >= 1.
  StreamWindow(int window_frames, size_t max_bytes_in_flight);

  State state() const;
  Ending ending() const { return ending_; }
  bool finishing() const { return state_ == State::kFinishing; }
  // Whether frames read from now on are to be refused (Drain was called).
  bool refuses_frames() const { return drain_requested_; }
  // Frames read and not yet fully written (at most window_frames).
  size_t frames_held() const { return frames_.size(); }
  // Wire bytes of the frames being classified.
  size_t bytes_in_flight() const { return bytes_in_flight_; }
  bool read_pending() const { return read_pending_; }
  bool write_pending() const { return write_pending_; }

  // The outstanding read completed; got_frame false: the read side is closed.
  // A frame that arrives is then added with AddFrame or AddAnsweredFrame,
  // unless the stream is finishing.
  void ReadDone(bool got_frame);
  // A frame just read that is to be classified, holding wire_bytes until it is
  // answered. Returns its sequence number, for Answered.
  uint64_t AddFrame(size_t wire_bytes);
  // A frame just read whose answer is final already (refused, or no faces).
  uint64_t AddAnsweredFrame();
  // The frame numbered seq (held, not answered yet) has its final answer.
  void Answered(uint64_t seq);
  // The outstanding write completed (ok false: the client is gone). The
  // oldest frame is no longer held.
  void WriteDone(bool ok);
  // The server drains: no further read, and frames read from now on are to
  // be refused.
  void BeginDrain();
  // Ends the stream at once (it was refused before any frame): state becomes
  // kFinishing.
  void FinishNow() { state_ = State::kFinishing; }

  // The next step, which is taken as returned: the write, read or finish it
  // names counts as started (and a discarded frame as gone).
  Step NextStep();

 private:
  struct Slot {
    size_t wire_bytes = 0;  // counted in bytes_in_flight_ until answered
    bool answered = false;
  };

  bool HasRoom() const;
  static Ending Outranking(Ending current, Ending why);
  void StopReading(Ending why);

  const size_t window_frames_;
  const size_t max_bytes_in_flight_;

  // kReading or kDraining as stored; kPaused is kReading without room.
  State state_ = State::kReading;
  Ending ending_ = Ending::kNone;
  bool drain_requested_ = false;
  bool read_pending_ = false;
  bool write_pending_ = false;  // frames_.front() is being written
  std::deque<Slot> frames_;     // held frames, oldest first
  uint64_t front_seq_ = 0;      // sequence number of frames_.front()
  size_t bytes_in_flight_ = 0;
};

}  // namespace fer

#endif  // FER_SERVER_STREAM_WINDOW_H_
