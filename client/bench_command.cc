// fer-client bench: a load generator for fer-server.
//
// Closed loop (--concurrency=N): N callers each keep one request (unary) or
// one frame (stream) in flight and send the next as soon as the answer
// arrives. Open loop (--rate=R): requests start on a fixed schedule of R per
// second whatever the server does, and latency is measured from each
// request's scheduled start, so a server that falls behind is charged for the
// queueing it causes (no coordinated omission).
//
// All calls use gRPC's callback API: no thread per call, so concurrency in the
// thousands is fine. Requests are built once from --images (encoded bytes read
// once) and reused; gRPC's retries are off so that every refusal is counted
// and every call reaches the server once.
//
// Refusals: a closed-loop worker refused with UNAVAILABLE (server gone or
// draining) or RESOURCE_EXHAUSTED (queue full) waits an exponential backoff
// with jitter (50 ms doubling to 2 s) before its next call, so a server that
// is gone sees about one call per second per worker, not a tight loop. The
// open loop pauses its schedule on UNAVAILABLE the same way and counts the
// starts it skips. Both are reported (backoffs, skipped).
//
// Time: a run of --duration starts no call after the duration and waits for
// answers at most min(--deadline_ms, 2 s) more; what is still unanswered then
// is cancelled and reported as unfinished. Each call keeps its --deadline_ms.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "client/backoff.h"
#include "client/bench_report.h"
#include "client/client_flags.h"
#include "client/commands.h"
#include "client/connection.h"
#include "client/image_files.h"
#include "client/latency_stats.h"

ABSL_FLAG(int, concurrency, 8,
          "bench: closed loop: calls kept in flight (unary) or streams each with one frame in "
          "flight (stream); open loop, stream mode: streams the frames are spread over");
ABSL_FLAG(double, rate, 0,
          "bench: open loop: requests (unary) or frames (stream) started per second; 0 = closed "
          "loop");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10),
          "bench: how long to start new requests, e.g. 20s (ignored with --requests)");
ABSL_FLAG(int64_t, requests, 0,
          "bench: send exactly this many requests (or frames); 0 = use --duration");
ABSL_FLAG(int, faces_per_request, 1, "bench: faces in each request (or frame)");
ABSL_FLAG(std::string, mode, "unary", "bench: unary (Classify) or stream (ClassifyStream frames)");
ABSL_FLAG(bool, attention_maps, false,
          "bench: ask for every face's attention map (ClassifyOptions.attention), to measure "
          "what maps cost");
ABSL_FLAG(std::string, images, "",
          "bench: folder of face images (recursive) to send; default: one synthetic face");

namespace fer::client {
namespace {

constexpr char kUsage[] =
    "fer-client bench [--mode=unary|stream] [--concurrency=8 | --rate=R] [--duration=10s | "
    "--requests=N] [--faces_per_request=1] [--images=DIR] [--ten_crop] [--attention_maps] "
    "[--json] [--target] "
    "[--deadline_ms] [--tls...]";

// A pool this large already defeats any cache; more would only cost memory.
constexpr size_t kMaxPoolImages = 1024;
// Distinct prebuilt requests the callers rotate through.
constexpr size_t kMaxDistinctRequests = 64;
// The synthetic face: a smooth grey pattern, so that it compresses like a photo.
constexpr int kSyntheticSide = 112;
// How long a run of --duration waits for the answers of calls still in flight
// when it stops starting new ones (at most --deadline_ms). Calls still
// unanswered then are cancelled and reported as unfinished, so that a run
// ends within --duration plus this, however slow or hung the server.
constexpr absl::Duration kEndGrace = absl::Seconds(2);

using Clock = std::chrono::steady_clock;

double MillisecondsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

absl::StatusOr<std::vector<std::string>> LoadImagePool(const std::string& folder) {
  if (folder.empty()) {
    cv::Mat face(kSyntheticSide, kSyntheticSide, CV_8UC1);
    for (int y = 0; y < face.rows; ++y) {
      for (int x = 0; x < face.cols; ++x)
        face.at<uint8_t>(y, x) = static_cast<uint8_t>((x * 3 + y * 5) % 256);
    }
    cv::GaussianBlur(face, face, cv::Size(5, 5), 0);
    std::vector<uint8_t> png;
    cv::imencode(".png", face, png);
    std::fprintf(stderr, "fer-client bench: no --images, sending a synthetic %dx%d face\n",
                 kSyntheticSide, kSyntheticSide);
    return std::vector<std::string>{std::string(png.begin(), png.end())};
  }
  absl::StatusOr<std::vector<std::string>> files = ListImageFiles({folder});
  if (!files.ok())
    return absl::Status(files.status().code(),
                        absl::StrCat("--images: ", files.status().message()));
  if (files->size() > kMaxPoolImages) files->resize(kMaxPoolImages);
  std::vector<std::string> pool;
  for (const std::string& path : *files) {
    absl::StatusOr<std::string> bytes = ReadFileBytes(path);
    if (!bytes.ok()) return bytes.status();
    pool.push_back(*std::move(bytes));
  }
  return pool;
}

// Runs tasks at given times on a thread of its own: the waits of workers
// that back off, which must not sleep on gRPC's callback threads. Tasks run
// one at a time, in time order; the destructor drops any not yet due.
class Timer {
 public:
  Timer() : thread_([this] { Loop(); }) {}
  ~Timer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

