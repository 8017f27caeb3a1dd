#include "server/batcher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace fer {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

// Only keeps a broken batcher from hanging the suite: no test depends on how
// long anything takes, and every wait below ends on an event.
constexpr std::chrono::seconds kHangGuard(60);
// Outputs per face, as for the seven expression classes.
constexpr int kOutputsPerFace = 7;
// A max_queue_delay that never expires unless a test advances the clock by it.
constexpr absl::Duration kNever = absl::Hours(1);

// A clock that moves only when the test advances it. Every timed wait
// registers here, so a test can tell when the batcher has looked at the
// current time and found nothing to do before some deadline (AwaitSleeper):
// "nothing has happened yet" becomes checkable without sleeping.
class FakeClock : public Clock {
 public:
  absl::Time Now() override {
    std::lock_guard<std::mutex> lock(mu_);
    return now_;
  }

  void WaitUntil(std::unique_lock<std::mutex>* lock, std::condition_variable* cv,
                 absl::Time deadline) override {
    Sleeper self{lock->mutex(), cv, deadline, absl::InfinitePast()};
    {
      std::lock_guard<std::mutex> clock_lock(mu_);
      if (now_ >= deadline) return;
      self.since = now_;
      sleepers_.push_back(&self);
      changed_.notify_all();
    }
    // The caller's lock stays held from the check above until wait() releases
    // it, and Advance takes that lock before notifying: no wake-up is lost.
    cv->wait(*lock);
    std::lock_guard<std::mutex> clock_lock(mu_);
    sleepers_.erase(std::find(sleepers_.begin(), sleepers_.end(), &self));
  }

  // Moves time forward and wakes every sleeper, so that each one looks at the
  // new time. Requires: no batcher using this clock is being destroyed.
  void Advance(absl::Duration duration) {
    std::vector<std::pair<std::mutex*, std::condition_variable*>> to_wake;
    {
      std::lock_guard<std::mutex> lock(mu_);
      now_ += duration;
      for (const Sleeper* sleeper : sleepers_) to_wake.emplace_back(sleeper->mu, sleeper->cv);
      changed_.notify_all();
    }
    for (auto [mu, cv] : to_wake) {
      std::lock_guard<std::mutex> lock(*mu);
      cv->notify_all();
    }
  }

  // Blocks until some thread waits for `deadline`, having started to wait at
  // the current time: it has seen the state as of now and has nothing to do
  // before deadline. False if that never happens.
  [[nodiscard]] bool AwaitSleeper(absl::Time deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, kHangGuard, [&] {
      return std::any_of(sleepers_.begin(), sleepers_.end(), [&](const Sleeper* sleeper) {
        return sleeper->deadline == deadline && sleeper->since == now_;
      });
    });
  }

 private:
  struct Sleeper {
    std::mutex* mu;
    std::condition_variable* cv;
    absl::Time deadline;
    absl::Time since;
  };

  std::mutex mu_;
  std::condition_variable changed_;
  absl::Time now_ = absl::FromUnixSeconds(1'700'000'000);
  std::vector<Sleeper*> sleepers_;
};

// A face's pixels are its 4-byte id; the runner writes the id into all of the
// face's outputs, so a test can tell that every output went to its own face.
uint32_t FaceId(const FaceRef& face) {
  uint32_t id;
  std::memcpy(&id, face.pixels, sizeof(id));
  return id;
}

void WriteOutputs(absl::Span<const FaceRef> faces) {
  for (const FaceRef& face : faces) {
    std::fill(face.output, face.output + kOutputsPerFace, static_cast<float>(FaceId(face)));
  }
}

// A job with its own pixel and output memory, and what became of it.
struct TestJob {
  int serial = 0;
  std::vector<uint32_t> ids;
  std::vector<std::array<float, kOutputsPerFace>> outputs;
  std::shared_ptr<BatchJob> job;
  std::atomic<bool> cancelled{false};
  std::atomic<int> completions{0};
  absl::Status status;  // written by done

  bool OutputsMatchIds() const {
    for (size_t i = 0; i < ids.size(); ++i) {
      for (float value : outputs[i]) {
        if (value != static_cast<float>(ids[i])) return false;
      }
    }
    return true;
  }
};

// Makes jobs with fresh face ids and records their completions in order.
class JobLog {
 public:
  TestJob* Make(int faces, absl::Time deadline = absl::InfiniteFuture()) {
    auto owned = std::make_unique<TestJob>();
    TestJob* test_job = owned.get();
    std::lock_guard<std::mutex> lock(mu_);
    test_job->serial = static_cast<int>(jobs_.size());
    test_job->outputs.assign(faces, {});
    test_job->job = std::make_shared<BatchJob>();
    for (int i = 0; i < faces; ++i) test_job->ids.push_back(next_id_++);
    for (int i = 0; i < faces; ++i) {
      test_job->job->faces.push_back(
          {reinterpret_cast<const uint8_t*>(&test_job->ids[i]), test_job->outputs[i].data()});
    }
    test_job->job->deadline = deadline;
    test_job->job->is_cancelled = [test_job] { return test_job->cancelled.load(); };
    test_job->job->done = [this, test_job](absl::Status status) {
      std::lock_guard<std::mutex> lock(mu_);
      test_job->status = std::move(status);
      ++test_job->completions;
      order_.push_back(test_job->serial);
      cv_.notify_all();
    };
    jobs_.push_back(std::move(owned));
    return test_job;
  }

  [[nodiscard]] bool AwaitCompletions(size_t count) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kHangGuard, [&] { return order_.size() >= count; });
  }

  // Serials of completed jobs, in completion order.
  std::vector<int> order() {
    std::lock_guard<std::mutex> lock(mu_);
    return order_;
  }

  absl::Status status(const TestJob* job) {
    std::lock_guard<std::mutex> lock(mu_);
    return job->status;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<TestJob>> jobs_;
  std::vector<int> order_;
  uint32_t next_id_ = 1;
};

// A runner that records each batch (instance and face ids), writes outputs,
// and that a test can hold at the door, fail, or make wait for company.
class FakeRunner {
 public:
  struct Call {
    int instance;
    std::vector<uint32_t> ids;
  };

