// Readers that turn a data set on disk into a PackedDataset: an ImageFolder
// tree (one folder per class), Aff-Wild2's EXPR annotations with its cropped
// and aligned frames, and FER2013's original CSV.
//
// Every reader decodes each image once, converts it to the requested channels
// and resizes it to a square face with ResizeFace below, so packed sets from
// different sources look alike. Image decoding uses OpenCV (imgcodecs) and is
// only available when fer-model is built with it (FER_WITH_OPENCV): otherwise
// the image readers fail with UnimplementedError. The CSV reader decodes
// nothing and always works.
//
// Output order is deterministic whatever the number of threads: files are
// visited in sorted order and faces are added in that order.
//
// Bad files never end a read: every image's header is read first (JPEG, PNG,
// WebP and BMP with the server's parser, TIFF and PNM here), and a file whose
// header does not parse, that declares more than max_pixels, or that the
// decoder refuses is counted in the ReadReport and skipped. Memory stays
// bounded: images above kParallelDecodePixels decode one at a time (smaller
// ones in parallel), each is resized to its face at once, and a decoded image
// is never kept.
#ifndef FER_MODEL_READERS_H_
#define FER_MODEL_READERS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/core/labels.h"
#include "model/training/balance.h"
#include "model/training/packed_dataset.h"

namespace fer {

// The face side used when none is asked for and the first image is larger.
inline constexpr int kDefaultMaxFaceSize = 112;
// Largest width x height decoded by default (8192 x 8192): a face data set
// has no use for more, and a decompression bomb declares far more.
inline constexpr int64_t kDefaultMaxImagePixels = int64_t{8192} * 8192;
// Images above this many pixels (2048 x 2048) decode one at a time, so that
// at most one large decoded image exists at any moment whatever the threads.
inline constexpr int64_t kParallelDecodePixels = int64_t{2048} * 2048;

struct ReaderOptions {
  // Side of the stored square faces. 0: min(kDefaultMaxFaceSize, the larger
  // side of the first image read), so 48x48 FER2013 faces stay 48x48 and
  // Aff-Wild2's 112x112 crops stay 112x112. Images that are not square are
  // stretched to a square.
  int face_size = 0;
  // 1: grey; 3: RGB (in that order). Grey sources are repeated on three
  // channels, colour sources are converted to grey by the decoder.
  int channels = 1;
  // Decoding threads; 0 picks the number of cores.
  int threads = 0;
  // Images whose header declares more pixels (width x height) are skipped
  // and counted as oversized, before any decoding. Must be positive.
  int64_t max_pixels = kDefaultMaxImagePixels;
  // Aff-Wild2 only: stride sampling (see StrideIndices in balance.h) applied to
  // the annotated frames before decoding, so dropped frames are never read.
  ClassStrides strides = NoStrides();
  // Called from the calling thread as work completes with (done, total):
  // images for the image readers, bytes of the file for the CSV reader.
  std::function<void(size_t done, size_t total)> progress;
};

// What a reader saw besides the faces it packed. Counts are of samples
// (images, frames or CSV rows), never of faces packed.
struct ReadReport {
  // Labelled samples found per class, before stride sampling and decoding.
  std::array<size_t, kNumClasses> found{};
  // Image folders whose name is no label alias: folder name -> images skipped.
  std::map<std::string, size_t> unknown_classes;
  // Files that exist but do not decode as images, and a few of them as
  // "path: why".
  size_t undecodable = 0;
  std::vector<std::string> undecodable_examples;
  // Images whose header declares more than max_pixels, never decoded, and a
  // few of them as "path: W x H".
  size_t oversized = 0;
  std::vector<std::string> oversized_examples;
  // Image folders: folders not entered because they were already read through
  // another path (a symlink loop, or two links to one folder).
  size_t repeated_folders = 0;
  // Aff-Wild2: frames annotated -1 (not annotated) and 7 (Other), skipped.
  size_t not_annotated = 0;
  size_t other = 0;
  // Aff-Wild2: annotated frames dropped by stride sampling (never decoded).
  size_t dropped_by_stride = 0;
  // Aff-Wild2: annotated frames whose image is missing, in total and per
  // video, and a few of their paths. Never fatal.
  size_t missing_frames = 0;
  std::map<std::string, size_t> missing_per_video;
  std::vector<std::string> missing_examples;
  // CSV: rows of another Usage than the one asked for.
  size_t skipped_usage = 0;

