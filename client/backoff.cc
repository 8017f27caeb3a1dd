#include "client/backoff.h"

#include <algorithm>

#include "absl/status/status.h"

namespace fer::client {

Backoff::Backoff(const BackoffPolicy& policy, uint32_t seed)
    : policy_(policy), step_(policy.initial), random_(seed) {}

absl::Duration Backoff::Next() {
  const double jitter = std::clamp(policy_.jitter, 0.0, 1.0);
  std::uniform_real_distribution<double> fraction(1.0 - jitter, 1.0);
  const absl::Duration wait = std::min(step_, policy_.max) * fraction(random_);
  step_ = std::min(step_ * std::max(policy_.multiplier, 1.0), policy_.max);
  return wait;
}

bool IsRefusal(int grpc_code) {
  // gRPC and Abseil share the numbering of status codes.
  const auto code = static_cast<absl::StatusCode>(grpc_code);
  return code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kResourceExhausted;
}

}  // namespace fer::client
