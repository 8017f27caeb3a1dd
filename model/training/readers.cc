#include "model/training/readers.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "model/common/image_format.h"
#include "model/common/parallel_for.h"
#include "model/common/user_file.h"
#include "model/core/image_ops.h"

#ifdef FER_WITH_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#endif

namespace fer {
namespace {

namespace fs = std::filesystem;

// Paths kept per kind of problem, enough to find the cause without flooding.
constexpr size_t kMaxExamples = 5;
// Images decoded per round: bounds the scratch memory and paces progress.
constexpr size_t kDecodeChunk = 1024;
// CSV rows parsed per round.
constexpr size_t kCsvChunk = 2048;
constexpr int kMaxFaceSize = 4096;
constexpr int kAffWild2Other = 7;

// Debian's Abseil has its own string_view type; these bridge it and std's.
absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }
std::string_view StdView(absl::string_view s) { return std::string_view(s.data(), s.size()); }

int Threads(int requested) {
  if (requested > 0) return requested;
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

absl::Status CheckOptions(const ReaderOptions& options) {
  if (options.channels != 1 && options.channels != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("channels must be 1 (grey) or 3 (RGB), not ", options.channels));
  }
  if (options.face_size < 0 || options.face_size > kMaxFaceSize) {
    return absl::InvalidArgumentError(absl::StrCat("face size must lie in [1, ", kMaxFaceSize,
                                                   "] (0: automatic), not ", options.face_size));
  }
  for (int k : options.strides) {
    if (k < 1) return absl::InvalidArgumentError("every class stride must be at least 1");
  }
  if (options.max_pixels < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("the image size limit must be positive, not ", options.max_pixels));
  }
  return absl::OkStatus();
}

std::string Lower(absl::string_view s) { return absl::AsciiStrToLower(s); }

bool IsImageFile(const fs::path& path) {
  static constexpr absl::string_view kExtensions[] = {".jpg", ".jpeg", ".png", ".bmp", ".webp",
                                                      ".tif", ".tiff", ".pgm", ".ppm", ".pbm"};
  const std::string ext = Lower(path.extension().string());
  return std::find(std::begin(kExtensions), std::end(kExtensions), ext) != std::end(kExtensions);
}

[[maybe_unused]] void AddExample(std::vector<std::string>& examples, const std::string& path) {
  if (examples.size() < kMaxExamples) examples.push_back(path);
}

// One image to decode and where its face goes.
struct Job {
  std::string path;
  int label;
  int video;
  int frame;
};

absl::Status NoOpenCv() {
  return absl::UnimplementedError(
      "fer-model was built without OpenCV, so it cannot decode images; rebuild with OpenCV "
      "(libopencv-dev) or pack FER2013's CSV, which needs no decoder");
}

#ifdef FER_WITH_OPENCV

enum class Outcome { kOk, kMissing, kUndecodable, kOversized };

// What became of one image, and why for the ones skipped.
struct Decoded {
  Outcome outcome = Outcome::kOk;
  std::string why;
};

int ImreadFlags(int channels) { return channels == 1 ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR; }

// A file buffer larger than this is freed after use rather than kept for the
// thread's next image.
constexpr size_t kKeptBufferBytes = size_t{16} << 20;

// Reads a whole file; false if it cannot be opened (missing, unreadable).
bool ReadFile(const std::string& path, std::vector<uchar>* bytes) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return false;
  const std::streamoff size = in.tellg();
  if (size < 0) return false;
  bytes->resize(static_cast<size_t>(size));
  in.seekg(0);
  return static_cast<bool>(in.read(reinterpret_cast<char*>(bytes->data()), size));
}

// Reads path into bytes, telling missing files from unreadable ones without a
// second stat on the common path.
Decoded ReadImageBytes(const std::string& path, std::vector<uchar>* bytes) {
  if (ReadFile(path, bytes)) return {};
  std::error_code error;
  if (!fs::exists(path, error)) return {Outcome::kMissing, ""};
  return {Outcome::kUndecodable, "cannot be read"};
}

