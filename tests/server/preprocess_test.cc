#include "server/preprocess.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "model/core/image_ops.h"
#include "tests/server/test_images.h"
#include "tests/support/files.h"
#include "tests/support/parallel_for.h"

namespace fer {
namespace {

using test_images::Decode;
using test_images::Encode;
using test_images::NonSquare;
using test_images::Tint;
using test_support::ReadFile;
using ::testing::HasSubstr;

constexpr int kInputSize = 112;

PreprocessOptions GreyOptions() {
  PreprocessOptions options;
  options.input_size = kInputSize;
  options.gray = true;
  return options;
}

PreprocessOptions RgbOptions() {
  PreprocessOptions options = GreyOptions();
  options.gray = false;
  return options;
}

ImageInput EncodedInput(const std::string& bytes) {
  ImageInput input;
  input.encoded = bytes;
  return input;
}

// Raw input viewing a continuous cv::Mat's pixels.
ImageInput RawInput(const cv::Mat& image, bool bgr) {
  EXPECT_TRUE(image.isContinuous());
  ImageInput input;
  input.raw = absl::string_view(reinterpret_cast<const char*>(image.data),
                                image.total() * image.elemSize());
  input.width = image.cols;
  input.height = image.rows;
  input.channels = image.channels();
  input.bgr = bgr;
  return input;
}

// Runs Preprocess and expects success; returns the appended bytes.
std::vector<uint8_t> Faces(const ImageInput& input, const PreprocessOptions& options,
                           bool ten_crop = false) {
  std::vector<uint8_t> out;
  const absl::Status status = Preprocess(input, options, ten_crop, &out);
  EXPECT_TRUE(status.ok()) << status;
  return out;
}

// Expects an INVALID_ARGUMENT whose message contains text, and *out untouched.
void ExpectRefused(const ImageInput& input, const PreprocessOptions& options,
                   const std::string& text) {
  const std::vector<uint8_t> before = {1, 2, 3};
  std::vector<uint8_t> out = before;
  const absl::Status status = Preprocess(input, options, /*ten_crop=*/false, &out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(text));
  EXPECT_EQ(out, before);
}

std::vector<uint8_t> Bytes(const cv::Mat& image) {
  const cv::Mat continuous = image.isContinuous() ? image : image.clone();
  return std::vector<uint8_t>(continuous.data,
                              continuous.data + continuous.total() * continuous.elemSize());
}

// cv::resize of an image already in the model's channel layout; bilinear is
// what every enlargement (all FER2013 faces: 48 -> 112) uses.
std::vector<uint8_t> CvResized(const cv::Mat& image, int size = kInputSize,
                               int interpolation = cv::INTER_LINEAR) {
  cv::Mat resized;
  cv::resize(image, resized, cv::Size(size, size), 0, 0, interpolation);
  return Bytes(resized);
}

cv::Mat Converted(const cv::Mat& image, int code) {
  cv::Mat converted;
  cv::cvtColor(image, converted, code);
  return converted;
}

std::string Le32(uint32_t v) {
  return {static_cast<char>(v), static_cast<char>(v >> 8), static_cast<char>(v >> 16),
          static_cast<char>(v >> 24)};
}

std::string Be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

// ----------------------------------------------------------- no data needed
TEST(PreprocessTest, FaceLayoutFollowsTheOptions) {
  EXPECT_EQ(FaceChannels(GreyOptions()), 1);
  EXPECT_EQ(FaceChannels(RgbOptions()), 3);
  EXPECT_EQ(FaceBytes(GreyOptions()), 112u * 112u);
  EXPECT_EQ(FaceBytes(RgbOptions()), 112u * 112u * 3u);
}

TEST(PreprocessTest, UnusableOptionsAreAServerErrorNotTheClients) {
  PreprocessOptions options = GreyOptions();
  options.input_size = 0;
  EXPECT_EQ(ValidatePreprocessOptions(options).code(), absl::StatusCode::kInvalidArgument);
  const cv::Mat grey(4, 4, CV_8UC1, cv::Scalar(9));
  std::vector<uint8_t> out;
  EXPECT_EQ(Preprocess(RawInput(grey, false), options, false, &out).code(),
            absl::StatusCode::kFailedPrecondition);
  options = GreyOptions();
  options.max_pixels = 0;
  EXPECT_THAT(std::string(ValidatePreprocessOptions(options).message()), HasSubstr("max_pixels"));
  options = GreyOptions();
  options.max_encoded_bytes = 0;
  EXPECT_THAT(std::string(ValidatePreprocessOptions(options).message()),
              HasSubstr("max_encoded_bytes"));
  EXPECT_TRUE(ValidatePreprocessOptions(GreyOptions()).ok());
}

TEST(PreprocessTest, AnImageNeedsExactlyOneOfEncodedAndRaw) {
  ExpectRefused(ImageInput(), GreyOptions(), "image is empty");
  ImageInput both;
  both.encoded = "\xFF\xD8\xFF";
  both.raw = "abc";
  both.width = 1;
  both.height = 1;
  both.channels = 3;
  ExpectRefused(both, GreyOptions(), "both encoded bytes and raw pixels");
}

TEST(PreprocessTest, RawPixelsWithTheWrongByteCountAreRefused) {
  const std::string pixels(48 * 48 * 3, '\x40');
  ImageInput input;
  input.width = 48;
  input.height = 48;
  input.channels = 3;
  input.raw = absl::string_view(pixels).substr(0, pixels.size() - 1);
  ExpectRefused(input, GreyOptions(),
                "raw pixels are 6911 bytes, but 48 x 48 x 3 channels needs 6912");
  const std::string longer = pixels + "x";
  input.raw = longer;
  ExpectRefused(input, RgbOptions(), "raw pixels are 6913 bytes");
  input.raw = pixels;
  input.channels = 1;
  ExpectRefused(input, GreyOptions(), "48 x 48 x 1 channels needs 2304");
}

TEST(PreprocessTest, RawPixelsNeedAPositiveSizeAndOneThreeOrFourChannels) {
  const std::string pixels(12, '\x40');
  ImageInput input;
  input.raw = pixels;
  input.width = 2;
  input.height = 2;
  input.channels = 2;
  ExpectRefused(input, GreyOptions(), "raw pixels need 1, 3 or 4 channels, got 2");
  input.channels = 3;
  input.width = 0;
  ExpectRefused(input, GreyOptions(), "positive width and height, got 0 x 2");
  input.width = -4;
  input.height = -1;
  ExpectRefused(input, GreyOptions(), "positive width and height, got -4 x -1");
}

TEST(PreprocessTest, RawPixelsOverThePixelLimitAreRefusedBeforeTheByteCount) {
  PreprocessOptions options = GreyOptions();
  options.max_pixels = 1000;
  ImageInput input;
  input.raw = "tiny";  // the stated size is checked first
  input.width = 100000;
  input.height = 100000;
  input.channels = 3;
  ExpectRefused(input, options,
                "raw image is 100000 x 100000 = 10000000000 pixels, more than the limit of 1000");
}

TEST(PreprocessTest, PngDeclaring100000By100000IsRefusedBeforeDecoding) {
  // A structurally complete PNG of a few dozen bytes, with zero CRCs: had it
  // reached the decoder, the refusal would say it could not be decoded.
  const auto chunk = [](const std::string& type, const std::string& payload) {
    return Be32(static_cast<uint32_t>(payload.size())) + type + payload + std::string(4, '\0');
  };
  const std::string png = std::string("\x89PNG\r\n\x1A\n", 8) +
                          chunk("IHDR", Be32(100000) + Be32(100000) + std::string("\x08\x02", 2) +
                                            std::string(3, '\0')) +
                          chunk("IDAT", "x") + chunk("IEND", "");
  ExpectRefused(EncodedInput(png), RgbOptions(),
                "PNG header declares 100000 x 100000 = 10000000000 pixels, more than the limit "
                "of 16777216");
}

TEST(PreprocessTest, EncodedImagesOverTheByteLimitAreRefusedUnread) {
  PreprocessOptions options = GreyOptions();
  options.max_encoded_bytes = 100;
  ExpectRefused(EncodedInput(std::string(101, 'x')), options,
                "encoded image is 101 bytes, more than the limit of 100");
}

TEST(PreprocessTest, RawGreyPixelsAreResizedLikeCvResize) {
  cv::Mat grey(30, 50, CV_8UC1);
  cv::randu(grey, 0, 256);
  EXPECT_EQ(Faces(RawInput(grey, false), GreyOptions()), CvResized(grey));
  EXPECT_EQ(Faces(RawInput(grey, false), RgbOptions()),
            CvResized(Converted(grey, cv::COLOR_GRAY2RGB)));
}

TEST(PreprocessTest, ShrinkingOnBothSidesAveragesAreasAndAnythingElseIsBilinear) {
  struct Case {
    cv::Size size;
    int interpolation;
  };
  for (const Case& c : {Case{{640, 480}, cv::INTER_AREA}, Case{{113, 500}, cv::INTER_AREA},
                        Case{{112, 112}, cv::INTER_LINEAR}, Case{{50, 500}, cv::INTER_LINEAR},
                        Case{{30, 20}, cv::INTER_LINEAR}}) {
    cv::Mat colour(c.size, CV_8UC3);
    cv::randu(colour, 0, 256);
    EXPECT_EQ(Faces(RawInput(colour, true), RgbOptions()),
              CvResized(Converted(colour, cv::COLOR_BGR2RGB), kInputSize, c.interpolation))
        << c.size;
  }
}

TEST(PreprocessTest, TenCropOfALargeFaceCropsItsAreaAveragedResize) {
  cv::Mat grey(300, 260, CV_8UC1);
  cv::randu(grey, 0, 256);
  const std::vector<uint8_t> out = Faces(RawInput(grey, false), GreyOptions(), true);
  const int resized_size = TenCropResizeSize(kInputSize);
  const std::vector<uint8_t> resized = CvResized(grey, resized_size, cv::INTER_AREA);
  const size_t face_bytes = FaceBytes(GreyOptions());
  ASSERT_EQ(out.size(), kTenCropCount * face_bytes);
  const std::array<CropBox, 10> boxes = TenCropBoxes(resized_size, kInputSize);
  for (int i = 0; i < kTenCropCount; ++i) {
    std::vector<uint8_t> expected(face_bytes);
    Crop(resized.data(), resized_size, 1, boxes[i], expected.data());
    EXPECT_TRUE(std::equal(expected.begin(), expected.end(), out.begin() + i * face_bytes))
        << "crop " << i;
  }
}

// ------------------------------------------------------ with real FER faces
class RealFacePreprocessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    paths_ = test_images::FacePaths(3);
    if (paths_.empty()) GTEST_SKIP() << test_images::SkipMessage();
    jpeg_ = ReadFile(paths_.front());
    grey_ = Decode(jpeg_, cv::IMREAD_GRAYSCALE);
    ASSERT_FALSE(grey_.empty()) << paths_.front();
    colour_ = Tint(grey_);
  }

