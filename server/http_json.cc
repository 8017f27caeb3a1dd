#include "server/http_json.h"

#include <google/protobuf/util/json_util.h>

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/status_mapping.h"
#include "server/wire_scan.h"

namespace fer {
namespace {

using google::protobuf::RepeatedPtrField;

// Documents written with float numbers (see the header) and keys in the
// order they are set.
using OutJson = nlohmann::basic_json<nlohmann::ordered_map, std::vector, std::string, bool,
                                     std::int64_t, std::uint64_t, float>;

// Where WithHttpStatus keeps its HTTP status on an absl::Status.
constexpr char kHttpStatusPayload[] = "type.fer/http_status";

// The Open Inference Protocol's names of the model and its tensors, as
// server/oip_service.h gives them to gRPC clients (http_json_test holds the
// two to the same values); repeated here to keep gRPC out of this library.
constexpr char kModelName[] = "lla-net";
constexpr char kPlatform[] = "pytorch_libtorch";
constexpr char kInputName[] = "IMAGE";
constexpr char kOutputName[] = "PROBABILITIES";

std::string Dump(const OutJson& json) {
  return json.dump(-1, ' ', false, OutJson::error_handler_t::replace);
}

// nlohmann's SAX events for a classify body: accepts exactly the schema of
// ParseClassifyJson and stops (returns false, with status()) at the first
// event that leaves it. Faces are decoded as they are read, up to max_faces;
// those beyond are only counted.
class ClassifySax {
 public:
  using Json = nlohmann::json;

  ClassifySax(int max_faces, RepeatedPtrField<fer::v1::Image>* faces,
              fer::v1::ClassifyOptions* options)
      : max_faces_(max_faces), faces_(faces), options_(options) {}

  bool null() { return Wrong("null"); }
  bool boolean(bool value) {
    if (expect_ == Expect::kTenCrop) {
      options_->set_ten_crop(value);
    } else if (expect_ == Expect::kAttention) {
      options_->set_attention(value);
    } else {
      return Wrong(value ? "true" : "false");
    }
    expect_ = Expect::kKey;
    return true;
  }
  bool number_integer(Json::number_integer_t) { return Wrong("a number"); }
  bool number_unsigned(Json::number_unsigned_t) { return Wrong("a number"); }
  bool number_float(Json::number_float_t, const std::string&) { return Wrong("a number"); }
  bool binary(Json::binary_t&) { return Wrong("binary"); }
  bool string(std::string& value) {
    if (expect_ != Expect::kFace) return Wrong("a string");
    if (++count_ > max_faces_) return true;
    if (!absl::Base64Unescape(value, faces_->Add()->mutable_encoded())) {
      return Fail(absl::StrCat("face ", count_ - 1, ": not standard base64 (RFC 4648, section 4)"));
    }
    return true;
  }
  bool start_object(std::size_t) {
    if (expect_ != Expect::kTop) return Wrong("an object");
    expect_ = Expect::kKey;
    return true;
  }
  bool key(std::string& key) {
    if (key == "faces" && !seen_faces_) {
      seen_faces_ = true;
      expect_ = Expect::kFaces;
    } else if (key == "ten_crop") {
      expect_ = Expect::kTenCrop;
    } else if (key == "attention") {
      expect_ = Expect::kAttention;
    } else {
      return Fail(key == "faces"
                      ? "\"faces\" appears twice"
                      : absl::StrCat("unknown key \"", key,
                                     "\"; the body takes faces, ten_crop and attention"));
    }
    return true;
  }
  // Only the top object and the faces array can be open: any other is refused
  // at its start.
  bool end_object() { return true; }
  bool start_array(std::size_t) {
    if (expect_ != Expect::kFaces) return Wrong("an array");
    expect_ = Expect::kFace;
    return true;
  }
  bool end_array() {
    expect_ = Expect::kKey;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& error) {
    // what() is "[json.exception.parse_error.101] parse error at line 1, ...".
    absl::string_view what = error.what();
    if (const size_t end = what.find("] "); end != absl::string_view::npos) {
      what.remove_prefix(end + 2);
    }
    return Fail(absl::StrCat("the body is not JSON: ", what));
  }

  // Once the parse has ended: OK when the body was a request.
  absl::Status Finish() {
    if (!status_.ok()) return status_;
    return CheckFaceCount(count_, max_faces_, /*allow_empty=*/false);
  }

 private:
  enum class Expect { kTop, kKey, kFaces, kFace, kTenCrop, kAttention };

  bool Fail(std::string message) {
    status_ = absl::InvalidArgumentError(std::move(message));
    return false;
  }
  // A value of the wrong kind where expect_ says what belongs.
  bool Wrong(absl::string_view what) {
    switch (expect_) {
      case Expect::kTop:
        return Fail(absl::StrCat("the body must be a JSON object {\"faces\": [...]}, not ", what));
      case Expect::kFaces:
        return Fail(absl::StrCat("\"faces\" must be an array of base64 strings, not ", what));
      case Expect::kFace:
        return Fail(absl::StrCat("\"faces\" must hold base64 strings, not ", what));
      case Expect::kTenCrop:
        return Fail(absl::StrCat("\"ten_crop\" must be true or false, not ", what));
      case Expect::kAttention:
        return Fail(absl::StrCat("\"attention\" must be true or false, not ", what));
      case Expect::kKey:
        break;
    }
    return Fail(absl::StrCat("unexpected ", what));
  }