// The declared size of bytes, checked against max_pixels.
Decoded CheckDeclaredSize(const std::vector<uchar>& bytes, int64_t max_pixels, int64_t* pixels) {
  absl::StatusOr<DeclaredSize> size =
      ReadDeclaredSize(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  if (!size.ok()) return {Outcome::kUndecodable, std::string(size.status().message())};
  *pixels = int64_t{size->width} * size->height;
  if (*pixels > max_pixels) {
    return {Outcome::kOversized, absl::StrCat(size->width, " x ", size->height)};
  }
  return {};
}

// Decodes bytes at most once they passed CheckDeclaredSize. OpenCV throws on
// its own limits (OPENCV_IO_MAX_IMAGE_PIXELS) and on some corrupt files: a
// skipped image, never the end of the read.
Decoded DecodeBytes(const std::vector<uchar>& bytes, int flags, cv::Mat* image) {
  try {
    *image = cv::imdecode(bytes, flags);
  } catch (const cv::Exception& e) {
    return {Outcome::kUndecodable, absl::StrCat("decoder error: ", e.err)};
  }
  if (image->empty()) return {Outcome::kUndecodable, "the decoder refused it"};
  return {};
}

void SwapRedAndBlue(uint8_t* face, int size) {
  const size_t pixels = static_cast<size_t>(size) * size;
  for (size_t i = 0; i < pixels; ++i) std::swap(face[3 * i], face[3 * i + 2]);
}

// Decodes path into a size x size x channels face. Images above
// kParallelDecodePixels take large_decode for the decode and resize, so at
// most one of them is decoded at a time.
Decoded DecodeFace(const std::string& path, int size, int channels, int64_t max_pixels,
                   std::mutex& large_decode, uint8_t* out) {
  thread_local std::vector<uchar> bytes;
  Decoded result = ReadImageBytes(path, &bytes);
  int64_t pixels = 0;
  if (result.outcome == Outcome::kOk) result = CheckDeclaredSize(bytes, max_pixels, &pixels);
  if (result.outcome == Outcome::kOk) {
    std::unique_lock<std::mutex> lock(large_decode, std::defer_lock);
    if (pixels > kParallelDecodePixels) lock.lock();
    cv::Mat image;
    result = DecodeBytes(bytes, ImreadFlags(channels), &image);
    if (result.outcome == Outcome::kOk) {
      if (!image.isContinuous()) image = image.clone();
      ResizeFace(image.data, image.cols, image.rows, channels, out, size);
      // BGR to RGB on the face, not on a second full-size copy: the resize
      // treats channels alike, so the order may change after it.
      if (channels == 3) SwapRedAndBlue(out, size);
    }
  }
  if (bytes.capacity() > kKeptBufferBytes) std::vector<uchar>().swap(bytes);
  return result;
}

// The face size to pack at: the one asked for, else min(kDefaultMaxFaceSize,
// larger side of the first job whose header declares an acceptable size).
// nullopt when none does. Reads headers only.
std::optional<int> ChooseFaceSize(const std::vector<Job>& jobs, const ReaderOptions& options) {
  if (options.face_size > 0) return options.face_size;
  std::vector<uchar> bytes;
  for (const Job& job : jobs) {
    if (ReadImageBytes(job.path, &bytes).outcome != Outcome::kOk) continue;
    absl::StatusOr<DeclaredSize> size = ReadDeclaredSize(
        std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    if (size.ok() && int64_t{size->width} * size->height <= options.max_pixels) {
      return std::min(kDefaultMaxFaceSize, std::max(size->width, size->height));
    }
  }
  return std::nullopt;
}

// "path: why", for a report's examples.
std::string Example(const std::string& path, const std::string& why) {
  return why.empty() ? path : absl::StrCat(path, ": ", why);
}

// Counts one skipped job in the report.
void CountSkipped(const Job& job, const Decoded& decoded, const PackedDataset& data,
                  ReadReport& report) {
  switch (decoded.outcome) {
    case Outcome::kOk:
      return;
    case Outcome::kMissing:
      ++report.missing_frames;
      if (job.video >= 0) ++report.missing_per_video[data.video_names()[job.video]];
      AddExample(report.missing_examples, job.path);
      return;
    case Outcome::kUndecodable:
      ++report.undecodable;
      AddExample(report.undecodable_examples, Example(job.path, decoded.why));
      return;
    case Outcome::kOversized:
      ++report.oversized;
      AddExample(report.oversized_examples, Example(job.path, decoded.why));
      return;
  }
}

// Decodes every job in order into a new set whose videos are named by
// video_names, counting what fails.
ReadResult DecodeJobs(const std::vector<Job>& jobs, const ReaderOptions& options, ReadReport report,
                      std::vector<std::string> video_names = {}) {
  const int size = ChooseFaceSize(jobs, options).value_or(kDefaultMaxFaceSize);
  ReadResult result{PackedDataset(size, options.channels), std::move(report)};
  result.data.video_names() = std::move(video_names);
  result.data.Reserve(jobs.size());  // no doubling of a multi-GB pixel array
  const size_t fb = result.data.face_bytes();
  const int threads = Threads(options.threads);
  std::vector<uint8_t> buffer(std::min(jobs.size(), kDecodeChunk) * fb);
  std::vector<Decoded> outcomes(kDecodeChunk);
  std::mutex large_decode;
  if (options.progress) options.progress(0, jobs.size());
  for (size_t begin = 0; begin < jobs.size(); begin += kDecodeChunk) {
    const size_t n = std::min(kDecodeChunk, jobs.size() - begin);
    ParallelFor(n, threads, [&](size_t i) {
      outcomes[i] = DecodeFace(jobs[begin + i].path, size, options.channels, options.max_pixels,
                               large_decode, &buffer[i * fb]);
    });
    for (size_t i = 0; i < n; ++i) {
      const Job& job = jobs[begin + i];
      if (outcomes[i].outcome == Outcome::kOk) {
        result.data.Add(&buffer[i * fb], job.label, job.video, job.frame);
        result.sources.push_back(job.path);
      } else {
        CountSkipped(job, outcomes[i], result.data, result.report);
      }
    }
    if (options.progress) options.progress(begin + n, jobs.size());
  }
  return result;
}

#endif  // FER_WITH_OPENCV

absl::Status CheckFolder(const std::string& path, absl::string_view what) {
  std::error_code error;
  if (!fs::exists(path, error)) {
    return absl::NotFoundError(absl::StrCat(what, " ", path, " does not exist"));
  }
  if (!fs::is_directory(path, error)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " ", path, " is not a folder"));
  }
  return absl::OkStatus();
}