  std::vector<std::string> paths_;
  std::string jpeg_;
  cv::Mat grey_;    // 48 x 48
  cv::Mat colour_;  // BGR
};

TEST_F(RealFacePreprocessTest, GreyJpegsGiveOneGreyFaceResizedLikeCvResize) {
  for (const std::string& path : paths_) {
    const std::string jpeg = ReadFile(path);
    const std::vector<uint8_t> face = Faces(EncodedInput(jpeg), GreyOptions());
    ASSERT_EQ(face.size(), FaceBytes(GreyOptions())) << path;
    EXPECT_EQ(face, CvResized(Decode(jpeg, cv::IMREAD_GRAYSCALE))) << path;
  }
}

TEST_F(RealFacePreprocessTest, BilinearResizeAgreesWithImageOpsWithinOneGreyLevel) {
  // The offline tools resize with ResizeBilinear (model/core/image_ops.h); the
  // server's OpenCV resize uses fixed-point weights and may round differently.
  for (const std::string& path : paths_) {
    const cv::Mat grey = Decode(ReadFile(path), cv::IMREAD_GRAYSCALE);
    for (const int size : {kInputSize, TenCropResizeSize(kInputSize)}) {
      const std::vector<uint8_t> ours = CvResized(grey, size);
      std::vector<uint8_t> shared(static_cast<size_t>(size) * size);
      ResizeBilinear(grey.data, grey.cols, grey.rows, 1, shared.data(), size, size);
      for (size_t i = 0; i < ours.size(); ++i) {
        ASSERT_LE(std::abs(ours[i] - shared[i]), 1) << path << " size " << size << " at " << i;
      }
    }
  }
}

