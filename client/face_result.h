// What the client knows about classified faces: where a face is in a frame,
// the model's scores for it, and a video frame's faces. Plain data, free of gRPC and OpenCV, so
// that tracking, output formatting and drawing share one vocabulary and can be tested without a
// server.
#ifndef FER_CLIENT_FACE_RESULT_H_
#define FER_CLIENT_FACE_RESULT_H_

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace fer::client {

// An axis-aligned face box in frame pixels.
struct FaceBox {
  int x = 0;
  int y = 0;
  int width = 0;
  int height = 0;
};

// Probabilities of the labels, in the model's label order (ModelInfo.labels),
// and the index of the most probable one.
struct Scores {
  std::vector<float> probabilities;
  int top = 0;

  float confidence() const {
    return probabilities.empty() ? 0.0f : probabilities[static_cast<size_t>(top)];
  }

  // Scores whose top is the arg-max of probabilities (the first on ties, as
  // the server picks it).
  static Scores FromProbabilities(std::vector<float> probabilities) {
    Scores scores;
    scores.top = probabilities.empty()
                     ? 0
                     : static_cast<int>(std::distance(
                           probabilities.begin(),
                           std::max_element(probabilities.begin(), probabilities.end())));
    scores.probabilities = std::move(probabilities);
    return scores;
  }
};

// A face's attention map (Prediction.attention) and where its cells sit on
// the face: cell (r, c) is centred on pixel (offset + 16 r, offset + 16 c) of
// the face stretched to side x side pixels. One crop: side is the model's
// input size and offset 0; ten-crop: the centre crop's map, side 128 and
// offset 8 for 112 (see AttentionMap in proto/fer/v1/expression.proto).
struct AttentionGrid {
  int height = 0;
  int width = 0;
  std::vector<float> values;  // row-major, height x width
  float center_share = 0;
  int side = 0;
  double offset = 0;

  bool empty() const { return values.empty(); }
};

// The distance between neighbouring cells' centres, in pixels of the face the
// model saw: LLA-Net's four halvings.
inline constexpr int kAttentionCellPitch = 16;

// Sets grid's side and offset for a model of input_size asked with or without
// ten_crop. Ten-crop answers the centre crop's map: the face is resized to
// input_size * 8 / 7 (rounded) and the crop cut from its middle, as
// TenCropResizeSize and TenCropBoxes (model/core/image_ops.h) do; the client
// cannot include that, and tests/client/attention_overlay_test.cc holds the
// two equal.
inline void PlaceAttentionCells(int input_size, bool ten_crop, AttentionGrid* grid) {
  grid->side = input_size;
  grid->offset = 0;
  if (!ten_crop) return;
  grid->side = static_cast<int>(std::lround(input_size * 8.0 / 7.0));
  grid->offset = (grid->side - input_size) / 2;
}

// One face of a video frame, as fer-client stream reports and draws it.
struct StreamFace {
  FaceBox box;
  int track_id = -1;          // see FaceTracker
  Scores scores;              // what the client reports (smoothed when smoothing)
  std::optional<Scores> raw;  // the frame's own scores, set when smoothing
  AttentionGrid attention;    // empty unless maps were asked for
};

// One video frame's answer.
struct StreamFrame {
  uint64_t index = 0;  // 0-based position in the video, also the frame_id sent
  double timestamp_ms = 0;
  std::vector<StreamFace> faces;
  std::string error;  // non-empty when the server could not classify the frame
};

}  // namespace fer::client

#endif  // FER_CLIENT_FACE_RESULT_H_
