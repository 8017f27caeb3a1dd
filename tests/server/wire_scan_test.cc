// The wire scan that runs before a request or frame is parsed: it must count
// the faces and unknown fields protobuf's parser would make, read the frame
// id, accept everything the parser accepts and refuse malformed bytes with a
// message naming the byte.
#include "server/wire_scan.h"

#include <gmock/gmock.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/unknown_field_set.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "fer/v1/expression.pb.h"
#include "server/fuzz/unknown_fields.h"

namespace fer {
namespace {

using fer::v1::ClassifyFrame;
using fer::v1::ClassifyRequest;
using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Wire types, as the encoding defines them.
constexpr int kVarint = 0;
constexpr int kFixed64 = 1;
constexpr int kLen = 2;
constexpr int kStartGroup = 3;
constexpr int kEndGroup = 4;
constexpr int kFixed32 = 5;

std::string Varint(uint64_t value) {
  std::string out;
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
  return out;
}
std::string Tag(uint32_t number, int wire_type) { return Varint((number << 3) | wire_type); }
std::string Len(uint32_t number, const std::string& payload) {
  return Tag(number, kLen) + Varint(payload.size()) + payload;
}

// Field numbers of the messages under test (checked against the descriptors
// by the first test).
constexpr uint32_t kRequestFaces = 1;
constexpr uint32_t kRequestOptions = 2;
constexpr uint32_t kFrameId = 1;
constexpr uint32_t kFrameFaces = 2;
constexpr uint32_t kImageEncoded = 1;
constexpr uint32_t kImageRaw = 2;
constexpr uint32_t kRawWidth = 1;
constexpr uint32_t kRawPixels = 5;
constexpr uint32_t kUnknown = 99;

absl::Status Scan(const Descriptor* type, const std::string& bytes, WireScan* scan) {
  return ScanMessage(type, bytes, scan);
}

// Scans bytes as type and parses them with protobuf: whenever the parse
// succeeds, the scan must too, and agree on faces, unknown fields and id.
template <typename Message>
void ExpectScanAgreesWithParse(const std::string& bytes, const std::string& name) {
  SCOPED_TRACE(name);
  Message parsed;
  const bool parses = parsed.ParseFromString(bytes);
  WireScan scan;
  const absl::Status status = Scan(Message::descriptor(), bytes, &scan);
  if (!parses) return;  // the scan may accept what the parser refuses
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(scan.faces, parsed.faces_size());
  EXPECT_EQ(scan.unknown_fields, fuzz::CountUnknown(parsed));
  if constexpr (std::is_same_v<Message, ClassifyFrame>) {
    EXPECT_EQ(scan.frame_id, parsed.frame_id());
  }
}

TEST(WireScanTest, TheFieldNumbersHereAreTheProtoFile) {
  EXPECT_EQ(ClassifyRequest::kFacesFieldNumber, static_cast<int>(kRequestFaces));
  EXPECT_EQ(ClassifyRequest::kOptionsFieldNumber, static_cast<int>(kRequestOptions));
  EXPECT_EQ(ClassifyFrame::kFrameIdFieldNumber, static_cast<int>(kFrameId));
  EXPECT_EQ(ClassifyFrame::kFacesFieldNumber, static_cast<int>(kFrameFaces));
  EXPECT_EQ(fer::v1::Image::kEncodedFieldNumber, static_cast<int>(kImageEncoded));
  EXPECT_EQ(fer::v1::Image::kRawFieldNumber, static_cast<int>(kImageRaw));
  EXPECT_EQ(fer::v1::RawImage::kWidthFieldNumber, static_cast<int>(kRawWidth));
  EXPECT_EQ(fer::v1::RawImage::kPixelsFieldNumber, static_cast<int>(kRawPixels));
}

// The face count bounds what a parse allocates only while faces is the one
// repeated field anywhere in the intake messages: a repeated field added
// elsewhere must be counted by the scan too.
void CollectRepeated(const Descriptor* type, const std::string& path,
                     std::set<const Descriptor*>* seen, std::vector<std::string>* repeated) {
  if (!seen->insert(type).second) return;
  for (int i = 0; i < type->field_count(); ++i) {
    const FieldDescriptor* field = type->field(i);
    if (field->is_repeated()) repeated->push_back(path + field->name());
    if (field->message_type() != nullptr) {
      CollectRepeated(field->message_type(), path + field->name() + ".", seen, repeated);
    }
  }
}

TEST(WireScanTest, FacesIsTheOnlyRepeatedFieldOfTheIntakeMessages) {
  for (const Descriptor* type : {ClassifyRequest::descriptor(), ClassifyFrame::descriptor()}) {
    std::set<const Descriptor*> seen;
    std::vector<std::string> repeated;
    CollectRepeated(type, "", &seen, &repeated);
    EXPECT_EQ(repeated, std::vector<std::string>{kScanFacesField}) << type->full_name();
  }
}

TEST(WireScanTest, AgreesWithTheParserOnWellFormedMessages) {
  ClassifyRequest request;
  request.add_faces()->set_encoded("jpeg bytes");
  fer::v1::RawImage* raw = request.add_faces()->mutable_raw();
  raw->set_width(2);
  raw->set_height(1);
  raw->set_channels(1);
  raw->set_pixels("ab");
  request.add_faces();  // an empty image
  request.mutable_options()->set_ten_crop(true);
  ExpectScanAgreesWithParse<ClassifyRequest>(request.SerializeAsString(), "request");
  ExpectScanAgreesWithParse<ClassifyRequest>("", "empty request");

  ClassifyFrame frame;
  frame.set_frame_id(UINT64_MAX);
  *frame.mutable_faces() = request.faces();
  ExpectScanAgreesWithParse<ClassifyFrame>(frame.SerializeAsString(), "frame");

  WireScan scan;
  ASSERT_TRUE(Scan(ClassifyFrame::descriptor(), frame.SerializeAsString(), &scan).ok());
  EXPECT_EQ(scan.faces, 3);
  EXPECT_EQ(scan.frame_id, UINT64_MAX);
  EXPECT_EQ(scan.unknown_fields, 0);
}

TEST(WireScanTest, CountsWhatTheParserKeepsAsUnknownFields) {
  const std::string raw_with_unknown =
      Len(kImageRaw, Tag(kRawWidth, kVarint) + Varint(3) + Tag(kUnknown, kFixed32) + "abcd");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"top-level varint", Tag(kUnknown, kVarint) + Varint(5)},
      {"every wire type", Tag(kUnknown, kVarint) + Varint(1) + Tag(kUnknown, kFixed64) +
                              "12345678" + Tag(kUnknown, kFixed32) + "1234" + Len(kUnknown, "xyz")},
      {"faces with the wrong wire type", Tag(kRequestFaces, kVarint) + Varint(7)},
      {"inside a face", Len(kRequestFaces, Tag(kUnknown, kVarint) + Varint(1))},
      {"inside raw pixels' message", Len(kRequestFaces, raw_with_unknown)},
      {"a group and its fields", Tag(kUnknown, kStartGroup) + Tag(7, kVarint) + Varint(1) +
                                     Tag(8, kStartGroup) + Tag(8, kEndGroup) +
                                     Tag(kUnknown, kEndGroup)},
  };
  for (const auto& [name, bytes] : cases) {
    ExpectScanAgreesWithParse<ClassifyRequest>(bytes, name);
    WireScan scan;
    ASSERT_TRUE(Scan(ClassifyRequest::descriptor(), bytes, &scan).ok()) << name;
    EXPECT_GT(scan.unknown_fields, 0) << name;
  }
  // A frame's frame_id sent length-delimited is an unknown field, not an id.
  const std::string frame = Len(kFrameId, "12") + Len(kFrameFaces, "");
  ExpectScanAgreesWithParse<ClassifyFrame>(frame, "frame_id with the wrong wire type");
}

