// The Open Inference Protocol (KServe v2) over gRPC, inference.
// GRPCInferenceService (proto/inference/v2/grpc_predict_v2.proto), on gRPC's
// callback API: a second front end on the ExpressionService, for clients
// and platforms that speak that protocol (Triton's and KServe's clients,
// KServe's InferenceService). It serves one model, kModelName, as:
//   input  IMAGE          BYTES  [N]     N encoded images (JPEG, PNG, WebP,
//                                        BMP), in contents.bytes_contents or
//                                        in raw_input_contents (each element
//                                        a 4-byte little-endian length, then
//                                        the bytes)
//   output PROBABILITIES  FP32   [N, C]  each face's C class probabilities,
//                                        in the model's label order
//   output ATTENTION      FP32   [N, H, W]  each face's attention map
//                                        (fer.v1.AttentionMap: values,
//                                        alignment; H x W is 7 x 7 for 112)
// and the optional request parameter `ten_crop` (bool), ClassifyOptions'.
// Outputs: those the request lists in `outputs`, in that order; a request
// that lists none gets PROBABILITIES alone (not every output, as the protocol
// suggests), since ATTENTION is computed only when asked for: listing it is
// ClassifyOptions.attention. ModelMetadata lists ATTENTION only when the
// model (the one the server started with) has attention modules.
// Outputs come in raw_output_contents (little-endian FP32, row-major, one
// entry per output) when the request sent raw_input_contents, else in
// contents.fp32_contents: a client gets them the way it sent its images.
//
// ModelInfer has no pipeline of its own: its faces go through
// ExpressionService::ClassifyFaces, so admission, limits, preprocessing, the
// batcher, metrics and drain are Classify's, and so are its status codes and
// messages. What this layer adds are the protocol's own errors, all
// INVALID_ARGUMENT (an input other than one IMAGE of BYTES and shape [N], a
// length prefix running past its bytes, more elements than N or fewer, an
// unknown or repeated output, a ten_crop that is not bool), NOT_FOUND for a model or
// version it does not serve, and more than the face limit refused before the
// images are copied. Each ModelInfer is counted in fer_requests_total with
// rpc="ModelInfer". The typed request is parsed by gRPC before these checks;
// the server's receive limit bounds it.
//
// Readiness: ServerLive is always true; ServerReady and ModelReady follow
// ExpressionService::Serving (false before Start and from Drain on).
#ifndef FER_SERVER_OIP_SERVICE_H_
#define FER_SERVER_OIP_SERVICE_H_

#include <string>

#include "inference/v2/grpc_predict_v2.grpc.pb.h"
#include "model/core/engine.h"
#include "server/server_metrics.h"
#include "server/service.h"

namespace fer {

// The service's full name, which health also reports on (as on "").
inline constexpr char kOipServiceName[] = "inference.GRPCInferenceService";
// The one model's name, its tensors and the request parameter it reads.
inline constexpr char kOipModelName[] = "lla-net";
inline constexpr char kOipInputName[] = "IMAGE";
inline constexpr char kOipOutputName[] = "PROBABILITIES";
inline constexpr char kOipAttentionOutputName[] = "ATTENTION";
inline constexpr char kOipTenCropParameter[] = "ten_crop";

class OipService final : public inference::GRPCInferenceService::CallbackService {
 public:
  // Serves service's model; service, engine (the one service started with:
  // reloads keep its number of classes, and versions are asked of service)
  // and metrics must outlive this. max_faces_per_request is the service's limit
  // (ServiceOptions), checked here before a request's images are copied.
  OipService(ExpressionService* service, const Engine* engine, ServerMetrics* metrics,
             int max_faces_per_request);

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const inference::ServerLiveRequest* request,
                                       inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const inference::ServerReadyRequest* request,
                                        inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const inference::ServerMetadataRequest* request,
                                           inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override;

 private:
  class InferCall;

  // NOT_FOUND unless name is kOipModelName and version is empty or the
  // model's version.
  absl::Status CheckModel(const std::string& name, const std::string& version) const;

  ExpressionService* const service_;
  const Engine* const engine_;
  ServerMetrics* const metrics_;
  const int max_faces_per_request_;
};

}  // namespace fer

#endif  // FER_SERVER_OIP_SERVICE_H_
