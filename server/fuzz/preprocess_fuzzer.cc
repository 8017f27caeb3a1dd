// libFuzzer target for the image intake: arbitrary bytes go through
// InspectImage and then Preprocess for both model kinds (gray3 and rgb), with
// and without TenCrop, and the same bytes are also offered as raw pixels. Any
// crash, sanitizer report, uncaught exception or broken guarantee of the
// headers (checked below, trapping on violation) is a finding.
// Built and run by tests/fuzz/run_fuzz.sh (CMake option FER_BUILD_FUZZERS).
#include <cstddef>
#include <cstdint>
#include <opencv2/core.hpp>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "model/common/image_format.h"
#include "server/preprocess.h"

namespace {

// Smaller than the server's default so that each input decodes quickly; the
// limit logic under test is the same.
constexpr int64_t kFuzzMaxPixels = int64_t{1} << 20;
// A byte Preprocess must neither change nor drop when it fails.
constexpr uint8_t kSentinel = 0xA5;
// Raw pixels: first byte width - 1 (modulo kMaxRawWidth), second byte the
// channel count, channel order and whether the byte count is made exact.
constexpr int kMaxRawWidth = 64;
constexpr size_t kRawHeaderSize = 2;

void Require(bool condition) {
  if (!condition) __builtin_trap();
}

fer::PreprocessOptions Options(bool gray) {
  fer::PreprocessOptions options;
  options.gray = gray;
  options.max_pixels = kFuzzMaxPixels;
  return options;
}

// Runs Preprocess and checks the header's guarantees; returns whether it succeeded.
bool RunAndCheck(const fer::ImageInput& input, bool gray, bool ten_crop) {
  const fer::PreprocessOptions options = Options(gray);
  std::vector<uint8_t> out = {kSentinel};
  const absl::Status status = fer::Preprocess(input, options, ten_crop, &out);
  if (status.ok()) {
    const size_t faces = ten_crop ? fer::kTenCropCount : 1;
    Require(out.size() == 1 + faces * fer::FaceBytes(options));
    Require(out[0] == kSentinel);
    return true;
  }
  Require(status.code() == absl::StatusCode::kInvalidArgument ||
          status.code() == absl::StatusCode::kResourceExhausted);
  Require(!status.message().empty());
  Require(out.size() == 1 && out[0] == kSentinel);
  return false;
}

void FuzzEncoded(absl::string_view data) {
  const absl::StatusOr<fer::ImageInfo> info = fer::InspectImage(data);
  if (!info.ok()) {
    Require(info.status().code() == absl::StatusCode::kInvalidArgument);
    Require(!info.status().message().empty());
    // Preprocess must refuse what InspectImage refuses; once is enough.
    fer::ImageInput input;
    input.encoded = data;
    Require(!RunAndCheck(input, /*gray=*/true, /*ten_crop=*/false));
    return;
  }
  Require(fer::IsAcceptedImageFormat(info->format));
  Require(info->width > 0 && info->height > 0);
  fer::ImageInput input;
  input.encoded = data;
  for (const bool gray : {true, false}) {
    for (const bool ten_crop : {false, true}) {
      const bool ok = RunAndCheck(input, gray, ten_crop);
      // Over the limit it must be refused, whatever the decoder would do.
      if (ok) Require(int64_t{info->width} * info->height <= kFuzzMaxPixels);
    }
  }
}

void FuzzRaw(const uint8_t* data, size_t size) {
  if (size < kRawHeaderSize) return;
  constexpr int kChannels[] = {1, 3, 4};
  const int width = data[0] % kMaxRawWidth + 1;
  const int channels = kChannels[data[1] % 3];
  const bool bgr = (data[1] & 0x04) != 0;
  const bool exact = (data[1] & 0x08) == 0;
  const size_t available = size - kRawHeaderSize;
  const size_t row_bytes = static_cast<size_t>(width) * channels;
  const int height = static_cast<int>(available / row_bytes);
  fer::ImageInput input;
  input.raw = absl::string_view(reinterpret_cast<const char*>(data + kRawHeaderSize),
                                exact ? row_bytes * height : available);
  input.width = width;
  input.height = height;
  input.channels = channels;
  input.bgr = bgr;
  const bool expect_ok = height > 0 && input.raw.size() == row_bytes * height;
  const bool gray = (data[1] & 0x10) != 0;
  const bool ten_crop = (data[1] & 0x20) != 0;
  Require(RunAndCheck(input, gray, ten_crop) == expect_ok);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  // One thread: findings reproduce, and the fuzzer measures the code, not the pool.
  cv::setNumThreads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzEncoded(absl::string_view(reinterpret_cast<const char*>(data), size));
  FuzzRaw(data, size);
  return 0;
}
