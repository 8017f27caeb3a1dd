#include "server/batcher.h"

#include <algorithm>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace fer {
namespace {

class RealClock final : public Clock {
 public:
  absl::Time Now() override { return absl::Now(); }

  void WaitUntil(std::unique_lock<std::mutex>* lock, std::condition_variable* cv,
                 absl::Time deadline) override {
    // A far-future time_point overflows inside libstdc++'s clock conversion,
    // so an infinite deadline is a plain wait.
    if (deadline == absl::InfiniteFuture()) {
      cv->wait(*lock);
    } else {
      cv->wait_until(*lock, absl::ToChronoTime(deadline));
    }
  }
};

absl::Status InvalidOption(absl::string_view name, absl::string_view requirement,
                           absl::string_view value) {
  return absl::InvalidArgumentError(
      absl::StrCat("BatcherOptions.", name, " must be ", requirement, ", got ", value));
}

}  // namespace

absl::Status ValidateBatcherOptions(const BatcherOptions& options) {
  if (options.max_batch_size < 1) {
    return InvalidOption("max_batch_size", ">= 1", absl::StrCat(options.max_batch_size));
  }
  if (options.max_queue_delay < absl::ZeroDuration() ||
      options.max_queue_delay == absl::InfiniteDuration()) {
    return InvalidOption("max_queue_delay", "finite and >= 0",
                         absl::FormatDuration(options.max_queue_delay));
  }
  if (options.max_queue_faces < options.max_batch_size) {
    return InvalidOption("max_queue_faces",
                         absl::StrCat(">= max_batch_size (", options.max_batch_size, ")"),
                         absl::StrCat(options.max_queue_faces));
  }
  if (options.max_queue_time <= absl::ZeroDuration()) {
    return InvalidOption("max_queue_time", "> 0", absl::FormatDuration(options.max_queue_time));
  }
  if (options.num_instances < 1 || options.num_instances > kMaxBatcherInstances) {
    return InvalidOption("num_instances", absl::StrCat("in [1, ", kMaxBatcherInstances, "]"),
                         absl::StrCat(options.num_instances));
  }
  return absl::OkStatus();
}

Clock* Clock::Real() {
  static Clock* const clock = new RealClock();
  return clock;
}

std::string_view DropReasonName(DropReason reason) {
  switch (reason) {
    case DropReason::kCancelled:
      return "cancelled";
    case DropReason::kDeadline:
      return "deadline";
    case DropReason::kFailed:
      return "failed";
    case DropReason::kShutdown:
      return "shutdown";
    case DropReason::kLate:
      return "late";
  }
  return "unknown";
}

struct Batcher::JobState {
  std::shared_ptr<BatchJob> job;
  absl::Time submit_time;
  // faces[0, next_face) have been taken into batches or dropped; the rest are queued.
  int next_face = 0;
  // Faces in batches that have not finished yet.
  int in_flight = 0;
  // Queued on an idle batcher: run even if the estimate says it will be late.
  bool may_be_late = false;
  // The first error; OK while there is none. Final once `completed` is set.
  absl::Status status;
  bool completed = false;

  int size() const { return static_cast<int>(job->faces.size()); }
  int queued() const { return size() - next_face; }
};

struct Batcher::Batch {
  // A job the batch touched, with how many of its faces the batch holds (zero
  // for a job dropped while the batch formed). Kept in queue order, which is
  // the order the jobs' completions are delivered in.
  struct Slice {
    std::shared_ptr<JobState> job;
    int faces = 0;
  };

  std::vector<FaceRef> faces;
  std::vector<absl::Duration> queue_waits;  // parallel to faces
  std::vector<Slice> slices;

  void Clear() {
    faces.clear();
    queue_waits.clear();
    slices.clear();
  }
};

