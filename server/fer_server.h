// The whole of a running fer-server but its flags and signals: the gRPC
// server with the ExpressionClassifier service, standard health checking and
// reflection, and the Prometheus endpoint. server_main.cc drives it from flags
// and SIGTERM; tests drive it in-process.
//
// Life cycle and what health says (for service "" and
// "fer.v1.ExpressionClassifier"):
//   Create    ports open; NOT_SERVING; Classify and ClassifyStream answer
//             UNAVAILABLE (GetModelInfo answers).
//   Start     runs the warm-up batch, then SERVING.
//   Shutdown  NOT_SERVING; new calls UNAVAILABLE; accepted work runs for at
//             most the drain timeout (ExpressionService::Drain); then the gRPC
//             server stops.
#ifndef FER_SERVER_FER_SERVER_H_
#define FER_SERVER_FER_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "model/engine.h"
#include "server/server_metrics.h"
#include "server/service.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace fer {

// The gRPC service name health reports on, besides "".
inline constexpr char kHealthServiceName[] = "fer.v1.ExpressionClassifier";

struct ServerOptions {
  // gRPC listen address, host:port; port 0 picks a free one (see port()).
  std::string address = "0.0.0.0:50051";
  // Prometheus listen address, host:port, served at /metrics; port 0 picks a
  // free one; empty: no endpoint (the metrics are still kept).
  std::string metrics_address = "0.0.0.0:9464";
  ServiceOptions service;
};

class FerServer {
 public:
  // Builds the service on engine (which must outlive the server), opens the
  // metrics endpoint, then the gRPC port. Errors: the service's option errors
  // (INVALID_ARGUMENT), UNAVAILABLE naming an address that cannot be listened
  // on.
  static absl::StatusOr<std::unique_ptr<FerServer>> Create(const ServerOptions& options,
                                                           Engine* engine);
  // Shutdown(absl::ZeroDuration()) unless Shutdown ran.
  ~FerServer();

  // Warm-up, then SERVING. Returns the warm-up's error, staying NOT_SERVING.
  absl::Status Start();

  // NOT_SERVING, drain for at most drain_timeout, stop. Returns once every
  // accepted call is answered and the gRPC server has stopped. Idempotent.
  void Shutdown(absl::Duration drain_timeout);

  int port() const { return port_; }
  int metrics_port() const { return metrics_->exposer_port(); }
  ServerMetrics* metrics() { return metrics_.get(); }
  const ServerMetrics* metrics() const { return metrics_.get(); }

 private:
  FerServer() = default;
  void SetHealth(bool serving);

  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<ExpressionService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace fer

#endif  // FER_SERVER_FER_SERVER_H_
