// The dynamic batcher: gathers the faces of many concurrent requests into
// batches for a model, in the manner of TensorFlow Serving's shared batch
// scheduler. It knows nothing of RPCs, images or models: a caller submits a
// BatchJob (pointers to preprocessed faces and to where their outputs go), and
// a BatchRunner computes one batch of faces on one model instance.
//
// Policy (the whole of it):
//  - Faces are the unit of batching. A job carries 1..N faces; they are queued
//    together in submission order and may be split across several batches.
//  - A batch is formed from the head of the queue, FIFO, with at most
//    max_batch_size faces, as soon as an instance is free and either
//      * at least max_batch_size faces are queued (size trigger), or
//      * the oldest queued face has waited max_queue_delay (delay trigger:
//        Now() >= its Submit time + max_queue_delay), or
//      * Stop has begun (drain: whatever is queued runs at once).
//    Dead jobs (see Dropping) at the head of the queue are dropped before the
//    triggers are evaluated; dead jobs further back count towards the size
//    trigger until the batch reaches them, so such a batch may run smaller.
//  - The queue holds at most max_queue_faces faces, counting faces reserved
//    (Reserve) for jobs still being prepared, and at most max_queue_time of
//    work as the batch-time model (below) estimates it. A job that does not
//    fit fails at once with RESOURCE_EXHAUSTED and enqueues nothing.
//  - Deadlines (admission): the batcher learns how long batches of each size
//    take (BatchTimeModel, from every batch that ran, or Record). A job whose
//    estimated completion, behind the work queued, reserved and running, is
//    after its deadline is refused at once: DEADLINE_EXCEEDED when the model
//    alone needs longer than the time left (no retry can help),
//    RESOURCE_EXHAUSTED when the queue ahead is the reason. Until a batch has
//    been measured, and whenever nothing is queued, reserved or running,
//    deadlines are not judged at admission (an idle batcher runs the job,
//    which also re-measures an estimate that may be stale); only a deadline
//    already passed is refused (DEADLINE_EXCEEDED).
//  - Deadlines (dispatch): when a batch forms at `now`, a job whose deadline
//    is before now plus the estimated run time of the batch so far with its
//    faces is dropped instead of run (it would be answered too late), unless
//    it was queued on an idle batcher; and a
//    job whose faces all ran but finished after its deadline fails with
//    DEADLINE_EXCEEDED, not OK, so nobody counts a late answer as served.
//  - Dropping: when its faces reach the head of the queue, a job that is
//    cancelled (is_cancelled() returns true) or past its deadline has all its
//    queued faces dropped; they never reach the runner. The job then fails
//    with CANCELLED or DEADLINE_EXCEEDED. After a runner error, the remaining
//    queued faces of every job in the failed batch are dropped too.
//  - Instances: num_instances worker threads, each with its own instance index
//    in [0, num_instances), run batches concurrently. A worker runs one batch at
//    a time, so a runner may keep per-instance state (a CUDA stream, pinned
//    buffers) indexed by instance without locking.
//  - Completion: every job accepted by Submit gets exactly one call of its done
//    callback: OK once every face has its output, otherwise the first error
//    (the runner's status, or the status of a drop). done is called only when
//    no batch refers to the job's memory any more, so the caller may free it
//    inside done. Completions of the jobs touched by one batch (dropped ones
//    included) are delivered in queue order after the batch ran, so with
//    num_instances == 1 jobs complete in submission order; the one exception
//    is Stop's drain timeout, which fails the queued jobs at once, possibly
//    before a running batch's jobs complete. With several instances, batches
//    finish in any order.
//  - Shutdown: Stop (and the destructor) refuse new jobs with UNAVAILABLE, run
//    what is queued until the drain timeout, fail what is still queued then
//    with UNAVAILABLE, and return once every accepted job has completed.
//
// Time is read through a Clock, so tests can drive it: the batcher never
// sleeps or reads the time except through its Clock.
#ifndef FER_SERVER_BATCHER_H_
#define FER_SERVER_BATCHER_H_

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/batch_time_model.h"

namespace fer {

// The source of time and of timed waits. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;

  virtual absl::Time Now() = 0;

  // Requires: *lock is held, and cv is only ever waited on under lock's mutex.
  // Releases the lock, blocks until cv is notified or Now() >= deadline, and
  // reacquires the lock before returning. It may also return spuriously, so
  // callers re-check their condition and the time. deadline may be
  // absl::InfiniteFuture().
  virtual void WaitUntil(std::unique_lock<std::mutex>* lock, std::condition_variable* cv,
                         absl::Time deadline) = 0;