TEST_F(RealFacePreprocessTest, RgbModelsGetRgbOrderResizedLikeCvResize) {
  const std::string png = Encode(NonSquare(colour_), ".png");
  const std::vector<uint8_t> face = Faces(EncodedInput(png), RgbOptions());
  ASSERT_EQ(face.size(), FaceBytes(RgbOptions()));
  EXPECT_EQ(face, CvResized(Converted(NonSquare(colour_), cv::COLOR_BGR2RGB)));
  // The tint makes red the brightest channel: it must come first.
  int64_t red = 0, blue = 0;
  for (size_t i = 0; i < face.size(); i += 3) {
    red += face[i];
    blue += face[i + 2];
  }
  EXPECT_GT(red, blue);
}

TEST_F(RealFacePreprocessTest, ColourFacesBecomeBt601GreyForGreyModels) {
  const cv::Mat colour = NonSquare(colour_);
  const std::vector<uint8_t> expected = CvResized(Converted(colour, cv::COLOR_BGR2GRAY));
  const std::string png = Encode(colour, ".png");
  EXPECT_EQ(Faces(EncodedInput(png), GreyOptions()), expected);
  EXPECT_EQ(Faces(RawInput(colour, /*bgr=*/true), GreyOptions()), expected);
  EXPECT_EQ(Faces(RawInput(Converted(colour, cv::COLOR_BGR2RGB), /*bgr=*/false), GreyOptions()),
            expected);
  // A lossy colour JPEG: the decoder's BGR, then the same conversion.
  const std::string jpeg = Encode(colour, ".jpg");
  EXPECT_EQ(Faces(EncodedInput(jpeg), GreyOptions()),
            CvResized(Converted(Decode(jpeg, cv::IMREAD_COLOR), cv::COLOR_BGR2GRAY)));
}