// Sorted entries of a folder, or an error naming it.
absl::StatusOr<std::vector<fs::directory_entry>> ListFolder(const fs::path& folder) {
  std::error_code error;
  std::vector<fs::directory_entry> entries;
  for (fs::directory_iterator it(folder, fs::directory_options::skip_permission_denied, error), end;
       !error && it != end; it.increment(error)) {
    entries.push_back(*it);
  }
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("cannot list ", folder.string(), ": ", error.message()));
  }
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.path() < b.path(); });
  return entries;
}

// Enters a folder once: false (counting it) when its canonical path was
// visited before, or when it has none (a dangling or unreadable link).
[[maybe_unused]] bool FirstVisit(const fs::path& folder, std::set<fs::path>& visited,
                                 size_t& repeated) {
  std::error_code error;
  const fs::path canonical = fs::canonical(folder, error);
  if (error) return false;
  if (visited.insert(canonical).second) return true;
  ++repeated;
  return false;
}

// Image files below folder at any depth, sorted by path. Links to folders are
// followed, but each folder only on its first visit through `visited`
// (shared by every class folder of a read), so a link loop ends.
[[maybe_unused]] absl::StatusOr<std::vector<std::string>> ListImages(const fs::path& folder,
                                                                     std::set<fs::path>& visited,
                                                                     size_t& repeated) {
  std::vector<std::string> files;
  if (!FirstVisit(folder, visited, repeated)) return files;
  std::error_code error;
  const auto options = fs::directory_options::follow_directory_symlink |
                       fs::directory_options::skip_permission_denied;
  for (fs::recursive_directory_iterator it(folder, options, error), end; !error && it != end;
       it.increment(error)) {
    // A dangling link answers these with an error of its own: not the
    // listing's, so it must not end the loop.
    std::error_code entry_error;
    if (it->is_directory(entry_error)) {
      if (!FirstVisit(it->path(), visited, repeated)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file(entry_error) && IsImageFile(it->path())) {
      files.push_back(it->path().string());
    }
  }
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("cannot list ", folder.string(), ": ", error.message()));
  }
  std::sort(files.begin(), files.end());
  return files;
}

absl::string_view StripLine(absl::string_view line) {
  return absl::StripAsciiWhitespace(line);  // also drops a CR of CRLF files
}

// A CSV field without surrounding blanks and double quotes.
absl::string_view Unquote(absl::string_view field) {
  field = absl::StripAsciiWhitespace(field);
  if (field.size() >= 2 && field.front() == '"' && field.back() == '"') {
    field = field.substr(1, field.size() - 2);
  }
  return field;
}

// Checks an EXPR header: the seven labels in our order, optionally "Other".
[[maybe_unused]] absl::Status CheckAffWild2Header(absl::string_view header,
                                                  const std::string& file) {
  std::vector<absl::string_view> names = absl::StrSplit(StripLine(header), ',');
  bool ok = names.size() == kNumClasses || names.size() == kNumClasses + 1;
  for (size_t i = 0; ok && i < names.size(); ++i) {
    const absl::string_view name = StripLine(names[i]);
    ok = i < kNumClasses ? LabelFromAlias(StdView(name)) == static_cast<int>(i)
                         : absl::EqualsIgnoreCase(name, "other");
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        file, ": first line '", StripLine(header),
        "' is not the EXPR header Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise[,Other]"));
  }
  return absl::OkStatus();
}

[[maybe_unused]] std::string FramePath(const std::string& images_root, const std::string& video,
                                       int frame) {
  return (fs::path(images_root) / video / absl::StrFormat("%05d.jpg", frame)).string();
}

// One parsed CSV row.
struct CsvRow {
  absl::Status status;
  bool keep = false;
  int label = 0;
};

// Parses the space-separated grey values of one face into out (side^2 bytes).
absl::Status ParsePixels(absl::string_view text, size_t expected, uint8_t* out) {
  size_t n = 0;
  const char* p = text.data();
  const char* end = p + text.size();
  while (true) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '"')) ++p;
    if (p == end) break;
    int value = 0;
    const auto [next, error] = std::from_chars(p, end, value);
    if (error != std::errc() || value < 0 || value > 255) {
      return absl::InvalidArgumentError(
          absl::StrCat("pixel ", n + 1, " is not a grey value in 0..255"));
    }
    if (n == expected) {
      return absl::InvalidArgumentError(absl::StrCat("more than ", expected, " pixels"));
    }
    out[n++] = static_cast<uint8_t>(value);
    p = next;
  }
  if (n != expected) {
    return absl::InvalidArgumentError(absl::StrCat(n, " pixels where ", expected, " are expected"));
  }
  return absl::OkStatus();
}

size_t CountValues(absl::string_view text) {
  size_t n = 0;
  for (absl::string_view token :
       absl::StrSplit(text, absl::ByAnyChar(" \t\""), absl::SkipEmpty())) {
    (void)token;
    ++n;
  }
  return n;
}

