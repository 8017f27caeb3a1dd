// Synthetic faces for the tests of front ends on a fake engine, which only
// need images that decode and differ: 48 x 48 grey PNGs whose pixels depend on
// a seed.
#ifndef FER_TESTS_SERVER_SYNTHETIC_FACE_H_
#define FER_TESTS_SERVER_SYNTHETIC_FACE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "opencv2/core.hpp"
#include "opencv2/imgcodecs.hpp"

namespace fer {
namespace test_util {

// A 48 x 48 PNG whose pixels depend on seed, so that faces differ.
inline std::string FacePng(int seed) {
  cv::Mat image(48, 48, CV_8UC1);
  for (int y = 0; y < image.rows; ++y) {
    for (int x = 0; x < image.cols; ++x) {
      image.at<uint8_t>(y, x) = static_cast<uint8_t>((x * (seed + 1) + y * (2 * seed + 3)) % 256);
    }
  }
  std::vector<uint8_t> png;
  EXPECT_TRUE(cv::imencode(".png", image, png));
  return std::string(png.begin(), png.end());
}

}  // namespace test_util
}  // namespace fer

#endif  // FER_TESTS_SERVER_SYNTHETIC_FACE_H_
