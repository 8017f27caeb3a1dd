// Real faces for the image intake tests: FER2013 training faces (48 x 48 grey
// JPEGs) from the shared data folder, and helpers that re-encode them in other
// formats and colours. Tests skip with a message when the data is absent.
#ifndef FER_TESTS_SERVER_TEST_IMAGES_H_
#define FER_TESTS_SERVER_TEST_IMAGES_H_

#include <algorithm>
#include <filesystem>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

namespace fer {
namespace test_images {

inline std::string Fer2013TrainDir() { return std::string(FER_SHARED_DATA) + "/fer2013/train"; }

inline std::string SkipMessage() {
  return "FER2013 faces not found under " + Fer2013TrainDir() +
         " (<class>/*.jpg); put the data set there to run this test";
}

// The first per_class JPEG paths of every class folder, in name order, so that
// every run uses the same faces.
inline std::vector<std::string> FacePaths(size_t per_class) {
  namespace fs = std::filesystem;
  std::vector<std::string> paths;
  std::error_code error;
  if (!fs::is_directory(Fer2013TrainDir(), error)) return paths;
  std::vector<fs::path> classes;
  for (const auto& entry : fs::directory_iterator(Fer2013TrainDir(), error)) {
    if (entry.is_directory()) classes.push_back(entry.path());
  }
  std::sort(classes.begin(), classes.end());
  for (const fs::path& dir : classes) {
    std::vector<std::string> files;
    for (const auto& entry : fs::directory_iterator(dir, error)) {
      if (entry.path().extension() == ".jpg") files.push_back(entry.path().string());
    }
    std::sort(files.begin(), files.end());
    files.resize(std::min(files.size(), per_class));
    paths.insert(paths.end(), files.begin(), files.end());
  }
  return paths;
}

inline std::string Encode(const cv::Mat& image, const std::string& extension,
                          const std::vector<int>& params = {}) {
  std::vector<uint8_t> bytes;
  if (!cv::imencode(extension, image, bytes, params)) return std::string();
  return std::string(bytes.begin(), bytes.end());
}

inline cv::Mat Decode(const std::string& bytes, int flags) {
  return cv::imdecode(
      cv::Mat(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data())),
      flags | cv::IMREAD_IGNORE_ORIENTATION);
}

// A colour version of a grey face (BGR), with different gains per channel so
// that any channel swap or wrong grey weighting shows.
inline cv::Mat Tint(const cv::Mat& grey) {
  std::vector<cv::Mat> channels(3);
  grey.convertTo(channels[0], CV_8U, 0.45, 20);  // blue
  grey.convertTo(channels[1], CV_8U, 0.8, 10);   // green
  grey.convertTo(channels[2], CV_8U, 1.0, 0);    // red
  cv::Mat colour;
  cv::merge(channels, colour);
  return colour;
}

// colour (BGR) with a partly transparent alpha channel, so that encoders keep it.
inline cv::Mat WithAlpha(const cv::Mat& colour) {
  cv::Mat grey;
  cv::cvtColor(colour, grey, cv::COLOR_BGR2GRAY);
  cv::Mat alpha;
  grey.convertTo(alpha, CV_8U, -0.5, 255);
  cv::Mat bgra;
  cv::cvtColor(colour, bgra, cv::COLOR_BGR2BGRA);
  cv::insertChannel(alpha, bgra, 3);
  return bgra;
}

// A non-square resize, so that a width/height mix-up cannot pass.
inline cv::Mat NonSquare(const cv::Mat& image, int width = 37, int height = 53) {
  cv::Mat resized;
  cv::resize(image, resized, cv::Size(width, height), 0, 0, cv::INTER_LINEAR);
  return resized;
}

}  // namespace test_images
}  // namespace fer

#endif  // FER_TESTS_SERVER_TEST_IMAGES_H_