  void At(Clock::time_point when, std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.emplace(when, std::move(task));
    }
    wake_.notify_all();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      if (tasks_.empty()) {
        wake_.wait(lock);
        continue;
      }
      const auto first = tasks_.begin();
      if (Clock::now() < first->first) {
        wake_.wait_until(lock, first->first);
        continue;
      }
      std::function<void()> task = std::move(first->second);
      tasks_.erase(first);
      lock.unlock();
      task();
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable wake_;
  std::multimap<Clock::time_point, std::function<void()>> tasks_;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

// Decides whether another request may start: a fixed count, or until a time.
class Budget {
 public:
  Budget(int64_t requests, absl::Duration duration, Clock::time_point start)
      : requests_(requests),
        end_(requests > 0 ? Clock::time_point::max()
                          : start + absl::ToChronoNanoseconds(duration)) {}

  // Thread-safe; true exactly `requests` times, or until the duration is over.
  bool Take() {
    if (requests_ > 0) return taken_.fetch_add(1) < requests_;
    return Clock::now() < end_;
  }
  // When the last call may start; time_point::max() for a run of --requests.
  Clock::time_point end() const { return end_; }

 private:
  const int64_t requests_;
  const Clock::time_point end_;
  std::atomic<int64_t> taken_{0};
};

// What every load shares: the budget, the tally, the timer of backoff waits,
// and a count of work still running (calls, streams, waits) that the run
// waits to reach zero.
//
// A run of --duration waits for answers until `grace` after the duration
// (stop_waiting); the load then cancels what is still in flight, and those
// calls count as unfinished, not under a status code. Calls keep their own
// --deadline_ms: the server sees the deadline the user asked for.
struct LoadState {
  LoadState(int64_t requests, absl::Duration duration, absl::Duration grace, int faces,
            Clock::time_point start)
      : budget(requests, duration, start),
        stop_waiting(requests > 0 ? Clock::time_point::max()
                                  : budget.end() + absl::ToChronoNanoseconds(grace)),
        faces_per_request(faces) {}

  void Begin() {
    std::lock_guard<std::mutex> lock(mu);
    ++running;
  }
  void End() {
    std::lock_guard<std::mutex> lock(mu);
    if (!cutting) last_answer = Clock::now();  // a cancellation is no answer
    if (--running == 0) idle.notify_all();
  }
  // The end of the measured run: the last answer, and at least the end of
  // --duration when calls were cut off (the server was busy, or hung, until then).
  Clock::time_point MeasuredEnd() const {
    return cutting ? std::max(last_answer, budget.end()) : last_answer;
  }
  void WaitIdle() {
    std::unique_lock<std::mutex> lock(mu);
    idle.wait(lock, [&] { return running == 0; });
  }
  // Waits until nothing runs or stop_waiting; true when nothing runs.
  bool WaitIdleUntilStop() {
    std::unique_lock<std::mutex> lock(mu);
    const auto done = [&] { return running == 0; };
    if (stop_waiting == Clock::time_point::max()) {
      idle.wait(lock, done);
      return true;
    }
    return idle.wait_until(lock, stop_waiting, done);
  }

