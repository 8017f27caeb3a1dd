#include "server/oip_service.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/access_log.h"
#include "server/status_mapping.h"

#ifndef FER_SERVER_VERSION
#define FER_SERVER_VERSION "unknown"
#endif

namespace fer {
namespace {

using google::protobuf::RepeatedPtrField;
using inference::InferParameter;
using inference::ModelInferRequest;
using inference::ModelInferResponse;

constexpr char kServerName[] = "fer-server";
// Triton's name for a TorchScript model, which the served model is.
constexpr char kPlatform[] = "pytorch_libtorch";
constexpr char kBytesType[] = "BYTES";
constexpr char kFp32Type[] = "FP32";
// The length prefix of each BYTES element in raw contents.
constexpr size_t kLengthPrefixBytes = 4;

absl::Time DeadlineOf(const grpc::CallbackServerContext& context) {
  const std::chrono::system_clock::time_point deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// The IMAGE input's element count N from its metadata: one input, named
// IMAGE, of BYTES, shape [N] with N at most max_faces.
absl::Status ReadInputMetadata(const ModelInferRequest& request, int max_faces, int* count) {
  if (request.inputs_size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat("the model takes one input, ", kOipInputName,
                                                   "; the request has ", request.inputs_size()));
  }
  if (request.inputs(0).name() != kOipInputName) {
    return absl::InvalidArgumentError(absl::StrCat("the model takes one input, ", kOipInputName,
                                                   ", not \"", request.inputs(0).name(), "\""));
  }
  const ModelInferRequest::InferInputTensor& input = request.inputs(0);
  if (input.datatype() != kBytesType) {
    return absl::InvalidArgumentError(
        absl::StrCat(kOipInputName, " is ", kBytesType, ", not \"", input.datatype(), "\""));
  }
  if (input.shape_size() != 1 || input.shape(0) < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(kOipInputName, " has shape [N] (N images), not rank ", input.shape_size()));
  }
  if (input.shape(0) > max_faces) {
    return absl::InvalidArgumentError(
        absl::StrCat(input.shape(0), " faces in one request; the limit is ", max_faces));
  }
  *count = static_cast<int>(input.shape(0));
  return absl::OkStatus();
}

// Splits raw (elements of a 4-byte little-endian length, then the bytes) into
// count encoded images appended to *faces.
absl::Status SplitRawBytes(const std::string& raw, int count,
                           RepeatedPtrField<fer::v1::Image>* faces) {
  size_t at = 0;
  for (int i = 0; i < count; ++i) {
    if (raw.size() - at < kLengthPrefixBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("raw_input_contents of ", kOipInputName, " ends at byte ", raw.size(),
                       " before the length of element ", i, " (shape says ", count, " elements)"));
    }
    uint32_t length = 0;
    for (size_t b = 0; b < kLengthPrefixBytes; ++b) {
      length |= static_cast<uint32_t>(static_cast<unsigned char>(raw[at + b])) << (8 * b);
    }
    at += kLengthPrefixBytes;
    if (raw.size() - at < length) {
      return absl::InvalidArgumentError(
          absl::StrCat("raw_input_contents of ", kOipInputName, ": element ", i, " says ", length,
                       " bytes but only ", raw.size() - at, " remain"));
    }
    faces->Add()->set_encoded(raw.substr(at, length));
    at += length;
  }
  if (at != raw.size()) {
    return absl::InvalidArgumentError(absl::StrCat("raw_input_contents of ", kOipInputName,
                                                   " holds ", raw.size() - at, " bytes after its ",
                                                   count, " elements (shape [", count, "])"));
  }
  return absl::OkStatus();
}

// The request's images into *faces, from raw_input_contents or from
// contents.bytes_contents; *raw says which.
absl::Status ReadImages(const ModelInferRequest& request, int count,
                        RepeatedPtrField<fer::v1::Image>* faces, bool* raw) {
  const inference::InferTensorContents& contents = request.inputs(0).contents();
  *raw = request.raw_input_contents_size() > 0;
  if (*raw) {
    if (request.raw_input_contents_size() != 1 || contents.ByteSizeLong() > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("raw_input_contents must hold one entry (", kOipInputName,
                       "'s) and then the input may have no contents; it holds ",
                       request.raw_input_contents_size()));
    }
    return SplitRawBytes(request.raw_input_contents(0), count, faces);
  }
  if (contents.bytes_contents_size() != count) {
    return absl::InvalidArgumentError(absl::StrCat(kOipInputName, " has shape [", count, "] but ",
                                                   contents.bytes_contents_size(),
                                                   " elements in contents.bytes_contents"));
  }
  for (const std::string& image : contents.bytes_contents()) faces->Add()->set_encoded(image);
  return absl::OkStatus();
}

