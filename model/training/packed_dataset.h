// A packed data set: every face of a data set decoded once, resized, and held
// as 8-bit pixels with its label (and, for video data, its video and frame), so
// that training and evaluation never decode images per epoch.
//
// On disk (little-endian): the magic "FERPACK1", a header, the per-face
// labels, video ids and frames, then the pixels of all faces compressed with
// zlib after a planar predictor (each pixel minus left + up - up-left),
// without loss. FER2013's training faces pack at 606 bytes per 48x48 face
// (26% of raw, less than their 785-byte JPEGs); its noisier validation JPEGs
// at 1693 bytes (73% of raw, about their JPEG size). The exact layout is
// documented in packed_dataset.cc.
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

  // Appends one face of face_bytes() pixels. video is -1 for still images;
  // frame is the frame's index within its video (-1 for still images). label
  // must lie in [0, kNumClasses): Write refuses sets that break this.
  void Add(const uint8_t* pixels, int label, int video = -1, int frame = -1);

  // Makes room for `faces` faces in all, so that adding them never reallocates.
  void Reserve(size_t faces);

  // Appends every face of other (same face size and channels required). Video
  // ids of other are shifted past every id this set uses, and its video names
  // follow this set's names, so videos of the two sets never merge.
  absl::Status Append(const PackedDataset& other);

  // Keeps only the faces whose indices are listed, in that order (an index may
  // repeat; every index must be below size()). Video names are kept.
  void Select(const std::vector<size_t>& indices);

  // Tuning of Write and Read; the defaults suit every set we pack.
  struct WriteOptions {
    // Pixels are compressed in independent zlib blocks of about this many raw
    // bytes (at least one face each); blocks are compressed in parallel.
    size_t block_bytes = size_t{4} << 20;
    // Compression threads; 0 picks the number of cores (at most 8).
    int threads = 0;
  };
  struct ReadOptions {
    // Decompression threads; 0 picks the number of cores (at most 8).
    int threads = 0;
  };

  // Writes the set to path (through path + ".tmp" and a rename, so path never
  // holds a partial file). Fails for labels outside [0, kNumClasses) or video
  // ids that video_names() does not cover (when it is not empty).
  absl::Status Write(const std::string& path) const;
  absl::Status Write(const std::string& path, const WriteOptions& options) const;
  // Fails with a clear message for a missing, truncated or foreign file:
  // NotFound when it does not exist, InvalidArgument when it is not a packed
  // set, DataLoss when it is truncated or corrupt. Every length in the file is
  // checked against the file's size before anything is allocated for it.
  static absl::StatusOr<PackedDataset> Read(const std::string& path);
  static absl::StatusOr<PackedDataset> Read(const std::string& path, const ReadOptions& options);

  size_t size() const { return labels_.size(); }
  int face_size() const { return face_size_; }
  int channels() const { return channels_; }
  size_t face_bytes() const { return static_cast<size_t>(face_size_) * face_size_ * channels_; }
  const uint8_t* face(size_t i) const { return pixels_.data() + i * face_bytes(); }
  // Writable pixels of face i, for in-place edits such as a re-crop.
  uint8_t* mutable_face(size_t i) { return pixels_.data() + i * face_bytes(); }
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