absl::StatusOr<std::unique_ptr<Batcher>> Batcher::Create(const BatcherOptions& options,
                                                         BatchRunner runner,
                                                         BatcherObserver* observer, Clock* clock) {
  if (absl::Status status = ValidateBatcherOptions(options); !status.ok()) return status;
  if (!runner) return absl::InvalidArgumentError("Batcher needs a BatchRunner");
  std::unique_ptr<Batcher> batcher(
      new Batcher(options, std::move(runner), observer, clock != nullptr ? clock : Clock::Real()));
  batcher->workers_.reserve(options.num_instances);
  for (int instance = 0; instance < options.num_instances; ++instance) {
    batcher->workers_.emplace_back(&Batcher::WorkerLoop, batcher.get(), instance);
  }
  return batcher;
}

Batcher::Batcher(const BatcherOptions& options, BatchRunner runner, BatcherObserver* observer,
                 Clock* clock)
    : options_(options),
      runner_(std::move(runner)),
      observer_(observer),
      clock_(clock),
      batch_times_(options.max_batch_size),
      running_(options.num_instances),
      last_progress_(clock->Now()) {}

Batcher::~Batcher() { Stop(absl::InfiniteDuration()); }

absl::Status Batcher::CheckJob(const BatchJob* job) {
  if (job == nullptr) return absl::InvalidArgumentError("BatchJob is null");
  if (job->faces.empty()) return absl::InvalidArgumentError("BatchJob has no faces");
  if (!job->done) return absl::InvalidArgumentError("BatchJob has no done callback");
  return absl::OkStatus();
}

absl::Status Batcher::AdmitLocked(int faces, absl::Time deadline, absl::Time now) const {
  if (stopping_) return absl::UnavailableError("batcher is shutting down");
  if (now >= deadline) return absl::DeadlineExceededError("the job's deadline has passed");
  const int used = queued_faces_ + reserved_faces_;
  if (faces > options_.max_queue_faces - used) {
    return absl::ResourceExhaustedError(absl::StrCat("batch queue is full: ", used, " of ",
                                                     options_.max_queue_faces,
                                                     " faces queued, job has ", faces));
  }
  // An idle batcher takes the job whatever the estimate says: it costs no other
  // job anything, and running it re-measures an estimate that may be stale
  // (otherwise one slow batch could make it refuse every deadline forever).
  if (!batch_times_.known() || (used == 0 && running_batches_ == 0)) return absl::OkStatus();
  const absl::Duration alone = batch_times_.Estimate(std::min(faces, options_.max_batch_size));
  if (now + alone > deadline) {
    return absl::DeadlineExceededError(absl::StrCat(
        "the deadline is too close: the model needs about ", absl::FormatDuration(alone), " for ",
        faces, " faces and ", absl::FormatDuration(deadline - now), " are left"));
  }
  const absl::Duration ahead = EstimateFinishLocked(faces, now);
  if (ahead > options_.max_queue_time) {
    return absl::ResourceExhaustedError(
        absl::StrCat("batch queue is full: about ", absl::FormatDuration(ahead), " of work (limit ",
                     absl::FormatDuration(options_.max_queue_time), ")"));
  }
  if (now + ahead > deadline) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the job cannot finish before its deadline: about ", absl::FormatDuration(ahead),
        " of work would run first and ", absl::FormatDuration(deadline - now), " are left"));
  }
  return absl::OkStatus();
}

absl::Duration Batcher::EstimateFinishLocked(int faces, absl::Time now) const {
  const int max_batch = options_.max_batch_size;
  const absl::Duration full_batch = batch_times_.Estimate(max_batch);
  absl::Duration work = absl::ZeroDuration();
  for (const RunningBatch& running : running_) {  // what is left of each
    if (running.size > 0) {
      work += std::max(absl::ZeroDuration(),
                       batch_times_.Estimate(running.size) - (now - running.start));
    }
  }
  const int ahead = queued_faces_ + reserved_faces_;
  work += full_batch * (ahead / max_batch);
  // The job's own batch (or batches). While every instance is busy, faces that
  // arrive before one frees up join the batch, so it is likely to be full.
  const int rest = ahead % max_batch + faces;
  const bool busy = running_batches_ >= options_.num_instances;
  work += busy ? full_batch * ((rest + max_batch - 1) / max_batch) : batch_times_.Estimate(rest);
  return work / options_.num_instances;
}