  // The wall clock (absl::Now()); a process-wide object, never destroyed.
  static Clock* Real();
};

struct BatcherOptions {
  // Most faces in one runner call. >= 1.
  int max_batch_size = 32;
  // Longest time the oldest queued face waits for a batch to fill while an
  // instance is free. Finite, >= 0; zero runs whatever is queued at once.
  absl::Duration max_queue_delay = absl::Microseconds(2000);
  // Most faces waiting in the queue (not counting those in running batches):
  // a memory bound. >= max_batch_size, so that a full batch can form.
  int max_queue_faces = 4096;
  // Most work the queue holds, in time: a job is refused when the faces queued
  // ahead of it, with its own, would take longer than this to run (as the
  // batch-time model estimates). It sizes the queue from the measured
  // throughput: on a CPU that runs 50 faces/s, 10 s is about 500 faces; on a
  // GPU max_queue_faces is the tighter bound. Calls with a deadline are judged
  // by their deadline as well. > 0; absl::InfiniteDuration() bounds the queue
  // by max_queue_faces alone.
  absl::Duration max_queue_time = absl::Seconds(10);
  // Model instances, i.e. batches that may run at the same time; one worker
  // thread each. In [1, kMaxBatcherInstances].
  int num_instances = 1;
};

// A guard against typos such as --batch_instances=3200: each instance is a thread.
inline constexpr int kMaxBatcherInstances = 256;

// Whether options can be used: OK, or INVALID_ARGUMENT naming the first
// offending option ("BatcherOptions.max_queue_faces must be ..."). Cheap and
// side-effect free (starts no thread), so that a server can refuse bad flags
// before it loads a model; Batcher::Create refuses exactly what this refuses.
absl::Status ValidateBatcherOptions(const BatcherOptions& options);

// One face as the runner sees it: its preprocessed input bytes, and where its
// outputs (e.g. the seven class probabilities) are to be written. The batcher
// never reads or writes through these pointers; the runner defines their sizes.
struct FaceRef {
  const uint8_t* pixels = nullptr;
  float* output = nullptr;
  // Where the face's attention map goes, or null when nobody asked for it
  // (the runner then need not compute one). Sized by the runner, as output.
  float* attention = nullptr;
  // Opaque to the batcher, handed to the runner with the face: which model
  // the face is to run on (the service's model generation, see
  // ExpressionService::Reload). Null when the runner has one model only.
  const void* context = nullptr;
};

// Computes the outputs of faces on model instance `instance` and returns OK, or
// the error that all of these faces' jobs then fail with. Called from the
// instance's worker thread only, with 1..max_batch_size faces; must not call
// into the Batcher.
using BatchRunner = std::function<absl::Status(int instance, absl::Span<const FaceRef> faces)>;

// Where one job's time went in the batcher, for the caller's access log.
struct JobTiming {
  // The longest any of its faces waited, from Submit to its batch forming.
  absl::Duration queue_wait = absl::ZeroDuration();
  // The runner calls of the batches that held its faces, summed.
  absl::Duration compute = absl::ZeroDuration();
};

// One request's worth of faces. The caller keeps every pixels and output
// buffer alive, and does not touch the outputs, until done is called.
struct BatchJob {
  // 1..max_queue_faces faces, in the order the caller wants them computed.
  std::vector<FaceRef> faces;
  // Faces still queued when the batcher's clock reaches this are dropped.
  absl::Time deadline = absl::InfiniteFuture();
  // Optional. Polled when the job's faces reach the head of the queue, with
  // the batcher's lock held: must be cheap, non-blocking, thread-safe, and must
  // not call into the Batcher (e.g. grpc::ServerContext::IsCancelled).
  std::function<bool()> is_cancelled;
  // Required. Called exactly once, from a batcher thread (a worker, or the
  // thread in Stop), without any batcher lock held. It may Submit new jobs, but
  // must not call Stop or destroy the Batcher.
  std::function<void(absl::Status)> done;
  // Optional: filled in by the batcher (under its lock) as the job's batches
  // form and run, complete when done is called. The caller keeps it alive
  // until then.
  JobTiming* timing = nullptr;
};

// Why faces were dropped before reaching the runner.
enum class DropReason {
  kCancelled,  // the job's is_cancelled() returned true
  kDeadline,   // the job's deadline passed while its faces were queued
  kFailed,     // an earlier batch with faces of the same job failed
  kShutdown,   // Stop's drain timeout passed while the faces were queued
  kLate,       // the job's deadline would pass before its batch could finish
};

