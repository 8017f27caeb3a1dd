// fer-server's Prometheus metrics: the contract of docs/metrics.md (names,
// labels, units), including fer_queue_capacity_faces (the queue limit, so that
// alerts can compute saturation), fer_gpu_memory_bytes and process_*. Every name, label and bucket
// bound is defined in server_metrics.cc, and nowhere else.
//
// Series that dashboards and alerts select on exist at zero from start-up, so
// that rate() and absent() behave before the first request:
//   fer_requests_total{rpc, code}   rpc in {Classify, ClassifyStream,
//                                   GetModelInfo, ModelInfer}, code in {OK,
//                                   INVALID_ARGUMENT, DEADLINE_EXCEEDED,
//                                   RESOURCE_EXHAUSTED, UNAVAILABLE}; other
//                                   codes appear when first used;
//   fer_request_duration_seconds{rpc} for each rpc;
//   fer_dropped_faces_total{reason} for queue_full and the batcher's reasons
//                                   (cancelled, deadline, failed, shutdown,
//                                   late).
//
// The three duration histograms (request, queue, inference) share bucket
// bounds that resolve 1 ms to 60 s in steps of at most x1.67 (1, 1.5, 2, 3,
// 5, 7.5 per decade), so that a quantile is read within about a third of its
// value anywhere a CPU or a GPU pod may be; queue and inference add three
// bounds below 1 ms for an idle GPU.
//
// What counts as a request: a unary call (Classify, GetModelInfo), and, for
// ClassifyStream, each frame answered (its FrameStatus code; its duration runs
// from reading the frame to handing its result to gRPC), plus each stream
// refused as a whole (too many streams, not ready, draining). Faces are
// counted as the client sees them: a ten-crop face is one face in
// fer_faces_total but ten in the batcher metrics (queue, batch size, drops).
//
// Thread-safe: every method may be called from any thread at any time.
#ifndef FER_SERVER_SERVER_METRICS_H_
#define FER_SERVER_SERVER_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/batcher.h"
#include "server/status_mapping.h"

namespace prometheus {
class Counter;
class Gauge;
class Histogram;
class Registry;
template <typename T>
class Family;
}  // namespace prometheus

namespace fer {

class MetricsHttpServer;

// The service's methods, as the `rpc` label names them.
// kModelInfer is the Open Inference Protocol's (server/oip_service.h),
// kHttpClassify the HTTP API's POST /v1/classify (server/http_api.h).
enum class Rpc {
  kClassify = 0,
  kClassifyStream = 1,
  kGetModelInfo = 2,
  kModelInfer = 3,
  kHttpClassify = 4
};
inline constexpr int kNumRpcs = 5;

// "Classify", "ClassifyStream", "GetModelInfo", "ModelInfer", "HttpClassify":
// the bare method names.
absl::string_view RpcName(Rpc rpc);

// The `reason` label of faces refused at admission because the queue was full.
inline constexpr char kQueueFullReason[] = "queue_full";

// What the constant series say about this server.
struct MetricsOptions {
  std::string model_version;  // fer_model_info{version}; "unknown" when empty
  std::string device;         // fer_model_info{device}, "cpu" or "cuda:N"
  std::string precision;      // fer_model_info{precision}
  // The batcher's options, as the service runs it: max_batch_size is the top
  // bucket of fer_batch_size, max_queue_faces is fer_queue_capacity_faces.
  BatcherOptions batching;
};

class ServerMetrics : public BatcherObserver {
 public:
  explicit ServerMetrics(const MetricsOptions& options);
  ~ServerMetrics() override;
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // Serves the metrics at http://<address>/metrics (address "host:port"; port
  // 0 picks a free one) from a thread of its own that no client can block
  // (server/metrics_http.h). Returns UNAVAILABLE, naming the address and the
  // reason, when it cannot listen there (the port is taken, say), and
  // INVALID_ARGUMENT when address is not host:port. Call at most once.
  absl::Status StartExposer(const std::string& address);
  // The port StartExposer listens on; 0 before.
  int exposer_port() const;

