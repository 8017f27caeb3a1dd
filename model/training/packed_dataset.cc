#include "model/training/packed_dataset.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "model/common/parallel_for.h"
#include "model/common/user_file.h"
#include "model/core/labels.h"

// File layout, every integer little-endian:
//
//   char[8]   magic "FERPACK1"
//   uint32    face_size            1 .. kMaxFaceSize
//   uint32    channels             1 or 3
//   uint64    count                number of faces
//   uint32    source length, then that many bytes (free text)
//   uint32    number of video names, then per name: uint32 length, bytes
//   int8      labels[count]        0 .. kNumClasses-1
//   int32     videos[count]        -1, or an index into the video names
//   int32     frames[count]        -1 for still images
//   uint32    faces_per_block      >= 1
//   uint64    number of blocks     ceil(count / faces_per_block)
//   per block: uint64 compressed length, then one zlib stream holding the
//              predicted pixels of the block's faces (the last block may be short)
//
// The pixels are split into independent zlib blocks so that writing and reading
// large sets (Aff-Wild2 at 112x112 is several GB raw) can use several cores,
// and so that a corrupt block is reported as such. Each face is predicted on its
// own (residual = pixel - (left + up - upleft) mod 256 per channel, neighbours
// outside the face are 0), so faces stay independent of their neighbours in the
// file and Select/Append never need to re-encode anything but the pixels.

namespace fer {
namespace {

constexpr char kMagic[8] = {'F', 'E', 'R', 'P', 'A', 'C', 'K', '1'};
// Faces larger than this are not faces; the bound keeps a foreign file from
// asking for absurd allocations.
constexpr uint32_t kMaxFaceSize = 4096;
// Deflate cannot compress better than about 1032:1; a block that claims more
// raw bytes than this allows is corrupt, and checking it before allocating
// keeps a small hostile file from reserving gigabytes.
constexpr uint64_t kMaxDeflateRatio = 1040;
constexpr uint64_t kDeflateSlack = 1024;
// Residuals of the predictor look like noise: string matching finds almost
// nothing in them, so Huffman coding alone is both smaller and about ten times
// faster than zlib's default (FER2013 train: 596 vs 690 bytes per face, 1.5 s
// vs 12 s on one core). The stream is ordinary zlib either way.
constexpr int kWindowBits = 15;
// zlib counts input in 32-bit units; blocks stay well below that.
constexpr size_t kMaxBlockBytes = size_t{1} << 30;
constexpr int kMemLevel = 8;

int DefaultThreads(int requested) {
  if (requested > 0) return requested;
  const unsigned hw = std::thread::hardware_concurrency();
  return static_cast<int>(std::clamp(hw, 1u, 8u));
}

// Planar predictor of one face: out = (in - (left + up - upleft)) mod 256.
void Predict(const uint8_t* in, int size, int channels, uint8_t* out) {
  const size_t row = static_cast<size_t>(size) * channels;
  for (int y = 0; y < size; ++y) {
    const uint8_t* cur = in + y * row;
    const uint8_t* up = y > 0 ? cur - row : nullptr;
    uint8_t* dst = out + y * row;
    for (size_t i = 0; i < row; ++i) {
      const bool has_left = i >= static_cast<size_t>(channels);
      const int left = has_left ? cur[i - channels] : 0;
      const int above = up ? up[i] : 0;
      const int upleft = (up && has_left) ? up[i - channels] : 0;
      dst[i] = static_cast<uint8_t>(cur[i] - (left + above - upleft));
    }
  }
}

// Inverse of Predict, in place: raster order guarantees that the neighbours are
// already reconstructed when a residual is turned back into a pixel.
void Unpredict(uint8_t* data, int size, int channels) {
  const size_t row = static_cast<size_t>(size) * channels;
  for (int y = 0; y < size; ++y) {
    uint8_t* cur = data + y * row;
    const uint8_t* up = y > 0 ? cur - row : nullptr;
    for (size_t i = 0; i < row; ++i) {
      const bool has_left = i >= static_cast<size_t>(channels);
      const int left = has_left ? cur[i - channels] : 0;
      const int above = up ? up[i] : 0;
      const int upleft = (up && has_left) ? up[i - channels] : 0;
      cur[i] = static_cast<uint8_t>(cur[i] + (left + above - upleft));
    }
  }
}

void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint32_t GetU32(const unsigned char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}
uint64_t GetU64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

using File = UniqueFile;

// Reads a file front to back, checking every length against what is left of
// it before anything is allocated for it.
class CheckedReader {
 public:
  CheckedReader(std::string path, File file, uint64_t size)
      : path_(std::move(path)), file_(std::move(file)), size_(size) {}

