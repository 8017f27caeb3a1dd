#include "server/fer_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.pb.h"
#include "model/common/user_file.h"
#include "server/certificate_validity.h"

namespace fer {
namespace {

// After the drain, how long the gRPC server waits for the last responses to be
// written (and for health watchers to go) before it cancels what is left.
constexpr absl::Duration kShutdownGrace = absl::Seconds(2);
// How often the liveness watchdog looks at the batcher.
constexpr absl::Duration kLivenessCheckPeriod = absl::Seconds(1);
// gRPC's receive limit: room for max_faces_per_request of the largest images,
// but never below gRPC's default nor above a cap, so that one request cannot
// make the server hold more than that at once.
constexpr int64_t kMinMessageBytes = int64_t{4} << 20;
constexpr int64_t kMaxMessageBytes = int64_t{64} << 20;
// HTTP/2 receive window of each call: what a client may send ahead of the
// service's reads.
constexpr int kStreamWindowBytes = 256 << 10;
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

// PEM block markers the TLS files must hold; gRPC itself would only notice a
// wrong file at the first handshake, long after start-up said all was well.
constexpr char kPemCertificate[] = "-----BEGIN CERTIFICATE-----";
constexpr char kPemPrivateKeyEnd[] = "PRIVATE KEY-----";

// The contents of a PEM file named by flag, which must contain marker. The
// file must be a readable regular file (ReadRegularFile's errors, after
// "--flag: ").
absl::StatusOr<std::string> ReadPem(const std::string& path, absl::string_view flag,
                                    absl::string_view marker, absl::string_view kind) {
  absl::StatusOr<std::string> pem = ReadRegularFile(path);
  if (!pem.ok()) {
    return absl::Status(pem.status().code(),
                        absl::StrCat("--", flag, ": ", pem.status().message()));
  }
  if (!absl::StrContains(*pem, marker)) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", path, " holds no PEM ", kind));
  }
  return pem;
}

// Refuses a server certificate chain outside its validity period (clients
// would refuse it in every handshake); sets *warning when it ends soon.
absl::Status CheckServerCertificate(const std::string& path, const std::string& pem,
                                    std::string* warning) {
  absl::StatusOr<std::vector<CertificateValidity>> chain = ReadCertificateValidity(pem);
  absl::Status status = chain.status();
  if (status.ok()) {
    status = CheckCertificateValidity(*chain, absl::Now(), kCertificateExpiryWarning, warning);
  }
  if (!status.ok()) {
    return absl::Status(status.code(), absl::StrCat("--tls_cert: ", path, ": ", status.message()));
  }
  if (warning != nullptr && !warning->empty()) {
    *warning = absl::StrCat("--tls_cert: ", path, ": ", *warning);
  }
  return absl::OkStatus();
}

// Credentials for tls; *warning (may be null) is set when the certificate
// expires soon.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeCredentials(const TlsOptions& tls,
                                                                         std::string* warning) {
  if (!tls.enabled()) {
    if (!tls.client_ca_file.empty()) {
      return absl::InvalidArgumentError(
          "--tls_client_ca needs --tls_cert and --tls_key (mutual TLS is TLS first)");
    }
    return grpc::InsecureServerCredentials();
  }
  if (tls.cert_file.empty() || tls.key_file.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together");
  }
  absl::StatusOr<std::string> cert =
      ReadPem(tls.cert_file, "tls_cert", kPemCertificate, "certificate");
  if (!cert.ok()) return cert.status();
  if (absl::Status valid = CheckServerCertificate(tls.cert_file, *cert, warning); !valid.ok()) {
    return valid;
  }
  absl::StatusOr<std::string> key =
      ReadPem(tls.key_file, "tls_key", kPemPrivateKeyEnd, "private key");
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  ssl.pem_key_cert_pairs.push_back({*key, *cert});
  if (!tls.client_ca_file.empty()) {
    absl::StatusOr<std::string> ca =
        ReadPem(tls.client_ca_file, "tls_client_ca", kPemCertificate, "certificate");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

int ClampedMilliseconds(absl::Duration duration) {
  return static_cast<int>(
      std::min<int64_t>(absl::ToInt64Milliseconds(duration), std::numeric_limits<int>::max()));
}

absl::Status CheckConnectionAge(const FerServerOptions& options) {
  if (options.max_connection_age < absl::ZeroDuration() ||
      options.max_connection_age_grace < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--max_connection_age must not be negative");
  }
  if (options.liveness_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--liveness_timeout must not be negative");
  }
  return absl::OkStatus();
}

// The access log of options, counting its drops in metrics; null when off.
absl::StatusOr<std::unique_ptr<AccessLog>> OpenAccessLog(const AccessLogOptions& options,
                                                         ServerMetrics* metrics) {
  if (!options.enabled()) return std::unique_ptr<AccessLog>();
  AccessLogOptions counted = options;
  counted.on_dropped = [metrics] { metrics->OnAccessLogDropped(); };
  return AccessLog::Open(counted);
}

}  // namespace

absl::Status FerServer::ValidateOptions(const FerServerOptions& options, std::string* warning) {
  if (warning != nullptr) warning->clear();
  if (absl::Status valid = CheckConnectionAge(options); !valid.ok()) return valid;
  if (absl::Status valid = AccessLog::ValidateOptions(options.access_log); !valid.ok()) {
    return valid;
  }
  return MakeCredentials(options.tls, warning).status();
}

absl::StatusOr<std::unique_ptr<FerServer>> FerServer::Create(const FerServerOptions& options,
                                                             Engine* engine) {
  if (engine == nullptr) return absl::InvalidArgumentError("FerServer needs an engine");
  if (absl::Status valid = CheckConnectionAge(options); !valid.ok()) return valid;
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeCredentials(options.tls, /*warning=*/nullptr);
  if (!credentials.ok()) return credentials.status();
  std::unique_ptr<FerServer> server(new FerServer());
  server->liveness_timeout_ = options.liveness_timeout;

  MetricsOptions metrics_options;
  metrics_options.model_version = engine->meta().version;
  metrics_options.device = engine->device();
  metrics_options.precision = engine->precision();
  metrics_options.batching = options.service.batching;
  server->metrics_ = std::make_unique<ServerMetrics>(metrics_options);

  absl::StatusOr<std::unique_ptr<AccessLog>> log =
      OpenAccessLog(options.access_log, server->metrics_.get());
  if (!log.ok()) return log.status();
  server->access_log_ = *std::move(log);
  ServiceOptions service_options = options.service;
  service_options.access_log = server->access_log_.get();
  auto service = ExpressionService::Create(service_options, engine, server->metrics_.get());
  if (!service.ok()) return service.status();
  server->service_ = std::move(*service);
  server->oip_service_ =
      std::make_unique<OipService>(server->service_.get(), engine, server->metrics_.get(),
                                   options.service.max_faces_per_request);

  if (absl::Status status = server->OpenHttpEndpoints(options); !status.ok()) return status;

  // Process-wide switches; they must be set before the builder is made.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  // gRPC's default health service has no protobuf descriptors; this use links
  // fer_health_proto's, so reflection can describe grpc.health.v1.Health.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.address, *credentials, &server->port_);
  if (options.max_connection_age > absl::ZeroDuration()) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                               ClampedMilliseconds(options.max_connection_age));
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                               ClampedMilliseconds(options.max_connection_age_grace));
  }
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, kStreamWindowBytes);
  builder.RegisterService(server->service_.get());
  builder.RegisterService(server->oip_service_.get());
  builder.SetMaxReceiveMessageSize(MaxMessageBytes(options.service));
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for gRPC on ", options.address,
                     options.tls.enabled()
                         ? " (port taken, address invalid, or --tls_key not the key of --tls_cert)"
                         : " (port taken or address invalid)"));
  }
  // The default health service starts out SERVING for "".
  server->SetHealth(false);
  return server;
}

