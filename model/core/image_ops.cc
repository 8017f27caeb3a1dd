#include "model/core/image_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace fer {

int TenCropResizeSize(int input_size) {
  return static_cast<int>(std::lround(input_size * 8.0 / 7.0));
}

std::array<CropBox, 10> TenCropBoxes(int image_size, int crop_size) {
  const int far = image_size - crop_size;
  const int centre = far / 2;
  const std::array<std::array<int, 2>, 5> corners = {
      {{0, 0}, {far, 0}, {0, far}, {far, far}, {centre, centre}}};
  std::array<CropBox, 10> boxes;
  for (int i = 0; i < 10; ++i) {
    boxes[i] = CropBox{corners[i % 5][0], corners[i % 5][1], crop_size, i >= 5};
  }
  return boxes;
}

void ResizeBilinear(const uint8_t* src, int src_width, int src_height, int channels, uint8_t* dst,
                    int dst_width, int dst_height) {
  const float scale_x = static_cast<float>(src_width) / dst_width;
  const float scale_y = static_cast<float>(src_height) / dst_height;
  for (int y = 0; y < dst_height; ++y) {
    const float fy = std::max(0.0f, (y + 0.5f) * scale_y - 0.5f);
    const int y0 = std::min(static_cast<int>(fy), src_height - 1);
    const int y1 = std::min(y0 + 1, src_height - 1);
    const float wy = fy - y0;
    for (int x = 0; x < dst_width; ++x) {
      const float fx = std::max(0.0f, (x + 0.5f) * scale_x - 0.5f);
      const int x0 = std::min(static_cast<int>(fx), src_width - 1);
      const int x1 = std::min(x0 + 1, src_width - 1);
      const float wx = fx - x0;
      for (int c = 0; c < channels; ++c) {
        auto at = [&](int yy, int xx) {
          return static_cast<float>(src[(static_cast<size_t>(yy) * src_width + xx) * channels + c]);
        };
        const float top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx;
        const float bottom = at(y1, x0) * (1 - wx) + at(y1, x1) * wx;
        const float value = top * (1 - wy) + bottom * wy;
        dst[(static_cast<size_t>(y) * dst_width + x) * channels + c] =
            static_cast<uint8_t>(std::clamp(std::lround(value), 0L, 255L));
      }
    }
  }
}

void Crop(const uint8_t* src, int image_size, int channels, const CropBox& box, uint8_t* dst) {
  const size_t row_bytes = static_cast<size_t>(box.size) * channels;
  for (int y = 0; y < box.size; ++y) {
    const uint8_t* row = src + (static_cast<size_t>(box.y + y) * image_size + box.x) * channels;
    uint8_t* out = dst + y * row_bytes;
    if (!box.mirrored) {
      std::memcpy(out, row, row_bytes);
      continue;
    }
    for (int x = 0; x < box.size; ++x) {
      std::memcpy(out + static_cast<size_t>(box.size - 1 - x) * channels,
                  row + static_cast<size_t>(x) * channels, channels);
    }
  }
}

}  // namespace fer
