// The HTTP/JSON API of fer-server (docs/http.md): a third front end on the
// ExpressionService, beside ExpressionClassifier and the Open Inference
// Protocol on the gRPC port, for clients that speak plain HTTP (curl,
// browsers' fetch, load balancers' probes).
//
//   POST /v1/classify         one image as the body (Content-Type image/jpeg,
//                             image/png, image/webp, image/bmp,
//                             application/octet-stream, or none: the format
//                             is read from the bytes, as gRPC's is), or JSON
//                             {"faces": ["<base64>", ...], "ten_crop": b,
//                             "attention": b}; query ten_crop, attention,
//                             timeout_ms
//   GET  /v1/model            fer.v1.ModelInfo as JSON (GetModelInfo's)
//   GET  /v2/health/live      200; 503 while the model is stalled (work
//                             queued, no batch finishing for the liveness
//                             timeout, as gRPC health for "" says)
//   GET  /v2/health/ready     200 while serving (ExpressionService::Serving,
//                             and live), else 503
//   GET  /v2, /v2/models/lla-net, /v2/models/lla-net/ready
//                             the Open Inference Protocol's REST server
//                             metadata, model metadata and model readiness
// Errors are {"error": {"code": "INVALID_ARGUMENT", "message": "..."}} with
// gRPC's code and message; server/http_json.h maps codes to HTTP statuses.
//
// Classify has no pipeline of its own: its faces go through
// ExpressionService::ClassifyFaces, so admission, limits, preprocessing, the
// batcher, metrics and drain are Classify's, and so are the codes and
// messages. Each POST /v1/classify is counted in fer_requests_total with
// rpc="HttpClassify", every one answered exactly once. What this layer adds:
//   - bodies larger than max_body_bytes are refused with 413 before they are
//     read when Content-Length says so (the client, if it sent `Expect:
//     100-continue`, never sends them); a chunked body is counted as it
//     arrives, dropped from the limit on, and answered 413 at its end (or the
//     connection is closed once it passes twice the limit);
//   - 415 for another Content-Type, 404 for another path, 405 (with Allow)
//     for another method, 400 for a bad query parameter or JSON body;
//   - timeout_ms sets the call's deadline from the request's arrival, as a
//     gRPC client's deadline does (none by default, as in gRPC).
//
// HTTP library: GNU libmicrohttpd (Debian's libmicrohttpd12). It runs every
// connection on an epoll loop (MHD_USE_AUTO on Linux) of a few threads, not a
// thread per connection as civetweb does (the project dropped civetweb for
// /metrics because two idle connections held both its workers); it has a
// connection limit and an idle timeout; and MHD_suspend_connection /
// MHD_resume_connection let a request wait for ClassifyFaces' asynchronous
// answer without holding a thread: the loop goes on serving other
// connections, and the batcher's thread that answers resumes the connection.
// A suspended connection is not watched by libmicrohttpd, so a client that
// disconnects while its faces are being classified is only noticed when the
// answer is written (its faces are classified anyway).
//
// Drain: nothing of its own. From ExpressionService::Drain on, classify is
// answered 503 (UNAVAILABLE) by ClassifyFaces and ready says 503; Stop, which
// FerServer calls once the service has drained, stops accepting, lets the
// answers being written finish for at most stop_grace, then closes.
#ifndef FER_SERVER_HTTP_API_H_
#define FER_SERVER_HTTP_API_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/server_metrics.h"
#include "server/service.h"

namespace fer {

struct HttpApiOptions {
  // Listen address, host:port (host a name, an IPv4 address or a bracketed
  // IPv6 one, empty for every interface); port 0 picks a free one.
  std::string address = "0.0.0.0:8080";
  // Largest request body; FerServer sets the gRPC port's receive limit.
  int64_t max_body_bytes = int64_t{64} << 20;
  // Threads of the event loop (each with its own epoll set). They read
  // bodies, parse JSON and write answers; classification runs elsewhere.
  int threads = 2;
  // Connections open at once, at most (libmicrohttpd's connection limit).
  int max_connections = 1024;
  // A connection with no request in progress (or a request that stops
  // sending) is closed after this long. A request waiting for its answer is
  // never timed out (its deadline is timeout_ms).
  absl::Duration idle_timeout = absl::Seconds(30);
  // /v2/health/live says 503 while ExpressionService::Stalled(this); zero:
  // always 200.
  absl::Duration liveness_timeout = absl::Seconds(60);
  // Stop: how long answers being written may take.
  absl::Duration stop_grace = absl::Seconds(2);
};

class HttpApi {
 public:
  // Listens on options.address and serves service (and its metrics, which
  // must both outlive this) from threads of its own. INVALID_ARGUMENT for
  // options out of range or an address that does not parse; UNAVAILABLE,
  // naming the address and the system's reason, when it cannot listen there.
  static absl::StatusOr<std::unique_ptr<HttpApi>> Start(const HttpApiOptions& options,
                                                        ExpressionService* service,
                                                        ServerMetrics* metrics);

  // Stop().
  ~HttpApi();
  HttpApi(const HttpApi&) = delete;
  HttpApi& operator=(const HttpApi&) = delete;

  // Stops accepting connections, waits until every classify request handed
  // to the service has its answer (the service answers all of them once it
  // has drained), gives the answers being written stop_grace, then closes
  // every connection. Idempotent.
  void Stop();

  // The port it listens on.
  int port() const;

 private:
  class Server;
  explicit HttpApi(std::unique_ptr<Server> server);

  std::unique_ptr<Server> server_;
};

}  // namespace fer

#endif  // FER_SERVER_HTTP_API_H_
