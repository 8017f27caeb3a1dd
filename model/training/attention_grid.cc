#include "model/training/attention_grid.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "absl/strings/str_format.h"
#include "model/core/attention_quality.h"
#include "model/training/drawing.h"

namespace fer {
namespace {

using drawing::Colour;
using drawing::kFont;
using drawing::kThickness;
using drawing::TextSize;

// Crop pixels between two map samples: the network's four stride-2 steps.
constexpr int kAttentionStride = 16;
constexpr double kMaxFontScale = 0.5;
constexpr int kTextLines = 3;
// Weight of the heat map over the face: enough to read the colour, little
// enough to see the face through it.
constexpr double kHeatAlpha = 0.45;
constexpr int kColorMap = cv::COLORMAP_TURBO;
constexpr int kCellsPerPadding = 16;
constexpr int kCellsPerBarWidth = 6;
// The longest first line, so that every label fits the cell.
constexpr char kWidestLine[] = "happiness 100%";
const cv::Scalar kBackground(255, 255, 255);
const cv::Scalar kInk(0, 0, 0);
const cv::Scalar kRightInk(0, 120, 0);  // BGR: predicted label equals the true one.
const cv::Scalar kWrongInk(0, 0, 200);
const cv::Scalar kBoxInk(255, 255, 255);

double FitScale(const std::string& text, int width) {
  return drawing::FitScale(text, width, kMaxFontScale);
}

void PutText(cv::Mat& image, const std::string& text, int x, int baseline_y, double scale,
             const cv::Scalar& ink) {
  cv::putText(image, text, cv::Point(x, baseline_y), kFont, scale, ink, kThickness, cv::LINE_AA);
}

struct Layout {
  int cell = 0;
  int pad = 0;
  double scale = 0;
  int line = 0;  // Height of one text line, with its gap.
  int columns = 0;
  int rows = 0;
  int title_height = 0;
  int grid_top = 0;
  int slot_width = 0;   // A face and the gap after it.
  int slot_height = 0;  // A face, its text and the gap after them.
  int bar_left = 0;
  int bar_width = 0;
  int width = 0;
  int height = 0;
};

Layout ComputeLayout(size_t faces, const AttentionGridOptions& options) {
  Layout l;
  l.cell = options.cell_size;
  l.pad = std::max(2, l.cell / kCellsPerPadding);
  l.scale = FitScale(kWidestLine, l.cell);
  l.line = TextSize("Ag", l.scale).height + l.pad;
  l.columns = std::max<int>(1, std::min<int>(options.columns, static_cast<int>(faces)));
  l.rows = static_cast<int>((faces + l.columns - 1) / l.columns);
  l.title_height = options.title.empty() ? 0 : 2 * l.line;
  l.grid_top = l.pad + l.title_height;
  l.slot_width = l.cell + l.pad;
  l.slot_height = l.cell + kTextLines * l.line + l.pad;
  l.bar_left = l.pad + l.columns * l.slot_width + l.pad;
  l.bar_width = std::max(8, l.cell / kCellsPerBarWidth);
  l.width = l.bar_left + l.bar_width + l.pad + TextSize("0.000", l.scale).width + l.pad;
  // The legend: two lines under the grid.
  l.height = l.grid_top + l.rows * l.slot_height + 2 * l.line + l.pad;
  return l;
}

// The value range of every map, never empty.
std::pair<float, float> ValueRange(const std::vector<ExplainedFace>& faces) {
  float lo = 1, hi = 0;
  for (const ExplainedFace& face : faces) {
    for (float v : face.map) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  if (hi < lo) return {0.0f, 1.0f};
  return {lo, std::max(hi, lo + 1e-6f)};
}

// The face at the cell's size with its map blended over it, and the border of
// the central cells that the centre share counts.
cv::Mat DrawFace(const ExplainedFace& face, int crop_size, int channels, int map_h, int map_w,
                 const Layout& l, const cv::Mat& lut, std::pair<float, float> range) {
  cv::Mat crop(crop_size, crop_size, channels == 3 ? CV_8UC3 : CV_8UC1,
               const_cast<uint8_t*>(face.pixels.data()));
  cv::Mat bgr;
  cv::cvtColor(crop, bgr, channels == 3 ? cv::COLOR_RGB2BGR : cv::COLOR_GRAY2BGR);
  cv::resize(bgr, bgr, cv::Size(l.cell, l.cell), 0, 0, cv::INTER_LINEAR);
  const std::vector<float> heat = UpsampleAttention(face.map, map_h, map_w, crop_size, l.cell);
  for (int y = 0; y < l.cell; ++y) {
    for (int x = 0; x < l.cell; ++x) {
      const double t =
          (heat[static_cast<size_t>(y) * l.cell + x] - range.first) / (range.second - range.first);
      const cv::Vec3b c = Colour(lut, t);
      cv::Vec3b& p = bgr.at<cv::Vec3b>(y, x);
      for (int k = 0; k < 3; ++k) {
        p[k] = cv::saturate_cast<uint8_t>((1 - kHeatAlpha) * p[k] + kHeatAlpha * c[k]);
      }
    }
  }
  // Central cells i0..i1 give the pixels within stride / 2 of their centres.
  int i0 = map_h, i1 = -1;
  for (int i = 0; i < map_h; ++i) {
    if (IsCentralAttentionCell(i, map_h)) i0 = std::min(i0, i), i1 = std::max(i1, i);
  }
  if (i1 >= i0 && map_h == map_w) {
    const double s = static_cast<double>(l.cell) / crop_size;
    const int a = static_cast<int>(std::lround((kAttentionStride * i0 - kAttentionStride / 2) * s));
    const int b = static_cast<int>(std::lround((kAttentionStride * i1 + kAttentionStride / 2) * s));
    cv::rectangle(bgr, cv::Rect(a, a, b - a, b - a), kBoxInk, kThickness);
  }
  return bgr;
}

void DrawCaption(cv::Mat& image, const ExplainedFace& face, const Layout& l, int x, int y) {
  const cv::Scalar ink =
      face.truth.empty() ? kInk : (face.truth == face.predicted ? kRightInk : kWrongInk);
  const int base = TextSize("Ag", l.scale).height;
  PutText(image, absl::StrFormat("%s %.0f%%", face.predicted, 100.0 * face.confidence), x, y + base,
          l.scale, ink);
  PutText(image, face.truth.empty() ? "true: -" : "true: " + face.truth, x, y + l.line + base,
          l.scale, kInk);
  PutText(image, absl::StrFormat("centre %.3f", face.center_share), x, y + 2 * l.line + base,
          l.scale, kInk);
}

// The colour bar beside the first row, its top the highest value.
void DrawColourBar(cv::Mat& image, const Layout& l, const cv::Mat& lut,
                   std::pair<float, float> range) {
  const int top = l.grid_top;
  const int height = l.cell;
  for (int y = 0; y < height; ++y) {
    const cv::Vec3b c = Colour(lut, 1.0 - static_cast<double>(y) / std::max(1, height - 1));
    cv::line(image, cv::Point(l.bar_left, top + y),
             cv::Point(l.bar_left + l.bar_width - 1, top + y), cv::Scalar(c[0], c[1], c[2]));
  }
  const int tick_x = l.bar_left + l.bar_width + l.pad / 2;
  const int base = TextSize("0", l.scale).height;
  PutText(image, absl::StrFormat("%.3f", range.second), tick_x, top + base, l.scale, kInk);
  PutText(image, absl::StrFormat("%.3f", (range.first + range.second) / 2), tick_x,
          top + height / 2 + base / 2, l.scale, kInk);
  PutText(image, absl::StrFormat("%.3f", range.first), tick_x, top + height, l.scale, kInk);
}

cv::Mat Render(const std::vector<ExplainedFace>& faces, int crop_size, int channels, int map_h,
               int map_w, const AttentionGridOptions& options) {
  const Layout l = ComputeLayout(faces.size(), options);
  cv::Mat image(l.height, l.width, CV_8UC3, kBackground);
  const cv::Mat lut = drawing::ColourTable(kColorMap);
  const std::pair<float, float> range = ValueRange(faces);
  if (!options.title.empty()) {
    const double scale =
        std::min(kMaxFontScale * 1.2, static_cast<double>(l.width - 2 * l.pad) /
                                          std::max(1, TextSize(options.title, 1).width));
    PutText(image, options.title, l.pad, l.pad + TextSize("Ag", scale).height, scale, kInk);
  }
  for (size_t i = 0; i < faces.size(); ++i) {
    const int x = l.pad + static_cast<int>(i % l.columns) * l.slot_width;
    const int y = l.grid_top + static_cast<int>(i / l.columns) * l.slot_height;
    DrawFace(faces[i], crop_size, channels, map_h, map_w, l, lut, range)
        .copyTo(image(cv::Rect(x, y, l.cell, l.cell)));
    DrawCaption(image, faces[i], l, x, y + l.cell + l.pad / 2);
  }
  DrawColourBar(image, l, lut, range);
  const int legend_y = l.grid_top + l.rows * l.slot_height + TextSize("Ag", l.scale).height;
  PutText(image,
          "colour: attention (layer4.1 gate, mean over channels); white box: the cells centre "
          "share counts",
          l.pad, legend_y, l.scale, kInk);
  PutText(image, "first line: predicted label and its probability (green: right, red: wrong)",
          l.pad, legend_y + l.line, l.scale, kInk);
  return image;
}

absl::Status CheckFaces(const std::vector<ExplainedFace>& faces, int crop_size, int channels,
                        int map_h, int map_w, const AttentionGridOptions& options) {
  if (faces.empty()) return absl::InvalidArgumentError("attention grid: no faces");
  if (options.cell_size < kMinAttentionCellSize || options.columns < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("attention grid: cell size %d (minimum %d) or columns %d (minimum 1)",
                        options.cell_size, kMinAttentionCellSize, options.columns));
  }
  if (channels != 1 && channels != 3) {
    return absl::InvalidArgumentError("attention grid: channels must be 1 or 3");
  }
  const size_t pixels = static_cast<size_t>(crop_size) * crop_size * channels;
  for (const ExplainedFace& face : faces) {
    if (face.pixels.size() != pixels || face.map.size() != static_cast<size_t>(map_h) * map_w ||
        map_h < 1 || map_w < 1) {
      return absl::InvalidArgumentError("attention grid: a face or map of the wrong size");
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<float> UpsampleAttention(absl::Span<const float> map, int map_height, int map_width,
                                     int crop_size, int out_size) {
  std::vector<float> out(static_cast<size_t>(out_size) * out_size, 0.0f);
  if (map.size() != static_cast<size_t>(map_height) * map_width || map_height < 1 ||
      map_width < 1 || crop_size < 1) {
    return out;
  }
  // Output pixel i's centre in crop pixel indices, then in map cells.
  auto cell = [&](int i, int cells) {
    const double crop = (i + 0.5) * crop_size / out_size - 0.5;
    return std::clamp(crop / kAttentionStride, 0.0, static_cast<double>(cells - 1));
  };
  for (int y = 0; y < out_size; ++y) {
    const double v = cell(y, map_height);
    const int r0 = static_cast<int>(v), r1 = std::min(r0 + 1, map_height - 1);
    const double fy = v - r0;
    for (int x = 0; x < out_size; ++x) {
      const double u = cell(x, map_width);
      const int c0 = static_cast<int>(u), c1 = std::min(c0 + 1, map_width - 1);
      const double fx = u - c0;
      auto at = [&](int r, int c) { return map[static_cast<size_t>(r) * map_width + c]; };
      out[static_cast<size_t>(y) * out_size + x] =
          static_cast<float>((1 - fy) * ((1 - fx) * at(r0, c0) + fx * at(r0, c1)) +
                             fy * ((1 - fx) * at(r1, c0) + fx * at(r1, c1)));
    }
  }
  return out;
}

absl::Status WriteAttentionGrid(const std::vector<ExplainedFace>& faces, int crop_size,
                                int channels, int map_height, int map_width,
                                const std::string& path, const AttentionGridOptions& options) {
  if (path.empty()) return absl::InvalidArgumentError("attention grid: empty output path");
  if (auto s = CheckFaces(faces, crop_size, channels, map_height, map_width, options); !s.ok()) {
    return s;
  }
  std::vector<uint8_t> png;
  try {
    const cv::Mat image = Render(faces, crop_size, channels, map_height, map_width, options);
    if (!cv::imencode(".png", image, png, {cv::IMWRITE_PNG_COMPRESSION, 9})) {
      return absl::InternalError("attention grid: OpenCV could not encode the PNG");
    }
  } catch (const cv::Exception& e) {
    return absl::InternalError(absl::StrFormat("attention grid: OpenCV: %s", e.what()));
  }
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) {
    return absl::ErrnoToStatus(errno, absl::StrFormat("attention grid: cannot open %s", path));
  }
  const bool written = std::fwrite(png.data(), 1, png.size(), file) == png.size();
  if (std::fclose(file) != 0 || !written) {
    return absl::UnavailableError(absl::StrFormat("attention grid: cannot write %s", path));
  }
  return absl::OkStatus();
}

}  // namespace fer
