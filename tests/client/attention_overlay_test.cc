// The attention overlay (client/attention_overlay.h): the heat map lands where
// the map's cells are, hot cells red and cold ones blue, only inside its
// region, and the classify picture has the face, its map and a caption band.
#include "client/attention_overlay.h"

#include <gtest/gtest.h>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

#include "model/core/image_ops.h"

namespace fer::client {
namespace {

// A 7 x 7 map for a 112 x 112 model with one hot cell and one cold one; the
// rest in between.
AttentionGrid MapWith(int hot_r, int hot_c, int cold_r, int cold_c) {
  AttentionGrid map;
  map.height = 7;
  map.width = 7;
  map.values.assign(49, 0.5f);
  map.values[hot_r * 7 + hot_c] = 0.9f;
  map.values[cold_r * 7 + cold_c] = 0.1f;
  map.side = 112;
  return map;
}

// Mean BGR of the block around pixel (x, y).
cv::Scalar MeanAround(const cv::Mat& image, int x, int y, int half = 3) {
  const cv::Rect block = cv::Rect(x - half, y - half, 2 * half + 1, 2 * half + 1) &
                         cv::Rect(0, 0, image.cols, image.rows);
  return cv::mean(image(block));
}

// Red minus blue, the JET scale's hot-versus-cold.
double Redness(const cv::Scalar& bgr) { return bgr[2] - bgr[0]; }

TEST(AttentionOverlayTest, TheHottestCellIsRedderThanTheColdestWhereTheirCentresAre) {
  const AttentionGrid map = MapWith(2, 5, 4, 1);
  cv::Mat image(112, 112, CV_8UC3, cv::Scalar(128, 128, 128));
  OverlayAttention(map, cv::Rect(0, 0, 112, 112), image);
  // Cell (r, c) is centred on pixel (16 r, 16 c) of the 112 x 112 face.
  const cv::Scalar hot = MeanAround(image, 16 * 5, 16 * 2);
  const cv::Scalar cold = MeanAround(image, 16 * 1, 16 * 4);
  const cv::Scalar middle = MeanAround(image, 16 * 3, 16 * 6);
  EXPECT_GT(Redness(hot), 40) << hot;
  EXPECT_LT(Redness(cold), -40) << cold;
  EXPECT_GT(Redness(hot), Redness(middle));
  EXPECT_GT(Redness(middle), Redness(cold));
  // Swapping the cells swaps the colours: it is the map, not the place.
  const AttentionGrid swapped = MapWith(4, 1, 2, 5);
  cv::Mat other(112, 112, CV_8UC3, cv::Scalar(128, 128, 128));
  OverlayAttention(swapped, cv::Rect(0, 0, 112, 112), other);
  EXPECT_LT(Redness(MeanAround(other, 16 * 5, 16 * 2)), -40);
  EXPECT_GT(Redness(MeanAround(other, 16 * 1, 16 * 4)), 40);
}

TEST(AttentionOverlayTest, TheMapIsStretchedOverItsRegionAndNothingElseChanges) {
  const AttentionGrid map = MapWith(0, 6, 6, 0);
  cv::Mat image(200, 300, CV_8UC3, cv::Scalar(128, 128, 128));
  const cv::Rect region(100, 40, 56, 112);  // half as wide as the model's face
  OverlayAttention(map, region, image);
  // Cell (0, 6): face pixel (96, 0), in the region at x = 100 + 96 / 2, y = 40.
  EXPECT_GT(Redness(MeanAround(image, 100 + 48, 40 + 1, 1)), 40);
  // Cell (6, 0): face pixel (0, 96), at x = 100, y = 40 + 96.
  EXPECT_LT(Redness(MeanAround(image, 100 + 1, 40 + 96, 1)), -40);
  // Outside the region the image is untouched.
  cv::Mat outside = image.clone();
  outside(region).setTo(cv::Scalar(128, 128, 128));
  EXPECT_EQ(cv::countNonZero(cv::Mat(outside != cv::Scalar(128, 128, 128)).reshape(1)), 0);
}

TEST(AttentionOverlayTest, ATenCropMapSitsOnTheCentreCropOfTheLargerFace) {
  // The centre crop of a ten-crop: cell (r, c) on pixel (8 + 16 r, 8 + 16 c)
  // of the face at 128 x 128.
  AttentionGrid map = MapWith(0, 0, 6, 6);
  map.side = 128;
  map.offset = 8;
  cv::Mat image(128, 128, CV_8UC3, cv::Scalar(128, 128, 128));
  OverlayAttention(map, cv::Rect(0, 0, 128, 128), image);
  EXPECT_GT(Redness(MeanAround(image, 8, 8, 1)), 40);
  EXPECT_LT(Redness(MeanAround(image, 8 + 96, 8 + 96, 1)), -40);
}

TEST(AttentionOverlayTest, CellsArePlacedWhereTheServerCutsTheFace) {
  for (int input_size : {32, 48, 112, 224}) {
    SCOPED_TRACE(input_size);
    AttentionGrid one;
    PlaceAttentionCells(input_size, false, &one);
    EXPECT_EQ(one.side, input_size);
    EXPECT_EQ(one.offset, 0);
    AttentionGrid ten;
    PlaceAttentionCells(input_size, true, &ten);
    EXPECT_EQ(ten.side, TenCropResizeSize(input_size));
    const CropBox centre = TenCropBoxes(ten.side, input_size)[kTenCropCentreBox];
    EXPECT_FALSE(centre.mirrored);
    EXPECT_EQ(ten.offset, centre.x);
    EXPECT_EQ(ten.offset, centre.y);
  }
  AttentionGrid lla;
  PlaceAttentionCells(112, true, &lla);
  EXPECT_EQ(lla.side, 128);
  EXPECT_EQ(lla.offset, 8);
}

TEST(AttentionOverlayTest, AnEmptyMapOrARegionOffTheImageDrawsNothing) {
  cv::Mat image(64, 64, CV_8UC3, cv::Scalar(10, 20, 30));
  const cv::Mat before = image.clone();
  OverlayAttention(AttentionGrid(), cv::Rect(0, 0, 64, 64), image);
  OverlayAttention(MapWith(1, 1, 2, 2), cv::Rect(100, 100, 50, 50), image);
  EXPECT_EQ(cv::norm(image, before, cv::NORM_INF), 0);
  // Partly off the image: only the visible part is drawn, without a crash.
  OverlayAttention(MapWith(1, 1, 2, 2), cv::Rect(32, 32, 64, 64), image);
  EXPECT_EQ(cv::norm(image(cv::Rect(0, 0, 32, 32)), before(cv::Rect(0, 0, 32, 32)), cv::NORM_INF),
            0);
  EXPECT_GT(
      cv::norm(image(cv::Rect(32, 32, 32, 32)), before(cv::Rect(32, 32, 32, 32)), cv::NORM_INF), 0);
}

TEST(AttentionOverlayTest, ThePictureIsTheFaceAtSideWithACaptionBandAbove) {
  cv::Mat face(48, 40, CV_8UC1, cv::Scalar(100));  // grey, not square
  const cv::Mat picture = AttentionPicture(face, MapWith(3, 3, 0, 0), {"happiness 0.87", "x"}, 224);
  ASSERT_EQ(picture.type(), CV_8UC3);
  EXPECT_EQ(picture.cols, 224);
  const int band = picture.rows - 224;
  EXPECT_GT(band, 0);
  // The face's centre (the hot cell, face pixel 48 of 112) is red in the picture.
  EXPECT_GT(Redness(MeanAround(picture, 96, band + 96)), 40);
  // No caption, no band.
  EXPECT_EQ(AttentionPicture(face, MapWith(3, 3, 0, 0), {}, 224).rows, 224);
}

}  // namespace
}  // namespace fer::client