TEST_F(RealFacePreprocessTest, GreyFacesAreRepeatedOnThreeChannelsForRgbModels) {
  const std::vector<uint8_t> grey = Faces(EncodedInput(jpeg_), GreyOptions());
  const std::vector<uint8_t> rgb = Faces(EncodedInput(jpeg_), RgbOptions());
  ASSERT_EQ(rgb.size(), 3 * grey.size());
  for (size_t i = 0; i < grey.size(); ++i) {
    ASSERT_EQ(rgb[3 * i], grey[i]) << i;
    ASSERT_EQ(rgb[3 * i + 1], grey[i]) << i;
    ASSERT_EQ(rgb[3 * i + 2], grey[i]) << i;
  }
}

TEST_F(RealFacePreprocessTest, LosslessFormatsAndRawPixelsGiveIdenticalFaces) {
  const cv::Mat grey = NonSquare(grey_);
  const cv::Mat grey_bgr = Converted(grey, cv::COLOR_GRAY2BGR);
  for (const PreprocessOptions& options : {GreyOptions(), RgbOptions()}) {
    for (bool ten_crop : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "gray=" << options.gray << " ten_crop=" << ten_crop);
      const std::vector<uint8_t> expected = Faces(RawInput(grey, false), options, ten_crop);
      EXPECT_EQ(Faces(EncodedInput(Encode(grey, ".png")), options, ten_crop), expected);
      EXPECT_EQ(Faces(EncodedInput(Encode(grey_bgr, ".png")), options, ten_crop), expected);
      EXPECT_EQ(Faces(EncodedInput(Encode(grey, ".bmp")), options, ten_crop), expected);
      EXPECT_EQ(Faces(EncodedInput(Encode(grey_bgr, ".bmp")), options, ten_crop), expected);
      EXPECT_EQ(Faces(EncodedInput(Encode(grey_bgr, ".webp", {cv::IMWRITE_WEBP_QUALITY, 101})),
                      options, ten_crop),
                expected);
      EXPECT_EQ(Faces(RawInput(grey_bgr, true), options, ten_crop), expected);
    }
  }
}

