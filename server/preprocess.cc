#include "server/preprocess.h"

#include <algorithm>
#include <array>
#include <climits>
#include <exception>
#include <new>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <tuple>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "model/common/image_format.h"
#include "model/core/image_ops.h"

namespace fer {
namespace {

// cv::imdecode takes its buffer as a cv::Mat, whose sizes are int.
constexpr size_t kMaxDecoderBuffer = INT_MAX;

absl::Status CheckPixelCount(absl::string_view what, int64_t width, int64_t height,
                             const PreprocessOptions& options) {
  // Both factors are below 2^31, so the product cannot overflow.
  const int64_t pixels = width * height;
  if (pixels > options.max_pixels) {
    return absl::InvalidArgumentError(absl::StrCat(what, " ", width, " x ", height, " = ", pixels,
                                                   " pixels, more than the limit of ",
                                                   options.max_pixels));
  }
  return absl::OkStatus();
}

// cv::Mat views of request bytes. OpenCV has no read-only Mat; the views are
// only ever read from (decoder input, conversion and resize sources).
cv::Mat ViewOf(absl::string_view bytes, int rows, int cols, int channels) {
  return cv::Mat(rows, cols, CV_8UC(channels), const_cast<char*>(bytes.data()));
}

// Decodes an encoded face to 8 bits per sample in the model's channel layout:
// grey, or RGB.
absl::StatusOr<cv::Mat> DecodeEncoded(absl::string_view encoded, const PreprocessOptions& options) {
  if (encoded.size() > options.max_encoded_bytes || encoded.size() > kMaxDecoderBuffer) {
    return absl::InvalidArgumentError(
        absl::StrCat("encoded image is ", encoded.size(), " bytes, more than the limit of ",
                     std::min(options.max_encoded_bytes, kMaxDecoderBuffer)));
  }
  absl::StatusOr<ImageInfo> info = InspectImage(encoded);
  if (!info.ok()) return info.status();
  const absl::string_view name = ImageFormatName(info->format);
  absl::Status status =
      CheckPixelCount(absl::StrCat(name, " header declares"), info->width, info->height, options);
  if (!status.ok()) return status;

  // Decoding a grey file straight to grey is exact and a third of the memory.
  // A colour file is decoded to BGR and converted below with COLOR_BGR2GRAY,
  // rather than by each codec's own grey conversion, so that every format
  // gives the same BT.601 grey for the same pixels.
  const bool decode_grey = options.gray && info->grey;
  // The orientation tag is ignored: the decoded size must be the declared one.
  const int flags =
      (decode_grey ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR) | cv::IMREAD_IGNORE_ORIENTATION;
  cv::Mat decoded = cv::imdecode(ViewOf(encoded, 1, static_cast<int>(encoded.size()), 1), flags);
  if (decoded.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("the ", name, " image could not be decoded"));
  }
  if (decoded.cols != info->width || decoded.rows != info->height) {
    return absl::InvalidArgumentError(
        absl::StrCat("the ", name, " image decoded to ", decoded.cols, " x ", decoded.rows,
                     " pixels, but its header declares ", info->width, " x ", info->height));
  }
  const int expected_type = decode_grey ? CV_8UC1 : CV_8UC3;
  if (decoded.type() != expected_type) {
    return absl::InternalError(
        absl::StrCat("the ", name, " decoder returned an unexpected type ", decoded.type()));
  }
  if (!decode_grey) {
    cv::cvtColor(decoded, decoded, options.gray ? cv::COLOR_BGR2GRAY : cv::COLOR_BGR2RGB);
  }
  return decoded;
}

// Views or converts raw pixels into the model's channel layout.
absl::StatusOr<cv::Mat> ConvertRaw(const ImageInput& input, const PreprocessOptions& options) {
  if (input.width <= 0 || input.height <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "raw pixels need a positive width and height, got ", input.width, " x ", input.height));
  }
  if (input.channels != 1 && input.channels != 3 && input.channels != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("raw pixels need 1, 3 or 4 channels, got ", input.channels));
  }
  absl::Status status = CheckPixelCount("raw image is", input.width, input.height, options);
  if (!status.ok()) return status;
  const int64_t expected = int64_t{input.width} * input.height * input.channels;
  if (static_cast<int64_t>(input.raw.size()) != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("raw pixels are ", input.raw.size(), " bytes, but ", input.width, " x ",
                     input.height, " x ", input.channels, " channels needs ", expected));
  }

  const cv::Mat view = ViewOf(input.raw, input.height, input.width, input.channels);
  int code = -1;  // no conversion: the view already has the model's layout
  switch (input.channels) {
    case 1:
      code = options.gray ? -1 : cv::COLOR_GRAY2RGB;
      break;
    case 3:
      if (options.gray) {
        code = input.bgr ? cv::COLOR_BGR2GRAY : cv::COLOR_RGB2GRAY;
      } else {
        code = input.bgr ? cv::COLOR_BGR2RGB : -1;
      }
      break;
    default:  // 4
      if (options.gray) {
        code = input.bgr ? cv::COLOR_BGRA2GRAY : cv::COLOR_RGBA2GRAY;
      } else {
        code = input.bgr ? cv::COLOR_BGRA2RGB : cv::COLOR_RGBA2RGB;
      }
      break;
  }
  if (code < 0) return view;
  cv::Mat converted;
  cv::cvtColor(view, converted, code);
  return converted;
}