  absl::Status Run(int instance, absl::Span<const FaceRef> faces) {
    std::unique_lock<std::mutex> lock(mu_);
    const size_t index = calls_.size();
    Call call{instance, {}};
    for (const FaceRef& face : faces) call.ids.push_back(FaceId(face));
    calls_.push_back(std::move(call));
    ++inside_;
    max_inside_ = std::max(max_inside_, inside_);
    changed_.notify_all();
    // Held: wait for a permit. Barrier: wait until `barrier_` calls are inside at once.
    changed_.wait_for(lock, kHangGuard, [&] {
      if (inside_ >= barrier_) barrier_open_ = true;
      return (!held_ || permits_ > 0) && (barrier_ == 0 || barrier_open_);
    });
    if (held_ && permits_ > 0) --permits_;
    --inside_;
    const auto failure = failures_.find(index);
    const absl::Status status = failure == failures_.end() ? absl::OkStatus() : failure->second;
    FakeClock* clock = clock_;
    const absl::Duration compute = compute_;
    lock.unlock();
    WriteOutputs(faces);
    if (clock != nullptr) clock->Advance(compute);
    return status;
  }

  // Calls wait at the door until Allow or Release.
  void Hold() {
    std::lock_guard<std::mutex> lock(mu_);
    held_ = true;
  }
  void Allow(int calls) {
    std::lock_guard<std::mutex> lock(mu_);
    permits_ += calls;
    changed_.notify_all();
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    held_ = false;
    changed_.notify_all();
  }
  // No call returns until `calls` are inside together.
  void SetBarrier(int calls) {
    std::lock_guard<std::mutex> lock(mu_);
    barrier_ = calls;
  }
  // The index-th call (from 0) returns `status`.
  void Fail(size_t index, absl::Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    failures_[index] = std::move(status);
  }
  // Each call takes `compute` on `clock`.
  void TakeTime(FakeClock* clock, absl::Duration compute) {
    std::lock_guard<std::mutex> lock(mu_);
    clock_ = clock;
    compute_ = compute;
  }

  [[nodiscard]] bool AwaitCalls(size_t count) {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, kHangGuard, [&] { return calls_.size() >= count; });
  }

  std::vector<Call> calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  std::vector<std::vector<uint32_t>> batches() {
    std::vector<std::vector<uint32_t>> ids;
    for (const Call& call : calls()) ids.push_back(call.ids);
    return ids;
  }
  int max_inside() {
    std::lock_guard<std::mutex> lock(mu_);
    return max_inside_;
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  std::vector<Call> calls_;
  bool held_ = false;
  int permits_ = 0;
  int barrier_ = 0;
  bool barrier_open_ = false;
  int inside_ = 0;
  int max_inside_ = 0;
  std::map<size_t, absl::Status> failures_;
  FakeClock* clock_ = nullptr;
  absl::Duration compute_;
};

class RecordingObserver : public BatcherObserver {
 public:
  struct Batch {
    int instance;
    int size;
    std::vector<absl::Duration> queue_waits;
    absl::Duration compute;
    absl::Status status;
  };

  void OnBatch(const BatchStats& stats) override {
    std::lock_guard<std::mutex> lock(mu_);
    batches_.push_back(
        {stats.instance, stats.size,
         std::vector<absl::Duration>(stats.queue_waits.begin(), stats.queue_waits.end()),
         stats.compute_duration, stats.status});
  }
  void OnDrop(DropReason reason, int faces) override {
    std::lock_guard<std::mutex> lock(mu_);
    drops_[std::string(DropReasonName(reason))] += faces;
  }
  void OnQueueDepth(int queued_faces) override {
    std::lock_guard<std::mutex> lock(mu_);
    depths_.push_back(queued_faces);
  }

  std::vector<Batch> batches() {
    std::lock_guard<std::mutex> lock(mu_);
    return batches_;
  }
  std::map<std::string, int> drops() {
    std::lock_guard<std::mutex> lock(mu_);
    return drops_;
  }
  std::vector<int> depths() {
    std::lock_guard<std::mutex> lock(mu_);
    return depths_;
  }

 private:
  std::mutex mu_;
  std::vector<Batch> batches_;
  std::map<std::string, int> drops_;
  std::vector<int> depths_;
};

BatcherOptions Options(int max_batch_size, absl::Duration max_queue_delay = kNever,
                       int num_instances = 1, int max_queue_faces = 64) {
  BatcherOptions options;
  options.max_batch_size = max_batch_size;
  options.max_queue_delay = max_queue_delay;
  options.num_instances = num_instances;
  options.max_queue_faces = max_queue_faces;
  return options;
}

std::vector<uint32_t> IdsOf(std::initializer_list<const TestJob*> jobs) {
  std::vector<uint32_t> ids;
  for (const TestJob* job : jobs) ids.insert(ids.end(), job->ids.begin(), job->ids.end());
  return ids;
}

class BatcherTest : public ::testing::Test {
 protected:
  std::unique_ptr<Batcher> Make(const BatcherOptions& options) {
    auto batcher = Batcher::Create(
        options,
        [this](int instance, absl::Span<const FaceRef> faces) {
          return runner_.Run(instance, faces);
        },
        &observer_, &clock_);
    EXPECT_TRUE(batcher.ok()) << batcher.status();
    return batcher.ok() ? std::move(*batcher) : nullptr;
  }

  absl::Status Submit(Batcher& batcher, TestJob* job) { return batcher.Submit(job->job); }

  // Declared before any batcher a test makes, so they outlive it.
  FakeClock clock_;
  FakeRunner runner_;
  RecordingObserver observer_;
  JobLog jobs_;
  const absl::Time start_ = clock_.Now();
};

