// Class balancing of packed data sets, as the LLA-Net paper does it for
// Aff-Wild2 (section IV, Table II): thin out long runs of over-represented
// classes, add samples of rare classes from other data sets, and optionally
// re-crop faces so that sets framed differently look alike.
//
// Everything here works on PackedDataset values and plain label sequences; it
// decodes no images and needs neither OpenCV nor LibTorch.
#ifndef FER_MODEL_BALANCE_H_
#define FER_MODEL_BALANCE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/core/labels.h"
#include "model/training/packed_dataset.h"

namespace fer {

// Keep every k-th frame of a run, k per class in label order; 1 keeps all.
using ClassStrides = std::array<int, kNumClasses>;

// 1 for every class: nothing is dropped.
ClassStrides NoStrides();
// The paper's Aff-Wild2 setting: neutral 12, happiness 2, every other class 1.
ClassStrides DefaultAffWild2Strides();

// Parses "neutral:12,happiness:2" (label names or any alias of labels.h, in
// any order; classes not named keep stride 1). "" and "none" give NoStrides().
// Fails on unknown classes, strides below 1 and malformed items.
absl::StatusOr<ClassStrides> ParseClassStrides(std::string_view spec);
// The inverse of ParseClassStrides: "neutral:12,happiness:2", or "none".
std::string FormatClassStrides(const ClassStrides& strides);

// The indices (ascending) that stride sampling keeps from a sequence of faces.
// A run is a maximal stretch of consecutive entries with the same video and
// label where, for video frames (video >= 0), each frame index is the previous
// one plus 1: an unannotated or skipped frame therefore ends a run. Still
// images (video -1) of one label in a row form one run, so a stride thins out
// a class of an image folder in file order. Within a run the 1st, (k+1)-th,
// (2k+1)-th, ... entries are kept, k = strides[label].
// Requires labels, videos and frames of equal length, labels in range.
std::vector<size_t> StrideIndices(absl::Span<const int8_t> labels, absl::Span<const int32_t> videos,
                                  absl::Span<const int32_t> frames, const ClassStrides& strides);

// Applies StrideIndices to data in place; returns the number of faces removed.
size_t ApplyStrides(PackedDataset& data, const ClassStrides& strides);

// One --extra item: a packed set and the classes to take from it (all seven
// when none are named).
struct ExtraSource {
  std::string path;
  std::vector<int> classes;
};

// Parses extra-sample specs such as {"a.pack:anger,disgust,fear", "b.pack"}.
// Each spec may itself be a comma list: an item with ':' starts a new source
// ("path:class"), an item naming a class adds it to the current source, and
// any other item starts a new source that contributes every class. Fails on
// unknown class names after ':' and on empty paths.
absl::StatusOr<std::vector<ExtraSource>> ParseExtraSources(const std::vector<std::string>& specs);

// Appends to target every face of extra whose label is in classes, converted
// to target's face size and channels with ConvertFace (model/training/readers.h). The
// added faces are still images (video -1, frame -1): they come after stride
// sampling and never join a run. Returns the number added.
absl::StatusOr<size_t> AddExtraSamples(const PackedDataset& extra, absl::Span<const int> classes,
                                       PackedDataset& target);

// Replaces every face by its central square of side round(fraction * size),
// resized back to the face size with ResizeFace (model/training/readers.h). fraction
// must lie in (0, 1]; 1 leaves the faces unchanged.
absl::Status Recrop(PackedDataset& data, double fraction);

// A text table of the class distribution like the paper's Table II: one row
// per class with count and percentage, then the total. With `after` given (not
// empty), two column pairs: before and after balancing. Both spans hold
// kNumClasses counts in label order.
std::string ClassDistributionTable(absl::Span<const size_t> before,
                                   absl::Span<const size_t> after = {});

}  // namespace fer

#endif  // FER_MODEL_BALANCE_H_