// "cancelled", "deadline", "failed", "shutdown", "late": the metric label values.
std::string_view DropReasonName(DropReason reason);

// What the batcher reports about one runner call.
struct BatchStats {
  int instance = 0;
  // Faces the runner was given (1..max_batch_size).
  int size = 0;
  // One per face, in batch order: from its job's Submit to the batch forming.
  absl::Span<const absl::Duration> queue_waits;
  // The runner call, on the batcher's clock.
  absl::Duration compute_duration;
  // What the runner returned.
  absl::Status status;
};

// Hooks for metrics. Every method defaults to doing nothing. They are called
// from several threads at once, possibly with the batcher's lock held (so that
// successive queue depths arrive in order): they must be cheap, thread-safe,
// and must not call into the Batcher.
class BatcherObserver {
 public:
  virtual ~BatcherObserver() = default;
  // After each runner call, before the completions of its jobs.
  virtual void OnBatch(const BatchStats& /*stats*/) {}
  // When `faces` (> 0) queued faces of one job are dropped.
  virtual void OnDrop(DropReason /*reason*/, int /*faces*/) {}
  // Whenever the number of queued faces changes.
  virtual void OnQueueDepth(int /*queued_faces*/) {}
};

// Thread-safe: Submit and queued_faces may be called from any thread at any
// time before destruction; Stop from any thread but the batcher's own (not
// from a runner or a done callback).
class Batcher {
 public:
  // Validates options (ValidateBatcherOptions), requires a runner
  // (INVALID_ARGUMENT without one) and starts options.num_instances worker
  // threads. observer and clock may be
  // null (no observation; the real clock); when given they must outlive the
  // Batcher.
  static absl::StatusOr<std::unique_ptr<Batcher>> Create(const BatcherOptions& options,
                                                         BatchRunner runner,
                                                         BatcherObserver* observer = nullptr,
                                                         Clock* clock = nullptr);

  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Stop(absl::InfiniteDuration()): runs everything still queued.
  ~Batcher();

  // Queues job's faces behind all faces queued before. On OK, job->done will
  // be called exactly once; on any other status it will never be called and
  // nothing was queued:
  //  - INVALID_ARGUMENT: job is null, has no faces, or has no done callback;
  //  - UNAVAILABLE: Stop has begun;
  //  - RESOURCE_EXHAUSTED: the job's faces do not fit in the queue now (or
  //    ever, when it has more than max_queue_faces), or the work ahead of it
  //    would keep it past its deadline or past max_queue_time;
  //  - DEADLINE_EXCEEDED: its deadline is closer than the model needs for its
  //    faces even with nothing ahead (or has passed already).
  // Never blocks on a running batch.
  absl::Status Submit(std::shared_ptr<BatchJob> job);

  // Holds room for `faces` faces whose job is still being prepared (images
  // being decoded), so that they count against the queue's limits from the
  // moment they are admitted. Judged as Submit judges a job of that size and
  // deadline, with the same statuses, plus INVALID_ARGUMENT for faces < 1 or
  // more than max_queue_faces (such a job could never fit). Each OK is
  // followed by exactly one SubmitReserved of a job of exactly that many
  // faces, or one Unreserve(faces).
  absl::Status Reserve(int faces, absl::Time deadline);
  void Unreserve(int faces);
  // Queues a job for which Reserve(job->faces.size(), ...) succeeded; the
  // reservation is used up whatever the outcome. Fails only with
  // INVALID_ARGUMENT (as Submit) or UNAVAILABLE once Stop's drain timeout has
  // passed: a reservation made before Stop began is still accepted while the
  // drain runs, and Stop waits for it.
  absl::Status SubmitReserved(std::shared_ptr<BatchJob> job);

  // Faces queued and not yet taken into a batch (nor dropped).
  int queued_faces() const;

  // Teaches the batch-time model that a batch of n faces took duration, e.g.
  // a warm-up batch run outside the batcher.
  void RecordBatchTime(int n, absl::Duration duration);

  // Whether the workers look wedged: work is queued or running and no batch
  // has finished (nor has the queue become non-empty) for longer than
  // `timeout`, or than kStallBatches estimated full batches if that is longer,
  // on the batcher's clock. For a liveness probe.
  bool Stalled(absl::Duration timeout) const;
  static constexpr int kStallBatches = 3;