TEST(BatcherOptionsTest, CreateRejectsEachInvalidOptionByName) {
  const BatchRunner runner = [](int, absl::Span<const FaceRef>) { return absl::OkStatus(); };
  const std::vector<std::pair<BatcherOptions, std::string>> cases = {
      {Options(0), "max_batch_size"},
      {Options(4, absl::Milliseconds(-1)), "max_queue_delay"},
      {Options(4, absl::InfiniteDuration()), "max_queue_delay"},
      {Options(4, kNever, 1, /*max_queue_faces=*/3), "max_queue_faces"},
      {Options(4, kNever, 0), "num_instances"},
      {Options(4, kNever, kMaxBatcherInstances + 1), "num_instances"},
      {[] {
         BatcherOptions options = Options(4);
         options.max_queue_time = absl::ZeroDuration();
         return options;
       }(),
       "max_queue_time"},
  };
  for (const auto& [options, name] : cases) {
    const auto batcher = Batcher::Create(options, runner);
    ASSERT_FALSE(batcher.ok()) << name;
    EXPECT_EQ(batcher.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(batcher.status().message(), HasSubstr(name));
  }
  EXPECT_EQ(Batcher::Create(BatcherOptions(), nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Batcher::Create(BatcherOptions(), runner).ok());
}

TEST_F(BatcherTest, SubmitRejectsMalformedJobsWithoutCallingDone) {
  auto batcher = Make(Options(4));
  EXPECT_EQ(batcher->Submit(nullptr).code(), absl::StatusCode::kInvalidArgument);
  TestJob* no_faces = jobs_.Make(0);
  EXPECT_EQ(Submit(*batcher, no_faces).code(), absl::StatusCode::kInvalidArgument);
  TestJob* no_done = jobs_.Make(1);
  no_done->job->done = nullptr;
  EXPECT_EQ(Submit(*batcher, no_done).code(), absl::StatusCode::kInvalidArgument);
  batcher->Stop(absl::InfiniteDuration());
  EXPECT_THAT(jobs_.order(), IsEmpty());
  EXPECT_THAT(runner_.calls(), IsEmpty());
}

TEST_F(BatcherTest, RunsABatchAsSoonAsMaxBatchSizeFacesAreQueued) {
  auto batcher = Make(Options(4));
  TestJob* a = jobs_.Make(1);
  TestJob* b = jobs_.Make(2);
  ASSERT_TRUE(Submit(*batcher, a).ok());
  ASSERT_TRUE(Submit(*batcher, b).ok());
  // Three faces: the worker waits for the delay, not for a runner.
  ASSERT_TRUE(clock_.AwaitSleeper(start_ + kNever));
  EXPECT_THAT(runner_.calls(), IsEmpty());
  EXPECT_EQ(batcher->queued_faces(), 3);

  TestJob* c = jobs_.Make(1);
  ASSERT_TRUE(Submit(*batcher, c).ok());
  ASSERT_TRUE(jobs_.AwaitCompletions(3));
  EXPECT_THAT(runner_.batches(), ElementsAre(IdsOf({a, b, c})));
  for (TestJob* job : {a, b, c}) {
    EXPECT_TRUE(jobs_.status(job).ok()) << job->serial;
    EXPECT_TRUE(job->OutputsMatchIds()) << job->serial;
  }
  EXPECT_EQ(clock_.Now(), start_);  // no time passed: the size alone triggered it
}

TEST_F(BatcherTest, RunsAPartialBatchExactlyWhenTheOldestFaceHasWaitedMaxQueueDelay) {
  const absl::Duration delay = absl::Milliseconds(2);
  auto batcher = Make(Options(8, delay));
  TestJob* oldest = jobs_.Make(1);
  ASSERT_TRUE(Submit(*batcher, oldest).ok());
  ASSERT_TRUE(clock_.AwaitSleeper(start_ + delay));
  clock_.Advance(absl::Milliseconds(1));
  TestJob* newer = jobs_.Make(2);
  ASSERT_TRUE(Submit(*batcher, newer).ok());

  // One nanosecond short of the delay, the worker looks and goes back to sleep.
  clock_.Advance(delay - absl::Milliseconds(1) - absl::Nanoseconds(1));
  ASSERT_TRUE(clock_.AwaitSleeper(start_ + delay));
  EXPECT_THAT(runner_.calls(), IsEmpty());

  clock_.Advance(absl::Nanoseconds(1));
  ASSERT_TRUE(jobs_.AwaitCompletions(2));
  EXPECT_THAT(runner_.batches(), ElementsAre(IdsOf({oldest, newer})));
  EXPECT_THAT(jobs_.order(), ElementsAre(oldest->serial, newer->serial));
  const auto batches = observer_.batches();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_THAT(batches[0].queue_waits,
              ElementsAre(delay, absl::Milliseconds(1), absl::Milliseconds(1)));
}

TEST_F(BatcherTest, SplitsAJobAcrossBatchesAndCompletesItOnceAfterItsLastFace) {
  auto batcher = Make(Options(4));
  runner_.Hold();
  TestJob* big = jobs_.Make(6);
  TestJob* small = jobs_.Make(2);
  ASSERT_TRUE(Submit(*batcher, big).ok());
  ASSERT_TRUE(Submit(*batcher, small).ok());
  ASSERT_TRUE(runner_.AwaitCalls(1));
  runner_.Allow(1);
  // The first batch has finished (one instance), and `big` is still waiting
  // for its last two faces.
  ASSERT_TRUE(runner_.AwaitCalls(2));
  EXPECT_THAT(jobs_.order(), IsEmpty());
  runner_.Release();

  ASSERT_TRUE(jobs_.AwaitCompletions(2));
  const std::vector<uint32_t>& ids = big->ids;
  EXPECT_THAT(runner_.batches(),
              ElementsAre(ElementsAre(ids[0], ids[1], ids[2], ids[3]),
                          ElementsAre(ids[4], ids[5], small->ids[0], small->ids[1])));
  EXPECT_THAT(jobs_.order(), ElementsAre(big->serial, small->serial));
  EXPECT_TRUE(jobs_.status(big).ok());
  EXPECT_TRUE(big->OutputsMatchIds());
  EXPECT_TRUE(small->OutputsMatchIds());
}

TEST_F(BatcherTest, RejectsAJobThatWouldOverflowTheQueueWithResourceExhausted) {
  auto batcher = Make(Options(2, kNever, 1, /*max_queue_faces=*/4));
  runner_.Hold();
  TestJob* running = jobs_.Make(2);
  ASSERT_TRUE(Submit(*batcher, running).ok());
  ASSERT_TRUE(runner_.AwaitCalls(1));  // its faces left the queue

  TestJob* three = jobs_.Make(3);
  ASSERT_TRUE(Submit(*batcher, three).ok());
  TestJob* overflow = jobs_.Make(2);
  const absl::Status full = Submit(*batcher, overflow);
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.message(), HasSubstr("full"));
  EXPECT_EQ(batcher->queued_faces(), 3);  // nothing of it was queued
  TestJob* never_fits = jobs_.Make(5);
  EXPECT_EQ(Submit(*batcher, never_fits).code(), absl::StatusCode::kResourceExhausted);
  TestJob* fits = jobs_.Make(1);
  EXPECT_TRUE(Submit(*batcher, fits).ok());
  EXPECT_EQ(batcher->queued_faces(), 4);

  runner_.Release();
  batcher->Stop(absl::InfiniteDuration());
  EXPECT_THAT(jobs_.order(), UnorderedElementsAre(running->serial, three->serial, fits->serial));
  EXPECT_EQ(overflow->completions, 0);
  EXPECT_EQ(never_fits->completions, 0);
  for (int depth : observer_.depths()) EXPECT_LE(depth, 4);
}

TEST_F(BatcherTest, DropsACancelledJobBeforeComputeAndCompletesItCancelled) {
  auto batcher = Make(Options(4));
  runner_.Hold();
  TestJob* running = jobs_.Make(4);
  ASSERT_TRUE(Submit(*batcher, running).ok());
  ASSERT_TRUE(runner_.AwaitCalls(1));
  TestJob* cancelled = jobs_.Make(2);
  TestJob* kept1 = jobs_.Make(1);
  TestJob* kept2 = jobs_.Make(1);
  for (TestJob* job : {cancelled, kept1, kept2}) ASSERT_TRUE(Submit(*batcher, job).ok());
  cancelled->cancelled = true;
  runner_.Release();

  // The cancelled faces are dropped at the head of the queue before they can
  // trigger a batch: the two live faces then wait for the delay.
  ASSERT_TRUE(jobs_.AwaitCompletions(2));
  ASSERT_TRUE(clock_.AwaitSleeper(start_ + kNever));
  EXPECT_EQ(batcher->queued_faces(), 2);
  clock_.Advance(kNever);
  ASSERT_TRUE(jobs_.AwaitCompletions(4));
  EXPECT_THAT(runner_.batches(), ElementsAre(IdsOf({running}), IdsOf({kept1, kept2})));
  EXPECT_EQ(jobs_.status(cancelled).code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(jobs_.status(kept1).ok());
  EXPECT_TRUE(jobs_.status(kept2).ok());
  EXPECT_THAT(observer_.drops(), ElementsAre(Pair("cancelled", 2)));
  EXPECT_THAT(jobs_.order(),
              ElementsAre(running->serial, cancelled->serial, kept1->serial, kept2->serial));
}

TEST_F(BatcherTest, DropsAJobPastItsDeadlineBeforeComputeAndCompletesItDeadlineExceeded) {
  const absl::Duration delay = absl::Milliseconds(10);
  auto batcher = Make(Options(4, delay));
  TestJob* late = jobs_.Make(2, start_ + absl::Milliseconds(5));
  TestJob* on_time = jobs_.Make(1, start_ + absl::Seconds(1));
  ASSERT_TRUE(Submit(*batcher, late).ok());
  ASSERT_TRUE(Submit(*batcher, on_time).ok());
  clock_.Advance(delay);

  ASSERT_TRUE(jobs_.AwaitCompletions(2));
  EXPECT_THAT(runner_.batches(), ElementsAre(IdsOf({on_time})));
  EXPECT_EQ(jobs_.status(late).code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(jobs_.status(on_time).ok());
  EXPECT_THAT(observer_.drops(), ElementsAre(Pair("deadline", 2)));
  EXPECT_THAT(jobs_.order(), ElementsAre(late->serial, on_time->serial));
}

// gRPC cancels a call whose deadline passes; the job then reports the
// deadline, the reason the caller and the metrics need.
TEST_F(BatcherTest, AJobBothCancelledAndPastItsDeadlineIsDeadlineExceeded) {
  const absl::Duration delay = absl::Milliseconds(10);
  auto batcher = Make(Options(4, delay));
  TestJob* late = jobs_.Make(2, start_ + absl::Milliseconds(5));
  ASSERT_TRUE(Submit(*batcher, late).ok());
  late->cancelled = true;
  clock_.Advance(delay);
  ASSERT_TRUE(jobs_.AwaitCompletions(1));
  EXPECT_EQ(jobs_.status(late).code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(observer_.drops(), ElementsAre(Pair("deadline", 2)));
  EXPECT_THAT(runner_.calls(), IsEmpty());
}

TEST_F(BatcherTest, CompletesAnExpiredJobEvenWhenNoBatchRuns) {
  const absl::Duration delay = absl::Milliseconds(10);
  auto batcher = Make(Options(4, delay));
  TestJob* late = jobs_.Make(1, start_ + absl::Milliseconds(1));
  ASSERT_TRUE(Submit(*batcher, late).ok());
  clock_.Advance(delay);
  ASSERT_TRUE(jobs_.AwaitCompletions(1));
  EXPECT_EQ(jobs_.status(late).code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(runner_.calls(), IsEmpty());
  EXPECT_EQ(batcher->queued_faces(), 0);
}

TEST_F(BatcherTest, CompletesJobsInSubmissionOrderOnOneInstance) {
  auto batcher = Make(Options(4));
  const std::vector<int> sizes = {1, 3, 2, 1, 4, 2, 1, 1, 3, 1};
  std::vector<int> serials;
  std::vector<uint32_t> all_ids;
  for (int faces : sizes) {
    TestJob* job = jobs_.Make(faces);
    serials.push_back(job->serial);
    all_ids.insert(all_ids.end(), job->ids.begin(), job->ids.end());
    ASSERT_TRUE(Submit(*batcher, job).ok());
  }
  batcher->Stop(absl::InfiniteDuration());

  EXPECT_THAT(jobs_.order(), ElementsAreArray(serials));
  std::vector<uint32_t> run_ids;
  for (const auto& batch : runner_.batches()) {
    EXPECT_LE(batch.size(), 4u);
    run_ids.insert(run_ids.end(), batch.begin(), batch.end());
  }
  EXPECT_THAT(run_ids, ElementsAreArray(all_ids));  // faces taken in submission order
}

TEST_F(BatcherTest, RunsBatchesConcurrentlyOnEveryInstance) {
  constexpr int kInstances = 3;
  auto batcher = Make(Options(2, kNever, kInstances));
  runner_.SetBarrier(kInstances);  // no batch finishes until all instances run one
  std::vector<TestJob*> submitted;
  for (int i = 0; i < kInstances; ++i) {
    submitted.push_back(jobs_.Make(2));
    ASSERT_TRUE(Submit(*batcher, submitted.back()).ok());
  }
  ASSERT_TRUE(jobs_.AwaitCompletions(kInstances));
  EXPECT_EQ(runner_.max_inside(), kInstances);
  std::set<int> instances;
  for (const auto& call : runner_.calls()) instances.insert(call.instance);
  EXPECT_THAT(instances, ElementsAre(0, 1, 2));
  for (TestJob* job : submitted) {
    EXPECT_TRUE(jobs_.status(job).ok());
    EXPECT_TRUE(job->OutputsMatchIds());
  }
}

TEST_F(BatcherTest, ARunnerErrorFailsExactlyTheJobsInThatBatch) {
  auto batcher = Make(Options(3));
  runner_.Hold();
  runner_.Fail(0, absl::InternalError("device lost"));
  TestJob* a = jobs_.Make(2);
  TestJob* spanning = jobs_.Make(2);  // one face in the failing batch, one queued
  ASSERT_TRUE(Submit(*batcher, a).ok());
  ASSERT_TRUE(Submit(*batcher, spanning).ok());
  ASSERT_TRUE(runner_.AwaitCalls(1));
  TestJob* after = jobs_.Make(3);
  ASSERT_TRUE(Submit(*batcher, after).ok());
  runner_.Release();

  ASSERT_TRUE(jobs_.AwaitCompletions(3));
  EXPECT_THAT(runner_.batches(),
              ElementsAre(ElementsAre(a->ids[0], a->ids[1], spanning->ids[0]), IdsOf({after})));
  EXPECT_EQ(jobs_.status(a), absl::InternalError("device lost"));
  EXPECT_EQ(jobs_.status(spanning), absl::InternalError("device lost"));
  EXPECT_TRUE(jobs_.status(after).ok());
  EXPECT_TRUE(after->OutputsMatchIds());
  EXPECT_THAT(observer_.drops(), ElementsAre(Pair("failed", 1)));  // spanning's second face
  EXPECT_THAT(jobs_.order(), ElementsAre(a->serial, spanning->serial, after->serial));
  const auto batches = observer_.batches();
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(batches[0].status.code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(batches[1].status.ok());
}

TEST_F(BatcherTest, StopRunsEveryQueuedJobBeforeReturning) {
  auto batcher = Make(Options(8, kNever, 2));
  std::vector<TestJob*> submitted;
  for (int i = 0; i < 5; ++i) {
    submitted.push_back(jobs_.Make(1));
    ASSERT_TRUE(Submit(*batcher, submitted.back()).ok());
  }
  batcher->Stop(absl::InfiniteDuration());  // neither trigger fired: Stop flushes

  EXPECT_EQ(jobs_.order().size(), submitted.size());
  for (TestJob* job : submitted) {
    EXPECT_EQ(job->completions, 1);
    EXPECT_TRUE(jobs_.status(job).ok());
    EXPECT_TRUE(job->OutputsMatchIds());
  }
  EXPECT_EQ(batcher->queued_faces(), 0);
  EXPECT_EQ(clock_.Now(), start_);
}

TEST_F(BatcherTest, StopFailsJobsStillQueuedAtTheDrainTimeoutWithUnavailable) {
  const absl::Duration drain = absl::Milliseconds(10);
  auto batcher = Make(Options(2));
  runner_.Hold();
  TestJob* running = jobs_.Make(2);
  ASSERT_TRUE(Submit(*batcher, running).ok());
  ASSERT_TRUE(runner_.AwaitCalls(1));
  TestJob* queued1 = jobs_.Make(2);
  TestJob* queued2 = jobs_.Make(1);
  ASSERT_TRUE(Submit(*batcher, queued1).ok());
  ASSERT_TRUE(Submit(*batcher, queued2).ok());

  std::thread stopper([&] { batcher->Stop(drain); });
  ASSERT_TRUE(clock_.AwaitSleeper(start_ + drain));  // Stop is draining
  clock_.Advance(drain);
  // The queued jobs fail at once; the running batch is still waited for.
  ASSERT_TRUE(jobs_.AwaitCompletions(2));
  EXPECT_THAT(jobs_.order(), ElementsAre(queued1->serial, queued2->serial));
  EXPECT_EQ(jobs_.status(queued1).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(jobs_.status(queued2).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(running->completions, 0);
  runner_.Release();
  stopper.join();

  EXPECT_TRUE(jobs_.status(running).ok());
  EXPECT_TRUE(running->OutputsMatchIds());
  EXPECT_THAT(runner_.batches(), ElementsAre(IdsOf({running})));
  EXPECT_THAT(observer_.drops(), ElementsAre(Pair("shutdown", 3)));
}

TEST_F(BatcherTest, SubmitAfterStopReturnsUnavailable) {
  auto batcher = Make(Options(4));
  batcher->Stop(absl::ZeroDuration());
  batcher->Stop(absl::ZeroDuration());  // a second Stop is harmless
  TestJob* job = jobs_.Make(1);
  EXPECT_EQ(Submit(*batcher, job).code(), absl::StatusCode::kUnavailable);
  batcher.reset();
  EXPECT_EQ(job->completions, 0);
}

TEST_F(BatcherTest, DestroyingTheBatcherRunsEveryQueuedJob) {
  auto batcher = Make(Options(8));
  std::vector<TestJob*> submitted = {jobs_.Make(3), jobs_.Make(1), jobs_.Make(2)};
  for (TestJob* job : submitted) ASSERT_TRUE(Submit(*batcher, job).ok());
  batcher.reset();
  for (TestJob* job : submitted) {
    EXPECT_EQ(job->completions, 1);
    EXPECT_TRUE(jobs_.status(job).ok());
    EXPECT_TRUE(job->OutputsMatchIds());
  }
}

TEST_F(BatcherTest, ReportsBatchesQueueWaitsComputeTimeAndQueueDepthToTheObserver) {
  const absl::Duration compute = absl::Milliseconds(3);
  runner_.TakeTime(&clock_, compute);
  auto batcher = Make(Options(3));
  TestJob* a = jobs_.Make(2);
  ASSERT_TRUE(Submit(*batcher, a).ok());
  clock_.Advance(absl::Milliseconds(1));
  TestJob* b = jobs_.Make(1);
  ASSERT_TRUE(Submit(*batcher, b).ok());
  ASSERT_TRUE(jobs_.AwaitCompletions(2));

  const auto batches = observer_.batches();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].instance, 0);
  EXPECT_EQ(batches[0].size, 3);
  EXPECT_THAT(batches[0].queue_waits,
              ElementsAre(absl::Milliseconds(1), absl::Milliseconds(1), absl::ZeroDuration()));
  EXPECT_EQ(batches[0].compute, compute);
  EXPECT_TRUE(batches[0].status.ok());
  EXPECT_THAT(observer_.depths(), ElementsAre(2, 3, 0));
  EXPECT_THAT(observer_.drops(), IsEmpty());
}

// A job's timing (for the access log): its longest face wait, and the compute
// of every batch that held its faces, summed; complete when done is called.
TEST_F(BatcherTest, FillsInEachJobsLongestQueueWaitAndTheComputeOfItsBatches) {
  const absl::Duration compute = absl::Milliseconds(3);
  runner_.TakeTime(&clock_, compute);
  runner_.Hold();
  auto batcher = Make(Options(3));
  TestJob* a = jobs_.Make(5);  // 3 faces in the first batch, 2 in the second
  TestJob* b = jobs_.Make(1);  // in the second batch
  JobTiming a_timing, b_timing;
  a->job->timing = &a_timing;
  b->job->timing = &b_timing;
  ASSERT_TRUE(Submit(*batcher, a).ok());
  ASSERT_TRUE(runner_.AwaitCalls(1));  // the first batch formed at start_
  clock_.Advance(absl::Milliseconds(1));
  ASSERT_TRUE(Submit(*batcher, b).ok());
  runner_.Allow(2);  // the first batch ends at start_ + 4 ms, the second forms then
  ASSERT_TRUE(jobs_.AwaitCompletions(2));
  EXPECT_EQ(runner_.batches(),
            (std::vector<std::vector<uint32_t>>{{a->ids[0], a->ids[1], a->ids[2]},
                                                {a->ids[3], a->ids[4], b->ids[0]}}));
  EXPECT_EQ(a_timing.queue_wait, absl::Milliseconds(4));
  // The first batch ran 1 ms (advanced while it was held) plus its compute.
  EXPECT_EQ(a_timing.compute, absl::Milliseconds(1) + 2 * compute);
  EXPECT_EQ(b_timing.queue_wait, absl::Milliseconds(3));
  EXPECT_EQ(b_timing.compute, compute);
}

// Deadline-aware admission: once the batcher has measured batches, a job that
// cannot be answered in time is refused at once instead of queued and wasted.
TEST_F(BatcherTest, RefusesAJobWhoseDeadlineIsCloserThanTheModelNeeds) {
  auto batcher = Make(Options(4));
  batcher->RecordBatchTime(4, absl::Milliseconds(100));
  TestJob* passed = jobs_.Make(1, start_ - absl::Milliseconds(1));
  EXPECT_EQ(Submit(*batcher, passed).code(), absl::StatusCode::kDeadlineExceeded);
  runner_.Hold();
  TestJob* running = jobs_.Make(4);  // keeps the batcher busy
  ASSERT_TRUE(Submit(*batcher, running).ok());
  ASSERT_TRUE(runner_.AwaitCalls(1));
  TestJob* hopeless = jobs_.Make(4, start_ + absl::Milliseconds(50));
  const absl::Status status = Submit(*batcher, hopeless);
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  EXPECT_THAT(status.message(), HasSubstr("too close"));
  EXPECT_EQ(batcher->queued_faces(), 0);
  runner_.Release();
  batcher->Stop(absl::InfiniteDuration());
  EXPECT_THAT(jobs_.order(), ElementsAre(running->serial));
  EXPECT_THAT(runner_.batches(), ElementsAre(IdsOf({running})));
}

TEST_F(BatcherTest, AnIdleBatcherRunsAJobWhateverTheEstimateSoAStaleEstimateHeals) {
  auto batcher = Make(Options(4));
  batcher->RecordBatchTime(4, absl::Seconds(10));  // one freak slow batch
  runner_.TakeTime(&clock_, absl::Milliseconds(100));
  TestJob* job = jobs_.Make(4, start_ + absl::Seconds(1));
  ASSERT_TRUE(Submit(*batcher, job).ok());
  ASSERT_TRUE(jobs_.AwaitCompletions(1));
  EXPECT_TRUE(jobs_.status(job).ok());
  EXPECT_THAT(runner_.batches(), ElementsAre(IdsOf({job})));
}

TEST_F(BatcherTest, RefusesAJobThatTheQueueAheadWouldMakeLateWithResourceExhausted) {
  auto batcher = Make(Options(4));
  batcher->RecordBatchTime(4, absl::Milliseconds(100));
  // Two batches (200 ms) ahead: one running, one queued.
  runner_.Hold();
  ASSERT_TRUE(Submit(*batcher, jobs_.Make(4)).ok());
  ASSERT_TRUE(runner_.AwaitCalls(1));
  ASSERT_TRUE(Submit(*batcher, jobs_.Make(4)).ok());
  TestJob* late = jobs_.Make(4, start_ + absl::Milliseconds(250));
  const absl::Status status = Submit(*batcher, late);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_THAT(status.message(), HasSubstr("deadline"));
  TestJob* in_time = jobs_.Make(4, start_ + absl::Milliseconds(300));
  EXPECT_TRUE(Submit(*batcher, in_time).ok());
  EXPECT_EQ(batcher->queued_faces(), 8);
  runner_.Release();
  batcher->Stop(absl::InfiniteDuration());
  EXPECT_EQ(late->completions, 0);
  EXPECT_EQ(in_time->completions, 1);
}

// The queue is bounded by measured work, not only by a count of faces.
TEST_F(BatcherTest, BoundsTheQueueByMaxQueueTimeOfMeasuredWork) {
  BatcherOptions options = Options(16);  // no batch forms during the test
  options.max_queue_time = absl::Seconds(2);
  auto batcher = Make(options);
  batcher->RecordBatchTime(4, absl::Seconds(1));
  ASSERT_TRUE(Submit(*batcher, jobs_.Make(4)).ok());
  ASSERT_TRUE(Submit(*batcher, jobs_.Make(4)).ok());  // 2 s of work: the limit
  const absl::Status status = Submit(*batcher, jobs_.Make(1));
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_THAT(status.message(), HasSubstr("of work"));
  EXPECT_EQ(batcher->queued_faces(), 8);
}

TEST_F(BatcherTest, DropsAJobAtDispatchWhenItsBatchWouldFinishAfterItsDeadline) {
  auto batcher = Make(Options(8, absl::Milliseconds(10)));
  batcher->RecordBatchTime(2, absl::Milliseconds(100));
  // doomed is admitted: the 4 faces queued need about 200 ms, and 250 ms
  // are left. Then they wait 60 ms for the delay trigger (the test's clock),
  // leaving 190 ms: too little.
  TestJob* fine = jobs_.Make(2, start_ + absl::Seconds(5));
  TestJob* doomed = jobs_.Make(2, start_ + absl::Milliseconds(250));
  ASSERT_TRUE(Submit(*batcher, fine).ok());
  ASSERT_TRUE(Submit(*batcher, doomed).ok());
  clock_.Advance(absl::Milliseconds(60));
  ASSERT_TRUE(jobs_.AwaitCompletions(2));
  EXPECT_EQ(jobs_.status(doomed).code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(jobs_.status(fine).ok());
  EXPECT_THAT(runner_.batches(), ElementsAre(IdsOf({fine})));
  EXPECT_THAT(observer_.drops(), ElementsAre(Pair("late", 2)));
  EXPECT_THAT(jobs_.order(), ElementsAre(fine->serial, doomed->serial));
}

TEST_F(BatcherTest, AJobAnsweredAfterItsDeadlineIsDeadlineExceededNotOk) {
  auto batcher = Make(Options(2));
  runner_.TakeTime(&clock_, absl::Milliseconds(500));  // unknown to the batcher until it runs
  TestJob* job = jobs_.Make(2, start_ + absl::Milliseconds(200));
  ASSERT_TRUE(Submit(*batcher, job).ok());
  ASSERT_TRUE(jobs_.AwaitCompletions(1));
  EXPECT_EQ(runner_.calls().size(), 1u);
  EXPECT_EQ(jobs_.status(job).code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(jobs_.status(job).message(), HasSubstr("after its deadline"));
}

TEST_F(BatcherTest, ReservedFacesCountAgainstCapacityUntilSubmittedOrUnreserved) {
  auto batcher = Make(Options(8, kNever, 1, /*max_queue_faces=*/8));
  ASSERT_TRUE(batcher->Reserve(6, absl::InfiniteFuture()).ok());
  EXPECT_EQ(batcher->Reserve(3, absl::InfiniteFuture()).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(batcher->Reserve(9, absl::InfiniteFuture()).code(), absl::StatusCode::kInvalidArgument);
  batcher->Unreserve(2);  // as if a 2-face part had failed to decode
  ASSERT_TRUE(batcher->Reserve(4, absl::InfiniteFuture()).ok());
  TestJob* first = jobs_.Make(4);
  TestJob* second = jobs_.Make(4);
  ASSERT_TRUE(batcher->SubmitReserved(first->job).ok());
  EXPECT_EQ(batcher->Reserve(1, absl::InfiniteFuture()).code(),
            absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(batcher->SubmitReserved(second->job).ok());
  ASSERT_TRUE(jobs_.AwaitCompletions(2));
  EXPECT_TRUE(jobs_.status(first).ok());
  EXPECT_TRUE(jobs_.status(second).ok());
}

TEST_F(BatcherTest, StopWaitsForReservationsAndRunsWhatIsSubmittedDuringTheDrain) {
  auto batcher = Make(Options(4));
  ASSERT_TRUE(batcher->Reserve(2, absl::InfiniteFuture()).ok());
  std::thread stopper([&] { batcher->Stop(absl::InfiniteDuration()); });
  // Stop has begun once new work is refused.
  while (batcher->Reserve(1, absl::InfiniteFuture()).ok()) batcher->Unreserve(1);
  EXPECT_EQ(batcher->Submit(jobs_.Make(1)->job).code(), absl::StatusCode::kUnavailable);
  TestJob* reserved = jobs_.Make(2);
  ASSERT_TRUE(batcher->SubmitReserved(reserved->job).ok());
  stopper.join();
  EXPECT_EQ(reserved->completions, 1);
  EXPECT_TRUE(jobs_.status(reserved).ok());
}

TEST_F(BatcherTest, AReservationSubmittedAfterTheDrainTimeoutIsUnavailable) {
  auto batcher = Make(Options(4));
  ASSERT_TRUE(batcher->Reserve(2, absl::InfiniteFuture()).ok());
  std::thread stopper([&] { batcher->Stop(absl::Milliseconds(100)); });
  ASSERT_TRUE(clock_.AwaitSleeper(start_ + absl::Milliseconds(100)));
  clock_.Advance(absl::Milliseconds(100));
  stopper.join();
  TestJob* reserved = jobs_.Make(2);
  EXPECT_EQ(batcher->SubmitReserved(reserved->job).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(reserved->completions, 0);
}

TEST_F(BatcherTest, IsStalledOnlyWhenQueuedWorkMakesNoProgressForTheTimeout) {
  auto batcher = Make(Options(1));
  const absl::Duration timeout = absl::Seconds(30);
  EXPECT_FALSE(batcher->Stalled(timeout));
  clock_.Advance(absl::Minutes(5));
  EXPECT_FALSE(batcher->Stalled(timeout)) << "idle is not stalled";
  runner_.Hold();
  ASSERT_TRUE(Submit(*batcher, jobs_.Make(1)).ok());
  ASSERT_TRUE(Submit(*batcher, jobs_.Make(1)).ok());
  ASSERT_TRUE(runner_.AwaitCalls(1));
  clock_.Advance(timeout);
  EXPECT_FALSE(batcher->Stalled(timeout));
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(batcher->Stalled(timeout)) << "a wedged runner with work queued";
  runner_.Allow(1);
  ASSERT_TRUE(runner_.AwaitCalls(2));
  EXPECT_FALSE(batcher->Stalled(timeout)) << "a batch finished just now";
  runner_.Release();
  ASSERT_TRUE(jobs_.AwaitCompletions(2));
}

TEST(DropReasonTest, NamesAreTheMetricLabels) {
  EXPECT_EQ(DropReasonName(DropReason::kCancelled), "cancelled");
  EXPECT_EQ(DropReasonName(DropReason::kDeadline), "deadline");
  EXPECT_EQ(DropReasonName(DropReason::kLate), "late");
  EXPECT_EQ(DropReasonName(DropReason::kFailed), "failed");
  EXPECT_EQ(DropReasonName(DropReason::kShutdown), "shutdown");
}

// Many submitters, several instances, random sizes, deadlines, cancellations,
// runner failures, a full queue and a Stop in the middle (with the drain
// timeout of the parameter), on the real clock. Whatever the interleaving,
// each accepted job completes exactly once before Stop returns, rejected jobs
// never complete, and every face is either computed or counted as dropped.
// Nothing here asserts on timing.
class BatcherStressTest : public ::testing::TestWithParam<absl::Duration> {};

TEST_P(BatcherStressTest, EveryAcceptedJobCompletesExactlyOnceUnderConcurrentLoad) {
  constexpr int kSubmitters = 6;
  constexpr int kJobsPerSubmitter = 300;
  constexpr int kMaxFacesPerJob = 6;
  constexpr int kFailEvery = 13;  // runner calls
  constexpr std::chrono::microseconds kRunnerWork(50);

  std::atomic<int> runner_calls{0};
  std::atomic<int> faces_run{0};
  const BatchRunner runner = [&](int, absl::Span<const FaceRef> faces) {
    faces_run += static_cast<int>(faces.size());
    WriteOutputs(faces);
    // Lets the queue build up, so that it fills and Stop finds work queued.
    std::this_thread::sleep_for(kRunnerWork);
    if (++runner_calls % kFailEvery == 0) return absl::InternalError("injected");
    return absl::OkStatus();
  };
  RecordingObserver observer;
  auto created = Batcher::Create(Options(8, absl::Microseconds(100), 3, /*max_queue_faces=*/48),
                                 runner, &observer);
  ASSERT_TRUE(created.ok()) << created.status();
  std::unique_ptr<Batcher> batcher = std::move(*created);

  JobLog log;
  std::atomic<bool> stop_returned{false};
  std::atomic<int> late_completions{0};
  std::atomic<int> submitted{0};
  std::vector<std::vector<std::pair<TestJob*, bool>>> results(kSubmitters);  // job, accepted
  std::vector<std::thread> submitters;
  for (int s = 0; s < kSubmitters; ++s) {
    submitters.emplace_back([&, s] {
      std::mt19937 random(s + 1);
      for (int j = 0; j < kJobsPerSubmitter; ++j) {
        const int faces = std::uniform_int_distribution<int>(1, kMaxFacesPerJob)(random);
        const int fate = std::uniform_int_distribution<int>(0, 7)(random);
        absl::Time deadline = absl::InfiniteFuture();
        if (fate == 0) deadline = absl::Now() - absl::Milliseconds(1);
        if (fate == 1) deadline = absl::Now() + absl::Microseconds(random() % 500);
        TestJob* job = log.Make(faces, deadline);
        auto done = std::move(job->job->done);
        job->job->done = [&, done = std::move(done)](absl::Status status) {
          if (stop_returned) ++late_completions;
          done(std::move(status));
        };
        if (fate == 2) job->cancelled = true;
        const absl::Status status = batcher->Submit(job->job);
        if (fate == 3) job->cancelled = true;
        results[s].push_back({job, status.ok()});
        if (!status.ok()) {
          EXPECT_TRUE(absl::IsResourceExhausted(status) || absl::IsUnavailable(status) ||
                      absl::IsDeadlineExceeded(status))
              << status;
          std::this_thread::yield();
        }
        ++submitted;
      }
    });
  }
  while (submitted < kSubmitters * kJobsPerSubmitter / 2) std::this_thread::yield();
  batcher->Stop(GetParam());
  stop_returned = true;
  for (std::thread& submitter : submitters) submitter.join();

  int accepted_faces = 0;
  int accepted_jobs = 0;
  for (const auto& submitter_results : results) {
    for (const auto& [job, accepted] : submitter_results) {
      if (!accepted) {
        EXPECT_EQ(job->completions, 0);
        continue;
      }
      ++accepted_jobs;
      accepted_faces += static_cast<int>(job->ids.size());
      ASSERT_EQ(job->completions, 1) << "job " << job->serial;
      const absl::Status status = log.status(job);
      switch (status.code()) {
        case absl::StatusCode::kOk:
          EXPECT_TRUE(job->OutputsMatchIds()) << "job " << job->serial;
          break;
        case absl::StatusCode::kCancelled:
          EXPECT_TRUE(job->cancelled);
          break;
        case absl::StatusCode::kDeadlineExceeded:
          EXPECT_NE(job->job->deadline, absl::InfiniteFuture());
          break;
        case absl::StatusCode::kInternal:
        case absl::StatusCode::kUnavailable:
          break;
        default:
          ADD_FAILURE() << "unexpected " << status;
      }
    }
  }
  EXPECT_GT(accepted_jobs, 0);
  EXPECT_EQ(late_completions, 0);
  EXPECT_EQ(log.order().size(), static_cast<size_t>(accepted_jobs));
  int dropped_faces = 0;
  for (const auto& [reason, faces] : observer.drops()) dropped_faces += faces;
  EXPECT_EQ(faces_run + dropped_faces, accepted_faces);
  int observed_faces = 0;
  for (const auto& batch : observer.batches()) observed_faces += batch.size;
  EXPECT_EQ(observed_faces, faces_run);
  EXPECT_EQ(batcher->queued_faces(), 0);
}

std::string DrainName(const ::testing::TestParamInfo<absl::Duration>& info) {
  if (info.param == absl::ZeroDuration()) return "NoDrain";
  if (info.param == absl::InfiniteDuration()) return "FullDrain";
  return "ShortDrain";
}

INSTANTIATE_TEST_SUITE_P(DrainTimeouts, BatcherStressTest,
                         ::testing::Values(absl::ZeroDuration(), absl::Milliseconds(2),
                                           absl::InfiniteDuration()),
                         DrainName);

TEST(ValidateBatcherOptionsTest, RefusesEachInvalidOptionByNameAsCreateDoes) {
  const BatchRunner runner = [](int, absl::Span<const FaceRef>) { return absl::OkStatus(); };
  const std::vector<std::pair<BatcherOptions, std::string>> cases = {
      {Options(0), "BatcherOptions.max_batch_size"},
      {Options(4, absl::Milliseconds(-1)), "BatcherOptions.max_queue_delay"},
      {Options(4, absl::InfiniteDuration()), "BatcherOptions.max_queue_delay"},
      {Options(4, kNever, 1, /*max_queue_faces=*/3), "BatcherOptions.max_queue_faces"},
      {Options(4, kNever, 0), "BatcherOptions.num_instances"},
      {Options(4, kNever, kMaxBatcherInstances + 1), "BatcherOptions.num_instances"},
      {[] {
         BatcherOptions options = Options(4);
         options.max_queue_time = absl::ZeroDuration();
         return options;
       }(),
       "BatcherOptions.max_queue_time"},
  };
  for (const auto& [options, name] : cases) {
    const absl::Status status = ValidateBatcherOptions(options);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(status.message(), HasSubstr(name));
    // Create refuses the same options with the same status.
    EXPECT_EQ(Batcher::Create(options, runner).status(), status) << name;
  }
}

TEST(ValidateBatcherOptionsTest, AcceptsTheDefaultsAndTheBoundsOfEachRange) {
  EXPECT_TRUE(ValidateBatcherOptions(BatcherOptions()).ok());
  // The extremes: a batch of one, no delay, a queue of exactly one batch, an
  // unbounded queue time, the most instances.
  BatcherOptions options = Options(1, absl::ZeroDuration(), kMaxBatcherInstances,
                                   /*max_queue_faces=*/1);
  options.max_queue_time = absl::InfiniteDuration();
  EXPECT_TRUE(ValidateBatcherOptions(options).ok());
}

}  // namespace
}  // namespace fer