  // Waits for the work in flight; at stop_waiting, marks the run as cutting
  // (what ends cancelled from now on is unfinished), calls cancel_all and
  // waits for the cancelled work to end.
  void Drain(const std::function<void()>& cancel_all) {
    if (WaitIdleUntilStop()) return;
    cutting = true;
    cancel_all();
    WaitIdle();
  }

  Budget budget;
  const Clock::time_point stop_waiting;  // max() for a run of --requests
  std::atomic<bool> cutting{false};      // the run stopped waiting and cancels what is left
  CallRecorder recorder;
  const int faces_per_request;
  std::atomic<int64_t> backoffs{0};  // waits taken after a refusal
  std::atomic<int64_t> skipped{0};   // open-loop starts dropped inside such a wait
  std::mutex mu;
  std::condition_variable idle;
  int64_t running = 0;
  Clock::time_point last_answer = Clock::now();
  Timer timer;  // after everything its tasks use
};

// Backoff of a worker that was refused. Also used by the open loop as a
// whole, see SchedulePause.
constexpr BackoffPolicy kBackoffPolicy{absl::Milliseconds(50), absl::Seconds(2), 2.0, 0.5};

uint32_t RandomSeed() {
  static std::atomic<uint32_t> next{std::random_device{}()};
  return next.fetch_add(0x9e3779b9u);
}

// Closed loop, after an answer of `code`: the worker's next step, at once
// after an answer, after the worker's backoff after a refusal. `next` sends
// the next call (or closes the worker) and runs on a gRPC or timer thread.
// Returns false when the run ends before the wait would, and nothing was done.
bool ContinueAfter(int code, Backoff* backoff, LoadState* state, std::function<void()> next) {
  if (!IsRefusal(code)) {
    backoff->Reset();
    next();
    return true;
  }
  ++state->backoffs;
  const Clock::time_point wake = Clock::now() + absl::ToChronoNanoseconds(backoff->Next());
  if (wake >= state->budget.end()) return false;
  state->Begin();  // the wait is work still running: the run waits for it
  state->timer.At(wake, [state, next = std::move(next)] {
    next();
    state->End();
  });
  return true;
}

// Open loop: one pause for the whole schedule. A server that is gone
// (UNAVAILABLE) starts a pause of the next backoff; starts scheduled inside
// it are skipped and counted, and the first start after it probes the server
// again. RESOURCE_EXHAUSTED does not pause an open loop: a full queue under a
// fixed offered rate is what an open-loop run is there to measure.
class SchedulePause {
 public:
  explicit SchedulePause(uint32_t seed) : backoff_(kBackoffPolicy, seed) {}

  bool Paused(Clock::time_point when) {
    std::lock_guard<std::mutex> lock(mu_);
    return when < until_;
  }
  // Returns true when the answer started a new pause.
  bool Note(int code) {
    std::lock_guard<std::mutex> lock(mu_);
    if (code != static_cast<int>(grpc::StatusCode::UNAVAILABLE)) {
      backoff_.Reset();
      return false;
    }
    const Clock::time_point now = Clock::now();
    if (now < until_) return false;  // refused while paused: sent before the pause began
    until_ = now + absl::ToChronoNanoseconds(backoff_.Next());
    return true;
  }

 private:
  std::mutex mu_;
  Backoff backoff_;
  Clock::time_point until_;
};

// Sleeps until the scheduled start of an open-loop request, or the end of
// the run if that comes first.
void SleepUntilScheduled(Clock::time_point scheduled, const Budget& budget) {
  std::this_thread::sleep_until(std::min(scheduled, budget.end()));
}

Clock::time_point ScheduledStart(Clock::time_point start, int64_t k, double rate) {
  return start + std::chrono::duration_cast<Clock::duration>(
                     std::chrono::duration<double>(static_cast<double>(k) / rate));
}

// Unary Classify calls through the callback API. Closed loop: one worker per
// call in flight, each with its own backoff.
class UnaryLoad {
 public:
  UnaryLoad(const Connection& connection, std::vector<fer::v1::ClassifyRequest> requests,
            LoadState* state)
      : connection_(connection),
        stub_(fer::v1::ExpressionClassifier::NewStub(connection.channel())),
        requests_(std::move(requests)),
        state_(state),
        pause_(RandomSeed()) {}

