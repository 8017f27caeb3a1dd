#include "server/batch_time_model.h"

#include <algorithm>

namespace fer {

BatchTimeModel::BatchTimeModel(int max_batch_size)
    : max_batch_size_(std::max(1, max_batch_size)),
      mean_(max_batch_size_ + 1, absl::ZeroDuration()),
      seen_(max_batch_size_ + 1, false) {}

void BatchTimeModel::Record(int n, absl::Duration duration) {
  if (n < 1 || n > max_batch_size_ || duration < absl::ZeroDuration()) return;
  if (seen_[n]) {
    mean_[n] = mean_[n] * (1 - kNewWeight) + duration * kNewWeight;
  } else {
    mean_[n] = duration;
    seen_[n] = true;
  }
  known_ = true;
}

absl::Duration BatchTimeModel::EstimateUpToMax(int n) const {
  if (n <= 0 || !known_) return absl::ZeroDuration();
  if (seen_[n]) return mean_[n];
  absl::Duration estimate = absl::ZeroDuration();
  for (int m = n + 1; m <= max_batch_size_; ++m) {  // nearest larger size
    if (seen_[m]) {
      estimate = mean_[m];
      break;
    }
  }
  for (int m = n - 1; m >= 1; --m) {  // nearest smaller size, scaled up
    if (seen_[m]) {
      estimate = std::max(estimate, mean_[m] * n / m);
      break;
    }
  }
  return estimate;
}

absl::Duration BatchTimeModel::Estimate(int n) const {
  if (n <= max_batch_size_) return EstimateUpToMax(n);
  return EstimateUpToMax(max_batch_size_) * (n / max_batch_size_) +
         EstimateUpToMax(n % max_batch_size_);
}

absl::Duration BatchTimeModel::EstimateQueue(int faces, int instances) const {
  return Estimate(faces) / std::max(1, instances);
}

}  // namespace fer