// See Preprocess in the header: area averaging when shrinking on both sides.
int Interpolation(const cv::Mat& image, int size) {
  return image.cols >= size && image.rows >= size ? cv::INTER_AREA : cv::INTER_LINEAR;
}

// Writes the faces of image (already in the model's channel layout) into
// dst, which has room for them.
void ResizeAndCrop(const cv::Mat& image, const PreprocessOptions& options, bool ten_crop,
                   uint8_t* dst) {
  const int size = options.input_size;
  const int channels = FaceChannels(options);
  if (!ten_crop) {
    // resize() keeps a destination that already has the right size and type,
    // so the face is written in place.
    cv::Mat face(size, size, CV_8UC(channels), dst);
    cv::resize(image, face, face.size(), 0, 0, Interpolation(image, size));
    if (face.data != dst) face.copyTo(cv::Mat(size, size, CV_8UC(channels), dst));
    return;
  }
  const int resized_size = TenCropResizeSize(size);
  cv::Mat resized;
  cv::resize(image, resized, cv::Size(resized_size, resized_size), 0, 0,
             Interpolation(image, resized_size));
  const size_t face_bytes = FaceBytes(options);
  const std::array<CropBox, 10> boxes = TenCropBoxes(resized_size, size);
  static_assert(std::tuple_size<decltype(boxes)>::value == kTenCropCount,
                "TenCropBoxes and kTenCropCount disagree");
  for (int i = 0; i < kTenCropCount; ++i) {
    Crop(resized.ptr<uint8_t>(), resized_size, channels, boxes[i], dst + i * face_bytes);
  }
}

}  // namespace

absl::Status ValidatePreprocessOptions(const PreprocessOptions& options) {
  if (options.input_size < 1 || options.input_size > kMaxInputSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("input_size must be in [1, ", kMaxInputSize, "], got ", options.input_size));
  }
  if (options.max_encoded_bytes == 0) {
    return absl::InvalidArgumentError("max_encoded_bytes must be positive");
  }
  if (options.max_pixels <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_pixels must be positive, got ", options.max_pixels));
  }
  return absl::OkStatus();
}

int FaceChannels(const PreprocessOptions& options) { return options.gray ? 1 : 3; }

size_t FaceBytes(const PreprocessOptions& options) {
  return static_cast<size_t>(options.input_size) * options.input_size * FaceChannels(options);
}

absl::Status Preprocess(const ImageInput& input, const PreprocessOptions& options, bool ten_crop,
                        std::vector<uint8_t>* out) {
  absl::Status valid = ValidatePreprocessOptions(options);
  if (!valid.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("preprocess options: ", valid.message()));
  }
  if (!input.encoded.empty() && !input.raw.empty()) {
    return absl::InvalidArgumentError("image has both encoded bytes and raw pixels; send one");
  }
  if (input.encoded.empty() && input.raw.empty()) {
    return absl::InvalidArgumentError("image is empty: no encoded bytes and no raw pixels");
  }

  const size_t old_size = out->size();
  try {
    absl::StatusOr<cv::Mat> image =
        input.encoded.empty() ? ConvertRaw(input, options) : DecodeEncoded(input.encoded, options);
    if (!image.ok()) return image.status();
    const size_t faces = ten_crop ? kTenCropCount : 1;
    out->resize(old_size + faces * FaceBytes(options));
    ResizeAndCrop(*image, options, ten_crop, out->data() + old_size);
    return absl::OkStatus();
  } catch (const cv::Exception& e) {
    // Codecs report some corrupt data by throwing.
    out->resize(old_size);
    return absl::InvalidArgumentError(absl::StrCat("the image could not be processed: ", e.err));
  } catch (const std::bad_alloc&) {
    out->resize(old_size);
    return absl::ResourceExhaustedError("out of memory while preprocessing the image");
  } catch (const std::exception& e) {
    out->resize(old_size);
    return absl::InternalError(absl::StrCat("preprocessing failed: ", e.what()));
  }
}

}  // namespace fer