  void RunClosedLoop(int concurrency) {
    for (int i = 0; i < concurrency; ++i)
      workers_.push_back(std::make_unique<Backoff>(kBackoffPolicy, RandomSeed()));
    for (auto& worker : workers_) {
      if (!state_->budget.Take()) break;
      Start(Clock::now(), worker.get());
    }
    state_->Drain([this] { CancelAll(); });
  }

  void RunOpenLoop(double rate) {
    const Clock::time_point start = Clock::now();
    for (int64_t k = 0;; ++k) {
      const Clock::time_point scheduled = ScheduledStart(start, k, rate);
      SleepUntilScheduled(scheduled, state_->budget);
      if (Clock::now() >= state_->budget.end()) break;
      if (pause_.Paused(scheduled)) {
        ++state_->skipped;
        continue;
      }
      if (!state_->budget.Take()) break;
      Start(scheduled, nullptr);
    }
    state_->Drain([this] { CancelAll(); });
  }

 private:
  struct Call {
    grpc::ClientContext context;
    fer::v1::ClassifyResponse response;
    Clock::time_point scheduled;
    Backoff* worker = nullptr;  // closed loop: the worker that sends the next call
  };

  void Start(Clock::time_point scheduled, Backoff* worker) {
    auto call = std::make_shared<Call>();
    call->scheduled = scheduled;
    call->worker = worker;
    connection_.Prepare(&call->context);
    Call* const raw = call.get();
    {
      std::lock_guard<std::mutex> lock(calls_mu_);
      calls_.emplace(raw, std::move(call));
    }
    const fer::v1::ClassifyRequest& request = requests_[next_.fetch_add(1) % requests_.size()];
    state_->Begin();
    stub_->async()->Classify(&raw->context, &request, &raw->response,
                             [this, raw](const grpc::Status& status) { Finish(raw, status); });
  }

  // Cancels every call in flight (a context cancelled before its call starts
  // cancels the call when it does). The references taken keep each call alive
  // while it is cancelled; they are dropped on this thread before Drain
  // returns, so no context outlives the run.
  void CancelAll() {
    std::vector<std::shared_ptr<Call>> live;
    {
      std::lock_guard<std::mutex> lock(calls_mu_);
      for (const auto& entry : calls_) live.push_back(entry.second);
    }
    for (const auto& call : live) call->context.TryCancel();
  }

  void Finish(Call* raw, const grpc::Status& status) {
    const double latency_ms = MillisecondsSince(raw->scheduled);
    const int code = static_cast<int>(status.error_code());
    const bool unfinished = state_->cutting && status.error_code() == grpc::StatusCode::CANCELLED;
    Backoff* const worker = raw->worker;
    {
      // Freed before End (unless CancelAll holds it for a moment): once the
      // run is idle, the caller may drop the channel and exit, and a context
      // freed later on this gRPC thread could then release the channel's
      // last reference from inside gRPC.
      std::shared_ptr<Call> call;
      std::lock_guard<std::mutex> lock(calls_mu_);
      const auto found = calls_.find(raw);
      call = std::move(found->second);
      calls_.erase(found);
    }
    if (unfinished) {
      state_->recorder.RecordUnfinished();
    } else {
      state_->recorder.Record(code, latency_ms, state_->faces_per_request);
    }
    if (worker != nullptr) {
      // Started (or waited for) before End, so the count never touches zero early.
      ContinueAfter(code, worker, state_, [this, worker] {
        if (state_->budget.Take()) Start(Clock::now(), worker);
      });
    } else if (pause_.Note(code)) {
      ++state_->backoffs;
    }
    state_->End();
  }

  const Connection& connection_;
  const std::unique_ptr<fer::v1::ExpressionClassifier::Stub> stub_;
  const std::vector<fer::v1::ClassifyRequest> requests_;
  LoadState* const state_;
  SchedulePause pause_;
  std::vector<std::unique_ptr<Backoff>> workers_;
  std::mutex calls_mu_;
  std::unordered_map<Call*, std::shared_ptr<Call>> calls_;  // in flight
  std::atomic<size_t> next_{0};
};

// One ClassifyStream call driven by the callback API. Frames are queued and
// written one at a time (gRPC allows one write in flight per stream); answers
// come back in order, so the send times wait in a FIFO. Closed loop: the
// stream is a worker with one frame in flight, and backs off after a frame
// refused with UNAVAILABLE or RESOURCE_EXHAUSTED. A stream that fails ends
// its worker; its frames count under the stream's status.
class BenchStream : public grpc::ClientBidiReactor<fer::v1::ClassifyFrame, fer::v1::FrameResult> {
 public:
  BenchStream(LoadState* state, fer::v1::ClassifyFrame frame, bool chain)
      : state_(state),
        frame_(std::move(frame)),
        chain_(chain),
        backoff_(kBackoffPolicy, RandomSeed()) {}

