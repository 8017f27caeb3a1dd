// The attention grid's upsampling follows the documented alignment (cell
// (r, c) centred on crop pixel (16 r, 16 c)), and the grid refuses faces and
// maps of the wrong size. Built only with OpenCV, like the grid.
#include "model/training/attention_grid.h"

#include <gtest/gtest.h>

#include <vector>

#include "tests/support/temp_dir.h"

namespace fer {
namespace {

// 7 x 7 map whose cell (r, c) holds 10 r + c.
std::vector<float> Ramp() {
  std::vector<float> map(49);
  for (int r = 0; r < 7; ++r) {
    for (int c = 0; c < 7; ++c) map[r * 7 + c] = 10.0f * r + c;
  }
  return map;
}

TEST(AttentionGridTest, CellCentresLandOnEverySixteenthCropPixel) {
  const std::vector<float> up = UpsampleAttention(Ramp(), 7, 7, 112, 112);
  ASSERT_EQ(up.size(), 112u * 112);
  for (int r = 0; r < 7; ++r) {
    for (int c = 0; c < 7; ++c) EXPECT_FLOAT_EQ(up[(16 * r) * 112 + 16 * c], 10.0f * r + c);
  }
  // Halfway between two centres: the mean of both; past the last: the last.
  EXPECT_FLOAT_EQ(up[8 * 112 + 0], 5.0f);
  EXPECT_FLOAT_EQ(up[111 * 112 + 111], 66.0f);
  // Drawn twice as large, crop pixel 16 spans output pixels 32 and 33.
  const std::vector<float> big = UpsampleAttention(Ramp(), 7, 7, 112, 224);
  EXPECT_NEAR((big[32 * 224 + 32] + big[33 * 224 + 33]) / 2, 11.0f, 1e-5);
}

TEST(AttentionGridTest, RefusesFacesOrMapsOfTheWrongSize) {
  const test_support::TempDir dir("attention_grid_test_");
  ExplainedFace face;
  face.pixels.assign(112 * 112, 128);
  face.map.assign(49, 0.5f);
  const std::string path = dir.path() + "/grid.png";
  EXPECT_TRUE(WriteAttentionGrid({face}, 112, 1, 7, 7, path).ok());
  ExplainedFace short_map = face;
  short_map.map.pop_back();
  EXPECT_EQ(WriteAttentionGrid({face, short_map}, 112, 1, 7, 7, path).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteAttentionGrid({face}, 112, 3, 7, 7, path).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteAttentionGrid({}, 112, 1, 7, 7, path).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace fer
