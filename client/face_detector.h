// Finds faces in video frames with an OpenCV Haar cascade, the detector every
// OpenCV install can run without extra model downloads (Debian's opencv-data
// ships the cascades).
#ifndef FER_CLIENT_FACE_DETECTOR_H_
#define FER_CLIENT_FACE_DETECTOR_H_

#include <memory>
#include <opencv2/core.hpp>
#include <opencv2/objdetect.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/face_result.h"

namespace fer::client {

// The cascade file used when --cascade is not given.
inline constexpr char kDefaultCascadeName[] = "haarcascade_frontalface_default.xml";

// The cascade to load: flag_value itself when set (NOT_FOUND if it is not a
// file), else kDefaultCascadeName from the first of the standard data folders
// that has it (OpenCV's install prefix, then Debian's and /usr/local's
// opencv4 and opencv folders). NOT_FOUND names the folders searched and the
// ways out (install opencv-data, --cascade, --no_detect).
absl::StatusOr<std::string> FindCascade(const std::string& flag_value);

struct DetectorOptions {
  // Smallest face side reported, in frame pixels.
  int min_face = 40;
  // Scale step between detection passes and neighbours needed to keep a
  // detection: OpenCV's usual settings for faces.
  double scale_factor = 1.1;
  int min_neighbors = 5;
};

class FaceDetector {
 public:
  // INVALID_ARGUMENT when the file is not a cascade OpenCV can load.
  static absl::StatusOr<std::unique_ptr<FaceDetector>> Load(const std::string& cascade_path,
                                                            DetectorOptions options);

  // Faces in a BGR (or grey) frame, inside the frame, sorted left to right
  // then top to bottom so that output order is stable. Large frames are
  // searched at a reduced size (faces smaller than min_face are not wanted
  // anyway) and the boxes scaled back.
  std::vector<FaceBox> Detect(const cv::Mat& frame);

 private:
  // Copies share the loaded cascade (OpenCV reference-counts it).
  FaceDetector(const cv::CascadeClassifier& cascade, DetectorOptions options)
      : cascade_(cascade), options_(options) {}

  cv::CascadeClassifier cascade_;
  const DetectorOptions options_;
};

}  // namespace fer::client

#endif  // FER_CLIENT_FACE_DETECTOR_H_
