#include "model/common/image_format.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tests/server/test_images.h"
#include "tests/support/files.h"

namespace fer {
namespace {

using test_images::Decode;
using test_images::Encode;
using test_images::NonSquare;
using test_images::Tint;
using test_support::ReadFile;
using ::testing::HasSubstr;

// ------------------------------------------------------- hand-made headers
std::string Be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}
std::string Le32(uint32_t v) {
  return {static_cast<char>(v), static_cast<char>(v >> 8), static_cast<char>(v >> 16),
          static_cast<char>(v >> 24)};
}
std::string Le24(uint32_t v) { return Le32(v).substr(0, 3); }
std::string Le16(uint32_t v) { return Le32(v).substr(0, 2); }

// A PNG chunk; the CRC is left zero, which InspectImage does not check.
std::string PngChunk(const std::string& type, const std::string& payload) {
  return Be32(static_cast<uint32_t>(payload.size())) + type + payload + std::string(4, '\0');
}

// A structurally complete PNG that declares width x height but holds one
// byte of image data: what a decompression bomb's header looks like.
std::string HandMadePng(uint32_t width, uint32_t height, uint8_t depth = 8,
                        uint8_t colour_type = 0) {
  const std::string ihdr = Be32(width) + Be32(height) + std::string(1, depth) +
                           std::string(1, colour_type) + std::string(3, '\0');
  return std::string("\x89PNG\r\n\x1A\n", 8) + PngChunk("IHDR", ihdr) + PngChunk("IDAT", "x") +
         PngChunk("IEND", "");
}

std::string HandMadeWebpVp8x(uint32_t width, uint32_t height, uint8_t flags) {
  const std::string payload = std::string(1, static_cast<char>(flags)) + std::string(3, '\0') +
                              Le24(width - 1) + Le24(height - 1);
  const std::string chunk = "VP8X" + Le32(static_cast<uint32_t>(payload.size())) + payload;
  return "RIFF" + Le32(static_cast<uint32_t>(4 + chunk.size())) + "WEBP" + chunk;
}

// A 24-bit BMP with a 12-byte OS/2 core header, rows padded to 4 bytes.
std::string HandMadeCoreBmp(uint16_t width, uint16_t height) {
  const uint32_t row_bytes = (width * 3u + 3u) / 4u * 4u;
  const uint32_t offset = 14 + 12;
  const std::string pixels(static_cast<size_t>(row_bytes) * height, '\x7F');
  return "BM" + Le32(offset + static_cast<uint32_t>(pixels.size())) + Le32(0) + Le32(offset) +
         Le32(12) + Le16(width) + Le16(height) + Le16(1) + Le16(24) + pixels;
}

void ExpectInvalid(const absl::StatusOr<ImageInfo>& info, const std::string& text) {
  ASSERT_FALSE(info.ok()) << "accepted, expected a refusal mentioning: " << text;
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument) << info.status();
  EXPECT_THAT(std::string(info.status().message()), HasSubstr(text));
}

// ----------------------------------------------------------- no data needed
TEST(ImageFormatTest, OnlyJpegPngWebpAndBmpAreAccepted) {
  EXPECT_TRUE(IsAcceptedImageFormat(ImageFormat::kJpeg));
  EXPECT_TRUE(IsAcceptedImageFormat(ImageFormat::kPng));
  EXPECT_TRUE(IsAcceptedImageFormat(ImageFormat::kWebp));
  EXPECT_TRUE(IsAcceptedImageFormat(ImageFormat::kBmp));
  for (ImageFormat other :
       {ImageFormat::kTiff, ImageFormat::kGif, ImageFormat::kJpeg2000, ImageFormat::kJpegXl,
        ImageFormat::kHeif, ImageFormat::kOpenExr, ImageFormat::kPnm, ImageFormat::kDicom,
        ImageFormat::kRadianceHdr, ImageFormat::kSunRaster, ImageFormat::kPhotoshop,
        ImageFormat::kIco, ImageFormat::kUnknown}) {
    EXPECT_FALSE(IsAcceptedImageFormat(other)) << ImageFormatName(other);
  }
}

TEST(ImageFormatTest, EmptyInputIsRefused) {
  ExpectInvalid(InspectImage(""), "image is empty");
  EXPECT_EQ(DetectImageFormat(""), ImageFormat::kUnknown);
}