// Output taps of an area resize along one axis: the source cells each output
// cell covers and the fraction of the output cell each one fills.
struct Tap {
  int index;
  float weight;
};
std::vector<std::vector<Tap>> AreaTaps(int src, int dst) {
  const double scale = static_cast<double>(src) / dst;
  std::vector<std::vector<Tap>> taps(dst);
  for (int o = 0; o < dst; ++o) {
    const double start = o * scale;
    const double end = (o + 1) * scale;
    for (int s = static_cast<int>(std::floor(start)); s < std::min<double>(src, std::ceil(end));
         ++s) {
      const double overlap = std::min(end, s + 1.0) - std::max(start, static_cast<double>(s));
      if (overlap > 1e-9) taps[o].push_back({s, static_cast<float>(overlap / scale)});
    }
  }
  return taps;
}

// ------------------------------------------------------ declared image sizes

absl::Status HeaderError(absl::string_view format, absl::string_view detail) {
  return absl::InvalidArgumentError(absl::StrCat("malformed ", format, " header: ", detail));
}

// Reads an unsigned integer of n (2 or 4) bytes at pos; false past the end.
bool ReadUint(std::string_view bytes, size_t pos, size_t n, bool big_endian, uint32_t* out) {
  if (pos > bytes.size() || n > bytes.size() - pos) return false;
  uint32_t value = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t byte = static_cast<uint8_t>(bytes[pos + i]);
    value |= big_endian ? byte << (8 * (n - 1 - i)) : byte << (8 * i);
  }
  *out = value;
  return true;
}

constexpr uint32_t kMaxSide = std::numeric_limits<int>::max();

// Classic TIFF: ImageWidth (256) and ImageLength (257) of the first image
// file directory, SHORT or LONG. At most 65535 entries of 12 bytes are read.
absl::StatusOr<DeclaredSize> TiffSize(std::string_view bytes) {
  constexpr absl::string_view kName = "TIFF";
  constexpr uint32_t kClassic = 42, kBig = 43, kWidthTag = 256, kHeightTag = 257;
  constexpr uint32_t kShort = 3, kLong = 4;
  constexpr size_t kEntrySize = 12;
  const bool big = bytes[0] == 'M';
  uint32_t version = 0, directory = 0, entries = 0;
  ReadUint(bytes, 2, 2, big, &version);
  if (version == kBig) {
    return absl::InvalidArgumentError("BigTIFF images are not read; save as TIFF, PNG or JPEG");
  }
  if (version != kClassic || !ReadUint(bytes, 4, 4, big, &directory) ||
      !ReadUint(bytes, directory, 2, big, &entries)) {
    return HeaderError(kName, "no image file directory");
  }
  uint32_t width = 0, height = 0;
  for (uint32_t i = 0; i < entries; ++i) {
    const size_t entry = size_t{directory} + 2 + kEntrySize * i;
    uint32_t tag = 0, type = 0, value = 0;
    if (!ReadUint(bytes, entry, 2, big, &tag) || !ReadUint(bytes, entry + 2, 2, big, &type)) {
      return HeaderError(kName, "image file directory cut off");
    }
    if (tag != kWidthTag && tag != kHeightTag) continue;
    if ((type != kShort && type != kLong) ||
        !ReadUint(bytes, entry + 8, type == kShort ? 2 : 4, big, &value)) {
      return HeaderError(kName, "image width or length is not a SHORT or LONG");
    }
    (tag == kWidthTag ? width : height) = value;
  }
  if (width == 0 || height == 0 || width > kMaxSide || height > kMaxSide) {
    return HeaderError(kName, absl::StrCat("declares ", width, " x ", height, " pixels"));
  }
  return DeclaredSize{static_cast<int>(width), static_cast<int>(height)};
}

// The next blank-separated token of a PNM header, skipping # comments; empty
// at the end of the data.
std::string_view PnmToken(std::string_view bytes, size_t& pos) {
  while (pos < bytes.size()) {
    const char c = bytes[pos];
    if (c == '#') {
      while (pos < bytes.size() && bytes[pos] != '\n') ++pos;
    } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      ++pos;
    } else {
      break;
    }
  }
  const size_t start = pos;
  while (pos < bytes.size() && !std::isspace(static_cast<unsigned char>(bytes[pos]))) ++pos;
  return bytes.substr(start, pos - start);
}

bool ParseSide(std::string_view token, uint32_t* side) {
  const auto [end, error] = std::from_chars(token.data(), token.data() + token.size(), *side);
  return error == std::errc() && end == token.data() + token.size() && *side > 0 &&
         *side <= kMaxSide;
}

// PBM, PGM, PPM and PFM: width and height are the first two tokens after the
// magic; PAM (P7): the WIDTH and HEIGHT lines before ENDHDR.
absl::StatusOr<DeclaredSize> PnmSize(std::string_view bytes) {
  constexpr size_t kMaxPamTokens = 64;
  size_t pos = 2;
  uint32_t width = 0, height = 0;
  bool ok = false;
  if (bytes[1] == '7') {
    for (size_t i = 0; i < kMaxPamTokens; ++i) {
      const std::string_view token = PnmToken(bytes, pos);
      if (token.empty() || token == "ENDHDR") break;
      if (token == "WIDTH") ParseSide(PnmToken(bytes, pos), &width);
      if (token == "HEIGHT") ParseSide(PnmToken(bytes, pos), &height);
    }
    ok = width > 0 && height > 0;
  } else {
    ok = ParseSide(PnmToken(bytes, pos), &width) && ParseSide(PnmToken(bytes, pos), &height);
  }
  if (!ok) return HeaderError("PNM", "no positive width and height");
  return DeclaredSize{static_cast<int>(width), static_cast<int>(height)};
}

}  // namespace

