#include "model/common/image_format.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace fer {
namespace {

constexpr absl::string_view kAcceptedHint = "send JPEG, PNG, WebP or BMP";
// How many leading bytes of unrecognised data a message shows, in hex.
constexpr size_t kUnknownBytesShown = 8;

// Bounds-checked big- and little-endian reads. Each returns false, leaving
// *out untouched, when the read would pass the end, so that no parser below
// can read out of bounds however its offsets were computed.
class Bytes {
 public:
  explicit Bytes(absl::string_view data) : data_(data) {}

  size_t size() const { return data_.size(); }
  bool Has(size_t pos, size_t count) const {
    return pos <= data_.size() && count <= data_.size() - pos;
  }
  bool Matches(size_t pos, absl::string_view text) const {
    return Has(pos, text.size()) && data_.substr(pos, text.size()) == text;
  }
  absl::string_view Sub(size_t pos, size_t count) const {
    return Has(pos, count) ? data_.substr(pos, count) : absl::string_view();
  }
  bool U8(size_t pos, uint32_t* out) const { return Read(pos, 1, /*big_endian=*/true, out); }
  bool Be16(size_t pos, uint32_t* out) const { return Read(pos, 2, true, out); }
  bool Be32(size_t pos, uint32_t* out) const { return Read(pos, 4, true, out); }
  bool Le16(size_t pos, uint32_t* out) const { return Read(pos, 2, false, out); }
  bool Le24(size_t pos, uint32_t* out) const { return Read(pos, 3, false, out); }
  bool Le32(size_t pos, uint32_t* out) const { return Read(pos, 4, false, out); }

 private:
  bool Read(size_t pos, size_t count, bool big_endian, uint32_t* out) const {
    if (!Has(pos, count)) return false;
    uint32_t value = 0;
    for (size_t i = 0; i < count; ++i) {
      const uint32_t byte = static_cast<uint8_t>(data_[pos + i]);
      value |= big_endian ? byte << (8 * (count - 1 - i)) : byte << (8 * i);
    }
    *out = value;
    return true;
  }

  absl::string_view data_;
};

absl::Status Truncated(absl::string_view format, absl::string_view detail) {
  return absl::InvalidArgumentError(
      absl::StrCat(format, " image is truncated or incomplete: ", detail));
}

absl::Status Malformed(absl::string_view format, absl::string_view detail) {
  return absl::InvalidArgumentError(absl::StrCat("malformed ", format, " image: ", detail));
}

absl::Status Unsupported(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(what, " is not supported; ", kAcceptedHint));
}

// Four-character codes come from the client: show them escaped.
std::string Printable(absl::string_view bytes) { return absl::CHexEscape(bytes); }

// ---------------------------------------------------------------- JPEG
constexpr uint32_t kJpegMarkerPrefix = 0xFF;
constexpr uint32_t kJpegStuffedZero = 0x00;
constexpr uint32_t kJpegTem = 0x01;
constexpr uint32_t kJpegRst0 = 0xD0;
constexpr uint32_t kJpegRst7 = 0xD7;
constexpr uint32_t kJpegSoi = 0xD8;
constexpr uint32_t kJpegEoi = 0xD9;
constexpr uint32_t kJpegSos = 0xDA;
constexpr size_t kJpegSoiSize = 2;
constexpr size_t kJpegLengthSize = 2;
// Precision, height, width and component count precede the components.
constexpr size_t kJpegSofFixedSize = 6;
constexpr size_t kJpegSofComponentSize = 3;
constexpr uint32_t kJpegSupportedPrecision = 8;

// "FFC0": how JPEG documents name markers.
std::string MarkerName(uint32_t marker) {
  constexpr char kHex[] = "0123456789ABCDEF";
  return {'F', 'F', kHex[(marker >> 4) & 0xF], kHex[marker & 0xF]};
}

