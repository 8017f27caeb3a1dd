// Turns one face image from a request into the model's input pixels: checks
// the limits, decodes, converts colour, resizes, and optionally takes the ten
// test-time crops. It knows nothing of RPCs or batching; the service calls it
// once per face, from many request threads at once.
//
// The output stays 8-bit. Normalisation, (x / 255 - mean) / std with the mean
// and std of the weight file, deliberately happens on the device inside the
// model engine: it is a cheap elementwise op there, and uint8 faces make the
// host-to-device copy four times smaller than float ones.
#ifndef FER_SERVER_PREPROCESS_H_
#define FER_SERVER_PREPROCESS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace fer {

// Number of faces TenCrop produces from one image.
inline constexpr int kTenCropCount = 10;

// Server-wide settings, fixed at start-up from the model's meta and flags.
struct PreprocessOptions {
  // Side of the square face the model takes (112 for LLA-Net).
  int input_size = 112;
  // True for "gray3" models: one grey channel out, which the model repeats on
  // three; colour faces become grey with cv::COLOR_BGR2GRAY (ITU-R BT.601
  // weights), grey faces stay exactly as sent. False for "rgb" models: three
  // channels out in RGB order; grey faces are repeated on all three.
  bool gray = true;
  // Encoded images larger than this are refused before they are parsed.
  size_t max_encoded_bytes = size_t{4} << 20;
  // Largest width * height accepted, checked against the header (encoded) or
  // the stated size (raw) before any pixel buffer is allocated, so that a small
  // file declaring an enormous image is refused without decoding it.
  int64_t max_pixels = int64_t{4096} * 4096;
};

// Largest input_size accepted: far above any face model, small enough that a
// ten-crop of it cannot overflow anything.
inline constexpr int kMaxInputSize = 1024;

// Returns INVALID_ARGUMENT, naming the field, when options cannot be used:
// input_size outside [1, kMaxInputSize], max_encoded_bytes or max_pixels not
// positive. Meant for start-up flag checks; Preprocess checks again and reports
// the same problem as FAILED_PRECONDITION, since it is the server's fault, not
// the client's.
absl::Status ValidatePreprocessOptions(const PreprocessOptions& options);

// Channels of one output face: 1 for gray models, 3 (RGB) otherwise.
int FaceChannels(const PreprocessOptions& options);
// Bytes of one output face: input_size * input_size * FaceChannels.
size_t FaceBytes(const PreprocessOptions& options);

// One face image as a request carries it: either an encoded file or raw
// 8-bit pixels. The views must stay valid for the duration of the call.
struct ImageInput {
  // A JPEG, PNG, WebP or BMP file. EXIF orientation is ignored: the pixels
  // are classified as stored, as the header declares them.
  absl::string_view encoded;
  // Or raw pixels: rows top to bottom, channels interleaved, no row padding,
  // exactly width * height * channels bytes.
  absl::string_view raw;
  int width = 0;
  int height = 0;
  // 1 (grey), 3 (colour) or 4 (colour and alpha; alpha is ignored).
  int channels = 0;
  // Colour channel order of raw pixels: false RGB(A), true BGR(A).
  bool bgr = false;
};

// Appends the model input for input to *out: one face of FaceBytes(options)
// bytes, or kTenCropCount faces one after another when ten_crop is set. A face
// is input_size x input_size x FaceChannels(options) uint8 values, rows top to
// bottom, channels interleaved (HWC).
//
// Single crop resizes the whole image to input_size x input_size. The
// interpolation follows the rule the model's data readers (ResizeFace) used to
// pack the training faces: an image at least as large as the target on both
// sides is shrunk by area averaging (cv::INTER_AREA; bilinear sampling would
// alias, and the model never saw aliased faces), anything else is bilinear
// (cv::INTER_LINEAR, which agrees with image_ops' ResizeBilinear to within one
// grey level). TenCrop resizes to TenCropResizeSize(input_size) the same way,
// then copies the boxes of TenCropBoxes with Crop (model/core/image_ops.h), in their
// order, so the server crops exactly like the offline evaluation. Non-square
// images are stretched, not padded: a face detector's crop is expected.
//
// Order of checks, all before any allocation that grows with the input: the
// options (FAILED_PRECONDITION, a server bug), then exactly one of encoded and
// raw set; encoded: its byte size, InspectImage (format allow-list, header,
// completeness), the declared pixel count; raw: size, channels, pixel count,
// byte count. Only then is an image decoded (cv::imdecode; straight to grey
// when both the file and the model are grey). A decoder failure or a decoded
// size other than the declared one is INVALID_ARGUMENT. Every other failure is
// INVALID_ARGUMENT too, with a message that states the reason (the service
// prefixes the face index), except RESOURCE_EXHAUSTED when memory runs out.
//
// Never throws. On failure *out is left exactly as it was. Thread-safe: no
// state is shared between calls.
absl::Status Preprocess(const ImageInput& input, const PreprocessOptions& options, bool ten_crop,
                        std::vector<uint8_t>* out);

}  // namespace fer

#endif  // FER_SERVER_PREPROCESS_H_