TEST_F(RealFacePreprocessTest, RgbAndBgrRawPixelsGiveTheSameFace) {
  const cv::Mat bgr = NonSquare(colour_);
  const cv::Mat rgb = Converted(bgr, cv::COLOR_BGR2RGB);
  for (const PreprocessOptions& options : {GreyOptions(), RgbOptions()}) {
    const std::vector<uint8_t> from_png = Faces(EncodedInput(Encode(bgr, ".png")), options);
    EXPECT_EQ(Faces(RawInput(bgr, /*bgr=*/true), options), from_png);
    EXPECT_EQ(Faces(RawInput(rgb, /*bgr=*/false), options), from_png);
  }
}

TEST_F(RealFacePreprocessTest, AlphaOfFourChannelRawPixelsIsIgnored) {
  const cv::Mat bgr = NonSquare(colour_);
  cv::Mat bgra = Converted(bgr, cv::COLOR_BGR2BGRA);
  cv::Mat alpha(bgra.size(), CV_8UC1);
  cv::randu(alpha, 0, 256);
  cv::insertChannel(alpha, bgra, 3);
  const cv::Mat rgba = Converted(bgra, cv::COLOR_BGRA2RGBA);
  for (const PreprocessOptions& options : {GreyOptions(), RgbOptions()}) {
    const std::vector<uint8_t> expected = Faces(RawInput(bgr, true), options);
    EXPECT_EQ(Faces(RawInput(bgra, true), options), expected);
    EXPECT_EQ(Faces(RawInput(rgba, false), options), expected);
  }
}

TEST_F(RealFacePreprocessTest, EveryAcceptedFormatDecodesForBothModelKinds) {
  const cv::Mat colour = NonSquare(colour_);
  const std::vector<std::string> files = {
      jpeg_,
      Encode(colour, ".jpg"),
      Encode(colour, ".jpg", {cv::IMWRITE_JPEG_PROGRESSIVE, 1}),
      Encode(colour, ".png"),
      Encode(colour, ".webp", {cv::IMWRITE_WEBP_QUALITY, 90}),
      Encode(colour, ".webp", {cv::IMWRITE_WEBP_QUALITY, 101}),
      Encode(test_images::WithAlpha(colour), ".webp", {cv::IMWRITE_WEBP_QUALITY, 90}),
      Encode(test_images::WithAlpha(colour), ".png"),
      Encode(colour, ".bmp"),
  };
  for (size_t i = 0; i < files.size(); ++i) {
    for (const PreprocessOptions& options : {GreyOptions(), RgbOptions()}) {
      SCOPED_TRACE(::testing::Message() << "file " << i << " gray=" << options.gray);
      const cv::Mat decoded = Decode(files[i], cv::IMREAD_COLOR);
      const cv::Mat expected =
          Converted(decoded, options.gray ? cv::COLOR_BGR2GRAY : cv::COLOR_BGR2RGB);
      EXPECT_EQ(Faces(EncodedInput(files[i]), options), CvResized(expected));
    }
  }
}

TEST_F(RealFacePreprocessTest, TenCropGivesTenFacesAndSingleCropOne) {
  for (const PreprocessOptions& options : {GreyOptions(), RgbOptions()}) {
    EXPECT_EQ(Faces(EncodedInput(jpeg_), options, false).size(), FaceBytes(options));
    EXPECT_EQ(Faces(EncodedInput(jpeg_), options, true).size(), kTenCropCount * FaceBytes(options));
  }
}