bool IsJpegSof(uint32_t marker) {
  // C4 (DHT), C8 (JPG extension) and CC (DAC) share the range but are not frames.
  return marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
}

// The frame types libjpeg decodes: baseline, extended sequential and
// progressive, Huffman or arithmetic coded, non-differential.
bool IsDecodableJpegSof(uint32_t marker) {
  return marker == 0xC0 || marker == 0xC1 || marker == 0xC2 || marker == 0xC9 || marker == 0xCA;
}

bool IsLosslessJpegSof(uint32_t marker) {
  return marker == 0xC3 || marker == 0xC7 || marker == 0xCB || marker == 0xCF;
}

absl::StatusOr<ImageInfo> InspectJpeg(const Bytes& bytes, absl::string_view data) {
  constexpr absl::string_view kName = "JPEG";
  ImageInfo info;
  info.format = ImageFormat::kJpeg;
  bool have_frame = false;
  size_t pos = kJpegSoiSize;
  // Each pass consumes at least one byte, so the walk ends within size() passes.
  while (true) {
    // libjpeg skips stray bytes and fill bytes before a marker; skipping them
    // too keeps this walk and the decoder in agreement about the segments.
    uint32_t byte = 0;
    while (bytes.U8(pos, &byte) && byte != kJpegMarkerPrefix) ++pos;
    while (bytes.U8(pos, &byte) && byte == kJpegMarkerPrefix) ++pos;
    uint32_t marker = 0;
    if (!bytes.U8(pos, &marker)) {
      return Truncated(kName, have_frame ? "no scan after the frame header" : "no frame header");
    }
    ++pos;
    if (marker == kJpegStuffedZero || marker == kJpegTem || marker == kJpegSoi ||
        (marker >= kJpegRst0 && marker <= kJpegRst7)) {
      continue;  // no length field follows these
    }
    if (marker == kJpegEoi) return Malformed(kName, "end-of-image marker before any scan");

    uint32_t length = 0;
    if (!bytes.Be16(pos, &length)) return Truncated(kName, "segment header cut off");
    if (length < kJpegLengthSize) {
      return Malformed(kName, absl::StrCat("segment ", MarkerName(marker), " has length ", length));
    }
    if (!bytes.Has(pos, length)) {
      return Truncated(
          kName, absl::StrCat("segment ", MarkerName(marker), " runs past the end of the data"));
    }
    const size_t payload = pos + kJpegLengthSize;
    const size_t payload_size = length - kJpegLengthSize;

    if (IsJpegSof(marker)) {
      if (have_frame) return Malformed(kName, "more than one frame header");
      if (IsLosslessJpegSof(marker)) return Unsupported("lossless JPEG");
      if (!IsDecodableJpegSof(marker)) return Unsupported("hierarchical JPEG");
      uint32_t precision = 0, height = 0, width = 0, components = 0;
      if (payload_size < kJpegSofFixedSize || !bytes.U8(payload, &precision) ||
          !bytes.Be16(payload + 1, &height) || !bytes.Be16(payload + 3, &width) ||
          !bytes.U8(payload + 5, &components) ||
          payload_size < kJpegSofFixedSize + kJpegSofComponentSize * components) {
        return Malformed(kName, "frame header too short");
      }
      if (precision != kJpegSupportedPrecision) {
        return Unsupported(absl::StrCat(precision, "-bit JPEG"));
      }
      if (width == 0) return Malformed(kName, "frame header declares width 0");
      if (height == 0) return Unsupported("JPEG with its height in a DNL marker");
      // Grey, YCbCr/RGB and CMYK/YCCK: what libjpeg converts to grey or BGR.
      if (components != 1 && components != 3 && components != 4) {
        return Unsupported(absl::StrCat("JPEG with ", components, " colour components"));
      }
      info.width = static_cast<int>(width);
      info.height = static_cast<int>(height);
      info.grey = components == 1;
      have_frame = true;
    } else if (marker == kJpegSos) {
      if (!have_frame) return Malformed(kName, "scan before the frame header");
      // Entropy-coded data never holds FF D9: an encoder stuffs every FF data
      // byte with 00. So the end-of-image marker, wherever it is, is found by
      // a plain search, and its absence means the upload was cut short.
      constexpr absl::string_view kEoiBytes("\xFF\xD9", 2);
      if (data.find(kEoiBytes, pos + length) == absl::string_view::npos) {
        return Truncated(kName, "no end-of-image marker");
      }
      return info;
    }
    pos += length;
  }
}

