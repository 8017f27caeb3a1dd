#include "model/training/drawing.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "opencv2/imgproc.hpp"

namespace fer {
namespace drawing {
namespace {

constexpr int kColourLevels = 255;

}  // namespace

cv::Size TextSize(const std::string& text, double scale) {
  int baseline = 0;
  return cv::getTextSize(text, kFont, scale, kThickness, &baseline);
}

double FitScale(const std::string& text, int width, double max_scale) {
  const int width_at_one = std::max(1, TextSize(text, 1.0).width);
  return std::min(max_scale, static_cast<double>(width) / width_at_one);
}

cv::Mat ColourTable(int colormap) {
  cv::Mat ramp(1, kColourLevels + 1, CV_8UC1);
  for (int i = 0; i <= kColourLevels; ++i) ramp.at<uint8_t>(0, i) = static_cast<uint8_t>(i);
  cv::Mat table;
  cv::applyColorMap(ramp, table, colormap);
  return table;
}

cv::Vec3b Colour(const cv::Mat& table, double t) {
  const int index = std::clamp(static_cast<int>(std::lround(t * kColourLevels)), 0, kColourLevels);
  return table.at<cv::Vec3b>(0, index);
}

}  // namespace drawing
}  // namespace fer
