// A packed data set: every face of a data set decoded once, resized, and held
// as 8-bit pixels with its label (and, for video data, its video and frame), so
// that training and evaluation never decode images per epoch.
//
// On disk (little-endian): the magic "FERPACK1", a header, the per-face
// labels, video ids and frame indices, then the pixels of all faces compressed
// with zlib after a planar predictor (each pixel minus left + up - up-left),
// which keeps 48x48 FER2013 faces at about a third of their raw size, smaller
// than the source JPEGs, without loss.
#ifndef FER_MODEL_PACKED_DATASET_H_
#define FER_MODEL_PACKED_DATASET_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fer {

class PackedDataset {
 public:
  // An empty set of square faces of face_size x face_size x channels (1 grey,
  // 3 RGB in that order), rows top to bottom, channels interleaved.
  PackedDataset(int face_size, int channels);

  // Appends one face of face_bytes() pixels. video is -1 for still images.
  void Add(const uint8_t* pixels, int label, int video = -1, int frame = -1);

  // Appends every face of other (same face size and channels required).
  absl::Status Append(const PackedDataset& other);

  // Keeps only the faces whose indices are listed, in that order.
  void Select(const std::vector<size_t>& indices);

  absl::Status Write(const std::string& path) const;
  // Fails with a clear message for a missing, truncated or foreign file.
  static absl::StatusOr<PackedDataset> Read(const std::string& path);

  size_t size() const { return labels_.size(); }
  int face_size() const { return face_size_; }
  int channels() const { return channels_; }
  size_t face_bytes() const { return static_cast<size_t>(face_size_) * face_size_ * channels_; }
  const uint8_t* face(size_t i) const { return pixels_.data() + i * face_bytes(); }
  int label(size_t i) const { return labels_[i]; }
  int video(size_t i) const { return videos_[i]; }
  int frame(size_t i) const { return frames_[i]; }
  const std::vector<int8_t>& labels() const { return labels_; }

  // Names of the videos that video ids index; empty for still-image sets.
  std::vector<std::string>& video_names() { return video_names_; }
  const std::vector<std::string>& video_names() const { return video_names_; }
  // Free text describing where the faces came from, kept in the file.
  std::string& source() { return source_; }
  const std::string& source() const { return source_; }

  // Number of faces per label, kNumClasses entries.
  std::vector<size_t> ClassCounts() const;

 private:
  int face_size_;
  int channels_;
  std::vector<uint8_t> pixels_;
  std::vector<int8_t> labels_;
  std::vector<int32_t> videos_;
  std::vector<int32_t> frames_;
  std::vector<std::string> video_names_;
  std::string source_;
};

}  // namespace fer

#endif  // FER_MODEL_PACKED_DATASET_H_