absl::StatusOr<DeclaredSize> ReadDeclaredSize(std::string_view bytes) {
  const absl::string_view data = AbslView(bytes);
  const ImageFormat format = DetectImageFormat(data);
  if (IsAcceptedImageFormat(format)) {
    absl::StatusOr<ImageInfo> info = InspectImage(data);
    if (!info.ok()) return info.status();
    return DeclaredSize{info->width, info->height};
  }
  if (format == ImageFormat::kTiff) return TiffSize(bytes);
  if (format == ImageFormat::kPnm) return PnmSize(bytes);
  if (format == ImageFormat::kUnknown) {
    return absl::InvalidArgumentError(bytes.empty() ? "empty file" : "not an image file");
  }
  return absl::InvalidArgumentError(
      absl::StrCat(ImageFormatName(format),
                   " images are not read (JPEG, PNG, WebP, BMP, TIFF or "
                   "PNM are)"));
}

std::string ReadReport::Summary() const {
  std::vector<std::string> lines;
  for (const auto& [name, count] : unknown_classes) {
    lines.push_back(absl::StrFormat("skipped unknown class folder '%s': %d images", name, count));
  }
  if (not_annotated > 0) {
    lines.push_back(absl::StrFormat("skipped frames not annotated (-1): %d", not_annotated));
  }
  if (other > 0) lines.push_back(absl::StrFormat("skipped frames labelled Other (7): %d", other));
  if (dropped_by_stride > 0) {
    lines.push_back(absl::StrFormat("dropped by stride sampling: %d frames", dropped_by_stride));
  }
  if (missing_frames > 0) {
    std::vector<std::string> videos;
    for (const auto& [video, count] : missing_per_video) {
      videos.push_back(absl::StrCat(video, " ", count));
    }
    lines.push_back(absl::StrFormat("missing frame images: %d (%s; e.g. %s)", missing_frames,
                                    absl::StrJoin(videos, ", "),
                                    absl::StrJoin(missing_examples, ", ")));
  }
  if (undecodable > 0) {
    lines.push_back(absl::StrFormat("skipped undecodable images: %d (e.g. %s)", undecodable,
                                    absl::StrJoin(undecodable_examples, "; ")));
  }
  if (oversized > 0) {
    lines.push_back(absl::StrFormat("skipped images over the pixel limit: %d (e.g. %s)", oversized,
                                    absl::StrJoin(oversized_examples, "; ")));
  }
  if (repeated_folders > 0) {
    lines.push_back(
        absl::StrFormat("skipped folders already read through another path (symbolic links): %d",
                        repeated_folders));
  }
  if (skipped_usage > 0) {
    lines.push_back(absl::StrFormat("skipped rows of another Usage: %d", skipped_usage));
  }
  return absl::StrJoin(lines, "\n");
}

absl::StatusOr<ReadResult> ReadImageFolder(const std::string& root, const ReaderOptions& options) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  if (absl::Status s = CheckFolder(root, "image folder"); !s.ok()) return s;
#ifndef FER_WITH_OPENCV
  return NoOpenCv();
#else
  absl::StatusOr<std::vector<fs::directory_entry>> entries = ListFolder(root);
  if (!entries.ok()) return entries.status();
  ReadReport report;
  std::vector<Job> jobs;
  std::set<fs::path> visited;
  if (!FirstVisit(root, visited, report.repeated_folders)) {
    return absl::UnavailableError(absl::StrCat("cannot resolve the path of ", root));
  }
  for (const fs::directory_entry& entry : *entries) {
    std::error_code error;
    if (!entry.is_directory(error)) continue;
    const std::string name = entry.path().filename().string();
    absl::StatusOr<std::vector<std::string>> files =
        ListImages(entry.path(), visited, report.repeated_folders);
    if (!files.ok()) return files.status();
    const std::optional<int> label = LabelFromAlias(name);
    if (!label) {
      if (!files->empty()) report.unknown_classes[name] += files->size();
      continue;
    }
    report.found[*label] += files->size();
    for (std::string& file : *files) jobs.push_back(Job{std::move(file), *label, -1, -1});
  }
  return DecodeJobs(jobs, options, std::move(report));
#endif
}

absl::StatusOr<ReadResult> ReadAffWild2(const std::string& annotations,
                                        const std::string& images_root,
                                        const ReaderOptions& options) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  if (absl::Status s = CheckFolder(annotations, "annotation folder"); !s.ok()) return s;
  if (absl::Status s = CheckFolder(images_root, "image root"); !s.ok()) return s;
#ifndef FER_WITH_OPENCV
  return NoOpenCv();
