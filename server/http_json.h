// The documents of the HTTP/JSON API (server/http_api.h) and the one place
// where a status becomes an HTTP status: pure functions on strings and
// messages, so that they are tested without a server.
//
// JSON library: nlohmann/json (Debian's nlohmann-json3-dev, header-only, kept
// out of this header). Request bodies are read with its SAX parser, which
// builds no document: a 64 MiB body of `[0,0,0,...]` would otherwise become
// tens of millions of nodes (about ten times its size), and the handler here
// stops at the first value that is not part of the request's schema.
// Responses are written with a json type whose numbers are float, so that
// probabilities print as the shortest text that reads back as the same float
// ("0.25", not "0.25000000372529"). The model-info document is protobuf's own
// JSON of fer.v1.ModelInfo (google::protobuf::util), so that it names exactly
// the fields the gRPC GetModelInfo has.
#ifndef FER_SERVER_HTTP_JSON_H_
#define FER_SERVER_HTTP_JSON_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fer/v1/expression.pb.h"

namespace fer {

// HTTP statuses that no status code maps to: set on a status with
// WithHttpStatus by the HTTP layer's own refusals.
inline constexpr int kHttpPayloadTooLarge = 413;
inline constexpr int kHttpUnsupportedMediaType = 415;
inline constexpr int kHttpMethodNotAllowed = 405;

// status, answered with http_status instead of its code's (HttpStatusOf).
absl::Status WithHttpStatus(absl::Status status, int http_status);

// The HTTP status of an answer with status: the one WithHttpStatus set, else
// by code: OK 200, INVALID_ARGUMENT / FAILED_PRECONDITION / OUT_OF_RANGE 400,
// UNAUTHENTICATED 401, PERMISSION_DENIED 403, NOT_FOUND 404, ALREADY_EXISTS /
// ABORTED 409, RESOURCE_EXHAUSTED 429, CANCELLED 499 (the client closed the
// request), UNIMPLEMENTED 501, UNAVAILABLE 503, DEADLINE_EXCEEDED 504, every
// other code 500.
int HttpStatusOf(const absl::Status& status);

// {"error": {"code": "INVALID_ARGUMENT", "message": "..."}}: the gRPC code
// name and the status's message, unchanged.
std::string ErrorJson(const absl::Status& status);

// A JSON classify body, {"faces": ["<base64>", ...], "ten_crop": bool,
// "attention": bool} (faces required, the rest optional), into *faces (each
// face's bytes, decoded) and *options (the fields present). INVALID_ARGUMENT,
// and nothing decoded, for a body that is not JSON (with the parser's line
// and column), a value of the wrong type, an unknown key, a face that is not
// standard base64 ("face N: ..."), or a face count CheckFaceCount refuses
// (with max_faces; faces beyond it are counted, not decoded).
absl::Status ParseClassifyJson(absl::string_view body, int max_faces,
                               google::protobuf::RepeatedPtrField<fer::v1::Image>* faces,
                               fer::v1::ClassifyOptions* options);

// One query parameter of POST /v1/classify: ten_crop and attention (true,
// false, 1 or 0) into *options, timeout_ms (a positive integer) into
// *timeout. INVALID_ARGUMENT for another key or a value that does not parse.
absl::Status ApplyClassifyParameter(absl::string_view key, absl::string_view value,
                                    fer::v1::ClassifyOptions* options, absl::Duration* timeout);

// {"predictions": [{"probabilities": [...], "label": "...", "confidence": c,
// "attention": {"height": h, "width": w, "values": [...], "center_share": s}},
// ...], "model_version": "..."}; "attention" only on predictions that have
// one.
std::string ClassifyResponseJson(
    const google::protobuf::RepeatedPtrField<fer::v1::Prediction>& predictions,
    const std::string& model_version);

// fer.v1.ModelInfo in protobuf's JSON mapping, field names as in the proto,
// every field present (64-bit integers as strings, as that mapping writes
// them).
std::string ModelInfoJson(const fer::v1::ModelInfo& info);

// The Open Inference Protocol's REST model metadata of the served model
// (name, versions, platform, input IMAGE BYTES [-1], output PROBABILITIES
// FP32 [-1, C]) and its server metadata.
std::string OipModelMetadataJson(const fer::v1::ModelInfo& info);
std::string OipServerMetadataJson(absl::string_view server_version);

}  // namespace fer

#endif  // FER_SERVER_HTTP_JSON_H_
