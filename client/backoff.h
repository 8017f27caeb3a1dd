// Exponential backoff with jitter, for a client worker that was refused
// (UNAVAILABLE: the server is gone or draining; RESOURCE_EXHAUSTED: its queue
// is full). Each refusal in a row doubles the wait up to a cap; the first
// answer that is not a refusal starts again from the initial wait. Jitter
// spreads workers that were refused together so that they do not come back
// in step. No clock and no threads: the caller waits the returned duration.
#ifndef FER_CLIENT_BACKOFF_H_
#define FER_CLIENT_BACKOFF_H_

#include <cstdint>
#include <random>

#include "absl/time/time.h"

namespace fer::client {

struct BackoffPolicy {
  absl::Duration initial = absl::Milliseconds(50);
  absl::Duration max = absl::Seconds(2);
  double multiplier = 2.0;
  // Each wait is drawn uniformly from [(1 - jitter) * w, w], w the current
  // step: at 0.5 a worker at the cap calls between once per 1 s and 2 s.
  double jitter = 0.5;
};

class Backoff {
 public:
  Backoff(const BackoffPolicy& policy, uint32_t seed);

  // After a refusal: how long to wait before the next call. Never longer
  // than policy.max, never shorter than (1 - jitter) * policy.initial.
  absl::Duration Next();
  // After an answer that was not a refusal.
  void Reset() { step_ = policy_.initial; }

 private:
  BackoffPolicy policy_;
  absl::Duration step_;
  std::minstd_rand random_;
};

// The codes after which a client should wait before calling again.
bool IsRefusal(int grpc_code);  // UNAVAILABLE or RESOURCE_EXHAUSTED

}  // namespace fer::client

#endif  // FER_CLIENT_BACKOFF_H_
