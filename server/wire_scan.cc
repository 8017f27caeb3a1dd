#include "server/wire_scan.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/wire_format.h>
#include <google/protobuf/wire_format_lite.h>

#include "absl/strings/str_cat.h"

namespace fer {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::internal::WireFormat;
using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedInputStream;
using WireType = WireFormatLite::WireType;

constexpr int kFixed64Bytes = 8;
constexpr int kFixed32Bytes = 4;
constexpr int kLastWireType = WireFormatLite::WIRETYPE_FIXED32;

// Whether protobuf's parser reads wire_type into field (otherwise it keeps the
// field as an unknown field): the field's own wire type, or length-delimited
// for a packable repeated field, which is read both packed and unpacked.
bool ParsesAs(const FieldDescriptor& field, WireType wire_type) {
  if (wire_type == WireFormat::WireTypeForFieldType(field.type())) return true;
  return field.is_packable() && wire_type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
}

// One scan: a recursive walk over the fields, reading through input.
class Scanner {
 public:
  Scanner(const Descriptor* top, CodedInputStream* input, WireScan* scan)
      : top_(top),
        faces_(top->FindFieldByName(kScanFacesField)),
        frame_id_(top->FindFieldByName(kScanFrameIdField)),
        input_(input),
        scan_(scan) {}

  // Walks the fields of one message of type `type` (null: an unknown group,
  // all of whose fields are unknown) nested `depth` deep, to the end of input
  // or of the current limit (end_group == 0), or to the end-group tag of
  // field number end_group.
  absl::Status Walk(const Descriptor* type, int depth, uint32_t end_group) {
    if (depth > kMaxScanDepth) return Error(absl::StrCat("nesting deeper than ", kMaxScanDepth));
    // The last field looked up: repeated entries (the common case, and the
    // hostile one) then cost no lookup.
    uint32_t last_number = 0;
    const FieldDescriptor* last_field = nullptr;
    while (true) {
      const uint32_t tag = input_->ReadTag();
      if (tag == 0) {
        if (!input_->ConsumedEntireMessage()) return Error("a zero or malformed tag");
        if (end_group != 0) return Error(absl::StrCat("group ", end_group, " is cut short"));
        return absl::OkStatus();
      }
      const uint32_t number = WireFormatLite::GetTagFieldNumber(tag);
      const WireType wire_type = WireFormatLite::GetTagWireType(tag);
      if (number == 0) return Error("field number 0");
      if (wire_type == WireFormatLite::WIRETYPE_END_GROUP) {
        if (number == end_group) return absl::OkStatus();
        return Error(absl::StrCat("an end-group tag of field ", number, " outside its group"));
      }
      if (number != last_number) {
        last_number = number;
        last_field = type == nullptr ? nullptr : type->FindFieldByNumber(static_cast<int>(number));
      }
      if (absl::Status status = Field(last_field, depth, number, wire_type); !status.ok()) {
        return status;
      }
    }
  }

 private:
  // One field's value, after its tag; field is null when the message type
  // has no field of that number.
  absl::Status Field(const FieldDescriptor* field, int depth, uint32_t number, WireType wire_type) {
    if (field == nullptr || !ParsesAs(*field, wire_type)) {
      ++scan_->unknown_fields;
      return Skip(wire_type, number, depth);
    }
    if (depth == 0 && field == frame_id_ && wire_type == WireFormatLite::WIRETYPE_VARINT) {
      if (!input_->ReadVarint64(&scan_->frame_id)) return Error("frame_id is malformed");
      return absl::OkStatus();
    }
    if (field->type() == FieldDescriptor::TYPE_MESSAGE) {
      if (depth == 0 && field == faces_) ++scan_->faces;
      return Nested(field->message_type(), depth + 1, number);
    }
    if (field->type() == FieldDescriptor::TYPE_GROUP) {
      return Walk(field->message_type(), depth + 1, number);
    }
    return Skip(wire_type, number, depth);
  }