  // The exposition text of every metric now, as /metrics serves it: the fer_*
  // series and the standard process_* ones (CPU, memory, descriptors, start
  // time; read from /proc at this call, left out where it cannot be read).
  std::string Serialize() const;

  // One line of what was answered so far, for the log: the non-zero request
  // counts ("Classify OK=12 UNAVAILABLE=3, ClassifyStream OK=40") and the
  // unary requests in flight ("in flight 0").
  std::string RequestSummary() const;

  // A request (see above) finished with code after latency.
  void OnRequestDone(Rpc rpc, absl::StatusCode code, absl::Duration latency);
  // faces (client faces) were classified successfully.
  void AddFaces(int faces);
  // Unary Classify calls being served; open ClassifyStream streams.
  void AddInflightRequests(int delta);
  void AddActiveStreams(int delta);
  // faces (model faces) were refused at admission because the queue was full.
  void OnQueueFull(int faces);
  void SetGpuMemoryBytes(int64_t bytes);
  // The served model is now `version` (after a reload): fer_model_info's one
  // series carries it from now on. Thread-safe.
  void SetModelVersion(const std::string& version);
  // A model reload ended: fer_model_reloads_total{result="ok"|"failed"}.
  void OnModelReload(bool ok);
  // An access log line was dropped (server/access_log.h):
  // fer_access_log_dropped_total.
  void OnAccessLogDropped();

  // BatcherObserver.
  void OnBatch(const BatchStats& stats) override;
  void OnDrop(DropReason reason, int faces) override;
  void OnQueueDepth(int queued_faces) override;

 private:
  prometheus::Counter* RequestCounter(Rpc rpc, absl::StatusCode code);

  // The constructor's steps, one per group of families, in registration
  // order: requests (fer_requests_total, fer_faces_total,
  // fer_request_duration_seconds); the batcher's (queue, inference, batch
  // size, queue depth and capacity, drops); the calls open now (in-flight
  // requests, active streams); the model (fer_model_info, reloads, GPU memory)
  // and the access log's drops.
  void RegisterRequestFamilies();
  void RegisterBatcherFamilies(const BatcherOptions& batching);
  void RegisterOpenCallFamilies();
  void RegisterModelFamilies(const MetricsOptions& options);

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<MetricsHttpServer> http_;

  prometheus::Family<prometheus::Counter>* requests_family_ = nullptr;
  // Indexed [rpc][code]; null until first used. Writes happen under
  // requests_mu_; the atomic makes the lock-free fast path safe.
  std::array<std::array<std::atomic<prometheus::Counter*>, kNumStatusCodes>, kNumRpcs> requests_{};
  std::mutex requests_mu_;

  std::array<prometheus::Histogram*, kNumRpcs> request_duration_{};
  prometheus::Counter* faces_ = nullptr;
  prometheus::Histogram* queue_duration_ = nullptr;
  prometheus::Histogram* inference_duration_ = nullptr;
  prometheus::Histogram* batch_size_ = nullptr;
  prometheus::Gauge* queue_faces_ = nullptr;
  prometheus::Gauge* inflight_requests_ = nullptr;
  prometheus::Gauge* active_streams_ = nullptr;
  prometheus::Gauge* gpu_memory_bytes_ = nullptr;
  prometheus::Counter* reloads_ok_ = nullptr;
  prometheus::Counter* reloads_failed_ = nullptr;
  prometheus::Counter* access_log_dropped_ = nullptr;
  // fer_model_info: its labels but the version, and its one series, which
  // SetModelVersion replaces under model_info_mu_.
  prometheus::Family<prometheus::Gauge>* model_info_family_ = nullptr;
  std::string device_;
  std::string precision_;
  std::mutex model_info_mu_;
  prometheus::Gauge* model_info_ = nullptr;  // guarded by model_info_mu_
  // Indexed by DropReason; the last one is queue_full.
  std::array<prometheus::Counter*, 6> dropped_{};  // the batcher's reasons, then queue_full
};

}  // namespace fer

#endif  // FER_SERVER_SERVER_METRICS_H_