  void Begin(fer::v1::ExpressionClassifier::Stub* stub) {
    state_->Begin();
    stub->async()->ClassifyStream(&context_, this);
    StartRead(&result_);
    StartCall();
  }

  // Closed loop: the next frame, or the end of the stream once the budget is spent.
  void SendOrClose() {
    if (state_->budget.Take()) {
      Send(Clock::now());
    } else {
      Close();
    }
  }

  // Queues one frame, scheduled at `scheduled`.
  void Send(Clock::time_point scheduled) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finished_) {  // the stream already failed: the frame fails with it
        RecordFailedFrameLocked();
        return;
      }
      queue_.push_back(scheduled);
      if (writing_) return;
      PrepareWriteLocked();
    }
    StartWrite(&frame_);
  }

  // No more frames: half-closes once the queue is written.
  void Close() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closing_ = true;
      if (writing_ || !queue_.empty() || writes_done_ || finished_) return;
      writes_done_ = true;
    }
    StartWritesDone();
  }

  void OnWriteDone(bool ok) override {
    bool write = false;
    bool writes_done = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
      if (!ok) return;  // the stream is broken; OnDone accounts for the frames
      if (!queue_.empty()) {
        PrepareWriteLocked();
        write = true;
      } else if (closing_ && !writes_done_) {
        writes_done_ = writes_done = true;
      }
    }
    if (write) StartWrite(&frame_);
    if (writes_done) StartWritesDone();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the server finished; OnDone follows
    Clock::time_point scheduled;
    {
      std::lock_guard<std::mutex> lock(mu_);
      scheduled = in_flight_.front();
      in_flight_.pop_front();
    }
    const int code = result_.status().code();
    state_->recorder.Record(code, MillisecondsSince(scheduled), state_->faces_per_request);
    if (chain_ && !ContinueAfter(code, &backoff_, state_, [this] { SendOrClose(); })) Close();
    StartRead(&result_);
  }

  void OnDone(const grpc::Status& status) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      finished_ = true;
      // Cancelled because the run stopped waiting for it.
      cut_ = state_->cutting && status.error_code() == grpc::StatusCode::CANCELLED;
      final_code_ = status.ok() ? static_cast<int>(grpc::StatusCode::DATA_LOSS)
                                : static_cast<int>(status.error_code());
      // Frames the stream took with it count under the stream's status.
      const size_t unanswered = in_flight_.size() + queue_.size();
      for (size_t i = 0; i < unanswered; ++i) RecordFailedFrameLocked();
    }
    state_->End();
  }

  grpc::ClientContext* context() { return &context_; }

 private:
  void PrepareWriteLocked() {
    frame_.set_frame_id(next_frame_id_++);  // frame_ is free: no write in flight
    in_flight_.push_back(queue_.front());
    queue_.pop_front();
    writing_ = true;
  }

  void RecordFailedFrameLocked() {
    if (cut_) {
      state_->recorder.RecordUnfinished();
    } else {
      state_->recorder.Record(final_code_, 0, 0);
    }
  }

  LoadState* const state_;
  fer::v1::ClassifyFrame frame_;
  const bool chain_;
  Backoff backoff_;  // closed loop only; one frame in flight, so one user at a time
  grpc::ClientContext context_;
  fer::v1::FrameResult result_;

  std::mutex mu_;
  std::deque<Clock::time_point> queue_;      // waiting to be written
  std::deque<Clock::time_point> in_flight_;  // written, unanswered
  uint64_t next_frame_id_ = 0;
  bool writing_ = false;
  bool closing_ = false;
  bool writes_done_ = false;
  bool finished_ = false;
  bool cut_ = false;
  int final_code_ = 0;
};

