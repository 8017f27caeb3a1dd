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
// once) and reused; retries are off so that every refusal is counted.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
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
ABSL_FLAG(std::string, images, "",
          "bench: folder of face images (recursive) to send; default: one synthetic face");

namespace fer::client {
namespace {

constexpr char kUsage[] =
    "fer-client bench [--mode=unary|stream] [--concurrency=8 | --rate=R] [--duration=10s | "
    "--requests=N] [--faces_per_request=1] [--images=DIR] [--ten_crop] [--json] [--target] "
    "[--deadline_ms]";

// A pool this large already defeats any cache; more would only cost memory.
constexpr size_t kMaxPoolImages = 1024;
// Distinct prebuilt requests the callers rotate through.
constexpr size_t kMaxDistinctRequests = 64;
// The synthetic face: a smooth grey pattern, so that it compresses like a photo.
constexpr int kSyntheticSide = 112;

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

// Decides whether another request may start: a fixed count, or until a time.
class Budget {
 public:
  Budget(int64_t requests, absl::Duration duration)
      : requests_(requests), end_(Clock::now() + absl::ToChronoNanoseconds(duration)) {}

  // Thread-safe; true exactly `requests` times, or until the duration is over.
  bool Take() {
    if (requests_ > 0) return taken_.fetch_add(1) < requests_;
    return Clock::now() < end_;
  }

 private:
  const int64_t requests_;
  const Clock::time_point end_;
  std::atomic<int64_t> taken_{0};
};

// What every load shares: the budget, the tally, and a count of work still
// running (calls or streams) that the run waits to reach zero.
struct LoadState {
  LoadState(int64_t requests, absl::Duration duration, int faces)
      : budget(requests, duration), faces_per_request(faces) {}

  void Begin() {
    std::lock_guard<std::mutex> lock(mu);
    ++running;
  }
  void End() {
    std::lock_guard<std::mutex> lock(mu);
    last_answer = Clock::now();
    if (--running == 0) idle.notify_all();
  }
  void WaitIdle() {
    std::unique_lock<std::mutex> lock(mu);
    idle.wait(lock, [&] { return running == 0; });
  }

  Budget budget;
  CallRecorder recorder;
  const int faces_per_request;
  std::mutex mu;
  std::condition_variable idle;
  int64_t running = 0;
  Clock::time_point last_answer = Clock::now();
};

// Unary Classify calls through the callback API.
class UnaryLoad {
 public:
  UnaryLoad(const Connection& connection, std::vector<fer::v1::ClassifyRequest> requests,
            LoadState* state)
      : connection_(connection),
        stub_(fer::v1::ExpressionClassifier::NewStub(connection.channel())),
        requests_(std::move(requests)),
        state_(state) {}

  void RunClosedLoop(int concurrency) {
    for (int i = 0; i < concurrency && state_->budget.Take(); ++i) Start(Clock::now(), true);
    state_->WaitIdle();
  }

  void RunOpenLoop(double rate) {
    const Clock::time_point start = Clock::now();
    for (int64_t k = 0;; ++k) {
      const auto scheduled = start + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(k / rate));
      std::this_thread::sleep_until(scheduled);
      if (!state_->budget.Take()) break;
      Start(scheduled, false);
    }
    state_->WaitIdle();
  }

 private:
  struct Call {
    grpc::ClientContext context;
    fer::v1::ClassifyResponse response;
    Clock::time_point scheduled;
  };

  // Starts one call; `chain` starts the next from its completion (closed loop).
  void Start(Clock::time_point scheduled, bool chain) {
    auto* call = new Call;
    call->scheduled = scheduled;
    connection_.Prepare(&call->context);
    const fer::v1::ClassifyRequest& request = requests_[next_.fetch_add(1) % requests_.size()];
    state_->Begin();
    stub_->async()->Classify(
        &call->context, &request, &call->response, [this, call, chain](const grpc::Status& status) {
          const double latency_ms = MillisecondsSince(call->scheduled);
          // Freed before End: once the run is idle, the caller may drop the
          // channel and exit, and a context freed later on this gRPC thread
          // could then release the channel's last reference from inside gRPC.
          delete call;
          state_->recorder.Record(status.error_code(), latency_ms, state_->faces_per_request);
          // Started before End, so the count never touches zero early.
          if (chain && state_->budget.Take()) Start(Clock::now(), true);
          state_->End();
        });
  }