// ---------------------------------------------------------------- PNG
constexpr absl::string_view kPngSignature("\x89PNG\r\n\x1A\n", 8);
constexpr size_t kPngChunkHeaderSize = 8;  // length, type
constexpr size_t kPngChunkCrcSize = 4;
constexpr uint32_t kPngIhdrSize = 13;
constexpr uint32_t kPngMaxLength = 0x7FFFFFFF;  // chunk lengths and dimensions

enum PngColourType : uint32_t {
  kPngGrey = 0,
  kPngRgb = 2,
  kPngPalette = 3,
  kPngGreyAlpha = 4,
  kPngRgbAlpha = 6,
};

bool IsValidPngDepth(uint32_t colour_type, uint32_t depth) {
  switch (colour_type) {
    case kPngGrey:
      return depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16;
    case kPngPalette:
      return depth == 1 || depth == 2 || depth == 4 || depth == 8;
    case kPngRgb:
    case kPngGreyAlpha:
    case kPngRgbAlpha:
      return depth == 8 || depth == 16;
    default:
      return false;
  }
}

absl::StatusOr<ImageInfo> InspectPng(const Bytes& bytes) {
  constexpr absl::string_view kName = "PNG";
  const size_t ihdr = kPngSignature.size();
  const size_t fields = ihdr + kPngChunkHeaderSize;
  uint32_t length = 0, width = 0, height = 0, depth = 0, colour_type = 0, compression = 0,
           filter = 0, interlace = 0;
  if (!bytes.Has(fields, kPngIhdrSize)) return Truncated(kName, "IHDR chunk cut off");
  bytes.Be32(ihdr, &length);
  if (length != kPngIhdrSize || !bytes.Matches(ihdr + 4, "IHDR")) {
    return Malformed(kName, "the first chunk is not a 13-byte IHDR");
  }
  bytes.Be32(fields, &width);
  bytes.Be32(fields + 4, &height);
  bytes.U8(fields + 8, &depth);
  bytes.U8(fields + 9, &colour_type);
  bytes.U8(fields + 10, &compression);
  bytes.U8(fields + 11, &filter);
  bytes.U8(fields + 12, &interlace);
  if (width == 0 || height == 0 || width > kPngMaxLength || height > kPngMaxLength) {
    return Malformed(kName, absl::StrCat("IHDR declares ", width, " x ", height, " pixels"));
  }
  if (!IsValidPngDepth(colour_type, depth)) {
    return Malformed(kName, absl::StrCat("bit depth ", depth, " with colour type ", colour_type));
  }
  if (compression != 0 || filter != 0 || interlace > 1) {
    return Malformed(kName, "unknown compression, filter or interlace method");
  }

  // Walk the chunk list to IEND. Every chunk is at least 12 bytes, so the
  // walk is linear in the size of the data.
  bool have_idat = false;
  size_t pos = ihdr;
  while (true) {
    if (!bytes.Be32(pos, &length) || !bytes.Has(pos, kPngChunkHeaderSize)) {
      return Truncated(kName, "no IEND chunk");
    }
    const absl::string_view type = bytes.Sub(pos + 4, 4);
    if (length > kPngMaxLength) {
      return Malformed(kName, absl::StrCat("chunk '", Printable(type), "' has length ", length));
    }
    const size_t chunk_size = kPngChunkHeaderSize + size_t{length} + kPngChunkCrcSize;
    if (!bytes.Has(pos, chunk_size)) {
      return Truncated(kName,
                       absl::StrCat("chunk '", Printable(type), "' runs past the end of the data"));
    }
    if (type == "IDAT") have_idat = true;
    if (type == "IEND") break;
    pos += chunk_size;
  }
  if (!have_idat) return Malformed(kName, "no IDAT chunk");

  ImageInfo info;
  info.format = ImageFormat::kPng;
  info.width = static_cast<int>(width);
  info.height = static_cast<int>(height);
  info.grey = colour_type == kPngGrey || colour_type == kPngGreyAlpha;
  return info;
}