void Batcher::EnqueueLocked(std::shared_ptr<JobState> state, absl::Time now) {
  const int faces = state->size();
  state->submit_time = now;
  const bool was_empty = queue_.empty();
  state->may_be_late = was_empty && running_batches_ == 0;  // see AdmitLocked
  if (was_empty && running_batches_ == 0) last_progress_ = now;
  queue_.push_back(std::move(state));
  queued_faces_ += faces;
  ReportDepthLocked();
  // Idle workers sleep until the head's delay expires, or indefinitely on an
  // empty queue; only a new head or a full batch changes what they wait for.
  if (was_empty || queued_faces_ >= options_.max_batch_size) cv_.notify_all();
}

absl::Status Batcher::Submit(std::shared_ptr<BatchJob> job) {
  if (absl::Status status = CheckJob(job.get()); !status.ok()) return status;
  const int faces =
      static_cast<int>(std::min<size_t>(job->faces.size(), std::numeric_limits<int>::max()));
  if (faces > options_.max_queue_faces) {
    return absl::ResourceExhaustedError(absl::StrCat("job of ", faces,
                                                     " faces exceeds the batch queue's capacity (",
                                                     options_.max_queue_faces, " faces)"));
  }
  // Allocated before taking the lock, to keep the critical section short.
  auto state = std::make_shared<JobState>();
  state->job = std::move(job);

  std::unique_lock<std::mutex> lock(mu_);
  const absl::Time now = clock_->Now();
  if (absl::Status admitted = AdmitLocked(faces, state->job->deadline, now); !admitted.ok()) {
    return admitted;
  }
  EnqueueLocked(std::move(state), now);
  return absl::OkStatus();
}

absl::Status Batcher::Reserve(int faces, absl::Time deadline) {
  if (faces < 1 || faces > options_.max_queue_faces) {
    return absl::InvalidArgumentError(absl::StrCat("a job needs 1..", options_.max_queue_faces,
                                                   " faces (the queue's capacity), got ", faces));
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (absl::Status admitted = AdmitLocked(faces, deadline, clock_->Now()); !admitted.ok()) {
    return admitted;
  }
  reserved_faces_ += faces;
  return absl::OkStatus();
}

void Batcher::Unreserve(int faces) {
  std::lock_guard<std::mutex> lock(mu_);
  reserved_faces_ -= faces;
  if (stopping_) cv_.notify_all();  // the Stop caller waits for reservations
}

absl::Status Batcher::SubmitReserved(std::shared_ptr<BatchJob> job) {
  const int faces = job != nullptr ? static_cast<int>(job->faces.size()) : 0;
  auto state = std::make_shared<JobState>();
  state->job = std::move(job);
  std::lock_guard<std::mutex> lock(mu_);
  reserved_faces_ -= faces;
  if (stopping_) cv_.notify_all();
  if (absl::Status status = CheckJob(state->job.get()); !status.ok()) return status;
  if (drain_over_) return absl::UnavailableError("batcher shut down before the job was queued");
  EnqueueLocked(std::move(state), clock_->Now());
  return absl::OkStatus();
}

void Batcher::RecordBatchTime(int n, absl::Duration duration) {
  std::lock_guard<std::mutex> lock(mu_);
  batch_times_.Record(n, duration);
}

bool Batcher::Stalled(absl::Duration timeout) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (queue_.empty() && running_batches_ == 0) return false;
  const absl::Duration limit =
      std::max(timeout, batch_times_.Estimate(options_.max_batch_size) * kStallBatches);
  return clock_->Now() - last_progress_ > limit;
}

int Batcher::queued_faces() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queued_faces_;
}

