// libFuzzer target for everything between the bytes of a request and the
// model input: the bytes are parsed as a fer.v1.ClassifyRequest or
// ClassifyFrame (as gRPC would hand them to the service), the face-count
// limit is applied, and every face goes through PreprocessFaces for both
// model kinds, single crop or TenCrop as the message asks. Any crash,
// sanitizer report, uncaught exception or broken guarantee of
// server/request_faces.h (checked below, trapping on violation) is a finding.
// Built and run by tests/fuzz/run_fuzz.sh (CMake option FER_BUILD_FUZZERS).
#include <cstddef>
#include <cstdint>
#include <opencv2/core.hpp>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "fer/v1/expression.pb.h"
#include "server/preprocess.h"
#include "server/request_faces.h"

namespace {

// Smaller than the server's defaults so that each input runs quickly; the
// logic under test is the same.
constexpr int64_t kFuzzMaxPixels = int64_t{1} << 20;
constexpr int kFuzzMaxFaces = 8;
constexpr size_t kFuzzMaxEncodedBytes = size_t{1} << 20;
constexpr uint8_t kSentinel = 0xA5;

void Require(bool condition) {
  if (!condition) __builtin_trap();
}

void CheckFaces(const fer::RequestFaces& faces, bool ten_crop, bool allow_empty) {
  const absl::Status count = fer::CheckFaceCount(faces, kFuzzMaxFaces, allow_empty);
  Require((faces.size() <= kFuzzMaxFaces && (allow_empty || !faces.empty())) == count.ok());
  if (!count.ok()) {
    Require(count.code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  for (const bool gray : {true, false}) {
    fer::PreprocessOptions options;
    options.gray = gray;
    options.max_pixels = kFuzzMaxPixels;
    options.max_encoded_bytes = kFuzzMaxEncodedBytes;
    std::vector<uint8_t> out = {kSentinel};
    const absl::Status status = fer::PreprocessFaces(faces, options, ten_crop, &out);
    if (status.ok()) {
      const size_t crops = ten_crop ? fer::kTenCropCount : 1;
      Require(out.size() == 1 + faces.size() * crops * fer::FaceBytes(options));
    } else {
      Require(status.code() == absl::StatusCode::kInvalidArgument ||
              status.code() == absl::StatusCode::kResourceExhausted);
      Require(absl::StartsWith(status.message(), "face "));
      Require(out.size() == 1);
    }
    Require(out[0] == kSentinel);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  cv::setNumThreads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The same bytes as both messages: their field numbers overlap (faces are
  // field 1 of a request, 2 of a frame), so each input tries both layouts.
  fer::v1::ClassifyRequest request;
  if (request.ParseFromArray(data, static_cast<int>(size))) {
    CheckFaces(request.faces(), request.options().ten_crop(), /*allow_empty=*/false);
  }
  fer::v1::ClassifyFrame frame;
  if (frame.ParseFromArray(data, static_cast<int>(size))) {
    CheckFaces(frame.faces(), frame.options().ten_crop(), /*allow_empty=*/true);
  }
  return 0;
}
