// Small pixel operations shared by training, evaluation and the server, kept
// free of OpenCV and LibTorch so that every path crops and resizes faces the
// same way. Images are 8-bit, rows top to bottom, channels interleaved.
#ifndef FER_MODEL_IMAGE_OPS_H_
#define FER_MODEL_IMAGE_OPS_H_

#include <array>
#include <cstdint>

namespace fer {

// Test-time augmentation follows the training augmentation: a face is resized
// to TenCropResizeSize(input_size) (input_size * 8 / 7, rounded: 128 for 112),
// then crops of input_size are taken from it. Single-crop inference resizes the
// whole face to input_size.
int TenCropResizeSize(int input_size);

// One crop of a square image: top-left corner, side, and whether it is mirrored.
struct CropBox {
  int x = 0;
  int y = 0;
  int size = 0;
  bool mirrored = false;
};

// The ten crops in torchvision's TenCrop order: top-left, top-right,
// bottom-left, bottom-right, centre, then the same five mirrored horizontally.
std::array<CropBox, 10> TenCropBoxes(int image_size, int crop_size);
// The index of the centre crop, unmirrored: the crop whose attention map a
// ten-crop face is answered with (AttentionMap in proto/fer/v1/expression.proto).
inline constexpr int kTenCropCentreBox = 4;

// Bilinear resize with pixel centres aligned (OpenCV INTER_LINEAR and
// PyTorch's align_corners=false agree with it).
void ResizeBilinear(const uint8_t* src, int src_width, int src_height, int channels, uint8_t* dst,
                    int dst_width, int dst_height);

// Copies box out of a square image of image_size, mirroring it if asked.
void Crop(const uint8_t* src, int image_size, int channels, const CropBox& box, uint8_t* dst);

}  // namespace fer

#endif  // FER_MODEL_IMAGE_OPS_H_