// ---------------------------------------------------------------- WebP
constexpr size_t kRiffHeaderSize = 12;  // "RIFF", length, "WEBP"
constexpr size_t kRiffChunkHeaderSize = 8;
constexpr size_t kWebpFirstPayload = kRiffHeaderSize + kRiffChunkHeaderSize;
// VP8: 3-byte frame tag, 3-byte start code, 14-bit width and height.
constexpr size_t kVp8HeaderSize = 10;
constexpr uint32_t kVp8InterFrameBit = 0x01;
constexpr absl::string_view kVp8StartCode("\x9D\x01\x2A", 3);
constexpr uint32_t kVp8DimensionMask = 0x3FFF;
// VP8L: signature byte, then 14-bit width-1, 14-bit height-1, alpha, version.
constexpr size_t kVp8lHeaderSize = 5;
constexpr uint32_t kVp8lSignature = 0x2F;
constexpr uint32_t kVp8lDimensionBits = 14;
constexpr uint32_t kVp8lDimensionMask = 0x3FFF;
constexpr uint32_t kVp8lVersionShift = 29;
// VP8X: flags, 3 reserved bytes, 24-bit canvas width-1 and height-1.
constexpr size_t kVp8xHeaderSize = 10;
constexpr uint32_t kVp8xAnimationFlag = 0x02;

absl::StatusOr<ImageInfo> InspectWebp(const Bytes& bytes) {
  constexpr absl::string_view kName = "WebP";
  uint32_t riff_length = 0, chunk_length = 0;
  if (!bytes.Le32(4, &riff_length) || !bytes.Le32(kRiffHeaderSize + 4, &chunk_length)) {
    return Truncated(kName, "RIFF header cut off");
  }
  // The RIFF length counts every byte after its own field.
  const uint64_t file_size = uint64_t{riff_length} + 8;
  if (file_size < kWebpFirstPayload) {
    return Malformed(kName, absl::StrCat("RIFF length ", riff_length));
  }
  if (file_size > bytes.size()) {
    return Truncated(
        kName, absl::StrCat("the RIFF header declares ", file_size, " bytes, got ", bytes.size()));
  }
  if (chunk_length > file_size - kWebpFirstPayload) {
    return Malformed(kName, "the first chunk runs past the end of the file");
  }
  const absl::string_view fourcc = bytes.Sub(kRiffHeaderSize, 4);
  const size_t p = kWebpFirstPayload;
  uint32_t width = 0, height = 0;
  if (fourcc == "VP8 ") {
    uint32_t tag = 0;
    if (chunk_length < kVp8HeaderSize || !bytes.Le24(p, &tag) || !bytes.Le16(p + 6, &width) ||
        !bytes.Le16(p + 8, &height)) {
      return Malformed(kName, "VP8 frame header too short");
    }
    if ((tag & kVp8InterFrameBit) != 0) return Malformed(kName, "the frame is not a key frame");
    if (!bytes.Matches(p + 3, kVp8StartCode)) return Malformed(kName, "bad VP8 start code");
    width &= kVp8DimensionMask;  // the top two bits are an upscaling hint
    height &= kVp8DimensionMask;
  } else if (fourcc == "VP8L") {
    uint32_t signature = 0, bits = 0;
    if (chunk_length < kVp8lHeaderSize || !bytes.U8(p, &signature) || !bytes.Le32(p + 1, &bits)) {
      return Malformed(kName, "VP8L header too short");
    }
    if (signature != kVp8lSignature) return Malformed(kName, "bad VP8L signature");
    if ((bits >> kVp8lVersionShift) != 0) return Malformed(kName, "unknown VP8L version");
    width = (bits & kVp8lDimensionMask) + 1;
    height = ((bits >> kVp8lDimensionBits) & kVp8lDimensionMask) + 1;
  } else if (fourcc == "VP8X") {
    uint32_t flags = 0;
    if (chunk_length < kVp8xHeaderSize || !bytes.U8(p, &flags) || !bytes.Le24(p + 4, &width) ||
        !bytes.Le24(p + 7, &height)) {
      return Malformed(kName, "VP8X header too short");
    }
    if ((flags & kVp8xAnimationFlag) != 0) {
      return absl::InvalidArgumentError(
          "animated WebP images are not accepted; send one still frame as JPEG, PNG, WebP or "
          "BMP");
    }
    width += 1;
    height += 1;
  } else {
    return Malformed(kName, absl::StrCat("the first chunk is '", Printable(fourcc),
                                         "', expected VP8, VP8L or VP8X"));
  }
  if (width == 0 || height == 0) {
    return Malformed(kName, absl::StrCat("declares ", width, " x ", height, " pixels"));
  }
  ImageInfo info;
  info.format = ImageFormat::kWebp;
  info.width = static_cast<int>(width);
  info.height = static_cast<int>(height);
  return info;
}

