// A picture of what LLA-Net looks at: a grid of faces, each with its attention
// map (Runner::Classify's maps, docs/model.md "Attention maps") overlaid as a
// colour heat map, its predicted label and confidence, its true label when
// known and its centre share (model/core/attention_quality.h). One colour
// scale serves the whole grid, so maps compare across faces; a colour bar
// gives its values.
//
// Built only with OpenCV, like heatmap.h; the header itself does not include
// OpenCV.
#ifndef FER_MODEL_TRAINING_ATTENTION_GRID_H_
#define FER_MODEL_TRAINING_ATTENTION_GRID_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace fer {

// One face of the grid.
struct ExplainedFace {
  // The crop the engine classified: crop_size x crop_size x channels (1 grey,
  // 3 RGB), rows top to bottom.
  std::vector<uint8_t> pixels;
  // map_height x map_width values, row-major.
  std::vector<float> map;
  std::string predicted;
  float confidence = 0;
  std::string truth;  // Empty when the face has no true label.
  float center_share = 0;
};

struct AttentionGridOptions {
  int columns = 7;
  // Side in pixels each face is drawn at; text is scaled to fit it. At least
  // kMinAttentionCellSize.
  int cell_size = 112;
  // Drawn above the grid when not empty. Printable ASCII only.
  std::string title;
};

inline constexpr int kMinAttentionCellSize = 48;

// The map upsampled to out_size x out_size pixels of a crop of crop_size,
// with the documented alignment: cell (r, c) is the sample at crop pixel
// (16 r, 16 c), the network's four stride-2 steps; between samples bilinear,
// beyond the last sample the nearest one. Row-major.
std::vector<float> UpsampleAttention(absl::Span<const float> map, int map_height, int map_width,
                                     int crop_size, int out_size);

// Writes the grid to path as a PNG, replacing any file there. Every face must
// have crop_size^2 * channels pixels and map_height x map_width values.
absl::Status WriteAttentionGrid(const std::vector<ExplainedFace>& faces, int crop_size,
                                int channels, int map_height, int map_width,
                                const std::string& path, const AttentionGridOptions& options = {});

}  // namespace fer

#endif  // FER_MODEL_TRAINING_ATTENTION_GRID_H_
