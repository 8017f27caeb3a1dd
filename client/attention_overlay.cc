#include "client/attention_overlay.h"

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>

namespace fer::client {
namespace {

constexpr double kCaptionScale = 0.4;
constexpr int kCaptionLine = 14;  // pixels per caption line

// The map's value at (u, v), in cells (cell centres at whole numbers),
// bilinear between centres and clamped to the outer ones.
float Sample(const AttentionGrid& map, double u, double v) {
  u = std::clamp(u, 0.0, static_cast<double>(map.width - 1));
  v = std::clamp(v, 0.0, static_cast<double>(map.height - 1));
  const int c0 = static_cast<int>(u), r0 = static_cast<int>(v);
  const int c1 = std::min(c0 + 1, map.width - 1), r1 = std::min(r0 + 1, map.height - 1);
  const double fu = u - c0, fv = v - r0;
  const auto at = [&](int r, int c) { return map.values[static_cast<size_t>(r) * map.width + c]; };
  const double top = at(r0, c0) * (1 - fu) + at(r0, c1) * fu;
  const double bottom = at(r1, c0) * (1 - fu) + at(r1, c1) * fu;
  return static_cast<float>(top * (1 - fv) + bottom * fv);
}

// The heat map of region's size, 8-bit, 0 at the map's minimum, 255 at its maximum.
cv::Mat HeatLevels(const AttentionGrid& map, cv::Size size) {
  const auto [low, high] = std::minmax_element(map.values.begin(), map.values.end());
  const double range = *high - *low;
  cv::Mat levels(size, CV_8UC1);
  const double side = map.side > 0 ? map.side : kAttentionCellPitch * map.width;
  for (int y = 0; y < size.height; ++y) {
    // Pixel centres of the region, in pixels of the face stretched to side.
    const double face_y = (y + 0.5) * side / size.height - 0.5;
    const double v = (face_y - map.offset) / kAttentionCellPitch;
    for (int x = 0; x < size.width; ++x) {
      const double face_x = (x + 0.5) * side / size.width - 0.5;
      const double u = (face_x - map.offset) / kAttentionCellPitch;
      const double level = range > 1e-9 ? (Sample(map, u, v) - *low) / range : 0.5;
      levels.at<uint8_t>(y, x) = cv::saturate_cast<uint8_t>(level * 255.0);
    }
  }
  return levels;
}

}  // namespace

void OverlayAttention(const AttentionGrid& map, const cv::Rect& region, cv::Mat& image,
                      double opacity) {
  if (map.empty() || map.width < 1 || map.height < 1 || region.area() <= 0) return;
  cv::Mat heat;
  cv::applyColorMap(HeatLevels(map, region.size()), heat, cv::COLORMAP_JET);
  const cv::Rect visible = region & cv::Rect(0, 0, image.cols, image.rows);
  if (visible.area() <= 0) return;
  cv::Mat target = image(visible);
  const cv::Mat source = heat(visible - region.tl());
  cv::addWeighted(source, opacity, target, 1.0 - opacity, 0.0, target);
}

cv::Mat AttentionPicture(const cv::Mat& face, const AttentionGrid& map,
                         const std::vector<std::string>& caption, int side) {
  cv::Mat colour;
  if (face.channels() == 1) {
    cv::cvtColor(face, colour, cv::COLOR_GRAY2BGR);
  } else if (face.channels() == 4) {
    cv::cvtColor(face, colour, cv::COLOR_BGRA2BGR);
  } else {
    colour = face;
  }
  cv::Mat picture;
  const bool shrink = colour.cols >= side && colour.rows >= side;
  cv::resize(colour, picture, cv::Size(side, side), 0, 0,
             shrink ? cv::INTER_AREA : cv::INTER_LINEAR);
  OverlayAttention(map, cv::Rect(0, 0, side, side), picture);
  if (caption.empty()) return picture;
  // The caption sits on a band of its own, so it never hides the map's top row.
  cv::Mat band(static_cast<int>(caption.size()) * kCaptionLine + 4, side, CV_8UC3,
               cv::Scalar(32, 32, 32));
  for (size_t i = 0; i < caption.size(); ++i) {
    cv::putText(band, caption[i], cv::Point(4, static_cast<int>(i + 1) * kCaptionLine),
                cv::FONT_HERSHEY_SIMPLEX, kCaptionScale, cv::Scalar(255, 255, 255), 1, cv::LINE_AA);
  }
  cv::Mat out;
  cv::vconcat(band, picture, out);
  return out;
}

}  // namespace fer::client