TEST_F(RealFacePreprocessTest, TenCropFacesAreTheCropsOfTheResizedFace) {
  for (const int input_size : {112, 64}) {
    for (const bool gray : {true, false}) {
      SCOPED_TRACE(::testing::Message() << "input_size=" << input_size << " gray=" << gray);
      PreprocessOptions options = gray ? GreyOptions() : RgbOptions();
      options.input_size = input_size;
      const cv::Mat face = gray ? grey_ : Converted(colour_, cv::COLOR_BGR2RGB);
      const std::string png = Encode(gray ? grey_ : colour_, ".png");
      const std::vector<uint8_t> out = Faces(EncodedInput(png), options, /*ten_crop=*/true);
      const size_t face_bytes = FaceBytes(options);
      ASSERT_EQ(out.size(), kTenCropCount * face_bytes);

      const int resized_size = TenCropResizeSize(input_size);
      cv::Mat resized;
      cv::resize(face, resized, cv::Size(resized_size, resized_size), 0, 0, cv::INTER_LINEAR);
      const std::array<CropBox, 10> boxes = TenCropBoxes(resized_size, input_size);
      for (int i = 0; i < kTenCropCount; ++i) {
        const std::vector<uint8_t> got(out.begin() + i * face_bytes,
                                       out.begin() + (i + 1) * face_bytes);
        std::vector<uint8_t> expected(face_bytes);
        Crop(resized.data, resized_size, face.channels(), boxes[i], expected.data());
        EXPECT_EQ(got, expected) << "crop " << i;
      }
      // The same regions stated without image_ops: corners, centre, mirrored.
      const int far = resized_size - input_size;
      const std::array<cv::Point, 5> corners = {cv::Point(0, 0), cv::Point(far, 0),
                                                cv::Point(0, far), cv::Point(far, far),
                                                cv::Point(far / 2, far / 2)};
      for (int i = 0; i < kTenCropCount; ++i) {
        const cv::Mat box = resized(cv::Rect(corners[i % 5], cv::Size(input_size, input_size)));
        cv::Mat region = box.clone();
        if (i >= 5) cv::flip(box, region, /*flipCode=*/1);
        const std::vector<uint8_t> got(out.begin() + i * face_bytes,
                                       out.begin() + (i + 1) * face_bytes);
        EXPECT_EQ(got, Bytes(region)) << "crop " << i;
      }
    }
  }
}

TEST_F(RealFacePreprocessTest, TopDownBmpGivesTheSameFaceAsBottomUp) {
  const cv::Mat colour = NonSquare(colour_);
  const std::string bottom_up = Encode(colour, ".bmp");
  // Negate the height and store the rows in the opposite order.
  constexpr size_t kHeightAt = 22;
  constexpr size_t kPixelOffsetAt = 10;
  const uint32_t offset = static_cast<uint8_t>(bottom_up[kPixelOffsetAt]) |
                          static_cast<uint8_t>(bottom_up[kPixelOffsetAt + 1]) << 8;
  const size_t row_bytes = (colour.cols * 3 + 3) / 4 * 4;
  std::string top_down = bottom_up.substr(0, offset);
  top_down.replace(kHeightAt, 4, Le32(static_cast<uint32_t>(-colour.rows)));
  for (int row = colour.rows - 1; row >= 0; --row) {
    top_down += bottom_up.substr(offset + row * row_bytes, row_bytes);
  }
  ASSERT_EQ(top_down.size(), bottom_up.size());
  for (const PreprocessOptions& options : {GreyOptions(), RgbOptions()}) {
    EXPECT_EQ(Faces(EncodedInput(top_down), options), Faces(EncodedInput(bottom_up), options));
  }
}

TEST_F(RealFacePreprocessTest, TiffIsRefusedNamingTiff) {
  ExpectRefused(EncodedInput(Encode(grey_, ".tiff")), GreyOptions(),
                "TIFF images are not accepted; send JPEG, PNG, WebP or BMP");
}

TEST_F(RealFacePreprocessTest, EncodedFacesOverThePixelLimitAreRefused) {
  PreprocessOptions options = GreyOptions();
  options.max_pixels = 48 * 48 - 1;
  ExpectRefused(EncodedInput(jpeg_), options,
                "JPEG header declares 48 x 48 = 2304 pixels, more than the limit of 2303");
  options.max_pixels = 48 * 48;
  EXPECT_EQ(Faces(EncodedInput(jpeg_), options).size(), FaceBytes(options));
}

TEST_F(RealFacePreprocessTest, EveryTruncationIsInvalidArgumentAndLeavesTheOutputAlone) {
  const std::vector<std::string> files = {
      jpeg_, Encode(colour_, ".jpg", {cv::IMWRITE_JPEG_PROGRESSIVE, 1}), Encode(colour_, ".png"),
      Encode(colour_, ".webp"), Encode(colour_, ".bmp")};
  for (const std::string& file : files) {
    for (size_t length = 0; length < file.size(); ++length) {
      for (const PreprocessOptions& options : {GreyOptions(), RgbOptions()}) {
        std::vector<uint8_t> out = {7};
        const absl::Status status =
            Preprocess(EncodedInput(file.substr(0, length)), options, true, &out);
        ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument)
            << length << " of " << file.size() << " bytes: " << status;
        ASSERT_EQ(out, std::vector<uint8_t>{7});
      }
    }
  }
}

