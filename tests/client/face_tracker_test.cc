// FaceTracker: IoU, greedy matching of boxes between frames, stable track
// ids, and the exponential moving average of each track's probabilities.
#include "client/face_tracker.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

namespace fer::client {
namespace {

using ::testing::ElementsAre;
using ::testing::FloatNear;
using ::testing::Pointwise;

constexpr float kTolerance = 1e-5f;

Scores Probs(std::vector<float> p) { return Scores::FromProbabilities(std::move(p)); }

TEST(IoUTest, IsOneForTheSameBoxZeroForDisjointAndSymmetric) {
  const FaceBox a{10, 10, 20, 20};
  EXPECT_DOUBLE_EQ(IoU(a, a), 1.0);
  EXPECT_DOUBLE_EQ(IoU(a, FaceBox{40, 40, 5, 5}), 0.0);
  EXPECT_DOUBLE_EQ(IoU(a, FaceBox{30, 10, 20, 20}), 0.0);  // touching edges only
  const FaceBox b{20, 10, 20, 20};                         // half overlapping
  EXPECT_DOUBLE_EQ(IoU(a, b), 200.0 / 600.0);
  EXPECT_DOUBLE_EQ(IoU(a, b), IoU(b, a));
}

TEST(IoUTest, IsZeroForEmptyBoxes) {
  EXPECT_DOUBLE_EQ(IoU(FaceBox{0, 0, 0, 0}, FaceBox{0, 0, 0, 0}), 0.0);
  EXPECT_DOUBLE_EQ(IoU(FaceBox{5, 5, 0, 10}, FaceBox{0, 0, 20, 20}), 0.0);
}

TEST(MatchByIoUTest, PairsEachBoxWithItsBestUnusedPartner) {
  const std::vector<FaceBox> previous = {{0, 0, 10, 10}, {100, 0, 10, 10}};
  const std::vector<FaceBox> current = {{101, 1, 10, 10}, {1, 0, 10, 10}, {300, 300, 10, 10}};
  EXPECT_THAT(MatchByIoU(previous, current, 0.3), ElementsAre(1, 0, -1));
}

TEST(MatchByIoUTest, GivesAContestedBoxToTheBetterOverlapOnly) {
  const std::vector<FaceBox> previous = {{0, 0, 10, 10}};
  const std::vector<FaceBox> current = {{4, 0, 10, 10}, {1, 0, 10, 10}};
  EXPECT_THAT(MatchByIoU(previous, current, 0.1), ElementsAre(-1, 0));
}

TEST(MatchByIoUTest, IgnoresOverlapsBelowTheThreshold) {
  const std::vector<FaceBox> previous = {{0, 0, 10, 10}};
  const std::vector<FaceBox> current = {{8, 0, 10, 10}};  // IoU 20/180
  EXPECT_THAT(MatchByIoU(previous, current, 0.3), ElementsAre(-1));
  EXPECT_THAT(MatchByIoU(previous, current, 0.1), ElementsAre(0));
  EXPECT_THAT(MatchByIoU({}, current, 0.3), ElementsAre(-1));
  EXPECT_TRUE(MatchByIoU(previous, {}, 0.3).empty());
}

TEST(FaceTrackerTest, AlphaOneIsNoSmoothing) {
  FaceTracker tracker(TrackerOptions{1.0, 0.3, 5});
  tracker.Update({{0, 0, 10, 10}}, {Probs({0.9f, 0.1f})});
  const auto out = tracker.Update({{0, 0, 10, 10}}, {Probs({0.2f, 0.8f})});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_THAT(out[0].smoothed.probabilities, Pointwise(FloatNear(kTolerance), {0.2f, 0.8f}));
  EXPECT_EQ(out[0].smoothed.top, 1);
}

TEST(FaceTrackerTest, AveragesExponentiallyAlongATrackAndKeepsTheSumAtOne) {
  FaceTracker tracker(TrackerOptions{0.25, 0.3, 5});
  const auto first = tracker.Update({{0, 0, 10, 10}}, {Probs({1.0f, 0.0f, 0.0f})});
  EXPECT_THAT(first[0].smoothed.probabilities, Pointwise(FloatNear(kTolerance), {1.f, 0.f, 0.f}));
  // Moved a little: same track. 0.25 * new + 0.75 * old.
  const auto second = tracker.Update({{1, 1, 10, 10}}, {Probs({0.0f, 1.0f, 0.0f})});
  EXPECT_EQ(second[0].track_id, first[0].track_id);
  EXPECT_THAT(second[0].smoothed.probabilities,
              Pointwise(FloatNear(kTolerance), {0.75f, 0.25f, 0.f}));
  EXPECT_EQ(second[0].smoothed.top, 0);  // one frame of "1" does not flip the label
  const auto third = tracker.Update({{2, 1, 10, 10}}, {Probs({0.0f, 1.0f, 0.0f})});
  EXPECT_THAT(third[0].smoothed.probabilities,
              Pointwise(FloatNear(kTolerance), {0.5625f, 0.4375f, 0.f}));
  const std::vector<float>& p = third[0].smoothed.probabilities;
  EXPECT_NEAR(std::accumulate(p.begin(), p.end(), 0.0f), 1.0f, kTolerance);
}

TEST(FaceTrackerTest, KeepsSeparateTracksForSeparateFaces) {
  FaceTracker tracker(TrackerOptions{0.5, 0.3, 5});
  const auto a =
      tracker.Update({{0, 0, 10, 10}, {100, 0, 10, 10}}, {Probs({1.f, 0.f}), Probs({0.f, 1.f})});
  ASSERT_EQ(a.size(), 2u);
  EXPECT_NE(a[0].track_id, a[1].track_id);
  // Listed in the other order: ids follow the boxes, not the positions.
  const auto b =
      tracker.Update({{100, 0, 10, 10}, {0, 0, 10, 10}}, {Probs({1.f, 0.f}), Probs({1.f, 0.f})});
  EXPECT_EQ(b[0].track_id, a[1].track_id);
  EXPECT_EQ(b[1].track_id, a[0].track_id);
  EXPECT_THAT(b[0].smoothed.probabilities, Pointwise(FloatNear(kTolerance), {0.5f, 0.5f}));
  EXPECT_THAT(b[1].smoothed.probabilities, Pointwise(FloatNear(kTolerance), {1.f, 0.f}));
}

TEST(FaceTrackerTest, ANewFaceStartsANewTrackFromItsOwnScores) {
  FaceTracker tracker(TrackerOptions{0.1, 0.3, 5});
  const auto a = tracker.Update({{0, 0, 10, 10}}, {Probs({1.f, 0.f})});
  const auto b = tracker.Update({{200, 200, 10, 10}}, {Probs({0.f, 1.f})});
  EXPECT_NE(b[0].track_id, a[0].track_id);
  EXPECT_THAT(b[0].smoothed.probabilities, Pointwise(FloatNear(kTolerance), {0.f, 1.f}));
}

TEST(FaceTrackerTest, SurvivesShortDetectorMissesAndForgetsLongOnes) {
  FaceTracker tracker(TrackerOptions{0.5, 0.3, 2});
  const auto a = tracker.Update({{0, 0, 10, 10}}, {Probs({1.f, 0.f})});
  tracker.Update({}, {});  // missed once
  tracker.SkipFrame();     // a failed frame counts as a miss too
  const auto b = tracker.Update({{0, 0, 10, 10}}, {Probs({0.f, 1.f})});
  EXPECT_EQ(b[0].track_id, a[0].track_id);
  EXPECT_THAT(b[0].smoothed.probabilities, Pointwise(FloatNear(kTolerance), {0.5f, 0.5f}));

  for (int i = 0; i < 3; ++i) tracker.Update({}, {});  // three misses > max_missed_frames
  EXPECT_EQ(tracker.track_count(), 0u);
  const auto c = tracker.Update({{0, 0, 10, 10}}, {Probs({0.f, 1.f})});
  EXPECT_NE(c[0].track_id, a[0].track_id);
  EXPECT_THAT(c[0].smoothed.probabilities, Pointwise(FloatNear(kTolerance), {0.f, 1.f}));
}

TEST(ScoresTest, TopIsTheFirstArgMax) {
  EXPECT_EQ(Probs({0.1f, 0.6f, 0.3f}).top, 1);
  EXPECT_EQ(Probs({0.4f, 0.2f, 0.4f}).top, 0);
  EXPECT_FLOAT_EQ(Probs({0.1f, 0.6f, 0.3f}).confidence(), 0.6f);
  EXPECT_FLOAT_EQ(Scores{}.confidence(), 0.0f);
}

}  // namespace
}  // namespace fer::client
