// The request side of preprocessing: the face-count limit, the conversion of
// fer.v1.Image messages, and the "face N: " errors that leave the output as
// it was.
#include "server/request_faces.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "fer/v1/expression.pb.h"

namespace fer {
namespace {

using ::testing::StartsWith;

constexpr int kSide = 6;

fer::v1::Image RawGrey(uint32_t width, uint32_t height, uint8_t value = 100) {
  fer::v1::Image image;
  fer::v1::RawImage* raw = image.mutable_raw();
  raw->set_width(width);
  raw->set_height(height);
  raw->set_channels(1);
  raw->set_pixels(std::string(static_cast<size_t>(width) * height, static_cast<char>(value)));
  return image;
}

PreprocessOptions Options() {
  PreprocessOptions options;
  options.input_size = kSide;
  options.gray = true;
  return options;
}

TEST(RequestFacesTest, ToImageInputViewsEncodedBytesAndRawFields) {
  fer::v1::Image encoded;
  encoded.set_encoded("bytes");
  EXPECT_EQ(ToImageInput(encoded).encoded, "bytes");
  EXPECT_TRUE(ToImageInput(encoded).raw.empty());

  fer::v1::Image raw = RawGrey(3, 2);
  raw.mutable_raw()->set_channel_order(fer::v1::RawImage::CHANNEL_ORDER_BGR);
  const ImageInput input = ToImageInput(raw);
  EXPECT_EQ(input.width, 3);
  EXPECT_EQ(input.height, 2);
  EXPECT_EQ(input.channels, 1);
  EXPECT_TRUE(input.bgr);
  EXPECT_EQ(input.raw.data(), raw.raw().pixels().data());  // a view, not a copy
}

TEST(RequestFacesTest, SizesBeyondIntAreClampedSoTheLimitRefusesThem) {
  fer::v1::Image huge = RawGrey(1, 1);
  huge.mutable_raw()->set_width(UINT32_MAX);
  const ImageInput input = ToImageInput(huge);
  EXPECT_EQ(input.width, INT32_MAX);
  google::protobuf::RepeatedPtrField<fer::v1::Image> faces;
  *faces.Add() = huge;
  std::vector<uint8_t> out;
  const absl::Status status = PreprocessFaces(faces, Options(), false, &out);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), StartsWith("face 0: "));
}

TEST(RequestFacesTest, CheckFaceCountAppliesTheLimitAndTheEmptyRule) {
  google::protobuf::RepeatedPtrField<fer::v1::Image> faces;
  EXPECT_EQ(CheckFaceCount(faces, 2, /*allow_empty=*/false).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckFaceCount(faces, 2, /*allow_empty=*/true).ok());
  for (int i = 0; i < 3; ++i) *faces.Add() = RawGrey(kSide, kSide);
  const absl::Status over = CheckFaceCount(faces, 2, /*allow_empty=*/true);
  EXPECT_EQ(over.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(over.message(), "3 faces in one request; the limit is 2");
  EXPECT_TRUE(CheckFaceCount(faces, 3, /*allow_empty=*/false).ok());
}

TEST(RequestFacesTest, EveryFaceIsAppendedInOrder) {
  google::protobuf::RepeatedPtrField<fer::v1::Image> faces;
  *faces.Add() = RawGrey(kSide, kSide, 10);
  *faces.Add() = RawGrey(kSide, kSide, 200);
  std::vector<uint8_t> out = {7};
  ASSERT_TRUE(PreprocessFaces(faces, Options(), /*ten_crop=*/false, &out).ok());
  ASSERT_EQ(out.size(), 1u + 2 * kSide * kSide);
  EXPECT_EQ(out[0], 7);
  EXPECT_EQ(out[1], 10);
  EXPECT_EQ(out.back(), 200);
}

TEST(RequestFacesTest, TheFirstBadFaceIsNamedAndTheOutputLeftAsItWas) {
  google::protobuf::RepeatedPtrField<fer::v1::Image> faces;
  *faces.Add() = RawGrey(kSide, kSide);
  faces.Add()->set_encoded("not an image");
  *faces.Add() = RawGrey(kSide, kSide);
  std::vector<uint8_t> out = {1, 2, 3};
  const absl::Status status = PreprocessFaces(faces, Options(), /*ten_crop=*/true, &out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), StartsWith("face 1: "));
  EXPECT_EQ(out, (std::vector<uint8_t>{1, 2, 3}));
}

}  // namespace
}  // namespace fer