  // One line per non-zero item above (found excepted), e.g.
  // "skipped unknown class folder 'contempt': 12 images". Empty if none.
  std::string Summary() const;
};

struct ReadResult {
  PackedDataset data;
  ReadReport report;
  // The image readers: the file each face of data came from, in face order
  // (fer-model explain names faces by it). Empty for the CSV reader.
  std::vector<std::string> sources;
};

// Reads root/<class>/... : every image file (jpg, jpeg, png, bmp, webp, tif,
// tiff, pgm, ppm, pbm; any case) below a class folder, at any depth, labelled by
// LabelFromAlias(class folder name). Folders that map to no label are skipped
// and counted. Files with other extensions are ignored. Symbolic links to
// folders are followed, but every folder (by its canonical path) is read at
// most once, so a link loop ends and no file is read twice through two links.
// Fails if root is not a readable folder or without OpenCV; an empty result
// is not an error.
absl::StatusOr<ReadResult> ReadImageFolder(const std::string& root, const ReaderOptions& options);

// Reads Aff-Wild2 EXPR annotations: every <video>.txt in annotations (sorted;
// the first line is the header "Neutral,Anger,...", then one label per frame),
// frame i (1-based) at images_root/<video>/<i as 5 digits>.jpg. Labels -1 and
// 7 are skipped and counted. The packed faces carry the video's index in
// data.video_names() (every annotation file's stem, sorted) and the 1-based
// frame number. Fails on a bad header or a line that is not a label in
// [-1, 7] (naming file and line), if a folder is missing, or without OpenCV.
absl::StatusOr<ReadResult> ReadAffWild2(const std::string& annotations,
                                        const std::string& images_root,
                                        const ReaderOptions& options);

// FER2013's usage names, as in the CSV's Usage column.
inline constexpr std::array<std::string_view, 3> kFer2013Usages = {"Training", "PublicTest",
                                                                   "PrivateTest"};

// FER2013's emotion codes (0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad,
// 5 Surprise, 6 Neutral) to our label order; -1 for codes outside 0..6.
int LabelFromFer2013Emotion(int emotion);

// Reads FER2013's original CSV: a header naming the columns emotion, pixels
// and optionally Usage (any order, any case), then one face per row with its
// pixels as space-separated grey values of a square image. With usage not
// empty only rows of that Usage (case-insensitive) are read. Fails naming the
// line for a bad emotion code, a pixel list that is not a square of 0..255
// values or differs in size from the first row, and for an unknown usage.
absl::StatusOr<ReadResult> ReadFer2013Csv(const std::string& csv_path, std::string_view usage,
                                          const ReaderOptions& options);

enum class DataFormat { kAuto, kFolder, kAffWild2, kFer2013Csv };

// "auto", "folder", "affwild2", "fer2013csv".
absl::StatusOr<DataFormat> ParseDataFormat(std::string_view name);
std::string_view DataFormatName(DataFormat format);

// Guesses the format of path: a file ending in .csv is FER2013's CSV; a folder
// holding .txt files and no sub-folders is an Aff-Wild2 annotation folder;
// any other folder an ImageFolder tree. Fails when path does not exist or is
// a file of another kind.
absl::StatusOr<DataFormat> DetectDataFormat(const std::string& path);

// The width and height an encoded image's header declares, read without
// decoding a pixel: JPEG, PNG, WebP and BMP through model/common/image_format.h
// (which also refuses truncated files), TIFF (the first image directory) and
// PNM (PBM, PGM, PPM, PAM, PFM) here. INVALID_ARGUMENT saying why for
// anything else, a malformed header or a zero size.
struct DeclaredSize {
  int width = 0;
  int height = 0;
};
absl::StatusOr<DeclaredSize> ReadDeclaredSize(std::string_view bytes);

// Resizes an image of width x height x channels to a square of size x size.
// Shrinking in both directions averages the source area each output pixel
// covers (like cv::INTER_AREA: no aliasing on 112 -> 48); anything else uses
// ResizeBilinear of image_ops.h, the resize the server applies at inference.
// Same size copies. Needs no OpenCV, so every build packs the same pixels.
void ResizeFace(const uint8_t* src, int width, int height, int channels, uint8_t* dst, int size);

// Converts a square face between sizes and channel counts (1 or 3): grey is
// repeated on three channels, RGB becomes grey with the BT.601 luma weights
// (as OpenCV's RGB2GRAY), then ResizeFace. dst holds dst_size^2 * dst_channels.
void ConvertFace(const uint8_t* src, int src_size, int src_channels, uint8_t* dst, int dst_size,
                 int dst_channels);

}  // namespace fer

#endif  // FER_MODEL_READERS_H_
