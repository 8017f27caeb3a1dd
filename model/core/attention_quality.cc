#include "model/core/attention_quality.h"

namespace fer {

bool IsCentralAttentionCell(int i, int n) {
  // Cell i is centred on pixel 16 i; the middle half of a 16 n side is
  // [4 n, 12 n): 16 i >= 4 n and 16 i < 12 n.
  return 4 * i >= n && 4 * i < 3 * n;
}

float AttentionCenterShare(absl::Span<const float> map, int height, int width) {
  if (height <= 0 || width <= 0 || map.size() != static_cast<size_t>(height) * width) return 0;
  double total = 0;
  double central = 0;
  for (int r = 0; r < height; ++r) {
    for (int c = 0; c < width; ++c) {
      const double v = map[static_cast<size_t>(r) * width + c];
      total += v;
      if (IsCentralAttentionCell(r, height) && IsCentralAttentionCell(c, width)) central += v;
    }
  }
  return total > 0 ? static_cast<float>(central / total) : 0.0f;
}

}  // namespace fer
