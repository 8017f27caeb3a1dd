// The bench's backoff: waits that grow by the multiplier up to the cap, stay
// inside their jitter band, and start again after an answer.
#include "client/backoff.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "absl/status/status.h"

namespace fer::client {
namespace {

constexpr BackoffPolicy kPolicy{absl::Milliseconds(50), absl::Seconds(2), 2.0, 0.5};

TEST(BackoffTest, WaitsDoubleWithinTheirJitterBandUpToTheCap) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    Backoff backoff(kPolicy, seed);
    absl::Duration step = kPolicy.initial;
    for (int refusal = 0; refusal < 12; ++refusal) {
      const absl::Duration wait = backoff.Next();
      EXPECT_GE(wait, step / 2) << "seed " << seed << " refusal " << refusal;
      EXPECT_LE(wait, step) << "seed " << seed << " refusal " << refusal;
      step = std::min(step * 2, kPolicy.max);
    }
  }
}

TEST(BackoffTest, TheCapHoldsAfterManyRefusals) {
  Backoff backoff(kPolicy, 7);
  absl::Duration total;
  for (int refusal = 0; refusal < 100; ++refusal) {
    const absl::Duration wait = backoff.Next();
    EXPECT_LE(wait, kPolicy.max);
    total += wait;
  }
  // 100 refusals in a row span at least ~1 s each once at the cap: a worker
  // facing a server that is gone calls about once a second, not in a loop.
  EXPECT_GE(total, absl::Seconds(90));
}

TEST(BackoffTest, ResetStartsAgainFromTheInitialWait) {
  Backoff backoff(kPolicy, 3);
  for (int i = 0; i < 10; ++i) backoff.Next();
  EXPECT_GE(backoff.Next(), kPolicy.max / 2);
  backoff.Reset();
  EXPECT_LE(backoff.Next(), kPolicy.initial);
}

TEST(BackoffTest, JitterSpreadsWorkersRefusedTogether) {
  Backoff a(kPolicy, 1);
  Backoff b(kPolicy, 2);
  int differ = 0;
  for (int i = 0; i < 10; ++i) differ += a.Next() != b.Next() ? 1 : 0;
  EXPECT_GT(differ, 5);
}

TEST(BackoffTest, OnlyUnavailableAndResourceExhaustedAreRefusals) {
  EXPECT_TRUE(IsRefusal(static_cast<int>(absl::StatusCode::kUnavailable)));
  EXPECT_TRUE(IsRefusal(static_cast<int>(absl::StatusCode::kResourceExhausted)));
  for (absl::StatusCode code : {absl::StatusCode::kOk, absl::StatusCode::kDeadlineExceeded,
                                absl::StatusCode::kInvalidArgument, absl::StatusCode::kCancelled,
                                absl::StatusCode::kInternal}) {
    EXPECT_FALSE(IsRefusal(static_cast<int>(code))) << absl::StatusCodeToString(code);
  }
}

}  // namespace
}  // namespace fer::client