#else
  absl::StatusOr<std::vector<fs::directory_entry>> entries = ListFolder(annotations);
  if (!entries.ok()) return entries.status();
  std::vector<std::string> videos;
  std::vector<std::string> files;
  for (const fs::directory_entry& entry : *entries) {
    std::error_code error;
    if (!entry.is_regular_file(error) || Lower(entry.path().extension().string()) != ".txt") {
      continue;
    }
    videos.push_back(entry.path().stem().string());
    files.push_back(entry.path().string());
  }
  if (files.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("annotation folder ", annotations, " holds no .txt annotation files"));
  }

  ReadReport report;
  std::vector<int8_t> labels;
  std::vector<int32_t> video_ids;
  std::vector<int32_t> frames;
  for (size_t v = 0; v < files.size(); ++v) {
    std::ifstream in(files[v]);
    if (!in) return absl::UnavailableError(absl::StrCat("cannot read ", files[v]));
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(std::move(line));
    if (in.bad()) return absl::UnavailableError(absl::StrCat("cannot read ", files[v]));
    while (!lines.empty() && StripLine(lines.back()).empty()) lines.pop_back();
    if (lines.empty()) return absl::InvalidArgumentError(absl::StrCat(files[v], " is empty"));
    if (absl::Status s = CheckAffWild2Header(lines[0], files[v]); !s.ok()) return s;
    for (size_t i = 1; i < lines.size(); ++i) {
      const absl::string_view text = StripLine(lines[i]);
      int value = 0;
      const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (text.empty() || error != std::errc() || end != text.data() + text.size() || value < -1 ||
          value > kAffWild2Other) {
        return absl::InvalidArgumentError(
            absl::StrCat(files[v], ":", i + 1, ": '", text, "' is not an EXPR label in -1..7"));
      }
      if (value == -1) {
        ++report.not_annotated;
      } else if (value == kAffWild2Other) {
        ++report.other;
      } else {
        ++report.found[value];
        labels.push_back(static_cast<int8_t>(value));
        video_ids.push_back(static_cast<int32_t>(v));
        frames.push_back(static_cast<int32_t>(i));  // line i holds frame i (1-based)
      }
    }
  }

  const std::vector<size_t> kept = StrideIndices(labels, video_ids, frames, options.strides);
  report.dropped_by_stride = labels.size() - kept.size();
  std::vector<Job> jobs;
  jobs.reserve(kept.size());
  for (size_t k : kept) {
    jobs.push_back(Job{FramePath(images_root, videos[video_ids[k]], frames[k]), labels[k],
                       video_ids[k], frames[k]});
  }
  labels = {};
  video_ids = {};
  frames = {};

  return DecodeJobs(jobs, options, std::move(report), std::move(videos));
#endif
}

int LabelFromFer2013Emotion(int emotion) {
  // FER2013: 0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral.
  static constexpr int kToLabel[] = {1, 2, 3, 4, 5, 6, 0};
  return emotion >= 0 && emotion < 7 ? kToLabel[emotion] : -1;
}

namespace {

// Where FER2013's columns sit in a CSV file's header; usage is -1 when the
// file has no Usage column.
struct CsvColumns {
  size_t count = 0;
  int emotion = -1;
  int pixels = -1;
  int usage = -1;
};

// An empty usage keeps every row; anything else must name a FER2013 usage.
absl::Status CheckUsage(absl::string_view usage) {
  if (!usage.empty() &&
      std::none_of(kFer2013Usages.begin(), kFer2013Usages.end(), [&](std::string_view u) {
        return absl::EqualsIgnoreCase(AbslView(u), usage);
      })) {
    return absl::InvalidArgumentError(absl::StrCat("unknown FER2013 usage '", usage, "' (one of ",
                                                   "Training, PublicTest, PrivateTest", ")"));
  }
  return absl::OkStatus();
}

// Reads the header line and finds the emotion, pixels and (when filtering on
// usage) Usage columns by name, in any order and case.
absl::StatusOr<CsvColumns> ReadCsvHeader(std::ifstream& in, const std::string& csv_path,
                                         absl::string_view usage) {
  std::string header;
  std::getline(in, header);
  if (in.bad()) return absl::UnavailableError(absl::StrCat("cannot read CSV file ", csv_path));
  if (absl::StartsWith(header, "\xEF\xBB\xBF")) header.erase(0, 3);  // UTF-8 byte order mark
  std::vector<std::string> names = absl::StrSplit(StripLine(header), ',');
  CsvColumns columns;
  columns.count = names.size();
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string bare = Lower(Unquote(names[i]));
    if (bare == "emotion") columns.emotion = static_cast<int>(i);
    if (bare == "pixels") columns.pixels = static_cast<int>(i);
    if (bare == "usage") columns.usage = static_cast<int>(i);
  }
  if (columns.emotion < 0 || columns.pixels < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        csv_path, ": the header '", StripLine(header),
        "' lacks the emotion and pixels columns of FER2013's CSV (emotion,pixels,Usage)"));
  }
  if (!usage.empty() && columns.usage < 0) {
    return absl::InvalidArgumentError(absl::StrCat(csv_path, " has no Usage column to filter on"));
  }
  return columns;
}

// Up to kCsvChunk non-blank lines of the CSV file, with their 1-based line
// numbers, and what parsing them produced.
struct CsvChunk {
  std::vector<std::string> lines;
  std::vector<size_t> numbers;
  std::vector<CsvRow> rows;
  std::vector<uint8_t> grey;   // side^2 source pixels per line
  std::vector<uint8_t> faces;  // face_bytes() converted pixels per line
};

// Reads the next chunk of lines; *line_number counts every line read. False
// at the end of the file (or on a read error, which in.bad() tells).
bool ReadCsvChunk(std::ifstream& in, size_t* line_number, CsvChunk* chunk) {
  chunk->lines.clear();
  chunk->numbers.clear();
  for (std::string line; chunk->lines.size() < kCsvChunk && std::getline(in, line);) {
    ++*line_number;
    if (StripLine(line).empty()) continue;
    chunk->lines.push_back(std::move(line));
    chunk->numbers.push_back(*line_number);
  }
  return !chunk->lines.empty();
}