  // Refuses new jobs from now on, runs what is queued (partial batches at
  // once) and what is reserved (as it is submitted) for at most drain_timeout
  // on the batcher's clock, then drops
  // whatever is still queued: those jobs fail with UNAVAILABLE. Returns once
  // the workers have stopped, so every accepted job has completed (a batch
  // already running is waited for, even past the timeout, since its runner
  // still uses its jobs' memory). A later or concurrent call just waits for
  // the first to finish. drain_timeout <= 0 runs nothing more;
  // absl::InfiniteDuration() drains everything.
  void Stop(absl::Duration drain_timeout);

 private:
  struct JobState;  // a submitted job's progress, in batcher.cc
  struct Batch;     // a batch being formed, run and finished, in batcher.cc
  using Completions = std::vector<std::shared_ptr<JobState>>;

  Batcher(const BatcherOptions& options, BatchRunner runner, BatcherObserver* observer,
          Clock* clock);

  void WorkerLoop(int instance);

  // Requires mu_. Forms the next batch due at `now` into *batch (which must be
  // empty), dropping dead jobs met at the head of the queue on the way (they
  // go to batch->slices with no faces). Returns whether the batch has faces;
  // if not, *wake_at is when a batch can next become due by time alone.
  bool FormBatchLocked(absl::Time now, Batch* batch, absl::Time* wake_at);
  // Requires mu_. Drops `state` if it is cancelled or past its deadline at
  // `now`, recording it in batch->slices. Returns whether it was dropped.
  bool DropIfDeadLocked(const std::shared_ptr<JobState>& state, absl::Time now, Batch* batch);
  // Requires mu_. Whether state's deadline is before now plus the estimated
  // run time of a batch of batch_faces faces.
  bool WouldBeLateLocked(const JobState& state, absl::Time now, int batch_faces) const;
  // Requires mu_. Whether a job of `faces` faces with `deadline` may join the
  // queue at `now`, given everything queued, reserved and running.
  absl::Status AdmitLocked(int faces, absl::Time deadline, absl::Time now) const;
  // Requires mu_. When a job of `faces` faces submitted at `now` would finish:
  // what is left of the running batches, then the queued and reserved faces
  // in full batches, then its own batch, spread over the instances.
  absl::Duration EstimateFinishLocked(int faces, absl::Time now) const;
  // Requires mu_. Appends state to the queue and wakes workers as needed.
  void EnqueueLocked(std::shared_ptr<JobState> state, absl::Time now);
  // Checks what Submit and SubmitReserved both require of a job.
  static absl::Status CheckJob(const BatchJob* job);
  // Requires mu_. Drops the queued faces of `state` (but does not remove it
  // from queue_) and makes `status` the job's status unless it already failed.
  void DropQueuedFacesLocked(JobState* state, DropReason reason, const absl::Status& status);
  // Requires mu_. Accounts for a batch that ran with `status` for `compute`
  // (OK and zero for one without faces); appends the jobs that are now
  // complete to *completions.
  void FinishBatchLocked(const Batch& batch, const absl::Status& status, absl::Time now,
                         absl::Duration compute, Completions* completions);
  // Requires mu_. Reports the queue depth to the observer if it changed.
  void ReportDepthLocked();
  // Calls done of each job, without mu_ held, and empties *completions.
  static void Deliver(Completions* completions);

  const BatcherOptions options_;
  const BatchRunner runner_;
  BatcherObserver* const observer_;
  Clock* const clock_;

  // std:: rather than absl:: primitives: ThreadSanitizer intercepts them even
  // with the uninstrumented system Abseil, so the tests' TSan runs are exact.
  mutable std::mutex mu_;
  // Wakes workers (new work, stop) and the Stop caller (drain progress).
  std::condition_variable cv_;
  // Guarded by mu_:
  // Jobs with queued faces, in submission order; each job at most once.
  std::deque<std::shared_ptr<JobState>> queue_;
  int queued_faces_ = 0;
  int reserved_faces_ = 0;  // Reserve'd and not yet submitted or unreserved
  int last_reported_depth_ = 0;
  int running_batches_ = 0;  // batches with faces between forming and finishing
  bool stopping_ = false;    // Stop has begun: refuse jobs, drain
  bool drain_over_ = false;  // Stop's drain timeout passed: refuse reserved jobs too
  bool stopped_ = false;     // Stop has finished: workers joined
  BatchTimeModel batch_times_;
  // Per instance: the batch it is running (size 0 when idle) and since when.
  struct RunningBatch {
    absl::Time start;
    int size = 0;
  };
  std::vector<RunningBatch> running_;
  // When a batch last finished, or the queue last became non-empty.
  absl::Time last_progress_;

  std::vector<std::thread> workers_;  // touched only by Create and the first Stop
};

}  // namespace fer

#endif  // FER_SERVER_BATCHER_H_
