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
#include "model/training/drawing.h"

namespace fer {
namespace {

using drawing::FitScale;
using drawing::kFont;
using drawing::kThickness;
using drawing::TextSize;
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
const cv::Scalar kBackground(255, 255, 255);
const cv::Scalar kInk(0, 0, 0);
const cv::Scalar kLightInk(255, 255, 255);
constexpr char kTrueCaption[] = "true";
constexpr char kPredictedCaption[] = "predicted";

// Draws text with its bounding box centred on centre.
void PutCentred(cv::Mat& image, const std::string& text, cv::Point centre, double scale,
                const cv::Scalar& colour) {
  const cv::Size size = TextSize(text, scale);
  cv::putText(image, text, cv::Point(centre.x - size.width / 2, centre.y + size.height / 2), kFont,
              scale, colour, kThickness, cv::LINE_AA);
}

// A failed file operation as a status; errno 0 (a short write without a
// reason) still yields an error.
absl::Status FileError(int error_number, const std::string& message) {
  if (error_number == 0) return absl::InternalError(message);
  return absl::ErrnoToStatus(error_number, message);
}

double Luminance(const cv::Vec3b& bgr) { return 0.114 * bgr[0] + 0.587 * bgr[1] + 0.299 * bgr[2]; }

// Where every part of the image goes and how large its text is, from the cell
// size, the label names, the widest count and the title.
struct Layout {
  int cell = 0;
  int pad = 0;
  double label_scale = 0;
  double count_scale = 0;
  double share_scale = 0;
  double title_scale = 0;
  int line_height = 0;
  // Horizontal: row names | grid | colour bar and its ticks.
  int grid_left = 0;
  int grid_side = 0;
  int bar_left = 0;
  int bar_width = 0;
  int image_width = 0;
  // Vertical: title | "predicted" | column names | grid.
  int caption_top = 0;
  int names_top = 0;
  int grid_top = 0;
  int image_height = 0;
};

// Label names fit a cell; so do counts.
void ChooseFontScales(const ConfusionMatrix& confusion, Layout* layout) {
  const int inner = layout->cell - 2 * layout->pad;
  std::string longest_name(kPredictedCaption);
  for (std::string_view name : LabelNames()) {
    if (name.size() > longest_name.size()) longest_name = std::string(name);
  }
  layout->label_scale = FitScale(longest_name, inner, kMaxLabelFontScale);
  std::string widest_count = "0";
  for (const auto& row : confusion.counts()) {
    for (int64_t n : row) {
      std::string text = absl::StrFormat("%d", n);
      if (text.size() > widest_count.size()) widest_count = text;
    }
  }
  layout->count_scale = FitScale(widest_count, inner, kMaxCountFontScale);
  layout->share_scale = layout->label_scale * kShareToLabelScale;
  layout->line_height = TextSize("Ag", layout->label_scale).height + layout->pad;
}

Layout ComputeLayout(const ConfusionMatrix& confusion, const HeatmapOptions& options) {
  Layout l;
  l.cell = options.cell_size;
  l.pad = std::max(1, l.cell / kCellsPerPadding);
  ChooseFontScales(confusion, &l);

  int row_name_width = TextSize(kTrueCaption, l.label_scale).width;
  for (std::string_view name : LabelNames()) {
    row_name_width = std::max(row_name_width, TextSize(std::string(name), l.label_scale).width);
  }
  l.grid_left = l.pad + row_name_width + l.pad;
  l.grid_side = kNumClasses * l.cell;
  l.bar_left = l.grid_left + l.grid_side + 2 * l.pad;
  l.bar_width = std::max(1, l.cell / kCellsPerBarWidth);
  const int tick_width = TextSize("100%", l.label_scale).width;
  l.image_width = l.bar_left + l.bar_width + l.pad + tick_width + l.pad;

  int title_height = 0;
  if (!options.title.empty()) {
    l.title_scale =
        FitScale(options.title, l.image_width - 2 * l.pad, l.label_scale * kTitleToLabelScale);
    title_height = TextSize(options.title, l.title_scale).height + 2 * l.pad;
  }
  l.caption_top = l.pad + title_height;
  l.names_top = l.caption_top + l.line_height;
  l.grid_top = l.names_top + l.line_height;
  l.image_height = l.grid_top + l.grid_side + l.pad;
  return l;
}

int NamesCentreY(const Layout& l) { return l.names_top + l.line_height / 2; }

// The title, "predicted" over the grid and "true" over the row names.
void DrawCaptions(cv::Mat& image, const Layout& l, const std::string& title) {
  if (!title.empty()) {
    cv::putText(image, title, cv::Point(l.pad, l.pad + TextSize(title, l.title_scale).height),
                kFont, l.title_scale, kInk, kThickness, cv::LINE_AA);
  }
  PutCentred(image, kPredictedCaption,
             cv::Point(l.grid_left + l.grid_side / 2, l.caption_top + l.line_height / 2),
             l.label_scale, kInk);
  const cv::Size true_size = TextSize(kTrueCaption, l.label_scale);
  cv::putText(image, kTrueCaption, cv::Point(l.pad, NamesCentreY(l) + true_size.height / 2), kFont,
              l.label_scale, kInk, kThickness, cv::LINE_AA);
}

// Label t's name left of its row and above its column.
void DrawLabelNames(cv::Mat& image, const Layout& l, int t) {
  const std::string name(LabelNames()[t]);
  const int row_top = l.grid_top + t * l.cell;
  const cv::Size name_size = TextSize(name, l.label_scale);
  cv::putText(
      image, name,
      cv::Point(l.grid_left - l.pad - name_size.width, row_top + l.cell / 2 + name_size.height / 2),
      kFont, l.label_scale, kInk, kThickness, cv::LINE_AA);
  PutCentred(image, name, cv::Point(l.grid_left + t * l.cell + l.cell / 2, NamesCentreY(l)),
             l.label_scale, kInk);
}

// One cell coloured by its share of the row, with its count and (when the
// row has samples) that share, in ink that stays readable on the colour.
void DrawCell(cv::Mat& image, const Layout& l, const cv::Mat& lut, int64_t n, int64_t row_total,
              const cv::Rect& box) {
  const double share =
      row_total == 0 ? 0.0 : static_cast<double>(n) / static_cast<double>(row_total);
  const cv::Vec3b colour = drawing::Colour(lut, share);
  cv::rectangle(image, box, cv::Scalar(colour[0], colour[1], colour[2]), cv::FILLED);
  cv::rectangle(image, box, kBackground, kThickness);

  const cv::Scalar ink = Luminance(colour) > kDarkTextLuminance ? kInk : kLightInk;
  const std::string count = absl::StrFormat("%d", n);
  const cv::Point centre(box.x + l.cell / 2, box.y + l.cell / 2);
  if (row_total == 0) {
    PutCentred(image, count, centre, l.count_scale, ink);
    return;
  }
  // Count above, share of the row below, the pair centred in the cell.
  const std::string percent = absl::StrFormat("%.0f%%", 100.0 * share);
  const int count_height = TextSize(count, l.count_scale).height;
  const int share_height = TextSize(percent, l.share_scale).height;
  const int gap = l.pad / 2;
  const int top = centre.y - (count_height + gap + share_height) / 2;
  PutCentred(image, count, cv::Point(centre.x, top + count_height / 2), l.count_scale, ink);
  PutCentred(image, percent, cv::Point(centre.x, top + count_height + gap + share_height / 2),
             l.share_scale, ink);
}

// The colour bar, 100% at the top and 0% at the bottom, and its ticks.
void DrawColourBar(cv::Mat& image, const Layout& l, const cv::Mat& lut) {
  for (int y = 0; y < l.grid_side; ++y) {
    const double share = 1.0 - static_cast<double>(y) / std::max(1, l.grid_side - 1);
    const cv::Vec3b colour = drawing::Colour(lut, share);
    cv::line(image, cv::Point(l.bar_left, l.grid_top + y),
             cv::Point(l.bar_left + l.bar_width - 1, l.grid_top + y),
             cv::Scalar(colour[0], colour[1], colour[2]));
  }
  const int tick_left = l.bar_left + l.bar_width + l.pad;
  const int tick_height = TextSize("0%", l.label_scale).height;
  cv::putText(image, "100%", cv::Point(tick_left, l.grid_top + tick_height), kFont, l.label_scale,
              kInk, kThickness, cv::LINE_AA);
  cv::putText(image, "50%", cv::Point(tick_left, l.grid_top + l.grid_side / 2 + tick_height / 2),
              kFont, l.label_scale, kInk, kThickness, cv::LINE_AA);
  cv::putText(image, "0%", cv::Point(tick_left, l.grid_top + l.grid_side), kFont, l.label_scale,
              kInk, kThickness, cv::LINE_AA);
}

cv::Mat Render(const ConfusionMatrix& confusion, const HeatmapOptions& options) {
  const Layout layout = ComputeLayout(confusion, options);
  cv::Mat image(layout.image_height, layout.image_width, CV_8UC3, kBackground);
  const cv::Mat lut = drawing::ColourTable(kColorMap);
  DrawCaptions(image, layout, options.title);
  for (int t = 0; t < kNumClasses; ++t) {
    DrawLabelNames(image, layout, t);
    const int64_t row_total = confusion.TrueCount(t);
    for (int p = 0; p < kNumClasses; ++p) {
      const cv::Rect box(layout.grid_left + p * layout.cell, layout.grid_top + t * layout.cell,
                         layout.cell, layout.cell);
      DrawCell(image, layout, lut, confusion.count(t, p), row_total, box);
    }
  }
  DrawColourBar(image, layout, lut);
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
