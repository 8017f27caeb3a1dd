#include "client/video_annotator.h"

#include <algorithm>
#include <array>
#include <opencv2/imgproc.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/attention_overlay.h"
#include "client/output_format.h"

namespace fer::client {
namespace {

// Colours (BGR) by label index, in the model's order: neutral grey, anger
// red, disgust green, fear purple, happiness yellow, sadness blue, surprise
// orange; further labels cycle.
constexpr std::array<std::array<int, 3>, 7> kLabelColours = {{
    {180, 180, 180},
    {40, 40, 230},
    {40, 160, 40},
    {170, 60, 160},
    {40, 220, 240},
    {200, 120, 40},
    {30, 140, 250},
}};
constexpr int kBarLength = 60;     // pixels for probability 1
constexpr int kBarRowHeight = 11;  // pixels per label row
constexpr int kBarTextWidth = 30;  // pixels of the label's short name
constexpr double kFontScale = 0.45;
constexpr double kSmallFontScale = 0.3;
constexpr int kLineThickness = 2;

cv::Scalar Colour(int label) {
  const auto& c = kLabelColours[static_cast<size_t>(std::max(label, 0)) % kLabelColours.size()];
  return cv::Scalar(c[0], c[1], c[2]);
}

}  // namespace

absl::StatusOr<std::unique_ptr<VideoAnnotator>> VideoAnnotator::Open(
    const std::string& path, double fps, cv::Size size, std::vector<std::string> labels) {
  if (size.width <= 0 || size.height <= 0) {
    return absl::InvalidArgumentError("--annotate: the video does not report its frame size");
  }
  std::unique_ptr<VideoAnnotator> annotator(new VideoAnnotator(size, std::move(labels)));
  try {
    annotator->writer_.open(path, cv::VideoWriter::fourcc('m', 'p', '4', 'v'), fps, size);
  } catch (const cv::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("--annotate: ", path, ": ", e.what()));
  }
  if (!annotator->writer_.isOpened()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--annotate: cannot write ", path,
                     " (is the folder writable and OpenCV built with FFmpeg?)"));
  }
  return annotator;
}

void VideoAnnotator::Write(cv::Mat& frame, const std::vector<StreamFace>& faces) {
  Draw(frame, faces, labels_);
  if (frame.size() == size_) {
    writer_.write(frame);
  } else {
    cv::Mat scaled;
    cv::resize(frame, scaled, size_);
    writer_.write(scaled);
  }
}

void VideoAnnotator::Draw(cv::Mat& frame, const std::vector<StreamFace>& faces,
                          const std::vector<std::string>& labels) {
  for (const StreamFace& face : faces) {
    const cv::Rect box(face.box.x, face.box.y, face.box.width, face.box.height);
    OverlayAttention(face.attention, box, frame);  // under the box and text; none when empty
    const cv::Scalar colour = Colour(face.scores.top);
    cv::rectangle(frame, box, colour, kLineThickness);
    const std::string caption =
        absl::StrFormat("%s %.2f", LabelName(labels, face.scores.top), face.scores.confidence());
    int baseline = 0;
    const cv::Size text =
        cv::getTextSize(caption, cv::FONT_HERSHEY_SIMPLEX, kFontScale, 1, &baseline);
    const int text_y = box.y - baseline - 2 >= text.height ? box.y - baseline - 2
                                                           : box.y + box.height + text.height + 2;
    cv::putText(frame, caption, cv::Point(box.x, text_y), cv::FONT_HERSHEY_SIMPLEX, kFontScale,
                colour, 1, cv::LINE_AA);

    // Bars to the right of the box, or to its left when they would leave the frame.
    const int panel_width = kBarTextWidth + kBarLength;
    int left = box.x + box.width + 4;
    if (left + panel_width > frame.cols) left = std::max(0, box.x - panel_width - 4);
    for (size_t i = 0; i < face.scores.probabilities.size(); ++i) {
      const int top = box.y + static_cast<int>(i) * kBarRowHeight;
      const std::string name = LabelName(labels, static_cast<int>(i)).substr(0, 3);
      cv::putText(frame, name, cv::Point(left, top + kBarRowHeight - 2), cv::FONT_HERSHEY_SIMPLEX,
                  kSmallFontScale, cv::Scalar(255, 255, 255), 1, cv::LINE_AA);
      const int length =
          static_cast<int>(std::clamp(face.scores.probabilities[i], 0.0f, 1.0f) * kBarLength);
      cv::rectangle(frame,
                    cv::Rect(left + kBarTextWidth, top + 2, std::max(length, 1), kBarRowHeight - 3),
                    Colour(static_cast<int>(i)), cv::FILLED);
    }
  }
}

}  // namespace fer::client
