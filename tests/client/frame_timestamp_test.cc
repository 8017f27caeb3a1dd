// Frame timestamps of fer-client stream: the container's where it has one,
// the frame index and rate where it answers garbage (OpenCV's value for a
// still image is among the cases), 0 without a rate, and never backwards.
#include "client/frame_timestamp.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace fer::client {
namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
// What OpenCV 4.6's FFmpeg backend answers for CAP_PROP_POS_MSEC of a PNG.
constexpr double kStillImageGarbage = -3.68935e20;

TEST(FrameTimestampTest, KeepsTheContainersTimestampWhenItIsPlausible) {
  EXPECT_EQ(FrameTimestampMs(0.0, 0, 25, 0), 0.0);
  EXPECT_EQ(FrameTimestampMs(40.0, 1, 25, 0.0), 40.0);
  EXPECT_EQ(FrameTimestampMs(1234.5, 7, 30, 1200.0), 1234.5);
  // The container's clock wins over the index even when they disagree.
  EXPECT_EQ(FrameTimestampMs(5000.0, 1, 25, 0), 5000.0);
}

TEST(FrameTimestampTest, AStillImageGetsZero) {
  EXPECT_EQ(FrameTimestampMs(kStillImageGarbage, 0, 25, 0), 0.0);
  EXPECT_EQ(FrameTimestampMs(kStillImageGarbage, 0, 0, 0), 0.0);
}

TEST(FrameTimestampTest, GarbageIsReplacedByIndexOverRate) {
  for (double garbage :
       {kStillImageGarbage, -1.0, kNan, kInf, -kInf, 3.7e20, kMaxPlausibleTimestampMs * 2}) {
    EXPECT_DOUBLE_EQ(FrameTimestampMs(garbage, 3, 25, 0), 120.0) << garbage;
    EXPECT_DOUBLE_EQ(FrameTimestampMs(garbage, 10, 12.5, 0), 800.0) << garbage;
  }
}

TEST(FrameTimestampTest, WithoutAPlausibleRateGarbageGivesZero) {
  for (double fps : {0.0, -25.0, kNan, kInf, 1e6}) {
    EXPECT_EQ(FrameTimestampMs(kNan, 5, fps, 0), 0.0) << fps;
  }
}

TEST(FrameTimestampTest, NeverGoesBackwards) {
  // A container that jumps back repeats the previous timestamp.
  EXPECT_EQ(FrameTimestampMs(100.0, 5, 25, 200.0), 200.0);
  // So does an index-based value below a container's earlier one.
  EXPECT_EQ(FrameTimestampMs(kNan, 2, 25, 500.0), 500.0);
  EXPECT_EQ(FrameTimestampMs(kNan, 2, 0, 500.0), 500.0);
  // A previous value that was garbage itself is ignored.
  EXPECT_EQ(FrameTimestampMs(kNan, 0, 0, kStillImageGarbage), 0.0);
  EXPECT_EQ(FrameTimestampMs(kNan, 0, 0, kNan), 0.0);
}

TEST(FrameTimestampTest, AWholeGarbageSequenceIsFiniteAndOrdered) {
  double previous = 0;
  for (uint64_t index = 0; index < 100; ++index) {
    const double garbage = index % 3 == 0 ? kNan : (index % 3 == 1 ? kStillImageGarbage : -5.0);
    const double ms = FrameTimestampMs(garbage, index, 30, previous);
    ASSERT_TRUE(std::isfinite(ms));
    EXPECT_GE(ms, previous);
    EXPECT_NEAR(ms, index * 1000.0 / 30, 1e-9);
    previous = ms;
  }
}

}  // namespace
}  // namespace fer::client
