// The whole of a running fer-server but its flags and signals: the gRPC
// server with the ExpressionClassifier service, the Open Inference Protocol
// (inference.GRPCInferenceService, server/oip_service.h), standard health checking and
// reflection, the HTTP/JSON API (server/http_api.h) and the Prometheus endpoint. server_main.cc
// drives it from flags and SIGTERM; tests drive it in-process.
//
// Life cycle and what health says (for service "",
// "fer.v1.ExpressionClassifier" and "inference.GRPCInferenceService"):
//   Create    ports open; NOT_SERVING; Classify and ClassifyStream answer
//             UNAVAILABLE (GetModelInfo answers).
//   Start     runs the warm-up batch, then SERVING; from then on a watchdog
//             reports NOT_SERVING while the batcher is stalled (work queued,
//             no batch finishing for liveness_timeout), SERVING again after.
//   Shutdown  NOT_SERVING; new calls UNAVAILABLE (HTTP: 503); accepted work
//             runs for at most the drain timeout (ExpressionService::Drain);
//             then the HTTP API and the gRPC server stop.
#ifndef FER_SERVER_FER_SERVER_H_
#define FER_SERVER_FER_SERVER_H_

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "model/core/engine.h"
#include "server/access_log.h"
#include "server/http_api.h"
#include "server/oip_service.h"
#include "server/server_metrics.h"
#include "server/service.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace fer {

// The gRPC service name health reports on, besides "".
inline constexpr char kHealthServiceName[] = "fer.v1.ExpressionClassifier";

// Transport security of the gRPC port. All empty: plaintext. The files are
// read once, by FerServer::Create.
struct TlsOptions {
  // PEM certificate chain of the server and its private key: both or neither.
  // With them the port speaks TLS only, and plaintext clients cannot connect.
  std::string cert_file;
  std::string key_file;
  // PEM bundle of the CAs that sign client certificates. Set: mutual TLS, and
  // a client without a certificate that chains to one of them is refused in
  // the handshake. Needs cert_file and key_file.
  std::string client_ca_file;

  bool enabled() const { return !cert_file.empty() || !key_file.empty(); }
};

// The drain timeout fer-server uses unless told otherwise (--drain_timeout):
// how long accepted work may still run once Shutdown begins. Also the default
// max_connection_age_grace, which fer-server sets to its drain timeout.
inline constexpr absl::Duration kDefaultDrainTimeout = absl::Seconds(10);

// Everything FerServer::Create needs besides the model: the listen addresses,
// transport security, connection ageing, liveness and the service's options.
struct FerServerOptions {
  // gRPC listen address, host:port; port 0 picks a free one (see port()).
  std::string address = "0.0.0.0:50051";
  TlsOptions tls;
  // When positive, each client connection is closed (GOAWAY, after its calls
  // end, waiting at most max_connection_age_grace) once it is this old, so
  // that clients behind a load balancer reconnect and spread over replicas.
  // Zero: connections live as long as the client keeps them.
  absl::Duration max_connection_age = absl::ZeroDuration();
  absl::Duration max_connection_age_grace = kDefaultDrainTimeout;
  // Prometheus listen address, host:port, served at /metrics; port 0 picks a
  // free one; empty: no endpoint (the metrics are still kept).
  std::string metrics_address = "0.0.0.0:9464";
  // HTTP/JSON API listen address, host:port; port 0 picks a free one (see
  // http_port()); empty: no HTTP API. Its other options but the address are
  // HttpApiOptions' defaults, with the gRPC port's receive limit as its body
  // limit and liveness_timeout below.
  std::string http_address = "0.0.0.0:8080";
  // Liveness: once serving, health for "" turns NOT_SERVING (and back) while
  // the model makes no progress with work waiting for this long (see
  // ExpressionService::Stalled); the readiness service follows it. Zero: off.
  absl::Duration liveness_timeout = absl::Seconds(60);
  // The access log (server/access_log.h); off unless access_log.path is set.
  // FerServer opens it and hands it to the service's front ends
  // (service.access_log is set by Create, whatever it was).
  AccessLogOptions access_log;
  ServiceOptions service;
};