// ---------------------------------------------------------------- BMP
constexpr size_t kBmpFileHeaderSize = 14;
constexpr size_t kBmpPixelOffsetAt = 10;
constexpr uint32_t kBmpCoreHeaderSize = 12;  // OS/2 BITMAPCOREHEADER
constexpr uint32_t kBmpInfoHeaderSize = 40;  // BITMAPINFOHEADER; V4 and V5 extend it
enum BmpCompression : uint32_t { kBmpRgb = 0, kBmpRle8 = 1, kBmpRle4 = 2, kBmpBitfields = 3 };
constexpr int64_t kBmpRowAlignmentBits = 32;

bool IsValidBmpDepth(uint32_t bits_per_pixel) {
  return bits_per_pixel == 1 || bits_per_pixel == 4 || bits_per_pixel == 8 ||
         bits_per_pixel == 16 || bits_per_pixel == 24 || bits_per_pixel == 32;
}

absl::StatusOr<ImageInfo> InspectBmp(const Bytes& bytes) {
  constexpr absl::string_view kName = "BMP";
  const size_t dib = kBmpFileHeaderSize;
  uint32_t pixel_offset = 0, header_size = 0;
  if (!bytes.Le32(kBmpPixelOffsetAt, &pixel_offset) || !bytes.Le32(dib, &header_size)) {
    return Truncated(kName, "file header cut off");
  }
  int64_t width = 0, height = 0;
  uint32_t bits_per_pixel = 0, compression = kBmpRgb;
  if (header_size == kBmpCoreHeaderSize) {
    uint32_t w = 0, h = 0;
    if (!bytes.Le16(dib + 4, &w) || !bytes.Le16(dib + 6, &h) ||
        !bytes.Le16(dib + 10, &bits_per_pixel)) {
      return Truncated(kName, "bitmap header cut off");
    }
    width = w;
    height = h;
  } else if (header_size >= kBmpInfoHeaderSize) {
    uint32_t w = 0, h = 0;
    if (!bytes.Has(dib, header_size)) return Truncated(kName, "bitmap header cut off");
    bytes.Le32(dib + 4, &w);
    bytes.Le32(dib + 8, &h);
    bytes.Le16(dib + 14, &bits_per_pixel);
    bytes.Le32(dib + 16, &compression);
    width = static_cast<int32_t>(w);
    height = static_cast<int32_t>(h);
  } else {
    return Malformed(kName, absl::StrCat("unknown bitmap header size ", header_size));
  }
  // A negative height stores rows top-down; its magnitude is the height.
  const bool top_down = height < 0;
  if (top_down) height = -height;
  if (width <= 0 || height <= 0 || width > std::numeric_limits<int32_t>::max() ||
      height > std::numeric_limits<int32_t>::max()) {
    return Malformed(kName, absl::StrCat("declares ", width, " x ", height, " pixels"));
  }
  if (!IsValidBmpDepth(bits_per_pixel)) {
    return Malformed(kName, absl::StrCat(bits_per_pixel, " bits per pixel"));
  }
  const bool run_length = compression == kBmpRle8 || compression == kBmpRle4;
  if (compression > kBmpBitfields) {
    return Unsupported(absl::StrCat("BMP compression ", compression));
  }
  if ((compression == kBmpRle8 && bits_per_pixel != 8) ||
      (compression == kBmpRle4 && bits_per_pixel != 4) ||
      (compression == kBmpBitfields && bits_per_pixel != 16 && bits_per_pixel != 32)) {
    return Malformed(kName, absl::StrCat("compression ", compression, " with ", bits_per_pixel,
                                         " bits per pixel"));
  }
  if (run_length && top_down) {
    return Malformed(kName, "a top-down bitmap cannot be run-length coded");
  }
  if (pixel_offset < kBmpFileHeaderSize + header_size) {
    return Malformed(kName, "pixel data overlaps the headers");
  }
  if (pixel_offset > bytes.size()) return Truncated(kName, "no pixel data");
  if (!run_length) {
    // width * bits_per_pixel < 2^36 and the row count is found by division,
    // so nothing here can overflow.
    const int64_t row_bytes =
        (width * bits_per_pixel + kBmpRowAlignmentBits - 1) / kBmpRowAlignmentBits * 4;
    const int64_t rows = static_cast<int64_t>(bytes.size() - pixel_offset) / row_bytes;
    if (rows < height) {
      return Truncated(kName, absl::StrCat("holds ", rows, " of its ", height, " rows"));
    }
  }
  ImageInfo info;
  info.format = ImageFormat::kBmp;
  info.width = static_cast<int>(width);
  info.height = static_cast<int>(height);
  return info;
}