  uint64_t remaining() const { return size_ - offset_; }
  uint64_t offset() const { return offset_; }

  absl::Status Read(void* dst, uint64_t n, absl::string_view what) {
    if (n > remaining()) return Truncated(what, n);
    if (n > 0 && std::fread(dst, 1, n, file_.get()) != n) {
      return absl::DataLossError(absl::StrCat("cannot read ", what, " of packed data set ", path_,
                                              " at offset ", offset_));
    }
    offset_ += n;
    return absl::OkStatus();
  }
  absl::Status ReadU32(uint32_t* v, absl::string_view what) {
    unsigned char b[4];
    if (absl::Status s = Read(b, 4, what); !s.ok()) return s;
    *v = GetU32(b);
    return absl::OkStatus();
  }
  absl::Status ReadU64(uint64_t* v, absl::string_view what) {
    unsigned char b[8];
    if (absl::Status s = Read(b, 8, what); !s.ok()) return s;
    *v = GetU64(b);
    return absl::OkStatus();
  }
  absl::Status Truncated(absl::string_view what, uint64_t needed) const {
    return absl::DataLossError(absl::StrFormat(
        "packed data set %s is truncated or corrupt: %s needs %d bytes at offset %d, but the file "
        "has only %d left",
        path_, what, needed, offset_, remaining()));
  }
  absl::Status Corrupt(absl::string_view why) const {
    return absl::DataLossError(absl::StrCat("packed data set ", path_, " is corrupt: ", why));
  }

 private:
  std::string path_;
  File file_;
  uint64_t size_;
  uint64_t offset_ = 0;
};

// Compresses the predicted pixels of the n faces at pixels into one zlib stream.
absl::Status CompressBlock(const uint8_t* pixels, size_t n, int face_size, int channels,
                           std::string* out) {
  const size_t face_bytes = static_cast<size_t>(face_size) * face_size * channels;
  std::vector<uint8_t> residuals(n * face_bytes);
  for (size_t i = 0; i < n; ++i) {
    Predict(pixels + i * face_bytes, face_size, channels, residuals.data() + i * face_bytes);
  }
  z_stream stream{};
  int rc = deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, kWindowBits, kMemLevel,
                        Z_HUFFMAN_ONLY);
  if (rc != Z_OK) return absl::InternalError(absl::StrCat("zlib deflateInit2 failed: ", rc));
  out->resize(deflateBound(&stream, static_cast<uLong>(residuals.size())));
  stream.next_in = residuals.data();
  stream.avail_in = static_cast<uInt>(residuals.size());
  stream.next_out = reinterpret_cast<Bytef*>(out->data());
  stream.avail_out = static_cast<uInt>(out->size());
  rc = deflate(&stream, Z_FINISH);
  const size_t length = stream.total_out;
  deflateEnd(&stream);
  if (rc != Z_STREAM_END) return absl::InternalError(absl::StrCat("zlib deflate failed: ", rc));
  out->resize(length);
  return absl::OkStatus();
}

// Refuses a set whose face shape, labels or video ids the file cannot hold.
absl::Status CheckWritable(const PackedDataset& data, const std::string& path) {
  const int face_size = data.face_size();
  const int channels = data.channels();
  if (face_size < 1 || static_cast<uint32_t>(face_size) > kMaxFaceSize ||
      (channels != 1 && channels != 3)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot write %s: faces of %dx%d with %d channels are not supported", path,
                        face_size, face_size, channels));
  }
  const size_t names = data.video_names().size();
  for (size_t i = 0; i < data.size(); ++i) {
    if (data.label(i) < 0 || data.label(i) >= kNumClasses) {
      return absl::InvalidArgumentError(
          absl::StrFormat("cannot write %s: face %d has label %d", path, i, data.label(i)));
    }
    if (data.video(i) < -1 || (names > 0 && data.video(i) >= static_cast<int32_t>(names))) {
      return absl::InvalidArgumentError(
          absl::StrFormat("cannot write %s: face %d has video id %d but the set names %d videos",
                          path, i, data.video(i), names));
    }
  }
  return absl::OkStatus();
}

