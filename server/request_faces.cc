#include "server/request_faces.h"

#include <climits>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/wire_scan.h"

namespace fer {
namespace {

int ClampToInt(uint32_t value) { return value > INT_MAX ? INT_MAX : static_cast<int>(value); }

}  // namespace

ImageInput ToImageInput(const fer::v1::Image& image) {
  ImageInput input;
  switch (image.data_case()) {
    case fer::v1::Image::kEncoded:
      input.encoded = image.encoded();
      break;
    case fer::v1::Image::kRaw: {
      const fer::v1::RawImage& raw = image.raw();
      input.raw = raw.pixels();
      input.width = ClampToInt(raw.width());
      input.height = ClampToInt(raw.height());
      input.channels = ClampToInt(raw.channels());
      input.bgr = raw.channel_order() == fer::v1::RawImage::CHANNEL_ORDER_BGR;
      break;
    }
    case fer::v1::Image::DATA_NOT_SET:
      break;  // Preprocess refuses an image with neither.
  }
  return input;
}

absl::Status CheckFaceCount(const RequestFaces& faces, int max_faces, bool allow_empty) {
  return CheckFaceCount(static_cast<int64_t>(faces.size()), max_faces, allow_empty);
}

absl::Status PreprocessFaces(const RequestFaces& faces, const PreprocessOptions& options,
                             bool ten_crop, std::vector<uint8_t>* out) {
  const size_t size_before = out->size();
  for (int i = 0; i < faces.size(); ++i) {
    const absl::Status face = Preprocess(ToImageInput(faces.Get(i)), options, ten_crop, out);
    if (!face.ok()) {
      out->resize(size_before);
      return absl::Status(face.code(), absl::StrCat("face ", i, ": ", face.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace fer