class FerServer {
 public:
  // Builds the service on engine (which must outlive the server), opens the
  // access log, the metrics endpoint, the HTTP port, then the gRPC port.
  // Errors: the access log's (AccessLog::ValidateOptions), the service's option
  // errors
  // and inconsistent TLS options (INVALID_ARGUMENT), a TLS file that cannot be
  // read or holds no PEM of the expected kind (NOT_FOUND, INVALID_ARGUMENT,
  // naming the file), a certificate outside its validity (FAILED_PRECONDITION),
  // UNAVAILABLE naming an address that cannot be listened on.
  static absl::StatusOr<std::unique_ptr<FerServer>> Create(const FerServerOptions& options,
                                                           Engine* engine);
  // What Create would refuse of options besides the service's own options: a
  // negative connection age, access log options (a sample outside (0, 1], a
  // file that cannot be opened for append: it is created), and TLS options
  // that are inconsistent or name files that are not readable regular files
  // or hold no PEM of the expected kind, or a server certificate chain that
  // is expired or not yet valid (FAILED_PRECONDITION, with the date). Lets a
  // binary refuse bad flags before it spends time loading a model. *warning
  // (may be null) is set to a sentence when a certificate of the chain
  // expires within kCertificateExpiryWarning, else cleared.
  static absl::Status ValidateOptions(const FerServerOptions& options,
                                      std::string* warning = nullptr);

  // Shutdown(absl::ZeroDuration()) unless Shutdown ran.
  ~FerServer();

  // Warm-up, then SERVING. Returns the warm-up's error, staying NOT_SERVING.
  absl::Status Start();

  // Serves loaded (a new model, or the error loading it failed with) instead
  // of the model served now, without refusing any call
  // (ExpressionService::Reload: warmed up beside the old model, calls in
  // flight finish on the old one; on any error the old model keeps serving
  // and the error is returned). Counted in fer_model_reloads_total. Fails
  // with FAILED_PRECONDITION once Shutdown has begun.
  absl::Status ReloadModel(absl::StatusOr<std::unique_ptr<Engine>> loaded) {
    return service_->Reload(std::move(loaded));
  }
  // The version of the model served now (ExpressionService::model_version).
  std::string model_version() const { return service_->model_version(); }

  // Opens the access log's file again (after log rotation renamed it);
  // AccessLog::Reopen. OK when there is no access log.
  absl::Status ReopenAccessLog() {
    return access_log_ != nullptr ? access_log_->Reopen() : absl::OkStatus();
  }
  // The access log, for front ends added beside the gRPC ones (the HTTP API);
  // null when off.
  AccessLog* access_log() { return access_log_.get(); }

  // NOT_SERVING, drain for at most drain_timeout, stop. Returns once every
  // accepted call is answered and the gRPC server has stopped. Idempotent.
  void Shutdown(absl::Duration drain_timeout);

  int port() const { return port_; }
  int metrics_port() const { return metrics_->exposer_port(); }
  // The HTTP API's port; 0 when it is off.
  int http_port() const { return http_ != nullptr ? http_->port() : 0; }
  ServerMetrics* metrics() { return metrics_.get(); }
  const ServerMetrics* metrics() const { return metrics_.get(); }

 private:
  FerServer() = default;
  void SetHealth(bool serving);
  // The metrics endpoint and the HTTP API, as options ask.
  absl::Status OpenHttpEndpoints(const FerServerOptions& options);
  // Checks for a stalled batcher until Shutdown; on its own thread.
  void WatchLiveness(absl::Duration timeout);

  std::unique_ptr<ServerMetrics> metrics_;
  // Between the two: it counts its drops in metrics_, and the service's calls
  // log to it until the service is gone.
  std::unique_ptr<AccessLog> access_log_;
  std::unique_ptr<ExpressionService> service_;
  std::unique_ptr<OipService> oip_service_;  // on service_
  std::unique_ptr<HttpApi> http_;            // on service_
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
  absl::Duration liveness_timeout_;

  std::mutex watchdog_mu_;
  std::condition_variable watchdog_cv_;
  bool watchdog_stop_ = false;  // guarded by watchdog_mu_
  std::thread watchdog_;
};

}  // namespace fer

#endif  // FER_SERVER_FER_SERVER_H_
