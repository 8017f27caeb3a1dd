#include "server/server_metrics.h"

#include <prometheus/client_metric.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <iterator>
#include <sstream>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "server/metrics_http.h"
#include "server/process_metrics.h"

namespace fer {
namespace {

// Bucket bounds, in seconds. A face on a GPU takes about a millisecond, a full
// batch on a small CPU several seconds, and a call may wait up to its
// deadline: so the bounds run from 1 ms to 60 s, 1-1.5-2-3-5-7.5 per decade
// (no step wider than x1.67). The alert thresholds in deploy/prometheus/rules
// (0.05, 0.1, 0.5 and 1 s) are bounds, so the alerts compare against an exact
// bucket edge rather than a value interpolated across a wide bucket.
const std::vector<double> kDurationBuckets = {
    0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03,
    0.05,  0.075,  0.1,   0.15,  0.2,   0.3,    0.5,  0.75,  1,    1.5,
    2,     3,      5,     7.5,   10,    15,     20,   30,    45,   60};

// Queue wait and inference: the same, with three bounds below 1 ms (an idle
// queue's wait, a small batch on a GPU).
std::vector<double> SubMillisecondAndDurationBuckets() {
  std::vector<double> bounds = {0.0001, 0.00025, 0.0005};
  bounds.insert(bounds.end(), kDurationBuckets.begin(), kDurationBuckets.end());
  return bounds;
}

// Batch size, in faces: powers of two below max_batch_size, then
// max_batch_size itself, so that "full batches" is exactly the top bucket.
std::vector<double> BatchSizeBuckets(int max_batch_size) {
  std::vector<double> bounds;
  for (int size = 1; size < max_batch_size; size *= 2) bounds.push_back(size);
  bounds.push_back(max_batch_size);
  return bounds;
}

// Codes whose series exist from start-up (see the header).
constexpr absl::StatusCode kPrecreatedCodes[] = {
    absl::StatusCode::kOk, absl::StatusCode::kInvalidArgument, absl::StatusCode::kDeadlineExceeded,
    absl::StatusCode::kResourceExhausted, absl::StatusCode::kUnavailable};

constexpr DropReason kDropReasons[] = {DropReason::kCancelled, DropReason::kDeadline,
                                       DropReason::kFailed, DropReason::kShutdown,
                                       DropReason::kLate};
constexpr size_t kQueueFullIndex = std::size(kDropReasons);

prometheus::MetricFamily OneValueFamily(const char* name, const char* help,
                                        prometheus::MetricType type, double value) {
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  return {name, help, type, {metric}};
}

// The standard process_* metrics, with the names and meanings of the official
// client libraries, from /proc now; nothing where /proc cannot be read.
void AppendProcessFamilies(std::vector<prometheus::MetricFamily>* families) {
  const absl::StatusOr<ProcessStats> stats = ReadProcessStats();
  if (!stats.ok()) return;
  using prometheus::MetricType;
  families->push_back(OneValueFamily("process_cpu_seconds_total",
                                     "Total user and system CPU time spent in seconds.",
                                     MetricType::Counter, stats->cpu_seconds));
  families->push_back(OneValueFamily("process_resident_memory_bytes",
                                     "Resident memory size in bytes.", MetricType::Gauge,
                                     stats->resident_memory_bytes));
  families->push_back(OneValueFamily("process_virtual_memory_bytes",
                                     "Virtual memory size in bytes.", MetricType::Gauge,
                                     stats->virtual_memory_bytes));
  families->push_back(OneValueFamily("process_open_fds", "Number of open file descriptors.",
                                     MetricType::Gauge, stats->open_fds));
  families->push_back(OneValueFamily("process_max_fds", "Maximum number of open file descriptors.",
                                     MetricType::Gauge, stats->max_fds));
  families->push_back(OneValueFamily("process_start_time_seconds",
                                     "Start time of the process since unix epoch in seconds.",
                                     MetricType::Gauge, stats->start_time_seconds));
}

}  // namespace

absl::string_view RpcName(Rpc rpc) {
  switch (rpc) {
    case Rpc::kClassify:
      return "Classify";
    case Rpc::kClassifyStream:
      return "ClassifyStream";
    case Rpc::kGetModelInfo:
      return "GetModelInfo";
    case Rpc::kModelInfer:
      return "ModelInfer";
    case Rpc::kHttpClassify:
      return "HttpClassify";
  }
  return "Unknown";
}

ServerMetrics::ServerMetrics(const MetricsOptions& options)
    : registry_(std::make_shared<prometheus::Registry>()) {
  RegisterRequestFamilies();
  RegisterBatcherFamilies(options.batching);
  RegisterOpenCallFamilies();
  RegisterModelFamilies(options);
}

void ServerMetrics::RegisterRequestFamilies() {
  using prometheus::BuildCounter;
  using prometheus::BuildHistogram;
  prometheus::Registry& registry = *registry_;

  requests_family_ = &BuildCounter()
                          .Name("fer_requests_total")
                          .Help(
                              "Finished RPCs by method and gRPC status code; for ClassifyStream, "
                              "answered frames by their status code.")
                          .Register(registry);
  for (int rpc = 0; rpc < kNumRpcs; ++rpc) {
    for (absl::StatusCode code : kPrecreatedCodes) RequestCounter(static_cast<Rpc>(rpc), code);
  }

  faces_ = &BuildCounter()
                .Name("fer_faces_total")
                .Help("Faces classified (a ten-crop face counts once).")
                .Register(registry)
                .Add({});

  auto& duration =
      BuildHistogram()
          .Name("fer_request_duration_seconds")
          .Help("Time from receiving a request (or stream frame) to sending its response.")
          .Register(registry);
  for (int rpc = 0; rpc < kNumRpcs; ++rpc) {
    request_duration_[rpc] =
        &duration.Add({{"rpc", std::string(RpcName(static_cast<Rpc>(rpc)))}}, kDurationBuckets);
  }
}

void ServerMetrics::RegisterBatcherFamilies(const BatcherOptions& batching) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  using prometheus::BuildHistogram;
  prometheus::Registry& registry = *registry_;