// The request's parameters and requested outputs: ten_crop (bool) into
// *options; the outputs asked for, each PROBABILITIES or ATTENTION and at most
// once, into *outputs in request order (PROBABILITIES alone when none is), and
// ATTENTION among them sets options->attention. Other parameters are ignored,
// as the protocol lets a server do.
absl::Status ReadOptions(const ModelInferRequest& request, fer::v1::ClassifyOptions* options,
                         std::vector<std::string>* outputs) {
  for (const ModelInferRequest::InferRequestedOutputTensor& output : request.outputs()) {
    if (output.name() != kOipOutputName && output.name() != kOipAttentionOutputName) {
      return absl::InvalidArgumentError(absl::StrCat("the model's outputs are ", kOipOutputName,
                                                     " and ", kOipAttentionOutputName, ", not \"",
                                                     output.name(), "\""));
    }
    if (std::find(outputs->begin(), outputs->end(), output.name()) != outputs->end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the output ", output.name(), " is asked for twice"));
    }
    outputs->push_back(output.name());
  }
  if (outputs->empty()) outputs->push_back(kOipOutputName);
  options->set_attention(std::find(outputs->begin(), outputs->end(), kOipAttentionOutputName) !=
                         outputs->end());
  auto ten_crop = request.parameters().find(kOipTenCropParameter);
  if (ten_crop == request.parameters().end()) return absl::OkStatus();
  if (ten_crop->second.parameter_choice_case() != InferParameter::kBoolParam) {
    return absl::InvalidArgumentError(
        absl::StrCat("the parameter ", kOipTenCropParameter, " is a bool_param"));
  }
  options->set_ten_crop(ten_crop->second.bool_param());
  return absl::OkStatus();
}

// Appends value's 4 bytes, little-endian, to *out.
void AppendLittleEndian(float value, std::string* out) {
  uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof(bits));
  for (int b = 0; b < 4; ++b) out->push_back(static_cast<char>((bits >> (8 * b)) & 0xFF));
}

// One output of predictions, raw or in fp32_contents: PROBABILITIES, shape
// [N, C], or ATTENTION, shape [N, H, W] (the service sends every face a map
// of the same shape when asked).
void FillOutput(const RepeatedPtrField<fer::v1::Prediction>& predictions, const std::string& name,
                int num_classes, bool raw, ModelInferResponse* response) {
  const bool attention = name == kOipAttentionOutputName;
  ModelInferResponse::InferOutputTensor* output = response->add_outputs();
  output->set_name(name);
  output->set_datatype(kFp32Type);
  output->add_shape(predictions.size());
  if (attention) {
    const fer::v1::AttentionMap& first = predictions.empty()
                                             ? fer::v1::AttentionMap::default_instance()
                                             : predictions[0].attention();
    output->add_shape(first.height());
    output->add_shape(first.width());
  } else {
    output->add_shape(num_classes);
  }
  auto values_of = [attention](const fer::v1::Prediction& p) -> const auto& {
    return attention ? p.attention().values() : p.probabilities();
  };
  if (raw) {
    std::string* bytes = response->add_raw_output_contents();
    for (const fer::v1::Prediction& p : predictions) {
      for (float value : values_of(p)) AppendLittleEndian(value, bytes);
    }
    return;
  }
  auto* values = output->mutable_contents()->mutable_fp32_contents();
  for (const fer::v1::Prediction& p : predictions)
    values->Add(values_of(p).begin(), values_of(p).end());
}

}  // namespace

// ---------------------------------------------------------------------------
// ModelInfer: one reactor per call, deleted by gRPC's OnDone. The constructor
// refuses the call or hands its faces to the service; the service's answer
// finishes it.
class OipService::InferCall final : public grpc::ServerUnaryReactor {
 public:
  InferCall(OipService* oip, grpc::CallbackServerContext* context, const ModelInferRequest* request,
            ModelInferResponse* response)
      : oip_(oip), request_(request), response_(response), start_(absl::Now()) {
    AccessLog* log = oip_->service_->access_log();
    logged_ = log != nullptr && log->Sample();
    if (logged_) peer_ = context->peer();
    fer::v1::ClassifyOptions options;
    absl::Status status = oip_->CheckModel(request->model_name(), request->model_version());
    int count = 0;
    if (status.ok()) status = ReadInputMetadata(*request, oip_->max_faces_per_request_, &count);
    if (status.ok()) status = ReadOptions(*request, &options, &outputs_);
    if (status.ok()) status = ReadImages(*request, count, &faces_, &raw_);
    if (!status.ok()) {
      Answer(status, {}, "");
      return;
    }
    oip_->service_->ClassifyFaces(
        &faces_, options, DeadlineOf(*context), &cancelled_,
        [this](absl::Status done, RepeatedPtrField<fer::v1::Prediction> predictions,
               std::string version) { Answer(std::move(done), predictions, version); },
        &timing_);
  }

  void OnCancel() override { cancelled_.store(true, std::memory_order_relaxed); }
  void OnDone() override { delete this; }