// Faces per zlib block: as many as fit in block_bytes (capped), at least one.
size_t FacesPerBlock(size_t face_bytes, size_t block_bytes) {
  return std::max<size_t>(1, std::min(block_bytes, kMaxBlockBytes) / face_bytes);
}

// Everything of the file before the pixel blocks: magic, shape, source text,
// video names, the label, video and frame columns, and the block table's size.
std::string EncodeHeader(const PackedDataset& data, size_t per_block, size_t blocks) {
  std::string header(kMagic, sizeof(kMagic));
  PutU32(header, static_cast<uint32_t>(data.face_size()));
  PutU32(header, static_cast<uint32_t>(data.channels()));
  PutU64(header, data.size());
  PutU32(header, static_cast<uint32_t>(data.source().size()));
  header += data.source();
  PutU32(header, static_cast<uint32_t>(data.video_names().size()));
  for (const std::string& name : data.video_names()) {
    PutU32(header, static_cast<uint32_t>(name.size()));
    header += name;
  }
  header.append(reinterpret_cast<const char*>(data.labels().data()), data.size());
  for (size_t i = 0; i < data.size(); ++i) PutU32(header, static_cast<uint32_t>(data.video(i)));
  for (size_t i = 0; i < data.size(); ++i) PutU32(header, static_cast<uint32_t>(data.frame(i)));
  PutU32(header, static_cast<uint32_t>(std::min<size_t>(per_block, UINT32_MAX)));
  PutU64(header, blocks);
  return header;
}

bool WriteBytes(std::FILE* file, const void* data, size_t n) {
  return std::fwrite(data, 1, n, file) == n;
}

// Compresses the pixel blocks a wave of `threads` at a time and writes each
// with its length, in order. A compression failure is returned as is; a failed
// write clears *written (errno says why) and stops early with an OK status.
absl::Status WriteBlocks(std::FILE* file, const PackedDataset& data, size_t per_block,
                         size_t blocks, int threads, bool* written) {
  std::vector<std::string> compressed(threads);
  std::vector<absl::Status> statuses(threads);
  for (size_t first = 0; *written && first < blocks; first += threads) {
    const size_t wave = std::min<size_t>(threads, blocks - first);
    ParallelFor(wave, threads, [&](size_t w) {
      const size_t begin = (first + w) * per_block;
      const size_t n = std::min(per_block, data.size() - begin);
      statuses[w] =
          CompressBlock(data.face(begin), n, data.face_size(), data.channels(), &compressed[w]);
    });
    for (size_t w = 0; w < wave && *written; ++w) {
      if (!statuses[w].ok()) return statuses[w];
      std::string length;
      PutU64(length, compressed[w].size());
      *written = WriteBytes(file, length.data(), length.size()) &&
                 WriteBytes(file, compressed[w].data(), compressed[w].size());
    }
  }
  return absl::OkStatus();
}

// Moves the finished tmp file to path; tmp is removed when that fails.
absl::Status RenameInto(const std::string& tmp, const std::string& path) {
  std::error_code error;
  std::filesystem::rename(tmp, path, error);
  if (error) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    return absl::PermissionDeniedError(
        absl::StrCat("cannot rename ", tmp, " to ", path, ": ", error.message()));
  }
  return absl::OkStatus();
}