// The first row fixes the face side for the whole file: its pixel count must
// be a square no larger than kMaxFaceSize^2.
absl::StatusOr<size_t> FaceSide(const std::string& line, size_t line_number,
                                const CsvColumns& columns, const std::string& csv_path) {
  std::vector<absl::string_view> fields = absl::StrSplit(line, ',');
  const size_t n = fields.size() == columns.count ? CountValues(fields[columns.pixels]) : 0;
  const size_t side = static_cast<size_t>(std::lround(std::sqrt(static_cast<double>(n))));
  if (n == 0 || side * side != n || side > static_cast<size_t>(kMaxFaceSize)) {
    return absl::InvalidArgumentError(
        absl::StrCat(csv_path, ":", line_number, ": expected ", columns.count,
                     " fields with the pixels of a square face, found ", fields.size(),
                     " fields and ", n, " pixels"));
  }
  return side;
}

// Parses one CSV row: checks its fields, skips it (keep false) when its usage
// is not the one asked for, and otherwise decodes its label and its side^2
// grey pixels into grey and converts them into face (face_size, channels).
void ParseCsvRow(absl::string_view line, const CsvColumns& columns, absl::string_view usage,
                 size_t side, int face_size, int channels, uint8_t* grey, uint8_t* face,
                 CsvRow* row) {
  std::vector<absl::string_view> fields = absl::StrSplit(line, ',');
  if (fields.size() != columns.count) {
    row->status = absl::InvalidArgumentError(
        absl::StrCat(fields.size(), " fields where the header has ", columns.count));
    return;
  }
  if (!usage.empty() && !absl::EqualsIgnoreCase(Unquote(fields[columns.usage]), usage)) return;
  const absl::string_view code = Unquote(fields[columns.emotion]);
  int emotion = -1;
  const auto [end, error] = std::from_chars(code.data(), code.data() + code.size(), emotion);
  row->label = LabelFromFer2013Emotion(emotion);
  if (code.empty() || error != std::errc() || end != code.data() + code.size() || row->label < 0) {
    row->status = absl::InvalidArgumentError(
        absl::StrCat("emotion '", code, "' is not a FER2013 code in 0..6"));
    return;
  }
  row->status = ParsePixels(fields[columns.pixels], side * side, grey);
  if (!row->status.ok()) return;
  ConvertFace(grey, static_cast<int>(side), 1, face, face_size, channels);
  row->keep = true;
}

