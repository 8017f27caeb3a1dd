#include "server/server_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <exception>
#include <iterator>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace fer {
namespace {

// Bucket bounds, in seconds unless said otherwise. The workload spans three
// orders of magnitude: a face on a GPU takes about a millisecond, a batch of 32
// 112x112 faces on a small CPU several seconds. So the bounds run roughly
// 1-2.5-5 per decade over that whole range, with the values alerts and
// defaults use (0.002 = --max_queue_delay_us's default, 0.1 and 0.25 = the
// queue-wait and latency alert thresholds in deploy/prometheus/rules) among
// them, so that those quantiles are interpolated inside a bucket boundary
// rather than across a wide bucket.
//
// Request latency: from ~1 ms (GPU, one face) to 30 s (CPU, a full queue).
const std::vector<double> kRequestBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                             0.25,  0.5,    1,     2.5,  5,     10,   30};
// Queue wait: sub-millisecond when idle (the delay trigger fires at
// max_queue_delay), seconds when saturated.
const std::vector<double> kQueueBuckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
// One runner call: a batch of one on a GPU (<1 ms) to a full batch on CPU.
const std::vector<double> kInferenceBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                               0.25,   0.5,   1,      2.5,   5,    10,    30};

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

}  // namespace

absl::string_view RpcName(Rpc rpc) {
  switch (rpc) {
    case Rpc::kClassify:
      return "Classify";
    case Rpc::kClassifyStream:
      return "ClassifyStream";
    case Rpc::kGetModelInfo:
      return "GetModelInfo";
  }
  return "Unknown";
}

ServerMetrics::ServerMetrics(const MetricsOptions& options)
    : registry_(std::make_shared<prometheus::Registry>()) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
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
        &duration.Add({{"rpc", std::string(RpcName(static_cast<Rpc>(rpc)))}}, kRequestBuckets);
  }

  queue_duration_ = &BuildHistogram()
                         .Name("fer_queue_duration_seconds")
                         .Help("Time a face waits in the batch queue.")
                         .Register(registry)
                         .Add({}, kQueueBuckets);
  inference_duration_ = &BuildHistogram()
                             .Name("fer_inference_duration_seconds")
                             .Help("Model execution time per batch.")
                             .Register(registry)
                             .Add({}, kInferenceBuckets);
  batch_size_ = &BuildHistogram()
                     .Name("fer_batch_size")
                     .Help("Faces per executed batch.")
                     .Register(registry)
                     .Add({}, BatchSizeBuckets(options.max_batch_size));

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
      .Set(options.max_queue_faces);
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

  auto& dropped = BuildCounter()
                      .Name("fer_dropped_faces_total")
                      .Help("Faces dropped before inference, by reason.")
                      .Register(registry);
  for (DropReason reason : kDropReasons) {
    dropped_[static_cast<size_t>(reason)] =
        &dropped.Add({{"reason", std::string(DropReasonName(reason))}});
  }
  dropped_[kQueueFullIndex] = &dropped.Add({{"reason", kQueueFullReason}});

  BuildGauge()
      .Name("fer_model_info")
      .Help("Model served by this instance (always 1).")
      .Register(registry)
      .Add({{"version", options.model_version.empty() ? "unknown" : options.model_version},
            {"device", options.device},
            {"precision", options.precision}})
      .Set(1);
  gpu_memory_bytes_ = &BuildGauge()
                           .Name("fer_gpu_memory_bytes")
                           .Help("GPU memory held by the process (0 on CPU instances).")
                           .Register(registry)
                           .Add({});
}

// The exposer's threads read the registry: stop them first.
ServerMetrics::~ServerMetrics() { exposer_.reset(); }

absl::Status ServerMetrics::StartExposer(const std::string& address) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(address);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", address,
                                               " (port taken or address invalid): ", e.what()));
  }
  exposer_->RegisterCollectable(registry_);
  return absl::OkStatus();
}

int ServerMetrics::exposer_port() const {
  if (exposer_ == nullptr) return 0;
  const std::vector<int> ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

std::string ServerMetrics::Serialize() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
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