// Opens path as a readable regular file (not a folder, fifo or device) and
// wraps it in a reader that knows its size, or returns one clear error.
absl::StatusOr<CheckedReader> OpenPacked(const std::string& path) {
  absl::StatusOr<File> file = OpenRegularFile(path, "packed data set");
  if (!file.ok()) return file.status();
  struct stat info;
  if (::fstat(::fileno(file->get()), &info) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot stat ", path, ": ", std::strerror(errno)));
  }
  return CheckedReader(path, std::move(*file), static_cast<uint64_t>(info.st_size));
}

// A file that starts like the magic but ends early is a truncated packed set
// (DataLoss); anything else is foreign (InvalidArgument).
absl::Status ReadMagic(CheckedReader& in, const std::string& path) {
  const uint64_t file_size = in.remaining();
  char magic[sizeof(kMagic)];
  const size_t magic_bytes = static_cast<size_t>(std::min<uint64_t>(sizeof(magic), file_size));
  if (absl::Status s = in.Read(magic, magic_bytes, "magic"); !s.ok()) return s;
  if (std::memcmp(magic, kMagic, magic_bytes) != 0 || file_size == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, " is not a packed data set (no FERPACK1 magic; pack images with `fer-model pack`)"));
  }
  if (magic_bytes < sizeof(kMagic)) return in.Truncated("magic", sizeof(kMagic) - magic_bytes);
  return absl::OkStatus();
}

// The face shape and count that follow the magic.
struct Shape {
  uint32_t face_size = 0;
  uint32_t channels = 0;
  uint64_t count = 0;
};

absl::StatusOr<Shape> ReadShape(CheckedReader& in) {
  Shape shape;
  if (absl::Status s = in.ReadU32(&shape.face_size, "face size"); !s.ok()) return s;
  if (absl::Status s = in.ReadU32(&shape.channels, "channel count"); !s.ok()) return s;
  if (absl::Status s = in.ReadU64(&shape.count, "face count"); !s.ok()) return s;
  if (shape.face_size < 1 || shape.face_size > kMaxFaceSize ||
      (shape.channels != 1 && shape.channels != 3)) {
    return in.Corrupt(absl::StrFormat("unsupported faces of %dx%d with %d channels",
                                      shape.face_size, shape.face_size, shape.channels));
  }
  return shape;
}