void Batcher::Stop(absl::Duration drain_timeout) {
  Completions completions;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (stopping_) {
      while (!stopped_) clock_->WaitUntil(&lock, &cv_, absl::InfiniteFuture());
      return;
    }
    stopping_ = true;
    cv_.notify_all();  // workers now flush partial batches
    const absl::Time drain_deadline = clock_->Now() + std::max(drain_timeout, absl::ZeroDuration());
    while (!queue_.empty() || running_batches_ > 0 || reserved_faces_ > 0) {
      if (clock_->Now() >= drain_deadline) break;
      clock_->WaitUntil(&lock, &cv_, drain_deadline);
    }
    drain_over_ = true;
    // Whatever is still queued will not run. A job with faces in a running
    // batch completes (with this status) when that batch finishes.
    const absl::Status unavailable =
        absl::UnavailableError("batcher shut down before the job's faces ran");
    for (const std::shared_ptr<JobState>& state : queue_) {
      DropQueuedFacesLocked(state.get(), DropReason::kShutdown, unavailable);
      if (state->in_flight == 0) {
        state->completed = true;
        completions.push_back(state);
      }
    }
    queue_.clear();
    ReportDepthLocked();
    cv_.notify_all();  // workers exit once the queue is empty
  }
  Deliver(&completions);
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();
  std::lock_guard<std::mutex> lock(mu_);
  stopped_ = true;
  cv_.notify_all();
}

void Batcher::WorkerLoop(int instance) {
  Batch batch;
  batch.faces.reserve(options_.max_batch_size);
  batch.queue_waits.reserve(options_.max_batch_size);
  Completions completions;

  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    batch.Clear();
    absl::Time wake_at = absl::InfiniteFuture();
    const absl::Time now = clock_->Now();
    if (!FormBatchLocked(now, &batch, &wake_at)) {
      if (!batch.slices.empty()) {
        // Only drops: complete those jobs and look again.
        FinishBatchLocked(batch, absl::OkStatus(), now, absl::ZeroDuration(), &completions);
        batch.slices.clear();
        if (stopping_) cv_.notify_all();
        lock.unlock();
        Deliver(&completions);
        lock.lock();
        continue;
      }
      // Reservations made before Stop may still be submitted until the drain ends.
      if (stopping_ && queue_.empty() && (reserved_faces_ == 0 || drain_over_)) break;
      clock_->WaitUntil(&lock, &cv_, wake_at);
      continue;
    }

    const int size = static_cast<int>(batch.faces.size());
    ++running_batches_;
    running_[instance] = {now, size};
    lock.unlock();
    const absl::Time start = clock_->Now();
    const absl::Status status = runner_(instance, absl::MakeConstSpan(batch.faces));
    const absl::Time end = clock_->Now();
    const absl::Duration compute = end - start;
    lock.lock();
    if (status.ok()) batch_times_.Record(size, compute);
    last_progress_ = end;
    FinishBatchLocked(batch, status, end, compute, &completions);
    batch.slices.clear();  // holds jobs alive: release them with their completions
    --running_batches_;
    running_[instance] = {};
    if (stopping_) cv_.notify_all();  // the Stop caller watches the drain
    lock.unlock();

    if (observer_ != nullptr) {
      BatchStats stats;
      stats.instance = instance;
      stats.size = static_cast<int>(batch.faces.size());
      stats.queue_waits = batch.queue_waits;
      stats.compute_duration = compute;
      stats.status = status;
      observer_->OnBatch(stats);
    }
    Deliver(&completions);
    lock.lock();
  }
}

