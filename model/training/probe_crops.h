// Crops that a face detector should not have handed over, for judging a
// quality signal such as the attention centre share: faces moved or shrunk
// inside their crop (a misaligned detection), and square patches of photos
// without faces. Built only with OpenCV, like heatmap.h.
#ifndef FER_MODEL_TRAINING_PROBE_CROPS_H_
#define FER_MODEL_TRAINING_PROBE_CROPS_H_

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace fer {

enum class Misalignment {
  kNone,
  // The face moves by fraction x side in a direction drawn uniformly.
  kShift,
  // The crop grows by 1 + fraction around the face's centre: the face fills
  // 1 / (1 + fraction) of the side.
  kZoomOut,
};

// "none", "shift", "zoom_out".
absl::StatusOr<Misalignment> ParseMisalignment(std::string_view name);

// Misaligns a square face of size x size x channels in place. Pixels the face
// no longer covers repeat its nearest edge (a tight data-set crop has no
// surroundings to show).
void MisalignFace(uint8_t* face, int size, int channels, Misalignment kind, double fraction,
                  std::mt19937_64& rng);

struct Patch {
  // "PATH@xXySs": the patch of side S at column X, row Y of the image at PATH.
  std::string source;
  std::vector<uint8_t> pixels;
};

// count square patches of size x size x channels (1 grey, 3 RGB) cut from the
// image files directly in folder (sorted; image i % files gives patch i): side
// uniform in [1/6, 1/2] of the image's shorter side, position uniform, then
// resized as the readers resize faces. Images above max_pixels are skipped.
// Fails for a folder without a usable image.
absl::StatusOr<std::vector<Patch>> CutPatches(const std::string& folder, int count, int size,
                                              int channels, int64_t max_pixels, uint64_t seed);

}  // namespace fer

#endif  // FER_MODEL_TRAINING_PROBE_CROPS_H_