// The free source text and the table of video names.
absl::Status ReadNames(CheckedReader& in, std::string* source, std::vector<std::string>* names) {
  uint32_t source_length = 0, name_count = 0;
  if (absl::Status s = in.ReadU32(&source_length, "source length"); !s.ok()) return s;
  if (source_length > in.remaining()) return in.Truncated("source text", source_length);
  source->resize(source_length);
  if (absl::Status s = in.Read(source->data(), source_length, "source text"); !s.ok()) return s;
  if (absl::Status s = in.ReadU32(&name_count, "video name count"); !s.ok()) return s;
  if (uint64_t{name_count} * 4 > in.remaining()) {
    return in.Truncated("video names", uint64_t{name_count} * 4);
  }
  names->resize(name_count);
  for (std::string& name : *names) {
    uint32_t length = 0;
    if (absl::Status s = in.ReadU32(&length, "video name length"); !s.ok()) return s;
    if (length > in.remaining()) return in.Truncated("video name", length);
    name.resize(length);
    if (absl::Status s = in.Read(name.data(), length, "video name"); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// The per-face columns: labels in [0, kNumClasses), then video ids (-1 or
// below name_count when there are names), then frame indices.
absl::Status ReadFaceColumns(CheckedReader& in, uint64_t count, uint32_t name_count,
                             std::vector<int8_t>* labels, std::vector<int32_t>* videos,
                             std::vector<int32_t>* frames) {
  // Nine bytes of labels, video ids and frame indices per face must fit.
  if (count > in.remaining() / 9) return in.Truncated("labels, videos and frames", count * 9);
  labels->resize(count);
  if (absl::Status s = in.Read(labels->data(), count, "labels"); !s.ok()) return s;
  for (uint64_t i = 0; i < count; ++i) {
    if ((*labels)[i] < 0 || (*labels)[i] >= kNumClasses) {
      return in.Corrupt(absl::StrFormat("face %d has label %d", i, (*labels)[i]));
    }
  }
  std::vector<unsigned char> ints(count * 4);
  for (std::vector<int32_t>* column : {videos, frames}) {
    const bool is_videos = column == videos;
    if (absl::Status s =
            in.Read(ints.data(), ints.size(), is_videos ? "video ids" : "frame indices");
        !s.ok()) {
      return s;
    }
    column->resize(count);
    for (uint64_t i = 0; i < count; ++i) {
      (*column)[i] = static_cast<int32_t>(GetU32(ints.data() + 4 * i));
    }
  }
  for (uint64_t i = 0; i < count; ++i) {
    const int32_t v = (*videos)[i];
    if (v < -1 || (name_count > 0 && v >= static_cast<int64_t>(name_count))) {
      return in.Corrupt(absl::StrFormat("face %d has video id %d, but the set names %d videos", i,
                                        v, name_count));
    }
  }
  return absl::OkStatus();
}

// How the pixels are cut into blocks.
struct BlockTable {
  uint32_t per_block = 0;
  uint64_t blocks = 0;
};

// Reads the block table and checks that count faces of face_bytes each can
// come out of what is left of the file, before the pixels are allocated.
absl::StatusOr<BlockTable> ReadBlockTable(CheckedReader& in, uint64_t count, uint64_t fb) {
  BlockTable table;
  if (absl::Status s = in.ReadU32(&table.per_block, "faces per block"); !s.ok()) return s;
  if (absl::Status s = in.ReadU64(&table.blocks, "block count"); !s.ok()) return s;
  const uint64_t blocks = table.blocks;
  if (table.per_block == 0 || blocks != (count + table.per_block - 1) / table.per_block) {
    return in.Corrupt(absl::StrFormat("%d blocks of %d faces cannot hold %d faces", blocks,
                                      table.per_block, count));
  }
  // Every block costs at least its 8-byte length, and deflate bounds how far
  // the rest can expand.
  if (blocks > in.remaining() / 8) return in.Truncated("block lengths", blocks * 8);
  const uint64_t max_raw =
      (in.remaining() - blocks * 8) * kMaxDeflateRatio + blocks * kDeflateSlack;
  if (count > max_raw / fb) {
    return in.Corrupt(
        absl::StrFormat("%d faces of %d bytes cannot come out of the %d compressed bytes left",
                        count, fb, in.remaining()));
  }
  return table;
}

// Reads the compressed bytes of one block of `faces` faces into *compressed.
absl::Status ReadBlock(CheckedReader& in, uint64_t block, uint64_t faces, uint64_t fb,
                       std::vector<unsigned char>* compressed) {
  uint64_t length = 0;
  if (absl::Status s = in.ReadU64(&length, "block length"); !s.ok()) return s;
  if (length > in.remaining()) return in.Truncated(absl::StrCat("pixel block ", block), length);
  if (faces * fb > length * kMaxDeflateRatio + kDeflateSlack) {
    return in.Corrupt(absl::StrFormat("pixel block %d is too short for its faces", block));
  }
  compressed->resize(length);
  return in.Read(compressed->data(), length, "pixel block");
}

// Turns one compressed block back into the pixels of its faces at dst.
absl::Status DecodeBlock(const CheckedReader& in, const std::vector<unsigned char>& compressed,
                         uint64_t block, uint64_t faces, int face_size, int channels,
                         uint8_t* dst) {
  const uint64_t fb = static_cast<uint64_t>(face_size) * face_size * channels;
  uLongf produced = static_cast<uLongf>(faces * fb);
  uLong consumed = static_cast<uLong>(compressed.size());
  const int rc = uncompress2(dst, &produced, compressed.data(), &consumed);
  if (rc != Z_OK || produced != faces * fb || consumed != compressed.size()) {
    return in.Corrupt(absl::StrFormat(
        "pixel block %d does not decompress to its %d faces (zlib code %d)", block, faces, rc));
  }
  for (uint64_t i = 0; i < faces; ++i) Unpredict(dst + i * fb, face_size, channels);
  return absl::OkStatus();
}

// Reads the pixel blocks into *pixels (already sized for count faces): a wave
// of `threads` blocks is read in order, then decoded in parallel.
absl::Status ReadPixels(CheckedReader& in, const Shape& shape, const BlockTable& table, int threads,
                        std::vector<uint8_t>* pixels) {
  const uint64_t fb = uint64_t{shape.face_size} * shape.face_size * shape.channels;
  const uint64_t per_block = table.per_block;
  std::vector<std::vector<unsigned char>> compressed(threads);
  std::vector<absl::Status> statuses(threads);
  for (uint64_t first = 0; first < table.blocks; first += threads) {
    const size_t wave = static_cast<size_t>(std::min<uint64_t>(threads, table.blocks - first));
    for (size_t w = 0; w < wave; ++w) {
      const uint64_t block = first + w;
      const uint64_t faces = std::min<uint64_t>(per_block, shape.count - block * per_block);
      if (absl::Status s = ReadBlock(in, block, faces, fb, &compressed[w]); !s.ok()) return s;
    }
    ParallelFor(wave, threads, [&](size_t w) {
      const uint64_t block = first + w;
      const uint64_t begin = block * per_block;
      const uint64_t faces = std::min<uint64_t>(per_block, shape.count - begin);
      statuses[w] = DecodeBlock(in, compressed[w], block, faces, static_cast<int>(shape.face_size),
                                static_cast<int>(shape.channels), pixels->data() + begin * fb);
    });
    for (size_t w = 0; w < wave; ++w) {
      if (!statuses[w].ok()) return statuses[w];
    }
  }
  if (in.remaining() != 0) {
    return in.Corrupt(absl::StrFormat("%d unexpected bytes after the last block", in.remaining()));
  }
  return absl::OkStatus();
}

}  // namespace

PackedDataset::PackedDataset(int face_size, int channels)
    : face_size_(face_size), channels_(channels) {}

void PackedDataset::Add(const uint8_t* pixels, int label, int video, int frame) {
  pixels_.insert(pixels_.end(), pixels, pixels + face_bytes());
  labels_.push_back(static_cast<int8_t>(label));
  videos_.push_back(video);
  frames_.push_back(frame);
}

void PackedDataset::Reserve(size_t faces) {
  pixels_.reserve(faces * face_bytes());
  labels_.reserve(faces);
  videos_.reserve(faces);
  frames_.reserve(faces);
}

absl::Status PackedDataset::Append(const PackedDataset& other) {
  if (other.face_size_ != face_size_ || other.channels_ != channels_) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "cannot append faces of %dx%dx%d to a set of %dx%dx%d faces", other.face_size_,
        other.face_size_, other.channels_, face_size_, face_size_, channels_));
  }
  // Video ids of `other` move past every id this set uses, named or not, so
  // that frames of different videos never merge into one run.
  int32_t offset = static_cast<int32_t>(video_names_.size());
  for (int32_t v : videos_) offset = std::max(offset, v + 1);
  if (!other.video_names_.empty()) {
    video_names_.resize(offset);
    video_names_.insert(video_names_.end(), other.video_names_.begin(), other.video_names_.end());
  }
  pixels_.insert(pixels_.end(), other.pixels_.begin(), other.pixels_.end());
  labels_.insert(labels_.end(), other.labels_.begin(), other.labels_.end());
  frames_.insert(frames_.end(), other.frames_.begin(), other.frames_.end());
  videos_.reserve(videos_.size() + other.videos_.size());
  for (int32_t v : other.videos_) videos_.push_back(v < 0 ? v : v + offset);
  return absl::OkStatus();
}