absl::Status FerServer::OpenHttpEndpoints(const FerServerOptions& options) {
  if (!options.metrics_address.empty()) {
    if (absl::Status status = metrics_->StartExposer(options.metrics_address); !status.ok()) {
      return status;
    }
  }
  if (options.http_address.empty()) return absl::OkStatus();
  HttpApiOptions http;
  http.address = options.http_address;
  // One limit for a request, whichever port it comes on.
  http.max_body_bytes = MaxMessageBytes(options.service);
  http.liveness_timeout = options.liveness_timeout;
  absl::StatusOr<std::unique_ptr<HttpApi>> api =
      HttpApi::Start(http, service_.get(), metrics_.get());
  if (!api.ok()) return api.status();
  http_ = *std::move(api);
  return absl::OkStatus();
}

FerServer::~FerServer() { Shutdown(absl::ZeroDuration()); }

absl::Status FerServer::Start() {
  if (absl::Status status = service_->Start(); !status.ok()) return status;
  SetHealth(true);
  if (liveness_timeout_ > absl::ZeroDuration()) {
    watchdog_ = std::thread(&FerServer::WatchLiveness, this, liveness_timeout_);
  }
  return absl::OkStatus();
}

void FerServer::WatchLiveness(absl::Duration timeout) {
  bool healthy = true;
  std::unique_lock<std::mutex> lock(watchdog_mu_);
  while (!watchdog_cv_.wait_for(lock, absl::ToChronoMilliseconds(kLivenessCheckPeriod),
                                [this] { return watchdog_stop_; })) {
    const bool stalled = service_->Stalled(timeout);
    if (stalled == healthy) {
      healthy = !stalled;
      SetHealth(healthy);
      std::fprintf(stderr, "fer-server: %s\n",
                   stalled ? "the model has made no progress with work queued; health NOT_SERVING"
                           : "the model is making progress again; health SERVING");
    }
  }
}

void FerServer::Shutdown(absl::Duration drain_timeout) {
  if (shut_down_) return;
  shut_down_ = true;
  if (watchdog_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(watchdog_mu_);
      watchdog_stop_ = true;
    }
    watchdog_cv_.notify_all();
    watchdog_.join();
  }
  if (server_ != nullptr) SetHealth(false);
  if (service_ != nullptr) service_->Drain(drain_timeout);
  if (http_ != nullptr) http_->Stop();
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
  health->SetServingStatus(kOipServiceName, serving);
}

}  // namespace fer