  queue_duration_ = &BuildHistogram()
                         .Name("fer_queue_duration_seconds")
                         .Help("Time a face waits in the batch queue.")
                         .Register(registry)
                         .Add({}, SubMillisecondAndDurationBuckets());
  inference_duration_ = &BuildHistogram()
                             .Name("fer_inference_duration_seconds")
                             .Help("Model execution time per batch.")
                             .Register(registry)
                             .Add({}, SubMillisecondAndDurationBuckets());
  batch_size_ = &BuildHistogram()
                     .Name("fer_batch_size")
                     .Help("Faces per executed batch.")
                     .Register(registry)
                     .Add({}, BatchSizeBuckets(batching.max_batch_size));

  queue_faces_ = &BuildGauge()
                      .Name("fer_queue_faces")
                      .Help("Faces waiting in the batch queue.")
                      .Register(registry)
                      .Add({});
  BuildGauge()
      .Name("fer_queue_capacity_faces")
      .Help("Capacity of the batch queue (--max_queue_faces).")
      .Register(registry)
      .Add({})
      .Set(batching.max_queue_faces);

  auto& dropped = BuildCounter()
                      .Name("fer_dropped_faces_total")
                      .Help("Faces dropped before inference, by reason.")
                      .Register(registry);
  for (DropReason reason : kDropReasons) {
    dropped_[static_cast<size_t>(reason)] =
        &dropped.Add({{"reason", std::string(DropReasonName(reason))}});
  }
  dropped_[kQueueFullIndex] = &dropped.Add({{"reason", kQueueFullReason}});
}

void ServerMetrics::RegisterOpenCallFamilies() {
  using prometheus::BuildGauge;
  prometheus::Registry& registry = *registry_;

  inflight_requests_ = &BuildGauge()
                            .Name("fer_inflight_requests")
                            .Help("Unary Classify requests being served.")
                            .Register(registry)
                            .Add({});
  active_streams_ = &BuildGauge()
                         .Name("fer_active_streams")
                         .Help("Open ClassifyStream streams.")
                         .Register(registry)
                         .Add({});
}

void ServerMetrics::RegisterModelFamilies(const MetricsOptions& options) {
  using prometheus::BuildGauge;
  prometheus::Registry& registry = *registry_;

  device_ = options.device;
  precision_ = options.precision;
  model_info_family_ = &BuildGauge()
                            .Name("fer_model_info")
                            .Help("Model served by this instance (always 1).")
                            .Register(registry);
  SetModelVersion(options.model_version);
  auto& reloads = prometheus::BuildCounter()
                      .Name("fer_model_reloads_total")
                      .Help(
                          "Model reloads (SIGHUP) by result: ok (swapped in) or failed "
                          "(the served model stayed).")
                      .Register(registry);
  reloads_ok_ = &reloads.Add({{"result", "ok"}});
  reloads_failed_ = &reloads.Add({{"result", "failed"}});
  access_log_dropped_ = &prometheus::BuildCounter()
                             .Name("fer_access_log_dropped_total")
                             .Help(
                                 "Access log lines dropped: the writer's queue was full, or "
                                 "the write failed.")
                             .Register(registry)
                             .Add({});
  gpu_memory_bytes_ = &BuildGauge()
                           .Name("fer_gpu_memory_bytes")
                           .Help("GPU memory held by the process (0 on CPU instances).")
                           .Register(registry)
                           .Add({});
}