void PackedDataset::Select(const std::vector<size_t>& indices) {
  const size_t fb = face_bytes();
  std::vector<uint8_t> pixels(indices.size() * fb);
  std::vector<int8_t> labels(indices.size());
  std::vector<int32_t> videos(indices.size());
  std::vector<int32_t> frames(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) {
    const size_t j = indices[i];
    std::memcpy(pixels.data() + i * fb, pixels_.data() + j * fb, fb);
    labels[i] = labels_[j];
    videos[i] = videos_[j];
    frames[i] = frames_[j];
  }
  pixels_ = std::move(pixels);
  labels_ = std::move(labels);
  videos_ = std::move(videos);
  frames_ = std::move(frames);
}

std::vector<size_t> PackedDataset::ClassCounts() const {
  std::vector<size_t> counts(kNumClasses, 0);
  for (int8_t label : labels_) {
    if (label >= 0 && label < kNumClasses) ++counts[label];
  }
  return counts;
}

absl::Status PackedDataset::Write(const std::string& path) const {
  return Write(path, WriteOptions());
}

absl::Status PackedDataset::Write(const std::string& path, const WriteOptions& options) const {
  if (absl::Status s = CheckWritable(*this, path); !s.ok()) return s;
  const size_t per_block = FacesPerBlock(face_bytes(), options.block_bytes);
  const size_t blocks = (labels_.size() + per_block - 1) / per_block;
  const std::string header = EncodeHeader(*this, per_block, blocks);

  // Written next to the target and renamed at the end, so that a crash or a
  // full disk never leaves a half-written file under the final name.
  const std::string tmp = path + ".tmp";
  File file(std::fopen(tmp.c_str(), "wb"));
  if (!file) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", tmp, ": ", std::strerror(errno)));
  }
  bool ok = WriteBytes(file.get(), header.data(), header.size());
  if (absl::Status s =
          WriteBlocks(file.get(), *this, per_block, blocks, DefaultThreads(options.threads), &ok);
      !s.ok()) {
    file.reset();
    std::filesystem::remove(tmp);
    return s;
  }
  ok = ok && std::fflush(file.get()) == 0;
  const int saved_errno = errno;
  file.reset();
  if (!ok) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    return absl::DataLossError(
        absl::StrCat("cannot write ", tmp, ": ", std::strerror(saved_errno)));
  }
  return RenameInto(tmp, path);
}

