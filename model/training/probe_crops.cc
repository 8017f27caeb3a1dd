#include "model/training/probe_crops.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "model/training/readers.h"

namespace fer {
namespace {

namespace fs = std::filesystem;

constexpr double kPi = 3.14159265358979323846;
constexpr double kMinPatchShare = 1.0 / 6;
constexpr double kMaxPatchShare = 1.0 / 2;

bool IsImage(const fs::path& path) {
  static const std::set<std::string> kExtensions = {".jpg", ".jpeg", ".png", ".bmp", ".webp",
                                                    ".tif", ".tiff", ".pgm", ".ppm"};
  return kExtensions.count(absl::AsciiStrToLower(path.extension().string())) > 0;
}

// The image at path at channels (RGB order for 3), or an empty Mat when it
// does not decode or declares more than max_pixels.
cv::Mat ReadImage(const fs::path& path, int channels, int64_t max_pixels) {
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const absl::StatusOr<DeclaredSize> size = ReadDeclaredSize(bytes);
  if (!size.ok() || int64_t{size->width} * size->height > max_pixels) return cv::Mat();
  const std::vector<uchar> data(bytes.begin(), bytes.end());
  cv::Mat image = cv::imdecode(data, channels == 3 ? cv::IMREAD_COLOR : cv::IMREAD_GRAYSCALE);
  if (!image.empty() && channels == 3) cv::cvtColor(image, image, cv::COLOR_BGR2RGB);
  return image;
}

}  // namespace

absl::StatusOr<Misalignment> ParseMisalignment(std::string_view name) {
  if (name == "none") return Misalignment::kNone;
  if (name == "shift") return Misalignment::kShift;
  if (name == "zoom_out") return Misalignment::kZoomOut;
  return absl::InvalidArgumentError(
      absl::StrCat("misalignment \"", std::string(name), "\" is none, shift or zoom_out"));
}

void MisalignFace(uint8_t* face, int size, int channels, Misalignment kind, double fraction,
                  std::mt19937_64& rng) {
  if (kind == Misalignment::kNone) return;
  cv::Mat image(size, size, channels == 3 ? CV_8UC3 : CV_8UC1, face);
  cv::Mat transform;
  if (kind == Misalignment::kShift) {
    const double angle = std::uniform_real_distribution<double>(0, 2 * kPi)(rng);
    const double d = fraction * size;
    transform = (cv::Mat_<double>(2, 3) << 1, 0, d * std::cos(angle), 0, 1, d * std::sin(angle));
  } else {
    const double centre = (size - 1) / 2.0;
    transform = cv::getRotationMatrix2D(cv::Point2f(centre, centre), 0, 1 / (1 + fraction));
  }
  cv::Mat moved;
  cv::warpAffine(image, moved, transform, image.size(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
  moved.copyTo(image);
}

absl::StatusOr<std::vector<Patch>> CutPatches(const std::string& folder, int count, int size,
                                              int channels, int64_t max_pixels, uint64_t seed) {
  std::error_code error;
  std::vector<fs::path> files;
  for (fs::directory_iterator it(folder, error), end; !error && it != end; it.increment(error)) {
    if (it->is_regular_file(error) && IsImage(it->path())) files.push_back(it->path());
  }
  if (error)
    return absl::NotFoundError(absl::StrCat("cannot list ", folder, ": ", error.message()));
  std::sort(files.begin(), files.end());
  std::vector<cv::Mat> images;
  std::vector<fs::path> kept;
  for (const fs::path& file : files) {
    cv::Mat image = ReadImage(file, channels, max_pixels);
    if (image.empty() || std::min(image.rows, image.cols) < 6) continue;
    images.push_back(std::move(image));
    kept.push_back(file);
  }
  if (images.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("no usable image directly in ", folder));
  }
  std::mt19937_64 rng(seed);
  std::vector<Patch> patches(count);
  const size_t face_bytes = static_cast<size_t>(size) * size * channels;
  for (int i = 0; i < count; ++i) {
    const cv::Mat& image = images[i % images.size()];
    const int shorter = std::min(image.rows, image.cols);
    const int side = static_cast<int>(std::uniform_real_distribution<double>(
        kMinPatchShare * shorter, kMaxPatchShare * shorter)(rng));
    const int x = std::uniform_int_distribution<int>(0, image.cols - side)(rng);
    const int y = std::uniform_int_distribution<int>(0, image.rows - side)(rng);
    const cv::Mat crop = image(cv::Rect(x, y, side, side)).clone();
    patches[i].source = absl::StrFormat("%s@x%dy%ds%d", kept[i % kept.size()].string(), x, y, side);
    patches[i].pixels.resize(face_bytes);
    ResizeFace(crop.data, side, side, channels, patches[i].pixels.data(), size);
  }
  return patches;
}

}  // namespace fer