TEST(ImageFormatTest, UnknownBytesAreRefusedShowingTheirFirstBytes) {
  const absl::StatusOr<ImageInfo> info = InspectImage("hello, world");
  ExpectInvalid(info, "unrecognised image data (first bytes 68656c6c6f2c2077)");
  ExpectInvalid(info, "send JPEG, PNG, WebP or BMP");
}

TEST(ImageFormatTest, OtherFormatsAreRefusedByName) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {std::string("GIF89a\x01\x00\x01\x00", 10), "GIF"},
      {std::string("GIF87a\x01\x00\x01\x00", 10), "GIF"},
      {std::string("II*\0\x08\0\0\0", 8), "TIFF"},
      {std::string("MM\0*\0\0\0\x08", 8), "TIFF"},
      {std::string("II+\0\x08\0\0\0", 8), "TIFF"},
      {std::string("\xFF\x4F\xFF\x51\0\x2F", 6), "JPEG 2000"},
      {std::string("\0\0\0\x0CjP  \r\n\x87\n\0\0\0\x14", 16), "JPEG 2000"},
      {std::string("\xFF\x0A\xFA\x7F", 4), "JPEG XL"},
      {std::string("\0\0\0\030ftypheic\0\0\0\0", 16), "HEIF/AVIF"},
      {std::string("\0\0\0\034ftypavif\0\0\0\0", 16), "HEIF/AVIF"},
      {std::string("\x76\x2F\x31\x01\x02\0\0\0", 8), "OpenEXR"},
      {"P5\n48 48\n255\n", "PNM"},
      {"P6 2 2 255 ", "PNM"},
      {"PF\n2 2\n-1.0\n", "PNM"},
      {std::string(128, '\0') + "DICM" + std::string(8, '\0'), "DICOM"},
      {"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n", "Radiance HDR"},
      {std::string("\x59\xA6\x6A\x95\0\0\0\x02", 8), "Sun raster"},
      {std::string("8BPS\0\x01", 6), "Photoshop"},
      {std::string("\0\0\x01\0\x01\0", 6), "ICO"},
  };
  for (const auto& [bytes, name] : cases) {
    SCOPED_TRACE(name);
    EXPECT_EQ(ImageFormatName(DetectImageFormat(bytes)), name);
    ExpectInvalid(InspectImage(bytes),
                  name + " images are not accepted; send JPEG, PNG, WebP or BMP");
  }
}

TEST(ImageFormatTest, PngHeaderIsReadWithoutDecoding) {
  // The IDAT holds one byte and the CRCs are zero: only the header is read.
  const absl::StatusOr<ImageInfo> info = InspectImage(HandMadePng(100000, 70000));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->format, ImageFormat::kPng);
  EXPECT_EQ(info->width, 100000);
  EXPECT_EQ(info->height, 70000);
  EXPECT_TRUE(info->grey);
}

TEST(ImageFormatTest, PngColourTypeSaysWhetherItIsGrey) {
  EXPECT_TRUE(InspectImage(HandMadePng(4, 4, 8, 0))->grey);
  EXPECT_TRUE(InspectImage(HandMadePng(4, 4, 16, 4))->grey);
  EXPECT_FALSE(InspectImage(HandMadePng(4, 4, 8, 2))->grey);
  EXPECT_FALSE(InspectImage(HandMadePng(4, 4, 4, 3))->grey);
  EXPECT_FALSE(InspectImage(HandMadePng(4, 4, 8, 6))->grey);
}

TEST(ImageFormatTest, MalformedPngHeadersAreRefused) {
  ExpectInvalid(InspectImage(HandMadePng(0, 10)), "declares 0 x 10 pixels");
  ExpectInvalid(InspectImage(HandMadePng(0x80000000u, 10)), "declares 2147483648 x 10 pixels");
  ExpectInvalid(InspectImage(HandMadePng(10, 10, 3, 0)), "bit depth 3 with colour type 0");
  ExpectInvalid(InspectImage(HandMadePng(10, 10, 8, 5)), "bit depth 8 with colour type 5");
  std::string no_idat = HandMadePng(10, 10);
  no_idat.replace(no_idat.find("IDAT"), 4, "tEXt");
  ExpectInvalid(InspectImage(no_idat), "no IDAT chunk");
  std::string huge_chunk = HandMadePng(10, 10);
  huge_chunk.replace(huge_chunk.find("IDAT") - 4, 4, Be32(0xFFFFFFF0u));
  ExpectInvalid(InspectImage(huge_chunk), "has length 4294967280");
}