absl::StatusOr<PackedDataset> PackedDataset::Read(const std::string& path) {
  return Read(path, ReadOptions());
}

absl::StatusOr<PackedDataset> PackedDataset::Read(const std::string& path,
                                                  const ReadOptions& options) {
  absl::StatusOr<CheckedReader> in = OpenPacked(path);
  if (!in.ok()) return in.status();
  if (absl::Status s = ReadMagic(*in, path); !s.ok()) return s;
  absl::StatusOr<Shape> shape = ReadShape(*in);
  if (!shape.ok()) return shape.status();
  PackedDataset data(static_cast<int>(shape->face_size), static_cast<int>(shape->channels));
  if (absl::Status s = ReadNames(*in, &data.source_, &data.video_names_); !s.ok()) return s;
  const uint32_t name_count = static_cast<uint32_t>(data.video_names_.size());
  if (absl::Status s = ReadFaceColumns(*in, shape->count, name_count, &data.labels_, &data.videos_,
                                       &data.frames_);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<BlockTable> table = ReadBlockTable(*in, shape->count, data.face_bytes());
  if (!table.ok()) return table.status();
  data.pixels_.resize(shape->count * data.face_bytes());
  if (absl::Status s =
          ReadPixels(*in, *shape, *table, DefaultThreads(options.threads), &data.pixels_);
      !s.ok()) {
    return s;
  }
  return data;
}

}  // namespace fer