TEST(WireScanTest, RepeatedScalarsAndMessagesMergeAsTheParserMerges) {
  // The last frame_id wins; options and raw sent twice are one message each.
  const std::string frame = Tag(kFrameId, kVarint) + Varint(1) + Len(kFrameFaces, "") +
                            Tag(kFrameId, kVarint) + Varint(300) +
                            Len(kFrameFaces, Len(kImageRaw, "") + Len(kImageRaw, ""));
  ExpectScanAgreesWithParse<ClassifyFrame>(frame, "frame");
  WireScan scan;
  ASSERT_TRUE(Scan(ClassifyFrame::descriptor(), frame, &scan).ok());
  EXPECT_EQ(scan.frame_id, 300u);
  EXPECT_EQ(scan.faces, 2);
}

TEST(WireScanTest, CountsAHostileFloodOfEmptyFacesWithoutParsing) {
  constexpr int64_t kFaces = 1 << 20;  // 2 MiB of wire, 1 Mi faces
  std::string bytes;
  bytes.reserve(2 * kFaces);
  for (int64_t i = 0; i < kFaces; ++i) bytes += Len(kRequestFaces, "");
  WireScan scan;
  ASSERT_TRUE(Scan(ClassifyRequest::descriptor(), bytes, &scan).ok());
  EXPECT_EQ(scan.faces, kFaces);
  const absl::Status limits = CheckScanLimits(scan, 64, /*allow_empty=*/false);
  EXPECT_EQ(limits.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(limits.message(), "1048576 faces in one request; the limit is 64");
}

TEST(WireScanTest, RefusesTooManyUnknownFields) {
  std::string bytes = Len(kRequestFaces, Len(kImageEncoded, "x"));
  for (int64_t i = 0; i <= kMaxUnknownFields; ++i) bytes += Tag(kUnknown, kVarint) + Varint(0);
  WireScan scan;
  ASSERT_TRUE(Scan(ClassifyRequest::descriptor(), bytes, &scan).ok());
  EXPECT_EQ(scan.unknown_fields, kMaxUnknownFields + 1);
  const absl::Status limits = CheckScanLimits(scan, 64, /*allow_empty=*/false);
  EXPECT_EQ(limits.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(limits.message()), HasSubstr("fields this server does not know"));
  scan.unknown_fields = kMaxUnknownFields;
  EXPECT_TRUE(CheckScanLimits(scan, 64, /*allow_empty=*/false).ok());
}

TEST(WireScanTest, CheckFaceCountAppliesTheLimitAndTheEmptyRule) {
  EXPECT_EQ(CheckFaceCount(0, 2, /*allow_empty=*/false).message(),
            "the request has no faces; send 1 or more");
  EXPECT_TRUE(CheckFaceCount(0, 2, /*allow_empty=*/true).ok());
  EXPECT_TRUE(CheckFaceCount(2, 2, /*allow_empty=*/false).ok());
  EXPECT_EQ(CheckFaceCount(3, 2, /*allow_empty=*/true).message(),
            "3 faces in one request; the limit is 2");
}

struct Malformed {
  std::string name;
  std::string bytes;
  std::string reason;
};

TEST(WireScanTest, RefusesMalformedBytesNamingTheByteAndWhy) {
  std::string deep;
  for (int i = 0; i <= kMaxScanDepth; ++i) deep += Tag(kUnknown, kStartGroup);
  const std::vector<Malformed> cases = {
      {"not protobuf at all", "this is not a protobuf message", ""},
      {"a zero tag", std::string(1, '\0'), "zero or malformed tag"},
      {"field number 0", Len(0, "ab"), "field number 0"},
      {"wire type 6", Tag(kUnknown, 6), "wire type 6"},
      {"wire type 7", Tag(kRequestFaces, 7), "wire type 7"},
      {"a face cut short", Tag(kRequestFaces, kLen) + Varint(10) + "abc", "cut short"},
      {"a bytes field cut short", Len(kRequestFaces, Tag(kImageEncoded, kLen) + Varint(5) + "ab"),
       "malformed or cut short"},
      {"a varint cut short", Tag(kUnknown, kVarint) + "\xff", "malformed or cut short"},
      {"a fixed64 cut short", Tag(kUnknown, kFixed64) + "1234", "malformed or cut short"},
      {"a stray end-group", Tag(kUnknown, kEndGroup), "end-group tag of field 99"},
      {"an end-group inside a face", Len(kRequestFaces, Tag(kUnknown, kEndGroup)), "end-group tag"},
      {"a group never ended", Tag(kUnknown, kStartGroup) + Tag(5, kVarint) + Varint(1),
       "group 99 is cut short"},
      {"a group ended by another", Tag(kUnknown, kStartGroup) + Tag(98, kEndGroup),
       "end-group tag of field 98"},
      {"groups nested too deep", deep, "nesting deeper than"},
      {"a tag cut short", "\x80", "zero or malformed tag"},
  };
  for (const Malformed& bad : cases) {
    SCOPED_TRACE(bad.name);
    ClassifyRequest parsed;
    EXPECT_FALSE(parsed.ParseFromString(bad.bytes)) << "the parser refuses it too";
    WireScan scan;
    const absl::Status status = Scan(ClassifyRequest::descriptor(), bad.bytes, &scan);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(status.message()),
                StartsWith("malformed fer.v1.ClassifyRequest at byte "));
    EXPECT_THAT(std::string(status.message()), HasSubstr(bad.reason));
  }
}

