#include "model/training/heatmap.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "model/core/labels.h"

namespace fer {
namespace {

constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;
constexpr int kThickness = 1;
// Largest font scales; smaller cells scale text down to fit.
constexpr double kMaxLabelFontScale = 0.6;
constexpr double kMaxCountFontScale = 0.7;
constexpr double kTitleToLabelScale = 1.2;
constexpr double kShareToLabelScale = 0.85;
// Padding as a fraction of the cell side; never below one pixel.
constexpr int kCellsPerPadding = 8;
// Colour bar width as a fraction of the cell side.
constexpr int kCellsPerBarWidth = 4;
// Text on a cell switches from white to black above this luminance (0..255).
constexpr double kDarkTextLuminance = 128;
constexpr int kColorMap = cv::COLORMAP_VIRIDIS;
// Highest index of the 8-bit colour map.
constexpr int kColourLevels = 255;
const cv::Scalar kBackground(255, 255, 255);
const cv::Scalar kInk(0, 0, 0);
const cv::Scalar kLightInk(255, 255, 255);
constexpr char kTrueCaption[] = "true";
constexpr char kPredictedCaption[] = "predicted";

cv::Size TextSize(const std::string& text, double scale) {
  int baseline = 0;
  return cv::getTextSize(text, kFont, scale, kThickness, &baseline);
}

// The largest scale, up to max_scale, at which text is at most width pixels wide.
double FitScale(const std::string& text, int width, double max_scale) {
  const int width_at_one = std::max(1, TextSize(text, 1.0).width);
  return std::min(max_scale, static_cast<double>(width) / width_at_one);
}

// Draws text with its bounding box centred on centre.
void PutCentred(cv::Mat& image, const std::string& text, cv::Point centre, double scale,
                const cv::Scalar& colour) {
  const cv::Size size = TextSize(text, scale);
  cv::putText(image, text, cv::Point(centre.x - size.width / 2, centre.y + size.height / 2), kFont,
              scale, colour, kThickness, cv::LINE_AA);
}

// BGR colour of a row share in [0, 1] from the colour map.
cv::Vec3b ShareColour(const cv::Mat& lut, double share) {
  const int index =
      std::clamp(static_cast<int>(std::lround(share * kColourLevels)), 0, kColourLevels);
  return lut.at<cv::Vec3b>(0, index);
}

// A failed file operation as a status; errno 0 (a short write without a
// reason) still yields an error.
absl::Status FileError(int error_number, const std::string& message) {
  if (error_number == 0) return absl::InternalError(message);
  return absl::ErrnoToStatus(error_number, message);
}

double Luminance(const cv::Vec3b& bgr) { return 0.114 * bgr[0] + 0.587 * bgr[1] + 0.299 * bgr[2]; }

cv::Mat Render(const ConfusionMatrix& confusion, const HeatmapOptions& options) {
  const int cell = options.cell_size;
  const int pad = std::max(1, cell / kCellsPerPadding);
  const auto& names = LabelNames();

  // Fonts: label names fit a cell; counts fit a cell.
  std::string longest_name(kPredictedCaption);
  for (std::string_view name : names) {
    if (name.size() > longest_name.size()) longest_name = std::string(name);
  }
  const double label_scale = FitScale(longest_name, cell - 2 * pad, kMaxLabelFontScale);
  std::string widest_count = "0";
  for (const auto& row : confusion.counts()) {
    for (int64_t n : row) {
      std::string text = absl::StrFormat("%d", n);
      if (text.size() > widest_count.size()) widest_count = text;
    }
  }
  const double count_scale = FitScale(widest_count, cell - 2 * pad, kMaxCountFontScale);
  const double share_scale = label_scale * kShareToLabelScale;
  const int line_height = TextSize("Ag", label_scale).height + pad;

  // Horizontal layout: row names | grid | colour bar and its ticks.
  int row_name_width = TextSize(kTrueCaption, label_scale).width;
  for (std::string_view name : names) {
    row_name_width = std::max(row_name_width, TextSize(std::string(name), label_scale).width);
  }
  const int grid_left = pad + row_name_width + pad;
  const int grid_side = kNumClasses * cell;
  const int bar_left = grid_left + grid_side + 2 * pad;
  const int bar_width = std::max(1, cell / kCellsPerBarWidth);
  const int tick_width = TextSize("100%", label_scale).width;
  const int image_width = bar_left + bar_width + pad + tick_width + pad;

  // Vertical layout: title | "predicted" | column names | grid.
  double title_scale = 0;
  int title_height = 0;
  if (!options.title.empty()) {
    title_scale = FitScale(options.title, image_width - 2 * pad, label_scale * kTitleToLabelScale);
    title_height = TextSize(options.title, title_scale).height + 2 * pad;
  }
  const int caption_top = pad + title_height;
  const int names_top = caption_top + line_height;
  const int grid_top = names_top + line_height;
  const int image_height = grid_top + grid_side + pad;

  cv::Mat image(image_height, image_width, CV_8UC3, kBackground);
  cv::Mat ramp(1, kColourLevels + 1, CV_8UC1);
  for (int i = 0; i <= kColourLevels; ++i) ramp.at<uint8_t>(0, i) = static_cast<uint8_t>(i);
  cv::Mat lut;
  cv::applyColorMap(ramp, lut, kColorMap);

  if (!options.title.empty()) {
    cv::putText(image, options.title,
                cv::Point(pad, pad + TextSize(options.title, title_scale).height), kFont,
                title_scale, kInk, kThickness, cv::LINE_AA);
  }
  PutCentred(image, kPredictedCaption,
             cv::Point(grid_left + grid_side / 2, caption_top + line_height / 2), label_scale,
             kInk);
  const int names_centre_y = names_top + line_height / 2;
  const cv::Size true_size = TextSize(kTrueCaption, label_scale);
  cv::putText(image, kTrueCaption, cv::Point(pad, names_centre_y + true_size.height / 2), kFont,
              label_scale, kInk, kThickness, cv::LINE_AA);

  for (int t = 0; t < kNumClasses; ++t) {
    const std::string name(names[t]);
    const int row_top = grid_top + t * cell;
    const cv::Size name_size = TextSize(name, label_scale);
    cv::putText(
        image, name,
        cv::Point(grid_left - pad - name_size.width, row_top + cell / 2 + name_size.height / 2),
        kFont, label_scale, kInk, kThickness, cv::LINE_AA);
    PutCentred(image, name, cv::Point(grid_left + t * cell + cell / 2, names_centre_y), label_scale,
               kInk);

    const int64_t row_total = confusion.TrueCount(t);
    for (int p = 0; p < kNumClasses; ++p) {
      const int64_t n = confusion.count(t, p);
      const double share =
          row_total == 0 ? 0.0 : static_cast<double>(n) / static_cast<double>(row_total);
      const cv::Vec3b colour = ShareColour(lut, share);
      const cv::Rect box(grid_left + p * cell, row_top, cell, cell);
      cv::rectangle(image, box, cv::Scalar(colour[0], colour[1], colour[2]), cv::FILLED);
      cv::rectangle(image, box, kBackground, kThickness);

      const cv::Scalar ink = Luminance(colour) > kDarkTextLuminance ? kInk : kLightInk;
      const std::string count = absl::StrFormat("%d", n);
      const cv::Point centre(box.x + cell / 2, box.y + cell / 2);
      if (row_total == 0) {
        PutCentred(image, count, centre, count_scale, ink);
        continue;
      }
      // Count above, share of the row below, the pair centred in the cell.
      const std::string percent = absl::StrFormat("%.0f%%", 100.0 * share);
      const int count_height = TextSize(count, count_scale).height;
      const int share_height = TextSize(percent, share_scale).height;
      const int gap = pad / 2;
      const int top = centre.y - (count_height + gap + share_height) / 2;
      PutCentred(image, count, cv::Point(centre.x, top + count_height / 2), count_scale, ink);
      PutCentred(image, percent, cv::Point(centre.x, top + count_height + gap + share_height / 2),
                 share_scale, ink);
    }
  }

  // Colour bar: 100% at the top, 0% at the bottom.
  for (int y = 0; y < grid_side; ++y) {
    const double share = 1.0 - static_cast<double>(y) / std::max(1, grid_side - 1);
    const cv::Vec3b colour = ShareColour(lut, share);
    cv::line(image, cv::Point(bar_left, grid_top + y),
             cv::Point(bar_left + bar_width - 1, grid_top + y),
             cv::Scalar(colour[0], colour[1], colour[2]));
  }
  const int tick_left = bar_left + bar_width + pad;
  const int tick_height = TextSize("0%", label_scale).height;
  cv::putText(image, "100%", cv::Point(tick_left, grid_top + tick_height), kFont, label_scale, kInk,
              kThickness, cv::LINE_AA);
  cv::putText(image, "50%", cv::Point(tick_left, grid_top + grid_side / 2 + tick_height / 2), kFont,
              label_scale, kInk, kThickness, cv::LINE_AA);
  cv::putText(image, "0%", cv::Point(tick_left, grid_top + grid_side), kFont, label_scale, kInk,
              kThickness, cv::LINE_AA);
  return image;
}

}  // namespace

absl::Status WriteConfusionHeatmap(const ConfusionMatrix& confusion, const std::string& path,
                                   const HeatmapOptions& options) {
  if (path.empty()) return absl::InvalidArgumentError("heat map: empty output path");
  if (options.cell_size < kMinHeatmapCellSize) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "heat map: cell_size %d is below the minimum %d", options.cell_size, kMinHeatmapCellSize));
  }
  std::vector<uint8_t> png;
  try {
    if (!cv::imencode(".png", Render(confusion, options), png)) {
      return absl::InternalError("heat map: OpenCV could not encode the PNG");
    }
  } catch (const cv::Exception& e) {
    return absl::InternalError(absl::StrFormat("heat map: OpenCV: %s", e.what()));
  }

  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) {
    return FileError(errno, absl::StrFormat("heat map: cannot open %s", path));
  }
  errno = 0;
  const bool written = std::fwrite(png.data(), 1, png.size(), file) == png.size();
  const int write_errno = errno;
  const bool closed = std::fclose(file) == 0;
  if (!written || !closed) {
    return FileError(written ? errno : write_errno,
                     absl::StrFormat("heat map: cannot write %s", path));
  }
  return absl::OkStatus();
}

}  // namespace fer
