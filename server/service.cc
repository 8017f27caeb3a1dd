#include "server/service.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "model/common/cpu_count.h"
#include "model/core/image_ops.h"
#include "server/request_faces.h"
#include "server/service_calls.h"
#include "server/service_work.h"

namespace fer {

// ---------------------------------------------------------------------------

ExpressionService::ExpressionService(const ServiceOptions& options, Engine* engine,
                                     ServerMetrics* metrics)
    : options_(options),
      metrics_(metrics),
      num_classes_(engine->num_classes()),
      face_bytes_(engine->face_bytes()),
      gpu_(absl::StartsWith(engine->device(), "cuda")) {}

absl::StatusOr<std::unique_ptr<ExpressionService>> ExpressionService::Create(
    const ServiceOptions& options, Engine* engine, ServerMetrics* metrics) {
  if (engine == nullptr || metrics == nullptr) {
    return absl::InvalidArgumentError("ExpressionService needs an engine and metrics");
  }
  if (absl::Status status = ValidateServiceOptions(options); !status.ok()) return status;
  ServiceOptions resolved = options;
  resolved.preprocess.input_size = engine->meta().input_size;
  resolved.preprocess.gray = engine->meta().input_channels() == 1;
  if (absl::Status status = ValidatePreprocessOptions(resolved.preprocess); !status.ok()) {
    return status;
  }
  if (FaceBytes(resolved.preprocess) != engine->face_bytes()) {
    return absl::FailedPreconditionError(
        absl::StrCat("preprocessing makes faces of ", FaceBytes(resolved.preprocess),
                     " bytes but the model takes ", engine->face_bytes()));
  }
  if (resolved.preprocess_threads == 0) {
    resolved.preprocess_threads = UsableCpuCount();
  }

  std::unique_ptr<ExpressionService> service(new ExpressionService(resolved, engine, metrics));
  const size_t max_batch = static_cast<size_t>(std::max(1, resolved.batching.max_batch_size));
  service->instances_.resize(std::max(1, resolved.batching.num_instances));
  for (Instance& instance : service->instances_) {
    instance.inputs.resize(max_batch * service->face_bytes_);
    instance.outputs.resize(max_batch * service->num_classes_);
  }
  // The caller keeps the first engine; later ones (Reload) are the service's.
  service->generation_ = service->NewGeneration(std::shared_ptr<Engine>(engine, [](Engine*) {}));
  ExpressionService* self = service.get();
  auto batcher = Batcher::Create(
      resolved.batching,
      [self](int instance, absl::Span<const FaceRef> faces) {
        return self->RunBatch(instance, faces);
      },
      metrics);
  if (!batcher.ok()) return batcher.status();
  service->batcher_ = std::move(*batcher);
  service->preprocess_pool_ = std::make_unique<ThreadPool>(resolved.preprocess_threads);
  return service;
}

ExpressionService::~ExpressionService() { Drain(absl::InfiniteDuration()); }

absl::Status ExpressionService::Start() {
  // No call is admitted before state_ is kServing, so no worker uses the
  // runners warmed up here.
  if (absl::Status status = WarmUpAll(*CurrentGeneration()); !status.ok()) return status;
  State starting = State::kStarting;
  state_.compare_exchange_strong(starting, State::kServing);
  return absl::OkStatus();
}

void ExpressionService::Drain(absl::Duration drain_timeout) {
  std::call_once(drained_, [&] {
    const absl::Time deadline = absl::Now() + drain_timeout;
    state_.store(State::kDraining);
    // Referenced under the registry's lock, so that none is deleted between
    // being found and being told; told without it, since telling may finish
    // the stream, and finishing unregisters it.
    std::vector<StreamCall*> streams;
    {
      std::lock_guard<std::mutex> lock(streams_mu_);
      for (StreamCall* stream : streams_) {
        stream->Ref();
        streams.push_back(stream);
      }
    }
    for (StreamCall* stream : streams) {
      stream->BeginDrain();
      stream->Unref();
    }
    // Work admitted before draining began may still be being preprocessed:
    // the batcher holds its reservation, and Stop waits for it to be queued.
    // Null only when Create failed before making it.
    if (batcher_ != nullptr) batcher_->Stop(std::max(deadline - absl::Now(), absl::ZeroDuration()));
  });
}

absl::Status ExpressionService::CheckServing() const {
  switch (state_.load()) {
    case State::kStarting:
      return absl::UnavailableError("the server is starting (warming up the model); retry shortly");
    case State::kServing:
      return absl::OkStatus();
    case State::kDraining:
      break;
  }
  return absl::UnavailableError("the server is shutting down; retry on another instance");
}

absl::Status ExpressionService::Admit(int faces, absl::Time deadline) {
  if (absl::Status serving = CheckServing(); !serving.ok()) return serving;
  absl::Status reserved = batcher_->Reserve(faces, deadline);
  if (absl::IsInvalidArgument(reserved)) {
    // Only ten-crop gets here (plain requests are capped below capacity by
    // the start-up check): no retry can help, so it is the request's fault.
    return absl::InvalidArgumentError(
        absl::StrCat("the request needs ", faces,
                     " queue slots (ten-crop faces count ten times) but the "
                     "server's queue holds ",
                     options_.batching.max_queue_faces, "; send fewer faces per request"));
  }
  if (absl::IsUnavailable(reserved)) return CheckServing();  // Drain began meanwhile
  if (absl::IsResourceExhausted(reserved)) {
    return absl::ResourceExhaustedError(
        absl::StrCat(reserved.message(), " (ten-crop faces count ten times); retry with backoff"));
  }
  return reserved;
}

void ExpressionService::Process(Work* work) {
  // The face count was checked on the wire bytes, before parsing (wire_scan).
  const int model_faces = work->model_faces();
  // The generation first: whether maps can be had depends on the model the
  // call runs on, and a reload may change that.
  work->generation = CurrentGeneration();
  if (work->attention && work->generation->engine->attention_size() == 0) {
    Complete(&work->done, absl::InvalidArgumentError(
                              "ClassifyOptions.attention: this model has no attention maps (its "
                              "weight file says attention: false); ask without it"));
    return;
  }
  if (absl::Status admitted = Admit(model_faces, work->deadline); !admitted.ok()) {
    if (absl::IsResourceExhausted(admitted)) metrics_->OnQueueFull(model_faces);
    if (absl::IsDeadlineExceeded(admitted)) metrics_->OnDrop(DropReason::kLate, model_faces);
    Complete(&work->done, admitted);
    return;
  }
  preprocess_pool_->Schedule([this, work] { PreprocessAndSubmit(work); });
}

void ExpressionService::PreprocessAndSubmit(Work* work) {
  const int model_faces = work->model_faces();
  absl::Status status;
  // The deadline first: gRPC also cancels a call whose deadline has passed.
  if (absl::Now() >= work->deadline) {
    status = absl::DeadlineExceededError("the deadline passed before the faces were queued");
  } else if (work->cancelled->load(std::memory_order_relaxed)) {
    status = absl::CancelledError("the call was cancelled");
  } else {
    work->pixels.reserve(static_cast<size_t>(model_faces) * face_bytes_);
    status = PreprocessFaces(*work->faces, options_.preprocess, work->ten_crop, &work->pixels);
  }
  if (!status.ok()) {
    batcher_->Unreserve(model_faces);
    Complete(&work->done, status);
    return;
  }

  work->outputs.resize(static_cast<size_t>(model_faces) * num_classes_);
  const size_t map_size = work->attention ? work->generation->engine->attention_size() : 0;
  work->attention_maps.resize(work->faces->size() * map_size);
  const int crops = work->crops();
  auto job = std::make_shared<BatchJob>();
  job->faces.resize(model_faces);
  for (int i = 0; i < model_faces; ++i) {
    job->faces[i].pixels = work->pixels.data() + static_cast<size_t>(i) * face_bytes_;
    job->faces[i].output = work->outputs.data() + static_cast<size_t>(i) * num_classes_;
    if (map_size > 0 && (crops == 1 || i % crops == kTenCropCentreBox)) {
      job->faces[i].attention = work->attention_maps.data() + (i / crops) * map_size;
    }
    job->faces[i].context = work->generation.get();  // alive while work is
  }
  job->deadline = work->deadline;
  job->is_cancelled = [cancelled = work->cancelled] {
    return cancelled->load(std::memory_order_relaxed);
  };
  job->done = std::move(work->done);
  job->timing = &work->timing;
  // From here on work may be gone at any moment: the job's done owns it.
  status = batcher_->SubmitReserved(job);
  if (!status.ok()) job->done(status);  // refused, so the batcher never calls done
}

void ExpressionService::ClassifyFaces(const RequestFaces* faces,
                                      const fer::v1::ClassifyOptions& options, absl::Time deadline,
                                      const std::atomic<bool>* cancelled, FacesDone done,
                                      JobTiming* timing) {
  absl::Status refused = CheckServing();
  if (refused.ok()) {
    refused = CheckFaceCount(*faces, options_.max_faces_per_request, /*allow_empty=*/false);
  }
  if (!refused.ok()) {
    done(refused, {}, "");
    return;
  }
  // Owned by its done, which frees it: as a UnaryCall's Work, it lives until
  // the pipeline has answered.
  auto* work = new Work;
  work->faces = faces;
  work->ten_crop = options.ten_crop();
  work->attention = options.attention();
  work->deadline = deadline;
  work->cancelled = cancelled;
  work->done = [this, work, done = std::move(done), timing](absl::Status status) {
    std::unique_ptr<Work> owned(work);
    if (timing != nullptr) *timing = work->timing;
    google::protobuf::RepeatedPtrField<fer::v1::Prediction> predictions;
    std::string version;
    if (status.ok()) {
      work->Answer(&predictions);
      version = work->generation->version;
      metrics_->AddFaces(work->faces->size());
    }
    owned.reset();
    done(std::move(status), std::move(predictions), std::move(version));
  };
  Process(work);
}

absl::Status ExpressionService::RunBatch(int instance_index, absl::Span<const FaceRef> faces) {
  // Faces of two generations meet in one batch only around a reload: the
  // batch then runs as one model call per generation, in queue order.
  size_t begin = 0;
  while (begin < faces.size()) {
    size_t end = begin + 1;
    while (end < faces.size() && faces[end].context == faces[begin].context) ++end;
    const auto* generation = static_cast<const Generation*>(faces[begin].context);
    if (absl::Status status =
            RunOnGeneration(*generation, instance_index, faces.subspan(begin, end - begin));
        !status.ok()) {
      return status;
    }
    begin = end;
  }
  return absl::OkStatus();
}

absl::Status ExpressionService::RunOnGeneration(const Generation& generation, int instance_index,
                                                absl::Span<const FaceRef> faces) {
  Instance& instance = instances_[instance_index];
  Runner* runner = generation.runners[instance_index].get();
  const int n = static_cast<int>(faces.size());
  for (int i = 0; i < n; ++i) {
    std::memcpy(instance.inputs.data() + static_cast<size_t>(i) * face_bytes_, faces[i].pixels,
                face_bytes_);
  }
  // Calls that asked for maps share batches with calls that did not. When any
  // face of the batch asks, the maps of the whole batch are computed (the same
  // forward pass; the engine's per-face reduction is cheap) and copied only to
  // the faces that asked; a batch where none asks computes none.
  const size_t map_size = generation.engine->attention_size();
  const bool maps = map_size > 0 && std::any_of(faces.begin(), faces.end(), [](const FaceRef& f) {
                      return f.attention != nullptr;
                    });
  if (maps) instance.attention.resize(static_cast<size_t>(n) * map_size);
  if (absl::Status status = runner->Classify(instance.inputs.data(), n, instance.outputs.data(),
                                             maps ? instance.attention.data() : nullptr);
      !status.ok()) {
    return status;
  }
  for (int i = 0; i < n; ++i) {
    std::memcpy(faces[i].output, instance.outputs.data() + static_cast<size_t>(i) * num_classes_,
                num_classes_ * sizeof(float));
    if (maps && faces[i].attention != nullptr) {
      std::memcpy(faces[i].attention, instance.attention.data() + i * map_size,
                  map_size * sizeof(float));
    }
  }
  if (gpu_) metrics_->SetGpuMemoryBytes(generation.engine->DeviceMemoryBytes());
  return absl::OkStatus();
}

absl::Status ExpressionService::RegisterStream(StreamCall* stream) {
  std::lock_guard<std::mutex> lock(streams_mu_);
  if (absl::Status serving = CheckServing(); !serving.ok()) return serving;
  if (static_cast<int>(streams_.size()) >= options_.max_concurrent_streams) {
    return absl::ResourceExhaustedError(absl::StrCat("too many open streams (the limit is ",
                                                     options_.max_concurrent_streams,
                                                     "); retry with backoff"));
  }
  streams_.insert(stream);
  metrics_->AddActiveStreams(1);
  return absl::OkStatus();
}

void ExpressionService::UnregisterStream(StreamCall* stream) {
  std::lock_guard<std::mutex> lock(streams_mu_);
  if (streams_.erase(stream) > 0) metrics_->AddActiveStreams(-1);
}

grpc::ServerUnaryReactor* ExpressionService::Classify(grpc::CallbackServerContext* context,
                                                      const grpc::ByteBuffer* request,
                                                      grpc::ByteBuffer* response) {
  return new UnaryCall(this, context, request, response);
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* ExpressionService::ClassifyStream(
    grpc::CallbackServerContext* context) {
  return new StreamCall(this, context);
}

fer::v1::ModelInfo ExpressionService::DescribeModel() const {
  const std::shared_ptr<const Generation> generation = CurrentGeneration();
  const Engine* engine = generation->engine.get();
  const ModelMeta& meta = engine->meta();
  fer::v1::ModelInfo info;
  for (const std::string& label : meta.labels) info.add_labels(label);
  info.set_input_size(meta.input_size);
  info.set_color(meta.color);
  info.set_version(meta.version);
  info.set_trained_on(meta.trained_on);
  info.set_parameters(static_cast<uint64_t>(engine->num_parameters()));
  info.set_device(engine->device());
  info.set_precision(engine->precision());
  info.set_max_batch_size(options_.batching.max_batch_size);
  info.set_max_queue_delay_us(
      static_cast<uint32_t>(absl::ToInt64Microseconds(options_.batching.max_queue_delay)));
  info.set_max_queue_faces(options_.batching.max_queue_faces);
  info.set_max_faces_per_request(options_.max_faces_per_request);
  info.set_max_image_bytes(options_.preprocess.max_encoded_bytes);
  info.set_max_image_pixels(options_.preprocess.max_pixels);
  info.set_instances(options_.batching.num_instances);
  info.set_attention_height(engine->attention_height());
  info.set_attention_width(engine->attention_width());
  return info;
}

grpc::ServerUnaryReactor* ExpressionService::GetModelInfo(
    grpc::CallbackServerContext* context, const fer::v1::GetModelInfoRequest* /*request*/,
    fer::v1::ModelInfo* response) {
  const absl::Time start = absl::Now();
  *response = DescribeModel();
  metrics_->OnRequestDone(Rpc::kGetModelInfo, absl::StatusCode::kOk, absl::Now() - start);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace fer