TEST(ImageFormatTest, WebpExtendedHeaderGivesTheCanvasSize) {
  const absl::StatusOr<ImageInfo> info = InspectImage(HandMadeWebpVp8x(640, 16777216, 0x10));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->format, ImageFormat::kWebp);
  EXPECT_EQ(info->width, 640);
  EXPECT_EQ(info->height, 16777216);
}

TEST(ImageFormatTest, AnimatedWebpIsRefused) {
  ExpectInvalid(InspectImage(HandMadeWebpVp8x(64, 64, 0x02)), "animated WebP");
}

TEST(ImageFormatTest, WebpRiffLengthPastTheDataIsTruncation) {
  std::string webp = HandMadeWebpVp8x(64, 64, 0);
  webp.replace(4, 4, Le32(1000));
  ExpectInvalid(InspectImage(webp), "declares 1008 bytes, got 30");
}

TEST(ImageFormatTest, BmpCoreHeaderIsRead) {
  const absl::StatusOr<ImageInfo> info = InspectImage(HandMadeCoreBmp(3, 5));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->format, ImageFormat::kBmp);
  EXPECT_EQ(info->width, 3);
  EXPECT_EQ(info->height, 5);
  EXPECT_FALSE(info->grey);
  const std::string bmp = HandMadeCoreBmp(3, 5);
  ExpectInvalid(InspectImage(bmp.substr(0, bmp.size() - 1)), "holds 4 of its 5 rows");
}

// ------------------------------------------------------ with real FER faces
class RealFaceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    paths_ = test_images::FacePaths(3);
    if (paths_.empty()) GTEST_SKIP() << test_images::SkipMessage();
    jpeg_ = ReadFile(paths_.front());
    grey_ = Decode(jpeg_, cv::IMREAD_GRAYSCALE);
    ASSERT_FALSE(grey_.empty()) << paths_.front();
    colour_ = Tint(grey_);
  }

  // Real faces in every accepted format and in the variants the encoders
  // produce, each with its expected header.
  struct Encoded {
    std::string label;
    std::string bytes;
    ImageFormat format;
    int width;
    int height;
    bool grey;
  };
  std::vector<Encoded> EncodedFaces() const {
    const cv::Mat grey = NonSquare(grey_);
    const cv::Mat colour = NonSquare(colour_);
    const cv::Mat colour_alpha = test_images::WithAlpha(colour);
    cv::Mat grey16;
    grey.convertTo(grey16, CV_16U, 257);
    const int w = grey.cols;
    const int h = grey.rows;
    return {
        {"original FER2013 JPEG", jpeg_, ImageFormat::kJpeg, 48, 48, true},
        {"grey JPEG", Encode(grey, ".jpg"), ImageFormat::kJpeg, w, h, true},
        {"colour JPEG", Encode(colour, ".jpg"), ImageFormat::kJpeg, w, h, false},
        {"progressive JPEG", Encode(colour, ".jpg", {cv::IMWRITE_JPEG_PROGRESSIVE, 1}),
         ImageFormat::kJpeg, w, h, false},
        {"grey PNG", Encode(grey, ".png"), ImageFormat::kPng, w, h, true},
        {"colour PNG", Encode(colour, ".png"), ImageFormat::kPng, w, h, false},
        {"colour+alpha PNG", Encode(colour_alpha, ".png"), ImageFormat::kPng, w, h, false},
        {"16-bit grey PNG", Encode(grey16, ".png"), ImageFormat::kPng, w, h, true},
        {"lossy WebP", Encode(colour, ".webp", {cv::IMWRITE_WEBP_QUALITY, 90}), ImageFormat::kWebp,
         w, h, false},
        {"lossless WebP", Encode(colour, ".webp", {cv::IMWRITE_WEBP_QUALITY, 101}),
         ImageFormat::kWebp, w, h, false},
        {"lossy WebP with alpha", Encode(colour_alpha, ".webp", {cv::IMWRITE_WEBP_QUALITY, 90}),
         ImageFormat::kWebp, w, h, false},
        {"grey BMP", Encode(grey, ".bmp"), ImageFormat::kBmp, w, h, false},
        {"colour BMP", Encode(colour, ".bmp"), ImageFormat::kBmp, w, h, false},
    };
  }

  std::vector<std::string> paths_;
  std::string jpeg_;
  cv::Mat grey_;
  cv::Mat colour_;
};

