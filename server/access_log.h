// fer-server's access log: one JSON line per classifying call (Classify,
// ClassifyStream, ModelInfer, and any later front end's), off unless a path
// is given. It says who called, what the call carried (faces, frames), how it
// ended, and where its time went (queued for the batcher, in the model, in
// all); never an image, a pixel or a prediction.
//
// A line (keys in this order; those marked * only when they apply):
//   {"time":"2026-12-01T15:40:00.123Z","method":"Classify","peer":"ipv4:10.0.0.7:51334",
//    "status":"OK","message"*:"...","faces":2,"frames"*:5,"frame_errors"*:1,
//    "queue_ms":0.412,"model_ms":12.301,"total_ms":14.087,"model_version":"...",
//    "sampled":0.25}
//  - time: when the call ended (RFC 3339, UTC, milliseconds), so that lines
//    are written in about time order;
//  - message: the status message, for errors only (at most kMaxMessageBytes,
//    invalid UTF-8 replaced by U+FFFD, so that every line is valid JSON);
//  - frames and frame_errors: streams only (frames read; those answered with
//    an error FrameStatus, or dropped because the client was gone);
//  - queue_ms: the longest any face of the call waited in the batcher's queue
//    (from being queued to its batch forming); model_ms: the runner time of
//    the batches that carried its faces, summed (for a stream, both over its
//    frames: the longest wait, the summed model time). Zero for a call that
//    never reached the batcher;
//  - model_version: of the model that answered; "" for an error (for a
//    stream, the last frame answered with one);
//  - sampled: the fraction of calls logged, so that counts read from the log
//    can be scaled back (count / sampled).
//
// Sampling is deterministic: with sample = p, of the calls that ask Sample()
// in turn, call n (from 0) is logged when floor((n + 1) p) > floor(n p), in
// 32-bit fixed point: every K-th call for p = 1/K, and floor(N p) or one more
// of any N consecutive calls, spread evenly. A counter rather than a random
// number: no RNG state to share between threads, and a test can count.
//
// Writing: Record formats the line on the caller's thread (microseconds) and
// hands it to a writer thread through a bounded queue (kMaxQueuedLines);
// when the queue is full the line is dropped and counted (dropped(),
// fer_access_log_dropped_total) rather than waited for. Callers include the
// batcher's workers and gRPC's callback threads, which must never wait on a
// disk or a full pipe (stderr read by a slow log collector): a mutex-guarded
// FILE* would make one stuck write stall the model. The writer writes lines
// in chunks of at most PIPE_BUF bytes (a longer line alone), each chunk one
// write(2): on a pipe (stderr) such writes are atomic, so lines never
// interleave with the server's other messages, and on a file opened with
// O_APPEND they land whole at the end even beside another writer.
//
// Rotation: Reopen() opens the path again (after logrotate's rename) and
// writes there from the next line on; fer-server calls it on SIGUSR1 and on
// SIGHUP.
#ifndef FER_SERVER_ACCESS_LOG_H_
#define FER_SERVER_ACCESS_LOG_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace fer {

struct AccessLogOptions {
  // "": no log (the default); "-": stderr; else a file, created if needed
  // and appended to.
  std::string path;
  // Fraction of calls logged, in (0, 1].
  double sample = 1.0;
  // Called once per line dropped (the queue was full, or its write failed),
  // for the metric: from Record's caller or the writer thread; must be cheap
  // and thread-safe. May be empty.
  std::function<void()> on_dropped;

  bool enabled() const { return !path.empty(); }
};

// The method names lines carry. A front end of its own picks one more in the
// same style ("HttpClassify" for the HTTP/JSON API).
inline constexpr char kAccessLogClassify[] = "Classify";
inline constexpr char kAccessLogClassifyStream[] = "ClassifyStream";
inline constexpr char kAccessLogModelInfer[] = "ModelInfer";
inline constexpr char kAccessLogHttpClassify[] = "HttpClassify";

