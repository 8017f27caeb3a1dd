// Writes a copy of a video with each face's box, label and probability bars
// drawn on it (fer-client stream --annotate=OUT.mp4).
#ifndef FER_CLIENT_VIDEO_ANNOTATOR_H_
#define FER_CLIENT_VIDEO_ANNOTATOR_H_

#include <memory>
#include <opencv2/core.hpp>
#include <opencv2/videoio.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/face_result.h"

namespace fer::client {

class VideoAnnotator {
 public:
  // Opens path for writing with the MPEG-4 Part 2 codec (fourcc mp4v, which
  // every FFmpeg-backed OpenCV writes) at fps frames per second, frames of
  // size. INVALID_ARGUMENT when OpenCV cannot open it.
  static absl::StatusOr<std::unique_ptr<VideoAnnotator>> Open(const std::string& path, double fps,
                                                              cv::Size size,
                                                              std::vector<std::string> labels);

  // Draws faces on frame (in place) and appends it, scaled to the size given
  // to Open if it differs. Every frame of the input is written, faces or not,
  // so that the output has the input's frame count.
  void Write(cv::Mat& frame, const std::vector<StreamFace>& faces);

  // Finishes the file. Also done by the destructor.
  void Close() { writer_.release(); }

  // Drawing alone: per face its attention map inside its box when it has one
  // (OverlayAttention), its box and "label 0.91" in the top label's colour,
  // and one bar per label beside the box, as long as its probability.
  static void Draw(cv::Mat& frame, const std::vector<StreamFace>& faces,
                   const std::vector<std::string>& labels);

 private:
  VideoAnnotator(cv::Size size, std::vector<std::string> labels)
      : size_(size), labels_(std::move(labels)) {}

  const cv::Size size_;
  cv::VideoWriter writer_;
  const std::vector<std::string> labels_;
};

}  // namespace fer::client

#endif  // FER_CLIENT_VIDEO_ANNOTATOR_H_