bool IsHeifBrand(absl::string_view brand) {
  constexpr std::array<absl::string_view, 10> kBrands = {"heic", "heix", "hevc", "hevx", "heim",
                                                         "heis", "mif1", "msf1", "avif", "avis"};
  return std::any_of(kBrands.begin(), kBrands.end(),
                     [brand](absl::string_view known) { return brand == known; });
}

bool IsPnm(absl::string_view data) {
  if (data.size() < 3 || data[0] != 'P') return false;
  const char kind = data[1];
  const char next = data[2];
  const bool space = next == ' ' || next == '\t' || next == '\r' || next == '\n' || next == '#';
  return space && ((kind >= '1' && kind <= '7') || kind == 'F' || kind == 'f');
}

}  // namespace

absl::string_view ImageFormatName(ImageFormat format) {
  switch (format) {
    case ImageFormat::kJpeg:
      return "JPEG";
    case ImageFormat::kPng:
      return "PNG";
    case ImageFormat::kWebp:
      return "WebP";
    case ImageFormat::kBmp:
      return "BMP";
    case ImageFormat::kTiff:
      return "TIFF";
    case ImageFormat::kGif:
      return "GIF";
    case ImageFormat::kJpeg2000:
      return "JPEG 2000";
    case ImageFormat::kJpegXl:
      return "JPEG XL";
    case ImageFormat::kHeif:
      return "HEIF/AVIF";
    case ImageFormat::kOpenExr:
      return "OpenEXR";
    case ImageFormat::kPnm:
      return "PNM";
    case ImageFormat::kDicom:
      return "DICOM";
    case ImageFormat::kRadianceHdr:
      return "Radiance HDR";
    case ImageFormat::kSunRaster:
      return "Sun raster";
    case ImageFormat::kPhotoshop:
      return "Photoshop";
    case ImageFormat::kIco:
      return "ICO";
    case ImageFormat::kUnknown:
      break;
  }
  return "unknown";
}