// One call, as a line says it (see the format above).
struct AccessLogEntry {
  absl::string_view method;
  // Who called: gRPC's ServerContext::peer() ("ipv4:10.0.0.7:51334"), or the
  // HTTP front end's "ipv4:ADDRESS:PORT".
  std::string peer;
  absl::StatusCode code = absl::StatusCode::kOk;
  absl::string_view message;  // written only when code is not OK
  int faces = 0;
  int frames = -1;        // written when >= 0: streams
  int frame_errors = -1;  // written when >= 0: streams
  absl::Duration queue = absl::ZeroDuration();
  absl::Duration model = absl::ZeroDuration();
  absl::Duration total = absl::ZeroDuration();
  std::string model_version;      // of the model that answered; "" for an error
  absl::Time time = absl::Now();  // when the call ended
};

// Lines longer than this are not the log's business: a status message is cut
// (on a UTF-8 boundary, marked "...") to this many bytes.
inline constexpr size_t kMaxMessageBytes = 1024;

// How to use it from a front end (service_calls.cc, oip_service.cc, and the
// HTTP front end through ExpressionService::access_log()):
//   at the call's start:  sampled_ = log != nullptr && log->Sample();
//                         if (sampled_) peer_ = context->peer();
//   at its end:           if (sampled_) log->Record(entry);
// A server without a log passes a null AccessLog*, so an unlogged call costs
// one branch, and an unsampled one an atomic increment.
class AccessLog {
 public:
  // Writer queue bound: about 1 MiB of lines of the usual size.
  static constexpr size_t kMaxQueuedLines = 4096;

  // INVALID_ARGUMENT for a sample outside (0, 1] ("--access_log_sample must
  // be in (0, 1], got 0"); for a file path, whatever opening it for append
  // says (it is created), naming the path. OK for an empty path.
  static absl::Status ValidateOptions(const AccessLogOptions& options);

  // Opens options.path and starts the writer thread; ValidateOptions' errors.
  // Requires options.enabled().
  static absl::StatusOr<std::unique_ptr<AccessLog>> Open(const AccessLogOptions& options,
                                                         size_t max_queued_lines = kMaxQueuedLines);

  // Writes the lines still queued, then closes the file. It waits for the
  // writer: a write stuck on a pipe nobody reads holds it up, as it would
  // any other output of the process.
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // Whether the call starting now is to be logged (see Sampling). Thread-safe.
  bool Sample();

  // Queues entry's line for writing, or drops it when the queue is full.
  // Thread-safe; never waits for the writer.
  void Record(const AccessLogEntry& entry);

  // Opens the path again and writes there from the next chunk of lines on,
  // closing the old file (after a write in progress). A no-op for stderr. On
  // error the log goes on in the old file and the error (naming the path) is
  // returned.
  absl::Status Reopen();

  // Blocks until every line recorded before the call is written (or dropped):
  // for tests, and before exiting.
  void Flush();

  const AccessLogOptions& options() const { return options_; }
  // Lines dropped because the queue was full or a write failed.
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

  // entry as its line, newline included, for a log sampling `sample`.
  static std::string FormatLine(const AccessLogEntry& entry, double sample);

 private:
  AccessLog(const AccessLogOptions& options, int fd, size_t max_queued_lines);
  void WriterLoop();
  // Writes lines to fd_, in chunks of at most PIPE_BUF bytes; counts a failed
  // chunk's lines as dropped.
  void WriteLines(const std::deque<std::string>& lines);

  const AccessLogOptions options_;
  const size_t max_queued_lines_;
  // Sampling: calls numbered by counter_, logged when the 32-bit fraction of
  // n * step_ wraps (step_ = sample * 2^32; 2^32 logs all).
  const uint64_t step_;
  std::atomic<uint64_t> counter_{0};
  std::atomic<uint64_t> dropped_{0};

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;  // wakes the writer, and Flush
  std::deque<std::string> queue_;     // guarded by queue_mu_
  uint64_t queued_total_ = 0;         // lines ever queued; guarded by queue_mu_
  uint64_t written_total_ = 0;        // of those, written or failed; guarded by queue_mu_
  bool stop_ = false;                 // guarded by queue_mu_

  std::mutex fd_mu_;  // held while writing, and by Reopen to swap fd_
  int fd_;            // 2 for stderr (never closed)

  std::thread writer_;  // last: started when the rest is ready
};

}  // namespace fer

#endif  // FER_SERVER_ACCESS_LOG_H_
