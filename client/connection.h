// A connection to fer-server as the common flags describe it (--target,
// --deadline_ms, --tls*), and the one place where a failed call's grpc::Status
// becomes the absl::Status, and so the one line, a user sees.
//
// Channels are plaintext unless a TLS flag is given. Calls fail fast: a
// server that cannot be reached is reported at once ("cannot reach
// localhost:50051: ...") rather than waited for.
#ifndef FER_CLIENT_CONNECTION_H_
#define FER_CLIENT_CONNECTION_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/face_result.h"
#include "fer/v1/expression.grpc.pb.h"

namespace fer::client {

struct ConnectionOptions {
  std::string target;
  absl::Duration deadline = absl::Seconds(30);
  bool tls = false;      // also on when any file below is set
  std::string tls_ca;    // PEM roots; empty: the system's
  std::string tls_cert;  // PEM chain and key for mutual TLS; both or neither
  std::string tls_key;
  // Let gRPC retry calls refused with RESOURCE_EXHAUSTED (the server's queue
  // is full, "retry with backoff" says the API) with exponential backoff.
  // Off for load generation, which must see every refusal.
  bool retry_when_busy = true;
};

// The options the common flags give, with retry_when_busy as passed.
ConnectionOptions ConnectionOptionsFromFlags(bool retry_when_busy);

class Connection {
 public:
  // Opens a channel (lazily: nothing is sent until the first call).
  // INVALID_ARGUMENT or NOT_FOUND for an empty target, a TLS file that cannot
  // be read, or a certificate without its key.
  static absl::StatusOr<Connection> Open(const ConnectionOptions& options);

  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  const std::string& target() const { return options_.target; }
  absl::Duration deadline() const { return options_.deadline; }

  // Sets the per-call deadline on a fresh context.
  void Prepare(grpc::ClientContext* context) const;

  // What went wrong with a call, as one line: "cannot reach TARGET: ..." when
  // no connection could be made, "no answer within N ms (--deadline_ms)" for
  // a deadline, else "<what>: CODE: message". The code is kept.
  absl::Status Failure(const grpc::Status& status, const std::string& what) const;

  // GetModelInfo: labels, input size and the server's limits. Every command
  // that classifies calls it first, which also proves the server reachable.
  absl::StatusOr<fer::v1::ModelInfo> FetchModelInfo() const;

 private:
  Connection(ConnectionOptions options, std::shared_ptr<grpc::Channel> channel)
      : options_(std::move(options)), channel_(std::move(channel)) {}

  ConnectionOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
};

// Copies a Prediction into the client's plain Scores.
Scores ScoresFromPrediction(const fer::v1::Prediction& prediction);

// Copies a Prediction's attention map (empty when it has none) and places its
// cells for a model of input_size, asked with or without ten_crop.
AttentionGrid GridFromPrediction(const fer::v1::Prediction& prediction, int input_size,
                                 bool ten_crop);

}  // namespace fer::client

#endif  // FER_CLIENT_CONNECTION_H_
