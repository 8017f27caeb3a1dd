// libFuzzer target for everything between the bytes of a request and the
// model input: the bytes are scanned (server/wire_scan.h) and parsed as a
// fer.v1.ClassifyRequest or ClassifyFrame (as the service does), the
// face-count limit is applied, and every face goes through PreprocessFaces
// for both model kinds, single crop or TenCrop as the message asks. Any
// crash, sanitizer report, uncaught exception or broken guarantee of
// server/wire_scan.h or server/request_faces.h (checked below, trapping on
// violation) is a finding: in particular bytes that protobuf parses but the
// scan refuses, or a scan that miscounts the faces, unknown fields or frame
// id the parse makes.
// Built and run by tests/fuzz/run_fuzz.sh (CMake option FER_BUILD_FUZZERS).
#include <google/protobuf/message.h>
#include <google/protobuf/unknown_field_set.h>

#include <cstddef>
#include <cstdint>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "fer/v1/expression.pb.h"
#include "server/fuzz/unknown_fields.h"
#include "server/preprocess.h"
#include "server/request_faces.h"
#include "server/wire_scan.h"

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

// The scan's guarantees against the parse of the same bytes: whatever
// protobuf parses, the scan accepts, counting what the parse made. (The scan
// may accept bytes the parser refuses; the service then refuses the parse.)
void CheckScan(const google::protobuf::Message& parsed, bool parses, const absl::string_view& input,
               uint64_t parsed_frame_id, bool allow_empty) {
  fer::WireScan scan;
  const absl::Status status = fer::ScanMessage(parsed.GetDescriptor(), input, &scan);
  if (!status.ok()) {
    Require(status.code() == absl::StatusCode::kInvalidArgument);
    Require(absl::StartsWith(status.message(), "malformed "));
  }
  if (!parses) return;
  Require(status.ok());
  const int parsed_faces = parsed.GetReflection()->FieldSize(
      parsed, parsed.GetDescriptor()->FindFieldByName(fer::kScanFacesField));
  Require(scan.faces == parsed_faces);
  Require(scan.frame_id == parsed_frame_id);
  Require(scan.unknown_fields == fer::fuzz::CountUnknown(parsed));
  const absl::Status limits = fer::CheckScanLimits(scan, kFuzzMaxFaces, allow_empty);
  Require(!limits.ok() || (parsed_faces <= kFuzzMaxFaces && (allow_empty || parsed_faces > 0)));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  cv::setNumThreads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The same bytes as both messages: their field numbers overlap (faces are
  // field 1 of a request, 2 of a frame), so each input tries both layouts.
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  fer::v1::ClassifyRequest request;
  const bool request_parses = request.ParseFromArray(data, static_cast<int>(size));
  CheckScan(request, request_parses, input, /*parsed_frame_id=*/0, /*allow_empty=*/false);
  if (request_parses) {
    CheckFaces(request.faces(), request.options().ten_crop(), /*allow_empty=*/false);
  }
  fer::v1::ClassifyFrame frame;
  const bool frame_parses = frame.ParseFromArray(data, static_cast<int>(size));
  CheckScan(frame, frame_parses, input, frame.frame_id(), /*allow_empty=*/true);
  if (frame_parses) {
    CheckFaces(frame.faces(), frame.options().ten_crop(), /*allow_empty=*/true);
  }
  return 0;
}