// The HTTP thread reads the registry: stop it first.
ServerMetrics::~ServerMetrics() { http_.reset(); }

absl::Status ServerMetrics::StartExposer(const std::string& address) {
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> http =
      MetricsHttpServer::Start(address, [this] { return Serialize(); });
  if (!http.ok()) return http.status();
  http_ = std::move(*http);
  return absl::OkStatus();
}

int ServerMetrics::exposer_port() const { return http_ == nullptr ? 0 : http_->port(); }

std::string ServerMetrics::Serialize() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  AppendProcessFamilies(&families);
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

std::string ServerMetrics::RequestSummary() const {
  std::string summary;
  for (int rpc = 0; rpc < kNumRpcs; ++rpc) {
    std::string counts;
    for (int code = 0; code < kNumStatusCodes; ++code) {
      const prometheus::Counter* counter = requests_[rpc][code].load(std::memory_order_acquire);
      if (counter == nullptr || counter->Value() == 0) continue;
      absl::StrAppend(&counts, " ", StatusCodeName(static_cast<absl::StatusCode>(code)), "=",
                      static_cast<int64_t>(counter->Value()));
    }
    if (counts.empty()) continue;
    absl::StrAppend(&summary, summary.empty() ? "" : ",", " ", RpcName(static_cast<Rpc>(rpc)),
                    counts);
  }
  absl::StrAppend(&summary, summary.empty() ? "" : ";", " in flight ",
                  static_cast<int64_t>(inflight_requests_->Value()));
  return summary.substr(1);
}

prometheus::Counter* ServerMetrics::RequestCounter(Rpc rpc, absl::StatusCode code) {
  std::atomic<prometheus::Counter*>& slot = requests_[static_cast<int>(rpc)][RpcCode(code)];
  prometheus::Counter* counter = slot.load(std::memory_order_acquire);
  if (counter != nullptr) return counter;
  std::lock_guard<std::mutex> lock(requests_mu_);
  counter = slot.load(std::memory_order_relaxed);
  if (counter == nullptr) {
    counter = &requests_family_->Add(
        {{"rpc", std::string(RpcName(rpc))}, {"code", std::string(StatusCodeName(code))}});
    slot.store(counter, std::memory_order_release);
  }
  return counter;
}

void ServerMetrics::OnRequestDone(Rpc rpc, absl::StatusCode code, absl::Duration latency) {
  RequestCounter(rpc, code)->Increment();
  request_duration_[static_cast<int>(rpc)]->Observe(absl::ToDoubleSeconds(latency));
}

void ServerMetrics::AddFaces(int faces) { faces_->Increment(faces); }

void ServerMetrics::AddInflightRequests(int delta) { inflight_requests_->Increment(delta); }

void ServerMetrics::AddActiveStreams(int delta) { active_streams_->Increment(delta); }

void ServerMetrics::OnQueueFull(int faces) { dropped_[kQueueFullIndex]->Increment(faces); }

void ServerMetrics::SetGpuMemoryBytes(int64_t bytes) {
  gpu_memory_bytes_->Set(static_cast<double>(bytes));
}

void ServerMetrics::SetModelVersion(const std::string& version) {
  std::lock_guard<std::mutex> lock(model_info_mu_);
  if (model_info_ != nullptr) model_info_family_->Remove(model_info_);
  model_info_ = &model_info_family_->Add({{"version", version.empty() ? "unknown" : version},
                                          {"device", device_},
                                          {"precision", precision_}});
  model_info_->Set(1);
}

void ServerMetrics::OnModelReload(bool ok) { (ok ? reloads_ok_ : reloads_failed_)->Increment(); }

void ServerMetrics::OnAccessLogDropped() { access_log_dropped_->Increment(); }

void ServerMetrics::OnBatch(const BatchStats& stats) {
  batch_size_->Observe(stats.size);
  inference_duration_->Observe(absl::ToDoubleSeconds(stats.compute_duration));
  for (absl::Duration wait : stats.queue_waits) {
    queue_duration_->Observe(absl::ToDoubleSeconds(wait));
  }
}

void ServerMetrics::OnDrop(DropReason reason, int faces) {
  const size_t index = static_cast<size_t>(reason);
  if (index < kQueueFullIndex) dropped_[index]->Increment(faces);
}

void ServerMetrics::OnQueueDepth(int queued_faces) { queue_faces_->Set(queued_faces); }

}  // namespace fer