class StreamLoad {
 public:
  StreamLoad(const Connection& connection, const std::vector<fer::v1::ClassifyRequest>& requests,
             LoadState* state)
      : stub_(fer::v1::ExpressionClassifier::NewStub(connection.channel())), state_(state) {
    for (const fer::v1::ClassifyRequest& request : requests) {
      fer::v1::ClassifyFrame frame;
      *frame.mutable_faces() = request.faces();
      *frame.mutable_options() = request.options();
      frames_.push_back(std::move(frame));
    }
  }

  void RunClosedLoop(int streams) {
    Open(streams, true);
    for (auto& stream : streams_) stream->SendOrClose();
    state_->Drain([this] { CancelAll(); });
  }

  void RunOpenLoop(int streams, double rate) {
    Open(streams, false);
    const Clock::time_point start = Clock::now();
    for (int64_t k = 0;; ++k) {
      const Clock::time_point scheduled = ScheduledStart(start, k, rate);
      SleepUntilScheduled(scheduled, state_->budget);
      if (!state_->budget.Take()) break;
      streams_[static_cast<size_t>(k) % streams_.size()]->Send(scheduled);
    }
    for (auto& stream : streams_) stream->Close();
    state_->Drain([this] { CancelAll(); });
  }

 private:
  void Open(int streams, bool chain) {
    for (int i = 0; i < streams; ++i) {
      streams_.push_back(std::make_unique<BenchStream>(
          state_, frames_[static_cast<size_t>(i) % frames_.size()], chain));
    }
    for (auto& stream : streams_) stream->Begin(stub_.get());
  }

  // Streams live until the load is destroyed, so a finished one is still
  // safe to cancel (a no-op).
  void CancelAll() {
    for (auto& stream : streams_) stream->context()->TryCancel();
  }

  const std::unique_ptr<fer::v1::ExpressionClassifier::Stub> stub_;
  LoadState* const state_;
  std::vector<fer::v1::ClassifyFrame> frames_;
  // Owned here, not by themselves: the pacer (or a backoff wait) may still
  // Send to a stream that has already finished. Destroyed after WaitIdle,
  // when every OnDone and every wait ran.
  std::vector<std::unique_ptr<BenchStream>> streams_;
};

std::vector<fer::v1::ClassifyRequest> BuildRequests(const std::vector<std::string>& pool,
                                                    int faces_per_request,
                                                    const fer::v1::ClassifyOptions& options) {
  const size_t faces = static_cast<size_t>(faces_per_request);
  const size_t distinct =
      std::clamp<size_t>((pool.size() + faces - 1) / faces, 1, kMaxDistinctRequests);
  std::vector<fer::v1::ClassifyRequest> requests(distinct);
  for (size_t r = 0; r < distinct; ++r) {
    for (size_t f = 0; f < faces; ++f)
      requests[r].add_faces()->set_encoded(pool[(r * faces + f) % pool.size()]);
    *requests[r].mutable_options() = options;
  }
  return requests;
}

struct BenchOptions {
  std::string mode;
  int concurrency = 0;
  double rate = 0;
  int faces = 0;
  int64_t requests = 0;
  absl::Duration duration;
};

// The bench flags, checked; a usage error names the flag.
absl::StatusOr<BenchOptions> BenchOptionsFromFlags() {
  BenchOptions options;
  options.mode = absl::GetFlag(FLAGS_mode);
  options.concurrency = absl::GetFlag(FLAGS_concurrency);
  options.rate = absl::GetFlag(FLAGS_rate);
  options.faces = absl::GetFlag(FLAGS_faces_per_request);
  options.requests = absl::GetFlag(FLAGS_requests);
  options.duration = absl::GetFlag(FLAGS_duration);
  const auto invalid = [](const char* message) { return absl::InvalidArgumentError(message); };
  if (options.mode != "unary" && options.mode != "stream") {
    return invalid("--mode must be unary or stream");
  }
  if (options.concurrency < 1) return invalid("--concurrency must be >= 1");
  if (!(options.rate >= 0) || !std::isfinite(options.rate)) {
    return invalid("--rate must be a finite number >= 0");
  }
  if (options.faces < 1) return invalid("--faces_per_request must be >= 1");
  if (options.requests < 0) return invalid("--requests must be >= 0");
  if (options.requests == 0 &&
      (options.duration <= absl::ZeroDuration() || options.duration == absl::InfiniteDuration())) {
    return invalid("--duration must be positive and finite (or give --requests)");
  }
  return options;
}

