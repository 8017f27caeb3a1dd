// How long a batch of n faces takes on one model instance, learnt from the
// batches that ran. The batcher uses it to refuse or drop work whose deadline
// cannot be met, and to bound its queue by time rather than by a fixed count.
#ifndef FER_SERVER_BATCH_TIME_MODEL_H_
#define FER_SERVER_BATCH_TIME_MODEL_H_

#include <vector>

#include "absl/time/time.h"

namespace fer {

// Not thread-safe: the batcher guards it with its lock.
class BatchTimeModel {
 public:
  // Sizes 1..max_batch_size are tracked; max_batch_size >= 1.
  explicit BatchTimeModel(int max_batch_size);

  // One batch of n faces (1..max_batch_size) took duration. Each size keeps an
  // exponentially weighted mean (weight kNewWeight for the newest batch), so
  // the estimate follows a machine that slows down or speeds up.
  void Record(int n, absl::Duration duration);

  // Whether any batch has been recorded; until then Estimate returns zero.
  bool known() const { return known_; }

  // An estimate for n faces (n >= 0; zero faces take no time) that errs long:
  // the mean of size n if that size ran; otherwise from the nearest size m
  // that ran, t(m) when m > n (a batch is never faster for more faces) and
  // t(m) * n / m when m < n (nor slower per face than a smaller batch), taking
  // the larger of the two neighbours when both exist. Sizes above the largest
  // tracked one are estimated as whole batches plus a remainder.
  absl::Duration Estimate(int n) const;

  // The time to run `faces` queued faces on `instances` instances working in
  // parallel, in batches of at most max_batch_size.
  absl::Duration EstimateQueue(int faces, int instances) const;

  static constexpr double kNewWeight = 0.25;

 private:
  absl::Duration EstimateUpToMax(int n) const;

  const int max_batch_size_;
  std::vector<absl::Duration> mean_;  // index n: mean of batches of n faces
  std::vector<bool> seen_;
  bool known_ = false;
};

}  // namespace fer

#endif  // FER_SERVER_BATCH_TIME_MODEL_H_
