// The one place where absl::Status, the currency of every component behind the
// service, becomes a gRPC status on the wire, and where status codes get the
// names that metrics and logs use. Both code sets share numbering and names
// (google.rpc.Code), so the translation keeps code and message unchanged; it
// exists so that a future change of policy (hiding internal messages, say)
// happens here and nowhere else.
#ifndef FER_SERVER_STATUS_MAPPING_H_
#define FER_SERVER_STATUS_MAPPING_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace fer {

// The gRPC status for status: same code, same message. Codes outside the gRPC
// range (none of Abseil's today) become UNKNOWN.
grpc::Status ToGrpcStatus(const absl::Status& status);

// The google.rpc.Code value of code (as FrameStatus.code carries it, and an
// index in [0, kNumStatusCodes)); UNKNOWN's for codes outside the gRPC range.
int RpcCode(absl::StatusCode code);

// "OK", "INVALID_ARGUMENT", ...: the gRPC code name, the value of the `code`
// metric label. "UNKNOWN" for codes outside the gRPC range.
absl::string_view StatusCodeName(absl::StatusCode code);

// Number of gRPC status codes (OK = 0 .. UNAUTHENTICATED = 16).
inline constexpr int kNumStatusCodes = 17;

}  // namespace fer

#endif  // FER_SERVER_STATUS_MAPPING_H_
