// A cheap look at the wire bytes of a Classify request or stream frame
// (fer.v1.ClassifyRequest, fer.v1.ClassifyFrame) before protobuf parses them.
//
// Why: parsing allocates one object per repeated entry and per unknown field,
// so a 64 MiB message of 2-byte empty faces (or of 2-byte unknown fields)
// parses into gigabytes. The scan reads the bytes once, allocates nothing,
// and says how many faces and unknown fields the parse would make (and the
// frame id it would read), so that the caller can refuse such a message
// before any parse, and then parses only messages whose parsed size is
// bounded by their wire size plus a per-face constant.
//
// The scan walks the message by its descriptor: known fields of message type
// are walked into, every other field is skipped. It accepts every message
// protobuf's parser accepts, and counts what that parser would make: a field
// whose number is known but whose wire type is not the field's is an unknown
// field to the parser, and so it is here. It may accept some bytes the parser
// refuses (the parse then fails; the caller treats both the same way).
//
// Pure: protobuf and Abseil only, no gRPC, no model.
#ifndef FER_SERVER_WIRE_SCAN_H_
#define FER_SERVER_WIRE_SCAN_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace google {
namespace protobuf {
class Descriptor;
namespace io {
class ZeroCopyInputStream;
}  // namespace io
}  // namespace protobuf
}  // namespace google

namespace fer {

// The top-level fields the scan looks at, by name: the repeated message field
// it counts and the uint64 field whose value it reports (absent from a
// ClassifyRequest).
inline constexpr char kScanFacesField[] = "faces";
inline constexpr char kScanFrameIdField[] = "frame_id";

// Most unknown fields (at any depth) a request or frame may carry. Room for a
// newer client's few extra fields per face; a flood of them is refused.
inline constexpr int64_t kMaxUnknownFields = 1024;

// Nesting (messages and groups) the scan follows: at least protobuf's default
// recursion limit (100), so that whatever the parser accepts is scanned.
inline constexpr int kMaxScanDepth = 128;

// What a scan found, also as far as it got when the bytes are malformed.
struct WireScan {
  // Entries of the top-level faces field (each a face the parser would add).
  int64_t faces = 0;
  // Fields the parser would keep as unknown fields, at any depth (inside an
  // unknown group each inner field counts too).
  int64_t unknown_fields = 0;
  // The top-level frame_id the parser would set: the last one read; 0 when
  // none was read (absent, or after the point where the bytes went wrong).
  uint64_t frame_id = 0;
};

// Scans one serialized message of type `type` (ClassifyRequest::descriptor()
// or ClassifyFrame::descriptor()) to the end of input, filling *scan. Returns
// INVALID_ARGUMENT "malformed TYPE at byte N: REASON" when the bytes are not
// a valid serialization (a bad or zero tag, field number 0, wire type 6 or 7,
// a field or nested message cut short or overrunning its length, an end-group
// tag without its group, nesting deeper than kMaxScanDepth).
absl::Status ScanMessage(const google::protobuf::Descriptor* type,
                         google::protobuf::io::ZeroCopyInputStream* input, WireScan* scan);
absl::Status ScanMessage(const google::protobuf::Descriptor* type, absl::string_view bytes,
                         WireScan* scan);

// INVALID_ARGUMENT when faces is more than max_faces ("N faces in one
// request; the limit is M"), or zero unless allow_empty ("the request has no
// faces; send 1 or more").
absl::Status CheckFaceCount(int64_t faces, int max_faces, bool allow_empty);

// CheckFaceCount on scan.faces, then INVALID_ARGUMENT when scan carries more
// than kMaxUnknownFields unknown fields.
absl::Status CheckScanLimits(const WireScan& scan, int max_faces, bool allow_empty);

}  // namespace fer

#endif  // FER_SERVER_WIRE_SCAN_H_
