#include "server/status_mapping.h"

#include <string>

namespace fer {
namespace {

// Index = code value; the names are those of grpc/status.h and google.rpc.Code.
constexpr absl::string_view kCodeNames[kNumStatusCodes] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

}  // namespace

int RpcCode(absl::StatusCode code) {
  const int value = static_cast<int>(code);
  return value >= 0 && value < kNumStatusCodes ? value
                                               : static_cast<int>(absl::StatusCode::kUnknown);
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(RpcCode(status.code())),
                      std::string(status.message()));
}

absl::string_view StatusCodeName(absl::StatusCode code) { return kCodeNames[RpcCode(code)]; }

}  // namespace fer
