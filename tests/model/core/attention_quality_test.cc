#include "model/core/attention_quality.h"

#include <vector>

#include "gtest/gtest.h"

namespace fer {
namespace {

TEST(AttentionQualityTest, CentralCellsOfASevenCellSideAreTwoToFive) {
  std::vector<int> central;
  for (int i = 0; i < 7; ++i) {
    if (IsCentralAttentionCell(i, 7)) central.push_back(i);
  }
  EXPECT_EQ(central, (std::vector<int>{2, 3, 4, 5}));
}

TEST(AttentionQualityTest, AUniformMapGivesTheCentralCellsShareOfTheGrid) {
  const std::vector<float> uniform(49, 0.5f);
  EXPECT_FLOAT_EQ(AttentionCenterShare(uniform, 7, 7), 16.0f / 49.0f);
}

TEST(AttentionQualityTest, AllOnTheCentreIsOneAndAllOnTheBorderIsZero) {
  std::vector<float> centre(49, 0.0f);
  std::vector<float> border(49, 0.0f);
  for (int r = 0; r < 7; ++r) {
    for (int c = 0; c < 7; ++c) {
      const bool central = IsCentralAttentionCell(r, 7) && IsCentralAttentionCell(c, 7);
      (central ? centre : border)[r * 7 + c] = 0.9f;
    }
  }
  EXPECT_FLOAT_EQ(AttentionCenterShare(centre, 7, 7), 1.0f);
  EXPECT_FLOAT_EQ(AttentionCenterShare(border, 7, 7), 0.0f);
}

TEST(AttentionQualityTest, AnEmptyZeroOrMisshapenMapGivesZero) {
  EXPECT_EQ(AttentionCenterShare({}, 0, 0), 0.0f);
  EXPECT_EQ(AttentionCenterShare(std::vector<float>(49, 0.0f), 7, 7), 0.0f);
  EXPECT_EQ(AttentionCenterShare(std::vector<float>(48, 1.0f), 7, 7), 0.0f);
}

}  // namespace
}  // namespace fer