 private:
  // version: of the model that produced the predictions (it changes on a
  // reload, so it is not the server's current one).
  void Answer(const absl::Status& status, const RepeatedPtrField<fer::v1::Prediction>& predictions,
              const std::string& version) {
    if (status.ok()) {
      response_->set_model_name(kOipModelName);
      response_->set_model_version(version);
      response_->set_id(request_->id());
      for (const std::string& name : outputs_) {
        FillOutput(predictions, name, oip_->engine_->num_classes(), raw_, response_);
      }
    }
    oip_->metrics_->OnRequestDone(Rpc::kModelInfer, status.code(), absl::Now() - start_);
    if (logged_) Log(status, version);
    Finish(ToGrpcStatus(status));  // OnDone may delete this from now on.
  }

  void Log(const absl::Status& status, const std::string& version) {
    AccessLogEntry entry;
    entry.method = kAccessLogModelInfer;
    entry.peer = std::move(peer_);
    entry.code = status.code();
    entry.message = status.message();
    entry.faces = faces_.size();
    entry.queue = timing_.queue_wait;
    entry.model = timing_.compute;
    entry.total = absl::Now() - start_;
    entry.model_version = version;
    oip_->service_->access_log()->Record(entry);
  }

  OipService* const oip_;
  const ModelInferRequest* const request_;
  ModelInferResponse* const response_;
  const absl::Time start_;
  std::atomic<bool> cancelled_{false};
  bool raw_ = false;
  std::vector<std::string> outputs_;        // the outputs to answer with, in order
  RepeatedPtrField<fer::v1::Image> faces_;  // copied from the request; ClassifyFaces reads them
  JobTiming timing_;                        // ClassifyFaces fills it in
  bool logged_ = false;                     // sampled for the access log
  std::string peer_;                        // when logged_
};

// ---------------------------------------------------------------------------

OipService::OipService(ExpressionService* service, const Engine* engine, ServerMetrics* metrics,
                       int max_faces_per_request)
    : service_(service),
      engine_(engine),
      metrics_(metrics),
      max_faces_per_request_(max_faces_per_request) {}

absl::Status OipService::CheckModel(const std::string& name, const std::string& version) const {
  if (name != kOipModelName) {
    return absl::NotFoundError(
        absl::StrCat("no model \"", name, "\"; this server serves \"", kOipModelName, "\""));
  }
  const std::string served = service_->model_version();
  if (!version.empty() && version != served) {
    return absl::NotFoundError(absl::StrCat("no version \"", version, "\" of ", kOipModelName,
                                            "; the server has \"", served, "\""));
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* OipService::ServerLive(grpc::CallbackServerContext* context,
                                                 const inference::ServerLiveRequest* /*request*/,
                                                 inference::ServerLiveResponse* response) {
  response->set_live(true);
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* OipService::ServerReady(grpc::CallbackServerContext* context,
                                                  const inference::ServerReadyRequest* /*request*/,
                                                  inference::ServerReadyResponse* response) {
  response->set_ready(service_->Serving());
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* OipService::ModelReady(grpc::CallbackServerContext* context,
                                                 const inference::ModelReadyRequest* request,
                                                 inference::ModelReadyResponse* response) {
  absl::Status status = CheckModel(request->name(), request->version());
  if (status.ok()) response->set_ready(service_->Serving());
  return FinishNow(context, status);
}

grpc::ServerUnaryReactor* OipService::ServerMetadata(
    grpc::CallbackServerContext* context, const inference::ServerMetadataRequest* /*request*/,
    inference::ServerMetadataResponse* response) {
  response->set_name(kServerName);
  response->set_version(FER_SERVER_VERSION);
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* OipService::ModelMetadata(grpc::CallbackServerContext* context,
                                                    const inference::ModelMetadataRequest* request,
                                                    inference::ModelMetadataResponse* response) {
  absl::Status status = CheckModel(request->name(), request->version());
  if (!status.ok()) return FinishNow(context, status);
  response->set_name(kOipModelName);
  if (const std::string served = service_->model_version(); !served.empty()) {
    response->add_versions(served);
  }
  response->set_platform(kPlatform);
  inference::ModelMetadataResponse::TensorMetadata* input = response->add_inputs();
  input->set_name(kOipInputName);
  input->set_datatype(kBytesType);
  input->add_shape(-1);
  inference::ModelMetadataResponse::TensorMetadata* output = response->add_outputs();
  output->set_name(kOipOutputName);
  output->set_datatype(kFp32Type);
  output->add_shape(-1);
  output->add_shape(engine_->num_classes());
  if (engine_->attention_size() > 0) {
    inference::ModelMetadataResponse::TensorMetadata* maps = response->add_outputs();
    maps->set_name(kOipAttentionOutputName);
    maps->set_datatype(kFp32Type);
    maps->add_shape(-1);
    maps->add_shape(engine_->attention_height());
    maps->add_shape(engine_->attention_width());
  }
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* OipService::ModelInfer(grpc::CallbackServerContext* context,
                                                 const ModelInferRequest* request,
                                                 ModelInferResponse* response) {
  return new InferCall(this, context, request, response);
}

}  // namespace fer
