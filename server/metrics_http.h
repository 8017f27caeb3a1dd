// The HTTP endpoint that serves /metrics: one thread, one poll() loop over
// non-blocking sockets, so that no client can hold the endpoint by holding a
// connection. It replaces prometheus-cpp's Exposer (civetweb), which gives each
// connection a worker thread until the connection ends: two idle TCP
// connections held its two workers and blocked every scrape for 30 s.
//
// Guarantees:
//   - every connection gets request_timeout from accept to the end of its
//     request headers, and at most max_request_bytes of them; a connection
//     that is idle, slow (a header byte a second) or too large is answered or
//     closed then, and never delays any other connection;
//   - at most max_connections are open; a new one closes the oldest, so a
//     flood of connections cannot lock a scraper out either;
//   - GET and HEAD of /metrics (any query string) answer 200 with the body
//     function's text as the Prometheus text format 0.0.4; other paths 404,
//     other methods 405, malformed requests 400, oversized headers 431;
//   - every response carries Content-Length and `Connection: close`; the
//     server then closes its side and discards what the client still sends,
//     so that the client reads the whole response rather than a reset.
// The body function runs on the server's thread, one request at a time.
//
// No gRPC, LibTorch or prometheus-cpp here: plain POSIX sockets and Abseil.
#ifndef FER_SERVER_METRICS_HTTP_H_
#define FER_SERVER_METRICS_HTTP_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace fer {

struct MetricsHttpOptions {
  // Open connections at most; a new one beyond it closes the oldest.
  int max_connections = 128;
  // Request line and headers, in bytes; more is answered 431.
  size_t max_request_bytes = 8192;
  // From accept to the end of the request headers.
  absl::Duration request_timeout = absl::Seconds(5);
  // From the end of the request to the last byte of the response handed to
  // the kernel, and then for the client to close its side.
  absl::Duration response_timeout = absl::Seconds(10);
};

class MetricsHttpServer {
 public:
  using BodyFunction = std::function<std::string()>;

  // Listens on address ("host:port", host a name, an IPv4 address or a
  // bracketed IPv6 one, empty for every interface; port 0 picks a free one)
  // and serves body() at /metrics from a thread of its own. INVALID_ARGUMENT
  // for an address that does not parse; UNAVAILABLE, naming the address and
  // the system's reason (e.g. "Address already in use"), when it cannot
  // listen there.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& address, BodyFunction body, const MetricsHttpOptions& options = {});

  // Stops the thread and closes every socket; a response being written is
  // cut off.
  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // The port it listens on.
  int port() const { return port_; }

 private:
  class Loop;
  MetricsHttpServer(std::unique_ptr<Loop> loop, int port);

  std::unique_ptr<Loop> loop_;
  int port_;
  std::thread thread_;
};

}  // namespace fer

#endif  // FER_SERVER_METRICS_HTTP_H_