// Runs the load the options describe until its budget is spent and every
// call has ended (at the latest `grace` after --duration).
void RunLoad(const BenchOptions& options, const Connection& connection,
             std::vector<fer::v1::ClassifyRequest> prebuilt, LoadState* state) {
  if (options.mode == "unary") {
    UnaryLoad load(connection, std::move(prebuilt), state);
    if (options.rate > 0) {
      load.RunOpenLoop(options.rate);
    } else {
      load.RunClosedLoop(options.concurrency);
    }
    return;
  }
  StreamLoad load(connection, prebuilt, state);
  if (options.rate > 0) {
    load.RunOpenLoop(options.concurrency, options.rate);
  } else {
    load.RunClosedLoop(options.concurrency);
  }
}

// Prints the report; exit status 1 when no call succeeded.
int Report(const BenchOptions& options, const LoadState& state, Clock::time_point start,
           absl::Duration grace) {
  BenchReport report;
  report.mode = options.mode;
  report.concurrency = options.rate > 0 ? 0 : options.concurrency;
  report.rate = options.rate;
  report.faces_per_request = options.faces;
  report.elapsed_s = std::chrono::duration<double>(state.MeasuredEnd() - start).count();
  report.totals = state.recorder.Snapshot();
  report.backoffs = state.backoffs.load();
  report.skipped = state.skipped.load();
  report.grace_s = absl::ToDoubleSeconds(grace);
  const std::string text =
      absl::GetFlag(FLAGS_json) ? FormatBenchJson(report) : FormatBenchText(report);
  std::fputs(text.c_str(), stdout);
  if (report.totals.ok_calls > 0) return 0;
  std::vector<std::string> codes;
  for (const auto& [name, count] : report.totals.codes)
    codes.push_back(absl::StrCat(name, " ", count));
  if (report.totals.unfinished > 0)
    codes.push_back(absl::StrCat("unfinished ", report.totals.unfinished));
  return Fail("bench", absl::UnavailableError(
                           absl::StrCat("no call succeeded (", absl::StrJoin(codes, ", "), ")")));
}

}  // namespace

int RunBench(int argc, char** argv) {
  const std::vector<std::string> args = ParseCommandFlags(argc, argv, kUsage, __FILE__);
  if (!args.empty()) return UsageError("bench", "unexpected argument \"" + args[0] + "\"", kUsage);
  absl::StatusOr<BenchOptions> options = BenchOptionsFromFlags();
  if (!options.ok()) return UsageError("bench", std::string(options.status().message()), kUsage);
  if (absl::Status status = CheckDeadlineFlag(); !status.ok()) return Fail("bench", status);

  absl::StatusOr<std::vector<std::string>> pool = LoadImagePool(absl::GetFlag(FLAGS_images));
  if (!pool.ok()) return Fail("bench", pool.status());
  // Retries off: every refusal is counted, and the workers' own backoff (not
  // gRPC's) decides when to call again.
  absl::StatusOr<Connection> connection = Connection::Open(ConnectionOptionsFromFlags(false));
  if (!connection.ok()) return Fail("bench", connection.status());
  absl::StatusOr<fer::v1::ModelInfo> info = connection->FetchModelInfo();
  if (!info.ok()) return Fail("bench", info.status());
  if (info->max_faces_per_request() > 0 &&
      static_cast<uint32_t>(options->faces) > info->max_faces_per_request()) {
    return Fail("bench", absl::InvalidArgumentError(absl::StrCat(
                             "--faces_per_request=", options->faces,
                             " is over the server's limit of ", info->max_faces_per_request())));
  }

  if (absl::GetFlag(FLAGS_attention_maps) && info->attention_height() == 0) {
    return Fail("bench", absl::FailedPreconditionError(
                             "--attention_maps: the server's model has no attention maps"));
  }
  fer::v1::ClassifyOptions call_options;
  call_options.set_ten_crop(absl::GetFlag(FLAGS_ten_crop));
  call_options.set_attention(absl::GetFlag(FLAGS_attention_maps));
  const absl::Duration grace = std::min(connection->deadline(), kEndGrace);
  const Clock::time_point start = Clock::now();
  LoadState state(options->requests, options->duration, grace, options->faces, start);
  RunLoad(*options, *connection, BuildRequests(*pool, options->faces, call_options), &state);
  return Report(*options, state, start, grace);
}

}  // namespace fer::client
