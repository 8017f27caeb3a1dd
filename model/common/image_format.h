// Identifies an encoded image from its first bytes and reads the size its
// header declares, without decoding a single pixel. This is the gate every
// encoded face passes before a decoder (and its allocations) sees it: only
// JPEG, PNG, WebP and BMP are accepted, and the declared size lets the caller
// refuse decompression bombs before they expand.
//
// Every function here is a parser of untrusted network bytes: it bounds-checks
// every read, never allocates in proportion to the input, never throws, and is
// safe to call from any number of threads at once.
#ifndef FER_SERVER_IMAGE_FORMAT_H_
#define FER_SERVER_IMAGE_FORMAT_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fer {

// Formats recognised by their magic bytes. Only the first four are accepted;
// the others are named so that a client learns what it sent.
enum class ImageFormat {
  kJpeg,
  kPng,
  kWebp,
  kBmp,
  kTiff,
  kGif,
  kJpeg2000,
  kJpegXl,
  kHeif,  // HEIC and AVIF (ISO base media "ftyp" containers)
  kOpenExr,
  kPnm,  // PBM, PGM, PPM, PAM and PFM
  kDicom,
  kRadianceHdr,
  kSunRaster,
  kPhotoshop,
  kIco,
  kUnknown,
};

// Display name used in messages: "JPEG", "PNG", "TIFF", "JPEG 2000", ...
absl::string_view ImageFormatName(ImageFormat format);

// True for JPEG, PNG, WebP and BMP.
bool IsAcceptedImageFormat(ImageFormat format);

// The format data starts like; kUnknown when nothing matches (empty included).
ImageFormat DetectImageFormat(absl::string_view data);

// What an accepted image declares about itself.
struct ImageInfo {
  ImageFormat format = ImageFormat::kUnknown;
  int width = 0;   // > 0
  int height = 0;  // > 0 (a top-down BMP's negative height is reported positive)
  // True when the file stores single-channel grey samples (a one-component
  // JPEG, a grey or grey+alpha PNG), so that decoding straight to grey is
  // exact. False for colour and for formats that do not say (WebP, BMP).
  bool grey = false;
};

// Identifies data, checks that it is an accepted format, and reads its
// declared width and height from the header:
//   JPEG: the segments are walked to the first frame header (SOF0/1/2/9/10:
//         8-bit baseline, extended, progressive, arithmetic; lossless,
//         hierarchical and 12-bit JPEGs, which the decoder cannot read, are
//         refused here by name);
//   PNG:  IHDR;
//   WebP: the first chunk, VP8 (lossy), VP8L (lossless) or VP8X (extended;
//         animations are refused);
//   BMP:  BITMAPCOREHEADER or BITMAPINFOHEADER and its successors, with a
//         negative height meaning rows stored top-down.
// It also checks cheaply that the file is complete, so that a truncated upload
// is refused instead of decoding into a partly grey face: a JPEG needs an
// end-of-image marker after its first scan, a PNG its chunk list through IEND,
// a WebP the length its RIFF header states, an uncompressed BMP all its rows.
// Bytes after the end of an image are allowed.
//
// Returns INVALID_ARGUMENT with a message a client can act on: an empty
// input, a format outside the allow-list ("TIFF images are not accepted; send
// JPEG, PNG, WebP or BMP"), unrecognised bytes, a malformed or truncated
// header, a zero size, or a variant the decoder does not support.
absl::StatusOr<ImageInfo> InspectImage(absl::string_view data);

}  // namespace fer

#endif  // FER_SERVER_IMAGE_FORMAT_H_