bool Batcher::FormBatchLocked(absl::Time now, Batch* batch, absl::Time* wake_at) {
  // Dead jobs at the head neither trigger nor hold back a batch.
  while (!queue_.empty() && DropIfDeadLocked(queue_.front(), now, batch)) queue_.pop_front();
  if (queue_.empty()) {
    ReportDepthLocked();
    *wake_at = absl::InfiniteFuture();
    return false;
  }
  const absl::Time due = queue_.front()->submit_time + options_.max_queue_delay;
  if (!stopping_ && queued_faces_ < options_.max_batch_size && now < due) {
    ReportDepthLocked();
    *wake_at = due;
    return false;
  }

  const int max_faces = options_.max_batch_size;
  while (!queue_.empty() && static_cast<int>(batch->faces.size()) < max_faces) {
    const std::shared_ptr<JobState>& state = queue_.front();
    if (DropIfDeadLocked(state, now, batch)) {
      queue_.pop_front();
      continue;
    }
    const int take = std::min(state->queued(), max_faces - static_cast<int>(batch->faces.size()));
    if (WouldBeLateLocked(*state, now, static_cast<int>(batch->faces.size()) + take)) {
      DropQueuedFacesLocked(state.get(), DropReason::kLate,
                            absl::DeadlineExceededError(
                                "the job's deadline would pass before its batch could finish"));
      batch->slices.push_back({state, 0});
      queue_.pop_front();
      continue;
    }
    const absl::Duration wait = now - state->submit_time;
    if (JobTiming* timing = state->job->timing; timing != nullptr) {
      timing->queue_wait = std::max(timing->queue_wait, wait);
    }
    for (int i = 0; i < take; ++i) {
      batch->faces.push_back(state->job->faces[state->next_face + i]);
      batch->queue_waits.push_back(wait);
    }
    state->next_face += take;
    state->in_flight += take;
    queued_faces_ -= take;
    batch->slices.push_back({state, take});
    if (state->queued() == 0) queue_.pop_front();
  }
  ReportDepthLocked();
  // Normally a worker that finds a batch due was woken for it already; waking
  // the others when more is due keeps every free instance busy regardless.
  if (!queue_.empty() && (stopping_ || queued_faces_ >= options_.max_batch_size ||
                          now >= queue_.front()->submit_time + options_.max_queue_delay)) {
    cv_.notify_all();
  }
  return !batch->faces.empty();
}

bool Batcher::DropIfDeadLocked(const std::shared_ptr<JobState>& state, absl::Time now,
                               Batch* batch) {
  const BatchJob& job = *state->job;
  // The deadline first: gRPC also cancels a call whose deadline has passed,
  // and the caller (and the metrics) should see why.
  if (now >= job.deadline) {
    DropQueuedFacesLocked(state.get(), DropReason::kDeadline,
                          absl::DeadlineExceededError("job's deadline passed while it was queued"));
  } else if (job.is_cancelled && job.is_cancelled()) {
    DropQueuedFacesLocked(state.get(), DropReason::kCancelled,
                          absl::CancelledError("job was cancelled before its faces ran"));
  } else {
    return false;
  }
  batch->slices.push_back({state, 0});
  return true;
}

void Batcher::DropQueuedFacesLocked(JobState* state, DropReason reason,
                                    const absl::Status& status) {
  const int dropped = state->queued();
  state->next_face = state->size();
  queued_faces_ -= dropped;
  if (state->status.ok()) state->status = status;
  if (observer_ != nullptr && dropped > 0) observer_->OnDrop(reason, dropped);
}

bool Batcher::WouldBeLateLocked(const JobState& state, absl::Time now, int batch_faces) const {
  return !state.may_be_late && batch_times_.known() &&
         now + batch_times_.Estimate(batch_faces) > state.job->deadline;
}

void Batcher::FinishBatchLocked(const Batch& batch, const absl::Status& status, absl::Time now,
                                absl::Duration compute, Completions* completions) {
  for (const Batch::Slice& slice : batch.slices) {
    JobState* state = slice.job.get();
    state->in_flight -= slice.faces;
    if (slice.faces > 0 && state->job->timing != nullptr) state->job->timing->compute += compute;
    if (!status.ok() && slice.faces > 0) {
      if (state->status.ok()) state->status = status;
      if (state->queued() > 0) {
        DropQueuedFacesLocked(state, DropReason::kFailed, status);
        queue_.erase(std::find(queue_.begin(), queue_.end(), slice.job));
      }
    }
    if (!state->completed && state->queued() == 0 && state->in_flight == 0) {
      if (state->status.ok() && now > state->job->deadline) {
        state->status = absl::DeadlineExceededError("the job finished after its deadline");
      }
      state->completed = true;
      completions->push_back(slice.job);
    }
  }
  ReportDepthLocked();
}

void Batcher::ReportDepthLocked() {
  if (queued_faces_ == last_reported_depth_) return;
  last_reported_depth_ = queued_faces_;
  if (observer_ != nullptr) observer_->OnQueueDepth(queued_faces_);
}

void Batcher::Deliver(Completions* completions) {
  for (const std::shared_ptr<JobState>& state : *completions) state->job->done(state->status);
  completions->clear();
}

}  // namespace fer