TEST(WireScanTest, AMalformedFrameStillReportsTheFrameIdReadBeforeTheFault) {
  const std::string bytes = Tag(kFrameId, kVarint) + Varint(42) + Len(kFrameFaces, "") +
                            Tag(kFrameFaces, kLen) + Varint(100) + "short";
  WireScan scan;
  const absl::Status status = Scan(ClassifyFrame::descriptor(), bytes, &scan);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), StartsWith("malformed fer.v1.ClassifyFrame at byte "));
  EXPECT_EQ(scan.frame_id, 42u);
  EXPECT_EQ(scan.faces, 2);

  // Bytes that go wrong before any frame_id report 0.
  ASSERT_FALSE(Scan(ClassifyFrame::descriptor(), "\xff\xff", &scan).ok());
  EXPECT_EQ(scan.frame_id, 0u);
}

TEST(WireScanTest, ScansAcrossChunkBoundaries) {
  // gRPC hands a message over as a chain of slices; a chunked stream of one
  // byte per chunk is the worst case.
  ClassifyFrame frame;
  frame.set_frame_id(123456789);
  for (int i = 0; i < 5; ++i) frame.add_faces()->set_encoded(std::string(300, 'x'));
  const std::string bytes = frame.SerializeAsString();
  google::protobuf::io::ArrayInputStream input(bytes.data(), static_cast<int>(bytes.size()),
                                               /*block_size=*/1);
  WireScan scan;
  ASSERT_TRUE(ScanMessage(ClassifyFrame::descriptor(), &input, &scan).ok());
  EXPECT_EQ(scan.faces, 5);
  EXPECT_EQ(scan.frame_id, 123456789u);
}

}  // namespace
}  // namespace fer