TEST_F(RealFaceTest, Fer2013JpegsAreGrey48By48) {
  for (const std::string& path : paths_) {
    const absl::StatusOr<ImageInfo> info = InspectImage(ReadFile(path));
    ASSERT_TRUE(info.ok()) << path << ": " << info.status();
    EXPECT_EQ(info->format, ImageFormat::kJpeg) << path;
    EXPECT_EQ(info->width, 48) << path;
    EXPECT_EQ(info->height, 48) << path;
    EXPECT_TRUE(info->grey) << path;
  }
}

TEST_F(RealFaceTest, HeadersOfEveryAcceptedEncodingGiveTheRightSize) {
  for (const Encoded& face : EncodedFaces()) {
    SCOPED_TRACE(face.label);
    ASSERT_FALSE(face.bytes.empty()) << "OpenCV could not encode it";
    EXPECT_EQ(DetectImageFormat(face.bytes), face.format);
    const absl::StatusOr<ImageInfo> info = InspectImage(face.bytes);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->format, face.format);
    EXPECT_EQ(info->width, face.width);
    EXPECT_EQ(info->height, face.height);
    EXPECT_EQ(info->grey, face.grey);
    // What the header says is what the decoder produces.
    const cv::Mat decoded = Decode(face.bytes, cv::IMREAD_UNCHANGED);
    EXPECT_EQ(decoded.cols, info->width);
    EXPECT_EQ(decoded.rows, info->height);
  }
}

TEST_F(RealFaceTest, EncodersCoverEveryWebpHeaderKind) {
  // Each WebP header variant the parser knows is exercised with real data.
  const cv::Mat colour = NonSquare(colour_);
  const cv::Mat colour_alpha = test_images::WithAlpha(colour);
  EXPECT_EQ(Encode(colour, ".webp", {cv::IMWRITE_WEBP_QUALITY, 90}).substr(12, 4), "VP8 ");
  EXPECT_EQ(Encode(colour, ".webp", {cv::IMWRITE_WEBP_QUALITY, 101}).substr(12, 4), "VP8L");
  EXPECT_EQ(Encode(colour_alpha, ".webp", {cv::IMWRITE_WEBP_QUALITY, 90}).substr(12, 4), "VP8X");
}

TEST_F(RealFaceTest, TopDownBmpReportsAPositiveHeight) {
  std::string bmp = Encode(NonSquare(colour_), ".bmp");
  constexpr size_t kHeightAt = 22;
  bmp.replace(kHeightAt, 4, Le32(static_cast<uint32_t>(-53)));
  const absl::StatusOr<ImageInfo> info = InspectImage(bmp);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->width, 37);
  EXPECT_EQ(info->height, 53);
}

TEST_F(RealFaceTest, TiffIsRefusedByName) {
  const std::string tiff = Encode(grey_, ".tiff");
  ASSERT_FALSE(tiff.empty());
  EXPECT_EQ(DetectImageFormat(tiff), ImageFormat::kTiff);
  ExpectInvalid(InspectImage(tiff), "TIFF images are not accepted; send JPEG, PNG, WebP or BMP");
}

TEST_F(RealFaceTest, OtherRealEncodingsAreRefusedByName) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {".pgm", "PNM"}, {".ppm", "PNM"}, {".ras", "Sun raster"}, {".jp2", "JPEG 2000"}};
  for (const auto& [extension, name] : cases) {
    const cv::Mat image = extension == ".pgm" ? grey_ : colour_;
    std::string bytes;
    try {
      bytes = Encode(image, extension);
    } catch (const cv::Exception&) {
    }
    if (bytes.empty()) continue;  // this OpenCV build has no such encoder
    SCOPED_TRACE(extension);
    ExpectInvalid(InspectImage(bytes), name + " images are not accepted");
  }
}

TEST_F(RealFaceTest, EveryTruncationOfARealImageIsRefused) {
  for (const Encoded& face : EncodedFaces()) {
    SCOPED_TRACE(face.label);
    ASSERT_TRUE(InspectImage(face.bytes).ok());
    for (size_t length = 0; length < face.bytes.size(); ++length) {
      const absl::StatusOr<ImageInfo> info = InspectImage(face.bytes.substr(0, length));
      ASSERT_FALSE(info.ok()) << "accepted the first " << length << " of " << face.bytes.size()
                              << " bytes";
      ASSERT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument) << info.status();
    }
  }
}

