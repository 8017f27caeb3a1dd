#include "client/face_detector.h"

#include <algorithm>
#include <filesystem>
#include <opencv2/imgproc.hpp>
#include <system_error>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace fer::client {
namespace {

// Frames wider than this are searched at this width: Haar cost grows with the
// pixel count, and a face worth classifying is still tens of pixels wide.
constexpr int kDetectWidth = 640;

// Standard homes of OpenCV's data files, most specific first. FER_OPENCV_DATA_DIR
// is the haarcascades folder of the OpenCV this binary was built against.
std::vector<std::string> CascadeDirs() {
  std::vector<std::string> dirs;
#ifdef FER_OPENCV_DATA_DIR
  dirs.push_back(FER_OPENCV_DATA_DIR);
#endif
  for (const char* dir :
       {"/usr/share/opencv4/haarcascades", "/usr/local/share/opencv4/haarcascades",
        "/usr/share/opencv/haarcascades", "/usr/local/share/opencv/haarcascades"}) {
    if (std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) dirs.push_back(dir);
  }
  return dirs;
}

}  // namespace

absl::StatusOr<std::string> FindCascade(const std::string& flag_value) {
  std::error_code error;
  if (!flag_value.empty()) {
    if (std::filesystem::is_regular_file(flag_value, error)) return flag_value;
    return absl::NotFoundError(absl::StrCat("--cascade: ", flag_value, ": no such file"));
  }
  const std::vector<std::string> dirs = CascadeDirs();
  for (const std::string& dir : dirs) {
    const std::string path = absl::StrCat(dir, "/", kDefaultCascadeName);
    if (std::filesystem::is_regular_file(path, error)) return path;
  }
  return absl::NotFoundError(absl::StrCat(
      "no face detector: ", kDefaultCascadeName, " is not in ", absl::StrJoin(dirs, ", "),
      "; install opencv-data, pass --cascade=FILE, or --no_detect to send whole frames"));
}

absl::StatusOr<std::unique_ptr<FaceDetector>> FaceDetector::Load(const std::string& cascade_path,
                                                                 DetectorOptions options) {
  cv::CascadeClassifier cascade;
  bool loaded = false;
  try {
    loaded = cascade.load(cascade_path);
  } catch (const cv::Exception& e) {
    loaded = false;
  }
  if (!loaded || cascade.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(cascade_path, ": not a cascade OpenCV can load"));
  }
  return std::unique_ptr<FaceDetector>(new FaceDetector(cascade, options));
}

std::vector<FaceBox> FaceDetector::Detect(const cv::Mat& frame) {
  cv::Mat grey;
  if (frame.channels() == 1) {
    grey = frame;
  } else {
    cv::cvtColor(frame, grey, frame.channels() == 4 ? cv::COLOR_BGRA2GRAY : cv::COLOR_BGR2GRAY);
  }
  const double scale =
      frame.cols > kDetectWidth ? static_cast<double>(kDetectWidth) / frame.cols : 1.0;
  if (scale < 1.0) cv::resize(grey, grey, cv::Size(), scale, scale, cv::INTER_AREA);
  cv::equalizeHist(grey, grey);
  const int min_side = std::max(1, static_cast<int>(options_.min_face * scale));
  std::vector<cv::Rect> found;
  cascade_.detectMultiScale(grey, found, options_.scale_factor, options_.min_neighbors, 0,
                            cv::Size(min_side, min_side));

  const cv::Rect bounds(0, 0, frame.cols, frame.rows);
  std::vector<FaceBox> boxes;
  for (const cv::Rect& rect : found) {
    const cv::Rect scaled =
        cv::Rect(static_cast<int>(rect.x / scale), static_cast<int>(rect.y / scale),
                 static_cast<int>(rect.width / scale), static_cast<int>(rect.height / scale)) &
        bounds;
    if (scaled.area() > 0) boxes.push_back({scaled.x, scaled.y, scaled.width, scaled.height});
  }
  std::sort(boxes.begin(), boxes.end(), [](const FaceBox& a, const FaceBox& b) {
    return std::tie(a.x, a.y) < std::tie(b.x, b.y);
  });
  return boxes;
}

}  // namespace fer::client