  const Connection& connection_;
  const std::unique_ptr<fer::v1::ExpressionClassifier::Stub> stub_;
  const std::vector<fer::v1::ClassifyRequest> requests_;
  LoadState* const state_;
  std::atomic<size_t> next_{0};
};

// One ClassifyStream call driven by the callback API. Frames are queued and
// written one at a time (gRPC allows one write in flight per stream); answers
// come back in order, so the send times wait in a FIFO.
class BenchStream : public grpc::ClientBidiReactor<fer::v1::ClassifyFrame, fer::v1::FrameResult> {
 public:
  BenchStream(LoadState* state, fer::v1::ClassifyFrame frame, bool chain)
      : state_(state), frame_(std::move(frame)), chain_(chain) {}

  void Begin(fer::v1::ExpressionClassifier::Stub* stub) {
    state_->Begin();
    stub->async()->ClassifyStream(&context_, this);
    StartRead(&result_);
    StartCall();
  }

  // Queues one frame, scheduled at `scheduled`.
  void Send(Clock::time_point scheduled) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finished_) {  // the stream already failed: the frame fails with it
        state_->recorder.Record(final_code_, 0, 0);
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
    state_->recorder.Record(result_.status().code(), MillisecondsSince(scheduled),
                            state_->faces_per_request);
    if (chain_) {
      if (state_->budget.Take()) {
        Send(Clock::now());
      } else {
        Close();
      }
    }
    StartRead(&result_);
  }

  void OnDone(const grpc::Status& status) override {
    size_t unanswered = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      finished_ = true;
      final_code_ = status.ok() ? static_cast<int>(grpc::StatusCode::DATA_LOSS)
                                : static_cast<int>(status.error_code());
      unanswered = in_flight_.size() + queue_.size();
    }
    // Frames the stream took with it count under the stream's status.
    for (size_t i = 0; i < unanswered; ++i) state_->recorder.Record(final_code_, 0, 0);
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

  LoadState* const state_;
  fer::v1::ClassifyFrame frame_;
  const bool chain_;
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
  int final_code_ = 0;
};

class StreamLoad {
 public:
  // stream_deadline bounds each whole stream (a hung server cannot hang the
  // run); infinite for a run bounded by --requests.
  StreamLoad(const Connection& connection, const std::vector<fer::v1::ClassifyRequest>& requests,
             LoadState* state, bool ten_crop, absl::Duration stream_deadline)
      : stub_(fer::v1::ExpressionClassifier::NewStub(connection.channel())),
        state_(state),
        stream_deadline_(stream_deadline) {
    for (const fer::v1::ClassifyRequest& request : requests) {
      fer::v1::ClassifyFrame frame;
      *frame.mutable_faces() = request.faces();
      frame.mutable_options()->set_ten_crop(ten_crop);
      frames_.push_back(std::move(frame));
    }
  }

  void RunClosedLoop(int streams) {
    Open(streams, true);
    for (auto& stream : streams_) {
      if (state_->budget.Take()) {
        stream->Send(Clock::now());
      } else {
        stream->Close();
      }
    }
    state_->WaitIdle();
  }

  void RunOpenLoop(int streams, double rate) {
    Open(streams, false);
    const Clock::time_point start = Clock::now();
    for (int64_t k = 0;; ++k) {
      const auto scheduled = start + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(k / rate));
      std::this_thread::sleep_until(scheduled);
      if (!state_->budget.Take()) break;
      streams_[static_cast<size_t>(k) % streams_.size()]->Send(scheduled);
    }
    for (auto& stream : streams_) stream->Close();
    state_->WaitIdle();
  }

 private:
  void Open(int streams, bool chain) {
    for (int i = 0; i < streams; ++i) {
      streams_.push_back(std::make_unique<BenchStream>(
          state_, frames_[static_cast<size_t>(i) % frames_.size()], chain));
    }
    for (auto& stream : streams_) {
      if (stream_deadline_ != absl::InfiniteDuration()) {
        stream->context()->set_deadline(absl::ToChronoTime(absl::Now() + stream_deadline_));
      }
      stream->Begin(stub_.get());
    }
  }

  const std::unique_ptr<fer::v1::ExpressionClassifier::Stub> stub_;
  LoadState* const state_;
  const absl::Duration stream_deadline_;
  std::vector<fer::v1::ClassifyFrame> frames_;
  // Owned here, not by themselves: the pacer may still Send to a stream that
  // has already finished. Destroyed after WaitIdle, when every OnDone ran.
  std::vector<std::unique_ptr<BenchStream>> streams_;
};

