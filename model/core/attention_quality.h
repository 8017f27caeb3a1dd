// A per-face quality signal from an attention map (Prediction.attention,
// Runner::Classify's maps): how much of the map's total lies on the central
// face region rather than the border. Torch-free, so the server, the client
// and the offline tools share one definition.
#ifndef FER_MODEL_CORE_ATTENTION_QUALITY_H_
#define FER_MODEL_CORE_ATTENTION_QUALITY_H_

#include "absl/types/span.h"

namespace fer {

// Whether cell i of a side of n cells is central: its centre, crop pixel
// 16 i, lies in the middle half [side / 4, 3 side / 4) of a side of 16 n
// pixels. For 7 cells (112 px): cells 2..5, centred on pixels 32..80.
bool IsCentralAttentionCell(int i, int n);

// The share of map's total (height x width values, row-major, all >= 0) in
// the cells central in both rows and columns, in [0, 1]; 0 for an empty or
// all-zero map. A uniform map gives the central cells' share of the grid.
float AttentionCenterShare(absl::Span<const float> map, int height, int width);

}  // namespace fer

#endif  // FER_MODEL_CORE_ATTENTION_QUALITY_H_