// Parses the chunk's rows on `threads` threads, then adds the kept faces to
// data in file order and counts them (or the skipped ones) in report. The
// first bad row fails the read with its line number.
absl::Status AddCsvChunk(CsvChunk& chunk, const CsvColumns& columns, absl::string_view usage,
                         size_t side, int threads, const std::string& csv_path, PackedDataset* data,
                         ReadReport* report) {
  const size_t fb = data->face_bytes();
  const size_t n = chunk.lines.size();
  chunk.rows.assign(n, CsvRow());
  chunk.grey.resize(n * side * side);
  chunk.faces.resize(n * fb);
  ParallelFor(n, threads, [&](size_t i) {
    ParseCsvRow(chunk.lines[i], columns, usage, side, data->face_size(), data->channels(),
                &chunk.grey[i * side * side], &chunk.faces[i * fb], &chunk.rows[i]);
  });
  for (size_t i = 0; i < n; ++i) {
    const CsvRow& row = chunk.rows[i];
    if (!row.status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(csv_path, ":", chunk.numbers[i], ": ", row.status.message()));
    }
    if (!row.keep) {
      ++report->skipped_usage;
      continue;
    }
    ++report->found[row.label];
    data->Add(&chunk.faces[i * fb], row.label);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ReadResult> ReadFer2013Csv(const std::string& csv_path, std::string_view usage_name,
                                          const ReaderOptions& options) {
  const absl::string_view usage = AbslView(usage_name);
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  std::error_code error;
  if (!fs::exists(csv_path, error)) {
    return absl::NotFoundError(absl::StrCat("CSV file ", csv_path, " does not exist"));
  }
  if (absl::Status s = CheckUsage(usage); !s.ok()) return s;
  // A folder, fifo or device is refused here (a fifo would block the stream).
  if (auto file = OpenRegularFile(csv_path, "CSV file"); !file.ok()) return file.status();
  const uint64_t file_size = fs::file_size(csv_path, error);
  std::ifstream in(csv_path, std::ios::binary);
  if (error || !in) return absl::UnavailableError(absl::StrCat("cannot read ", csv_path));
  absl::StatusOr<CsvColumns> columns = ReadCsvHeader(in, csv_path, usage);
  if (!columns.ok()) return columns.status();

  ReadReport report;
  std::optional<ReadResult> result;
  size_t side = 0;
  size_t line_number = 1;
  CsvChunk chunk;
  const int threads = Threads(options.threads);
  if (options.progress) options.progress(0, file_size);
  while (in && ReadCsvChunk(in, &line_number, &chunk)) {
    if (!result) {
      absl::StatusOr<size_t> first_side =
          FaceSide(chunk.lines[0], chunk.numbers[0], *columns, csv_path);
      if (!first_side.ok()) return first_side.status();
      side = *first_side;
      const int size = options.face_size > 0
                           ? options.face_size
                           : std::min(kDefaultMaxFaceSize, static_cast<int>(side));
      result.emplace(ReadResult{PackedDataset(size, options.channels), ReadReport()});
    }
    if (absl::Status s =
            AddCsvChunk(chunk, *columns, usage, side, threads, csv_path, &result->data, &report);
        !s.ok()) {
      return s;
    }
    if (options.progress) {
      const std::streamoff at = in.tellg();
      options.progress(at < 0 ? file_size : static_cast<size_t>(at), file_size);
    }
  }
  if (in.bad()) return absl::UnavailableError(absl::StrCat("cannot read ", csv_path));
  if (!result) {
    const int size = options.face_size > 0 ? options.face_size : kDefaultMaxFaceSize;
    result.emplace(ReadResult{PackedDataset(size, options.channels), ReadReport()});
  }
  result->report = std::move(report);
  return std::move(*result);
}

absl::StatusOr<DataFormat> ParseDataFormat(std::string_view std_name) {
  const absl::string_view name = AbslView(std_name);
  for (DataFormat f :
       {DataFormat::kAuto, DataFormat::kFolder, DataFormat::kAffWild2, DataFormat::kFer2013Csv}) {
    if (absl::EqualsIgnoreCase(name, AbslView(DataFormatName(f)))) return f;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown data format '", name, "' (auto, folder, affwild2 or fer2013csv)"));
}

std::string_view DataFormatName(DataFormat format) {
  switch (format) {
    case DataFormat::kAuto:
      return "auto";
    case DataFormat::kFolder:
      return "folder";
    case DataFormat::kAffWild2:
      return "affwild2";
    case DataFormat::kFer2013Csv:
      return "fer2013csv";
  }
  return "auto";
}

absl::StatusOr<DataFormat> DetectDataFormat(const std::string& path) {
  std::error_code error;
  if (!fs::exists(path, error)) {
    return absl::NotFoundError(absl::StrCat("data path ", path, " does not exist"));
  }
  if (fs::is_regular_file(path, error)) {
    if (Lower(fs::path(path).extension().string()) == ".csv") return DataFormat::kFer2013Csv;
    return absl::InvalidArgumentError(absl::StrCat(
        "data path ", path,
        " is a file but not a .csv; pass a folder (image classes or Aff-Wild2 annotations), "
        "FER2013's CSV, or --format"));
  }
  absl::StatusOr<std::vector<fs::directory_entry>> entries = ListFolder(path);
  if (!entries.ok()) return entries.status();
  bool folders = false;
  bool texts = false;
  for (const fs::directory_entry& entry : *entries) {
    if (entry.is_directory(error)) folders = true;
    if (entry.is_regular_file(error) && Lower(entry.path().extension().string()) == ".txt") {
      texts = true;
    }
  }
  return texts && !folders ? DataFormat::kAffWild2 : DataFormat::kFolder;
}

void ResizeFace(const uint8_t* src, int width, int height, int channels, uint8_t* dst, int size) {
  if (width == size && height == size) {
    std::memcpy(dst, src, static_cast<size_t>(size) * size * channels);
    return;
  }
  if (width < size || height < size) {
    ResizeBilinear(src, width, height, channels, dst, size, size);
    return;
  }
  const std::vector<std::vector<Tap>> xs = AreaTaps(width, size);
  const std::vector<std::vector<Tap>> ys = AreaTaps(height, size);
  std::vector<float> sum(channels);
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      std::fill(sum.begin(), sum.end(), 0.0f);
      for (const Tap& ty : ys[y]) {
        const uint8_t* row = src + static_cast<size_t>(ty.index) * width * channels;
        for (const Tap& tx : xs[x]) {
          const float w = ty.weight * tx.weight;
          const uint8_t* p = row + static_cast<size_t>(tx.index) * channels;
          for (int c = 0; c < channels; ++c) sum[c] += w * p[c];
        }
      }
      uint8_t* out = dst + (static_cast<size_t>(y) * size + x) * channels;
      for (int c = 0; c < channels; ++c) {
        out[c] = static_cast<uint8_t>(std::clamp(std::lround(sum[c]), 0L, 255L));
      }
    }
  }
}

void ConvertFace(const uint8_t* src, int src_size, int src_channels, uint8_t* dst, int dst_size,
                 int dst_channels) {
  const size_t pixels = static_cast<size_t>(src_size) * src_size;
  if (src_channels == dst_channels) {
    ResizeFace(src, src_size, src_size, src_channels, dst, dst_size);
    return;
  }
  std::vector<uint8_t> converted(pixels * dst_channels);
  for (size_t i = 0; i < pixels; ++i) {
    if (dst_channels == 3) {
      converted[3 * i] = converted[3 * i + 1] = converted[3 * i + 2] = src[i];
    } else {
      const uint8_t* p = src + 3 * i;
      converted[i] = static_cast<uint8_t>((299 * p[0] + 587 * p[1] + 114 * p[2] + 500) / 1000);
    }
  }
  ResizeFace(converted.data(), src_size, src_size, dst_channels, dst, dst_size);
}

}  // namespace fer