TEST_F(RealFaceTest, JpegCutBeforeItsEndMarkerSaysTruncated) {
  ExpectInvalid(InspectImage(jpeg_.substr(0, jpeg_.size() - 2)),
                "JPEG image is truncated or incomplete: no end-of-image marker");
  ExpectInvalid(InspectImage(jpeg_.substr(0, 100)), "truncated");
  // Bytes after the end of the image are tolerated.
  EXPECT_TRUE(InspectImage(jpeg_ + "trailing bytes").ok());
}

// A copy of bytes with replacement written at offset at.
std::string Patched(std::string bytes, size_t at, const std::string& replacement) {
  return bytes.replace(at, replacement.size(), replacement);
}

TEST_F(RealFaceTest, JpegKindsTheDecoderCannotReadAreRefusedByName) {
  // Frame header: FF C0, length (2), precision, height (2), width (2), components.
  const size_t sof = jpeg_.find("\xFF\xC0");
  ASSERT_NE(sof, std::string::npos) << "expected a baseline JPEG";
  ExpectInvalid(InspectImage(Patched(jpeg_, sof + 1, "\xC3")), "lossless JPEG is not supported");
  ExpectInvalid(InspectImage(Patched(jpeg_, sof + 1, "\xC5")),
                "hierarchical JPEG is not supported");
  ExpectInvalid(InspectImage(Patched(jpeg_, sof + 4, "\x0C")), "12-bit JPEG is not supported");
  ExpectInvalid(InspectImage(Patched(jpeg_, sof + 5, std::string(2, '\0'))), "DNL marker");
  ExpectInvalid(InspectImage(Patched(jpeg_, sof + 7, std::string(2, '\0'))), "declares width 0");
  ExpectInvalid(InspectImage(Patched(jpeg_, sof + 9, "\x03")), "frame header too short");
  ExpectInvalid(InspectImage(Patched(jpeg_, sof + 2, std::string("\0\x01", 2))),
                "segment FFC0 has length 1");
  ExpectInvalid(InspectImage(Patched(jpeg_, sof, "\xFF\xDA")), "scan before the frame header");
  // A progressive frame header is fine.
  EXPECT_TRUE(InspectImage(Patched(jpeg_, sof + 1, "\xC2")).ok());

  const std::string colour = Encode(colour_, ".jpg");
  const size_t colour_sof = colour.find("\xFF\xC0");
  ASSERT_NE(colour_sof, std::string::npos);
  ExpectInvalid(InspectImage(Patched(colour, colour_sof + 9, "\x02")),
                "JPEG with 2 colour components is not supported");
}

TEST_F(RealFaceTest, BmpVariantsTheDecoderCannotReadAreRefused) {
  const std::string bmp = Encode(colour_, ".bmp");
  const auto with = [&](size_t at, const std::string& bytes) { return Patched(bmp, at, bytes); };
  ExpectInvalid(InspectImage(with(28, Le16(7))), "7 bits per pixel");
  ExpectInvalid(InspectImage(with(30, Le32(4))), "BMP compression 4 is not supported");
  ExpectInvalid(InspectImage(with(30, Le32(1))), "compression 1 with 24 bits per pixel");
  ExpectInvalid(InspectImage(with(18, Le32(0))), "declares 0 x 48 pixels");
  ExpectInvalid(InspectImage(with(22, Le32(0x80000000u))), "pixels");
  ExpectInvalid(InspectImage(with(14, Le32(20))), "unknown bitmap header size 20");
  ExpectInvalid(InspectImage(with(10, Le32(20))), "pixel data overlaps the headers");
}

TEST_F(RealFaceTest, CorruptedBytesNeverCrashAndAreEitherReadOrRefused) {
  std::mt19937 random(20240601);
  for (const Encoded& face : EncodedFaces()) {
    SCOPED_TRACE(face.label);
    for (int trial = 0; trial < 2000; ++trial) {
      std::string bytes = face.bytes;
      const int flips = 1 + trial % 8;
      for (int i = 0; i < flips; ++i) {
        // Corrupt the headers more often than the pixel data.
        const size_t range = trial % 2 == 0 ? std::min<size_t>(bytes.size(), 64) : bytes.size();
        bytes[random() % range] = static_cast<char>(random());
      }
      const absl::StatusOr<ImageInfo> info = InspectImage(bytes);
      if (info.ok()) {
        EXPECT_GT(info->width, 0);
        EXPECT_GT(info->height, 0);
        EXPECT_TRUE(IsAcceptedImageFormat(info->format));
      } else {
        EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
        EXPECT_FALSE(info.status().message().empty());
      }
    }
  }
}

}  // namespace
}  // namespace fer