  // A length-delimited known message field's value, walked within its
  // length.
  absl::Status Nested(const Descriptor* type, int depth, uint32_t number) {
    int length = 0;
    if (!input_->ReadVarintSizeAsInt(&length)) {
      return Error(absl::StrCat("the length of field ", number, " is malformed"));
    }
    if (length == 0) return absl::OkStatus();  // an empty message: nothing to walk
    const CodedInputStream::Limit limit = input_->PushLimit(length);
    absl::Status status = Walk(type, depth, /*end_group=*/0);
    // Walk stops at the end of input too: a message cut short ends there.
    if (status.ok() && input_->BytesUntilLimit() != 0) {
      status = Error(absl::StrCat("field ", number, " is cut short"));
    }
    input_->PopLimit(limit);
    return status;
  }

  // Skips one value of the given wire type; an unknown group is walked, so
  // that its inner fields are counted and its nesting checked.
  absl::Status Skip(WireType wire_type, uint32_t number, int depth) {
    bool ok = true;
    switch (wire_type) {
      case WireFormatLite::WIRETYPE_VARINT: {
        uint64_t value = 0;
        ok = input_->ReadVarint64(&value);
        break;
      }
      case WireFormatLite::WIRETYPE_FIXED64:
        ok = input_->Skip(kFixed64Bytes);
        break;
      case WireFormatLite::WIRETYPE_FIXED32:
        ok = input_->Skip(kFixed32Bytes);
        break;
      case WireFormatLite::WIRETYPE_LENGTH_DELIMITED: {
        int length = 0;
        ok = input_->ReadVarintSizeAsInt(&length) && input_->Skip(length);
        break;
      }
      case WireFormatLite::WIRETYPE_START_GROUP:
        return Walk(nullptr, depth + 1, number);
      default:
        return Error(absl::StrCat("wire type ", static_cast<int>(wire_type), " (field ", number,
                                  ") does not exist; the last is ", kLastWireType));
    }
    if (!ok) return Error(absl::StrCat("field ", number, " is malformed or cut short"));
    return absl::OkStatus();
  }

  absl::Status Error(absl::string_view reason) const {
    return absl::InvalidArgumentError(absl::StrCat("malformed ", top_->full_name(), " at byte ",
                                                   input_->CurrentPosition(), ": ", reason));
  }

  const Descriptor* const top_;
  const FieldDescriptor* const faces_;
  const FieldDescriptor* const frame_id_;
  CodedInputStream* const input_;
  WireScan* const scan_;
};

}  // namespace

absl::Status ScanMessage(const Descriptor* type, google::protobuf::io::ZeroCopyInputStream* input,
                         WireScan* scan) {
  *scan = WireScan();
  CodedInputStream coded(input);
  Scanner scanner(type, &coded, scan);
  return scanner.Walk(type, /*depth=*/0, /*end_group=*/0);
}

absl::Status ScanMessage(const Descriptor* type, absl::string_view bytes, WireScan* scan) {
  google::protobuf::io::ArrayInputStream input(bytes.data(), static_cast<int>(bytes.size()));
  return ScanMessage(type, &input, scan);
}

absl::Status CheckFaceCount(int64_t faces, int max_faces, bool allow_empty) {
  if (faces == 0 && !allow_empty) {
    return absl::InvalidArgumentError("the request has no faces; send 1 or more");
  }
  if (faces > max_faces) {
    return absl::InvalidArgumentError(
        absl::StrCat(faces, " faces in one request; the limit is ", max_faces));
  }
  return absl::OkStatus();
}

absl::Status CheckScanLimits(const WireScan& scan, int max_faces, bool allow_empty) {
  if (absl::Status count = CheckFaceCount(scan.faces, max_faces, allow_empty); !count.ok()) {
    return count;
  }
  if (scan.unknown_fields > kMaxUnknownFields) {
    return absl::InvalidArgumentError(
        absl::StrCat("the message carries ", scan.unknown_fields,
                     " fields this server does not know; the limit is ", kMaxUnknownFields));
  }
  return absl::OkStatus();
}

}  // namespace fer
