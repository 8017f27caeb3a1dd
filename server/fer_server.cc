#include "server/fer_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"

namespace fer {
namespace {

// After the drain, how long the gRPC server waits for the last responses to be
// written (and for health watchers to go) before it cancels what is left.
constexpr absl::Duration kShutdownGrace = absl::Seconds(2);
// gRPC's receive limit: room for max_faces_per_request of the largest images,
// but never below gRPC's default nor above a cap, so that one request cannot
// make the server hold more than that at once.
constexpr int64_t kMinMessageBytes = int64_t{4} << 20;
constexpr int64_t kMaxMessageBytes = int64_t{64} << 20;
// Per-image allowance for the protobuf framing around an image's bytes.
constexpr int64_t kImageOverheadBytes = 64;
// A raw pixel has at most 4 channels (RGBA).
constexpr int64_t kMaxRawChannels = 4;

int MaxMessageBytes(const ServiceOptions& options) {
  const int64_t faces = std::max(1, options.max_faces_per_request);
  const int64_t image = std::max(static_cast<int64_t>(options.preprocess.max_encoded_bytes),
                                 options.preprocess.max_pixels * kMaxRawChannels);
  const int64_t wanted = std::min(kMaxMessageBytes / faces, image + kImageOverheadBytes) * faces;
  return static_cast<int>(std::clamp(wanted, kMinMessageBytes, kMaxMessageBytes));
}

}  // namespace

absl::StatusOr<std::unique_ptr<FerServer>> FerServer::Create(const ServerOptions& options,
                                                             Engine* engine) {
  if (engine == nullptr) return absl::InvalidArgumentError("FerServer needs an engine");
  std::unique_ptr<FerServer> server(new FerServer());

  MetricsOptions metrics_options;
  metrics_options.model_version = engine->meta().version;
  metrics_options.device = engine->device();
  metrics_options.precision = engine->precision();
  metrics_options.max_batch_size = options.service.batching.max_batch_size;
  metrics_options.max_queue_faces = options.service.batching.max_queue_faces;
  server->metrics_ = std::make_unique<ServerMetrics>(metrics_options);

  auto service = ExpressionService::Create(options.service, engine, server->metrics_.get());
  if (!service.ok()) return service.status();
  server->service_ = std::move(*service);

  if (!options.metrics_address.empty()) {
    if (absl::Status status = server->metrics_->StartExposer(options.metrics_address);
        !status.ok()) {
      return status;
    }
  }

  // Process-wide switches; they must be set before the builder is made.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.address, grpc::InsecureServerCredentials(), &server->port_);
  builder.RegisterService(server->service_.get());
  builder.SetMaxReceiveMessageSize(MaxMessageBytes(options.service));
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen for gRPC on ", options.address,
                                               " (port taken or address invalid)"));
  }
  // The default health service starts out SERVING for "".
  server->SetHealth(false);
  return server;
}

FerServer::~FerServer() { Shutdown(absl::ZeroDuration()); }

absl::Status FerServer::Start() {
  if (absl::Status status = service_->Start(); !status.ok()) return status;
  SetHealth(true);
  return absl::OkStatus();
}

void FerServer::Shutdown(absl::Duration drain_timeout) {
  if (shut_down_) return;
  shut_down_ = true;
  if (server_ != nullptr) SetHealth(false);
  if (service_ != nullptr) service_->Drain(drain_timeout);
  if (server_ != nullptr) {
    server_->Shutdown(absl::ToChronoTime(absl::Now() + kShutdownGrace));
    server_->Wait();
  }
}

void FerServer::SetHealth(bool serving) {
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus("", serving);
  health->SetServingStatus(kHealthServiceName, serving);
}

}  // namespace fer