TEST_F(RealFacePreprocessTest, DecodedSizeMustMatchTheHeader) {
  // A lossy WebP wrapped in an extended header whose canvas is twice as wide.
  const std::string simple = Encode(colour_, ".webp", {cv::IMWRITE_WEBP_QUALITY, 90});
  ASSERT_EQ(simple.substr(12, 4), "VP8 ");
  const std::string vp8x_payload = std::string(4, '\0') + Le32(2 * colour_.cols - 1).substr(0, 3) +
                                   Le32(colour_.rows - 1).substr(0, 3);
  const std::string chunks = "VP8X" + Le32(10) + vp8x_payload + simple.substr(12);
  const std::string extended =
      "RIFF" + Le32(static_cast<uint32_t>(4 + chunks.size())) + "WEBP" + chunks;
  std::vector<uint8_t> out;
  const absl::Status status = Preprocess(EncodedInput(extended), RgbOptions(), false, &out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_TRUE(out.empty());
}

TEST_F(RealFacePreprocessTest, SuccessAppendsAfterWhatTheOutputHeld) {
  std::vector<uint8_t> out = {1, 2, 3};
  ASSERT_TRUE(Preprocess(EncodedInput(jpeg_), GreyOptions(), false, &out).ok());
  ASSERT_TRUE(Preprocess(EncodedInput(jpeg_), GreyOptions(), true, &out).ok());
  ASSERT_EQ(out.size(), 3 + 11 * FaceBytes(GreyOptions()));
  EXPECT_EQ(std::vector<uint8_t>(out.begin(), out.begin() + 3), (std::vector<uint8_t>{1, 2, 3}));
  EXPECT_EQ(std::vector<uint8_t>(out.begin() + 3, out.begin() + 3 + FaceBytes(GreyOptions())),
            Faces(EncodedInput(jpeg_), GreyOptions()));
}

TEST_F(RealFacePreprocessTest, CorruptedFilesNeverCrashOrThrow) {
  std::mt19937 random(7);
  const std::vector<std::string> files = {jpeg_, Encode(colour_, ".jpg"), Encode(colour_, ".png"),
                                          Encode(colour_, ".webp"), Encode(colour_, ".bmp")};
  for (const std::string& file : files) {
    for (int trial = 0; trial < 300; ++trial) {
      std::string bytes = file;
      for (int i = 0; i <= trial % 6; ++i) {
        bytes[random() % bytes.size()] = static_cast<char>(random());
      }
      const bool ten_crop = trial % 2 == 1;
      const PreprocessOptions options = trial % 4 < 2 ? GreyOptions() : RgbOptions();
      std::vector<uint8_t> out;
      const absl::Status status = Preprocess(EncodedInput(bytes), options, ten_crop, &out);
      if (status.ok()) {
        EXPECT_EQ(out.size(), (ten_crop ? kTenCropCount : 1) * FaceBytes(options));
      } else {
        EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
        EXPECT_TRUE(out.empty());
      }
    }
  }
}

TEST_F(RealFacePreprocessTest, ConcurrentCallsGiveTheSameFacesAsOneThread) {
  std::vector<std::string> files;
  for (const std::string& path : paths_) files.push_back(ReadFile(path));
  files.push_back(Encode(colour_, ".png"));
  files.push_back(Encode(colour_, ".webp"));
  std::vector<std::vector<uint8_t>> expected;
  for (const std::string& file : files) {
    expected.push_back(Faces(EncodedInput(file), RgbOptions(), true));
  }

  constexpr int kThreads = 8;
  constexpr int kRounds = 5;
  std::vector<int> mismatches(kThreads, 0);
  test_support::ParallelFor(kThreads, [&](int t) {
    for (int round = 0; round < kRounds; ++round) {
      for (size_t i = 0; i < files.size(); ++i) {
        std::vector<uint8_t> out;
        const absl::Status status = Preprocess(EncodedInput(files[i]), RgbOptions(), true, &out);
        if (!status.ok() || out != expected[i]) ++mismatches[t];
      }
    }
  });
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

}  // namespace
}  // namespace fer