  const int max_faces_;
  RepeatedPtrField<fer::v1::Image>* const faces_;
  fer::v1::ClassifyOptions* const options_;
  Expect expect_ = Expect::kTop;
  bool seen_faces_ = false;
  int64_t count_ = 0;
  absl::Status status_;
};

// "true", "false", "1", "0" (any case).
std::optional<bool> ParseBool(absl::string_view value) {
  const std::string lower = absl::AsciiStrToLower(value);
  if (lower == "true" || lower == "1") return true;
  if (lower == "false" || lower == "0") return false;
  return std::nullopt;
}

OutJson AttentionJson(const fer::v1::AttentionMap& map) {
  OutJson json = OutJson::object();
  json["height"] = map.height();
  json["width"] = map.width();
  json["values"] = OutJson(std::vector<float>(map.values().begin(), map.values().end()));
  json["center_share"] = map.center_share();
  return json;
}

OutJson TensorJson(absl::string_view name, absl::string_view datatype,
                   const std::vector<int64_t>& shape) {
  OutJson json = OutJson::object();
  json["name"] = name;
  json["datatype"] = datatype;
  json["shape"] = shape;
  return json;
}

}  // namespace

absl::Status WithHttpStatus(absl::Status status, int http_status) {
  status.SetPayload(kHttpStatusPayload, absl::Cord(absl::StrCat(http_status)));
  return status;
}

int HttpStatusOf(const absl::Status& status) {
  if (const auto payload = status.GetPayload(kHttpStatusPayload); payload.has_value()) {
    int http_status = 0;
    if (absl::SimpleAtoi(std::string(*payload), &http_status)) return http_status;
  }
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

std::string ErrorJson(const absl::Status& status) {
  OutJson error = OutJson::object();
  error["code"] = std::string(StatusCodeName(status.code()));
  error["message"] = std::string(status.message());
  OutJson json = OutJson::object();
  json["error"] = std::move(error);
  return Dump(json);
}

absl::Status ParseClassifyJson(absl::string_view body, int max_faces,
                               RepeatedPtrField<fer::v1::Image>* faces,
                               fer::v1::ClassifyOptions* options) {
  RepeatedPtrField<fer::v1::Image> read;
  fer::v1::ClassifyOptions read_options = *options;
  ClassifySax sax(max_faces, &read, &read_options);
  nlohmann::json::sax_parse(body.begin(), body.end(), &sax);
  if (absl::Status status = sax.Finish(); !status.ok()) return status;
  faces->Swap(&read);
  *options = read_options;
  return absl::OkStatus();
}

absl::Status ApplyClassifyParameter(absl::string_view key, absl::string_view value,
                                    fer::v1::ClassifyOptions* options, absl::Duration* timeout) {
  if (key == "ten_crop" || key == "attention") {
    const std::optional<bool> flag = ParseBool(value);
    if (!flag.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("query parameter ", key, " must be true or false, not \"", value, "\""));
    }
    key == "ten_crop" ? options->set_ten_crop(*flag) : options->set_attention(*flag);
    return absl::OkStatus();
  }
  if (key == "timeout_ms") {
    int64_t milliseconds = 0;
    if (!absl::SimpleAtoi(value, &milliseconds) || milliseconds <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "query parameter timeout_ms must be a positive integer, not \"", value, "\""));
    }
    *timeout = absl::Milliseconds(milliseconds);
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown query parameter \"", key,
                                                 "\"; /v1/classify takes ten_crop, attention and "
                                                 "timeout_ms"));
}

std::string ClassifyResponseJson(const RepeatedPtrField<fer::v1::Prediction>& predictions,
                                 const std::string& model_version) {
  OutJson list = OutJson::array();
  for (const fer::v1::Prediction& p : predictions) {
    OutJson prediction = OutJson::object();
    prediction["probabilities"] =
        OutJson(std::vector<float>(p.probabilities().begin(), p.probabilities().end()));
    prediction["label"] = p.top_label_name();
    prediction["confidence"] = p.confidence();
    if (p.has_attention()) prediction["attention"] = AttentionJson(p.attention());
    list.push_back(std::move(prediction));
  }
  OutJson json = OutJson::object();
  json["predictions"] = std::move(list);
  json["model_version"] = model_version;
  return Dump(json);
}

std::string ModelInfoJson(const fer::v1::ModelInfo& info) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  // Cannot fail: the message is a generated one with no Any fields.
  (void)google::protobuf::util::MessageToJsonString(info, &json, options);
  return json;
}

std::string OipModelMetadataJson(const fer::v1::ModelInfo& info) {
  OutJson json = OutJson::object();
  json["name"] = kModelName;
  json["versions"] = OutJson::array();
  if (!info.version().empty()) json["versions"].push_back(info.version());
  json["platform"] = kPlatform;
  json["inputs"] = OutJson::array({TensorJson(kInputName, "BYTES", {-1})});
  json["outputs"] = OutJson::array(
      {TensorJson(kOutputName, "FP32", {-1, static_cast<int64_t>(info.labels_size())})});
  return Dump(json);
}

std::string OipServerMetadataJson(absl::string_view server_version) {
  OutJson json = OutJson::object();
  json["name"] = "fer-server";
  json["version"] = server_version;
  json["extensions"] = OutJson::array();
  return Dump(json);
}

}  // namespace fer