std::vector<fer::v1::ClassifyRequest> BuildRequests(const std::vector<std::string>& pool,
                                                    int faces_per_request, bool ten_crop) {
  const size_t faces = static_cast<size_t>(faces_per_request);
  const size_t distinct =
      std::clamp<size_t>((pool.size() + faces - 1) / faces, 1, kMaxDistinctRequests);
  std::vector<fer::v1::ClassifyRequest> requests(distinct);
  for (size_t r = 0; r < distinct; ++r) {
    for (size_t f = 0; f < faces; ++f)
      requests[r].add_faces()->set_encoded(pool[(r * faces + f) % pool.size()]);
    requests[r].mutable_options()->set_ten_crop(ten_crop);
  }
  return requests;
}

}  // namespace

int RunBench(int argc, char** argv) {
  const std::vector<std::string> args = ParseCommandFlags(argc, argv, kUsage, __FILE__);
  if (!args.empty()) return UsageError("bench", "unexpected argument \"" + args[0] + "\"", kUsage);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  const int concurrency = absl::GetFlag(FLAGS_concurrency);
  const double rate = absl::GetFlag(FLAGS_rate);
  const int faces = absl::GetFlag(FLAGS_faces_per_request);
  const int64_t requests = absl::GetFlag(FLAGS_requests);
  const absl::Duration duration = absl::GetFlag(FLAGS_duration);
  if (mode != "unary" && mode != "stream") {
    return UsageError("bench", "--mode must be unary or stream", kUsage);
  }
  if (concurrency < 1) return UsageError("bench", "--concurrency must be >= 1", kUsage);
  if (rate < 0) return UsageError("bench", "--rate must be >= 0", kUsage);
  if (faces < 1) return UsageError("bench", "--faces_per_request must be >= 1", kUsage);
  if (requests < 0) return UsageError("bench", "--requests must be >= 0", kUsage);
  if (requests == 0 && duration <= absl::ZeroDuration()) {
    return UsageError("bench", "--duration must be positive (or give --requests)", kUsage);
  }
  if (absl::Status status = CheckDeadlineFlag(); !status.ok()) return Fail("bench", status);

  absl::StatusOr<std::vector<std::string>> pool = LoadImagePool(absl::GetFlag(FLAGS_images));
  if (!pool.ok()) return Fail("bench", pool.status());
  absl::StatusOr<Connection> connection = Connection::Open(ConnectionOptionsFromFlags(false));
  if (!connection.ok()) return Fail("bench", connection.status());
  absl::StatusOr<fer::v1::ModelInfo> info = connection->FetchModelInfo();
  if (!info.ok()) return Fail("bench", info.status());
  if (info->max_faces_per_request() > 0 &&
      static_cast<uint32_t>(faces) > info->max_faces_per_request()) {
    return Fail("bench", absl::InvalidArgumentError(absl::StrCat("--faces_per_request=", faces,
                                                                 " is over the server's limit of ",
                                                                 info->max_faces_per_request())));
  }

  const bool ten_crop = absl::GetFlag(FLAGS_ten_crop);
  std::vector<fer::v1::ClassifyRequest> prebuilt = BuildRequests(*pool, faces, ten_crop);
  LoadState state(requests, duration, faces);
  const Clock::time_point start = Clock::now();
  if (mode == "unary") {
    UnaryLoad load(*connection, std::move(prebuilt), &state);
    if (rate > 0) {
      load.RunOpenLoop(rate);
    } else {
      load.RunClosedLoop(concurrency);
    }
  } else {
    const absl::Duration stream_deadline =
        requests > 0 ? absl::InfiniteDuration() : duration + connection->deadline();
    StreamLoad load(*connection, prebuilt, &state, ten_crop, stream_deadline);
    if (rate > 0) {
      load.RunOpenLoop(concurrency, rate);
    } else {
      load.RunClosedLoop(concurrency);
    }
  }

  BenchReport report;
  report.mode = mode;
  report.concurrency = rate > 0 ? 0 : concurrency;
  report.rate = rate;
  report.faces_per_request = faces;
  report.elapsed_s = std::chrono::duration<double>(state.last_answer - start).count();
  report.totals = state.recorder.Snapshot();
  const std::string text =
      absl::GetFlag(FLAGS_json) ? FormatBenchJson(report) : FormatBenchText(report);
  std::fputs(text.c_str(), stdout);
  if (report.totals.ok_calls == 0) {
    std::vector<std::string> codes;
    for (const auto& [name, count] : report.totals.codes)
      codes.push_back(absl::StrCat(name, " ", count));
    return Fail("bench", absl::UnavailableError(
                             absl::StrCat("no call succeeded (", absl::StrJoin(codes, ", "), ")")));
  }
  return 0;
}

}  // namespace fer::client
