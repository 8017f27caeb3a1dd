// A confusion matrix drawn as a PNG heat map, for reports and training logs:
// one square cell per (true, predicted) pair, rows true labels top to bottom
// and columns predicted labels left to right in label order, label names on
// both axes, and in each cell its count and its share of the row.
//
// Colours are normalised per row (count / samples of that true label, the
// per-class recall on the diagonal), so rare classes are as readable as common
// ones; a row with no samples is drawn at zero. A colour bar maps 0% to 100%.
//
// Built only with OpenCV (fer_model_tools defines FER_WITH_OPENCV then);
// callers guard their use with #ifdef FER_WITH_OPENCV. The header itself does
// not include OpenCV.
#ifndef FER_MODEL_HEATMAP_H_
#define FER_MODEL_HEATMAP_H_

#include <string>

#include "absl/status/status.h"
#include "model/training/classification_report.h"

namespace fer {

struct HeatmapOptions {
  // Side of one cell in pixels; label text is scaled down to fit it. At least
  // kMinHeatmapCellSize.
  int cell_size = 80;
  // Drawn above the matrix when not empty (e.g. "val: accuracy 0.49, F1 0.38").
  // Printable ASCII only: OpenCV's Hershey fonts draw nothing else.
  std::string title;
};

inline constexpr int kMinHeatmapCellSize = 32;

// Writes the heat map of confusion to path as a PNG (whatever the file name's
// extension), replacing any file there. Fails with InvalidArgument for bad
// options or an empty path, with the errno-derived code when the file cannot
// be written, and with Internal if OpenCV fails to encode the image.
absl::Status WriteConfusionHeatmap(const ConfusionMatrix& confusion, const std::string& path,
                                   const HeatmapOptions& options = {});

}  // namespace fer

#endif  // FER_MODEL_HEATMAP_H_