bool IsAcceptedImageFormat(ImageFormat format) {
  return format == ImageFormat::kJpeg || format == ImageFormat::kPng ||
         format == ImageFormat::kWebp || format == ImageFormat::kBmp;
}

ImageFormat DetectImageFormat(absl::string_view data) {
  const auto starts = [data](absl::string_view magic) { return absl::StartsWith(data, magic); };
  const Bytes bytes(data);
  if (starts(absl::string_view("\xFF\xD8\xFF", 3))) return ImageFormat::kJpeg;
  if (starts(kPngSignature)) return ImageFormat::kPng;
  if (starts("RIFF") && bytes.Matches(8, "WEBP")) return ImageFormat::kWebp;
  if (starts("BM")) return ImageFormat::kBmp;
  if (starts(absl::string_view("II*\0", 4)) || starts(absl::string_view("MM\0*", 4)) ||
      starts(absl::string_view("II+\0", 4)) || starts(absl::string_view("MM\0+", 4))) {
    return ImageFormat::kTiff;  // classic and BigTIFF, both byte orders
  }
  if (starts("GIF87a") || starts("GIF89a")) return ImageFormat::kGif;
  if (starts(absl::string_view("\xFF\x4F\xFF\x51", 4)) ||
      starts(absl::string_view("\0\0\0\x0CjP  \r\n\x87\n", 12))) {
    return ImageFormat::kJpeg2000;  // raw codestream or JP2 box
  }
  if (starts(absl::string_view("\xFF\x0A", 2)) ||
      starts(absl::string_view("\0\0\0\x0CJXL \r\n\x87\n", 12))) {
    return ImageFormat::kJpegXl;
  }
  if (bytes.Matches(4, "ftyp") && IsHeifBrand(bytes.Sub(8, 4))) return ImageFormat::kHeif;
  if (starts(absl::string_view("\x76\x2F\x31\x01", 4))) return ImageFormat::kOpenExr;
  if (IsPnm(data)) return ImageFormat::kPnm;
  constexpr size_t kDicomPreambleSize = 128;
  if (bytes.Matches(kDicomPreambleSize, "DICM")) return ImageFormat::kDicom;
  if (starts("#?RADIANCE") || starts("#?RGBE")) return ImageFormat::kRadianceHdr;
  if (starts(absl::string_view("\x59\xA6\x6A\x95", 4))) return ImageFormat::kSunRaster;
  if (starts("8BPS")) return ImageFormat::kPhotoshop;
  if (starts(absl::string_view("\0\0\1\0", 4))) return ImageFormat::kIco;
  return ImageFormat::kUnknown;
}

absl::StatusOr<ImageInfo> InspectImage(absl::string_view data) {
  if (data.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("image is empty; ", kAcceptedHint));
  }
  const ImageFormat format = DetectImageFormat(data);
  const Bytes bytes(data);
  switch (format) {
    case ImageFormat::kJpeg:
      return InspectJpeg(bytes, data);
    case ImageFormat::kPng:
      return InspectPng(bytes);
    case ImageFormat::kWebp:
      return InspectWebp(bytes);
    case ImageFormat::kBmp:
      return InspectBmp(bytes);
    case ImageFormat::kUnknown:
      return absl::InvalidArgumentError(absl::StrCat(
          "unrecognised image data (first bytes ",
          absl::BytesToHexString(data.substr(0, kUnknownBytesShown)), "); ", kAcceptedHint));
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(ImageFormatName(format), " images are not accepted; ", kAcceptedHint));
  }
}

}  // namespace fer
