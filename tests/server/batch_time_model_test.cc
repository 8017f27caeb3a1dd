#include "server/batch_time_model.h"

#include <gtest/gtest.h>

#include "absl/time/time.h"

namespace fer {
namespace {

using absl::Milliseconds;

TEST(BatchTimeModelTest, KnowsNothingUntilABatchIsRecorded) {
  BatchTimeModel model(8);
  EXPECT_FALSE(model.known());
  EXPECT_EQ(model.Estimate(4), absl::ZeroDuration());
  model.Record(0, Milliseconds(5));   // out of range: ignored
  model.Record(9, Milliseconds(5));   // out of range: ignored
  model.Record(2, Milliseconds(-1));  // negative: ignored
  EXPECT_FALSE(model.known());
  model.Record(4, Milliseconds(40));
  EXPECT_TRUE(model.known());
  EXPECT_EQ(model.Estimate(4), Milliseconds(40));
  EXPECT_EQ(model.Estimate(0), absl::ZeroDuration());
}

TEST(BatchTimeModelTest, FollowsChangesWithAnExponentiallyWeightedMean) {
  BatchTimeModel model(8);
  model.Record(4, Milliseconds(100));
  model.Record(4, Milliseconds(200));
  EXPECT_EQ(model.Estimate(4), Milliseconds(100) * (1 - BatchTimeModel::kNewWeight) +
                                   Milliseconds(200) * BatchTimeModel::kNewWeight);
}

TEST(BatchTimeModelTest, EstimatesUnseenSizesOnTheLongSide) {
  BatchTimeModel model(8);
  model.Record(2, Milliseconds(20));
  model.Record(6, Milliseconds(30));
  // Smaller than every seen size: the next larger one's time.
  EXPECT_EQ(model.Estimate(1), Milliseconds(20));
  // Between two: the larger of t(6) and t(2) scaled by 4/2.
  EXPECT_EQ(model.Estimate(4), Milliseconds(40));
  EXPECT_EQ(model.Estimate(5), Milliseconds(50));
  // Above every seen size: scaled per face from the nearest smaller one.
  EXPECT_EQ(model.Estimate(8), Milliseconds(40));
  // More than a batch: whole batches plus the remainder.
  EXPECT_EQ(model.Estimate(19), Milliseconds(40) * 2 + Milliseconds(30));
  // Spread over instances.
  EXPECT_EQ(model.EstimateQueue(16, 2), Milliseconds(40));
}

}  // namespace
}  // namespace fer
