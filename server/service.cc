#include "server/service.h"

#include <grpcpp/support/proto_buffer_reader.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "model/common/cpu_count.h"
#include "server/request_faces.h"
#include "server/status_mapping.h"
#include "server/wire_scan.h"

namespace fer {
namespace {

using fer::v1::ClassifyFrame;
using fer::v1::ClassifyRequest;
using fer::v1::ClassifyResponse;
using fer::v1::FrameResult;
using fer::v1::Image;
using fer::v1::Prediction;
using google::protobuf::RepeatedPtrField;

// Faces of the warm-up batch on a CPU: one is enough to build the kernels'
// state, and a full batch of a 112x112 model costs seconds there. On a GPU the
// warm-up runs a full batch (max_batch_size faces), which also sizes the
// allocator's pools for the largest batch.
constexpr int kCpuWarmupFaces = 1;
// Mid-grey: the warm-up faces' pixel value (any value works).
constexpr uint8_t kWarmupPixel = 128;
// A stream reads no further frame while the frames it has sent to be
// classified hold this many wire bytes or more (each holds about its wire
// size parsed until its faces are classified). One frame of any size is
// always read: the receive limit bounds it.
constexpr size_t kStreamBytesInFlight = size_t{64} << 20;

absl::Time DeadlineOf(const grpc::CallbackServerContext& context) {
  const std::chrono::system_clock::time_point deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

// Reads a Classify request or stream frame from its wire bytes into *message
// (which must be empty). The scan comes first, so that malformed bytes and a
// message that would parse into far more memory than its size (more than
// max_faces faces, more than kMaxUnknownFields unknown fields) are refused
// before protobuf allocates anything; then the parse. *scan holds what the
// scan saw, its frame_id also when the bytes are malformed. Errors are
// INVALID_ARGUMENT; *message is left empty on error.
absl::Status ParseIntake(const grpc::ByteBuffer& wire, int max_faces, bool allow_empty,
                         google::protobuf::Message* message, WireScan* scan) {
  *scan = WireScan();
  const std::string& type = message->GetDescriptor()->full_name();
  grpc::ByteBuffer bytes(wire);  // shares wire's slices: no bytes are copied
  if (!bytes.Valid()) return absl::InvalidArgumentError(absl::StrCat("no ", type, " was sent"));
  {
    grpc::ProtoBufferReader reader(&bytes);
    if (absl::Status status = ScanMessage(message->GetDescriptor(), &reader, scan); !status.ok()) {
      return status;
    }
  }
  if (absl::Status limits = CheckScanLimits(*scan, max_faces, allow_empty); !limits.ok()) {
    return limits;
  }
  grpc::ProtoBufferReader reader(&bytes);
  if (!message->ParseFromZeroCopyStream(&reader)) {
    message->Clear();
    return absl::InvalidArgumentError(absl::StrCat(
        "malformed ", type, ": protobuf cannot parse it (", bytes.Length(), " bytes)"));
  }
  return absl::OkStatus();
}

// Why a unary call has no request message: the call ended (its deadline
// passed, or it was cancelled) before the message arrived. gRPC may run the
// handler before it has told the context of the cancellation, so the context
// cannot tell that apart from a client that half-closed without a message (a
// broken client, which sees CANCELLED as well).
absl::Status NoRequestStatus(const grpc::CallbackServerContext& context) {
  if (absl::Now() >= DeadlineOf(context)) {
    return absl::DeadlineExceededError("the deadline passed before the request arrived");
  }
  return absl::CancelledError("the call ended before its request message arrived");
}

// Serializes message into *out, as gRPC would for a typed method.
template <typename Message>
absl::Status SerializeTo(const Message& message, grpc::ByteBuffer* out) {
  bool own_buffer = false;
  const grpc::Status status =
      grpc::SerializationTraits<Message>::Serialize(message, out, &own_buffer);
  if (status.ok()) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("cannot serialize the answer: ", status.error_message()));
}

}  // namespace

// One request's or one frame's faces on their way through admission,
// preprocessing and the batcher.
struct ExpressionService::Work {
  // Set by the caller of Process, and kept alive until done has been called.
  const RepeatedPtrField<Image>* faces = nullptr;
  bool ten_crop = false;
  absl::Time deadline = absl::InfiniteFuture();
  const std::atomic<bool>* cancelled = nullptr;
  // Called exactly once. It may destroy this Work, so it is moved out first.
  std::function<void(absl::Status)> done;

  // Filled by Process: every model face's input, then its probabilities.
  std::vector<uint8_t> pixels;
  std::vector<float> outputs;

  int crops() const { return ten_crop ? kTenCropCount : 1; }
  int model_faces() const { return faces->size() * crops(); }
};

namespace {

void Complete(std::function<void(absl::Status)>* done, absl::Status status) {
  std::function<void(absl::Status)> callback = std::move(*done);
  callback(std::move(status));
}

}  // namespace

// ---------------------------------------------------------------------------
// Classify: one reactor per call, deleted by gRPC's OnDone.
class ExpressionService::UnaryCall final : public grpc::ServerUnaryReactor {
 public:
  UnaryCall(ExpressionService* service, grpc::CallbackServerContext* context,
            const grpc::ByteBuffer* request, grpc::ByteBuffer* response)
      : service_(service), response_(response), start_(absl::Now()) {
    service_->metrics_->AddInflightRequests(1);
    work_.faces = &request_.faces();
    work_.deadline = DeadlineOf(*context);
    work_.cancelled = &cancelled_;
    work_.done = [this](absl::Status status) { OnWorkDone(status); };
    if (absl::Status serving = service_->CheckServing(); !serving.ok()) {
      Complete(&work_.done, serving);
      return;
    }
    if (!request->Valid()) {
      Complete(&work_.done, NoRequestStatus(*context));
      return;
    }
    WireScan scan;
    if (absl::Status intake = ParseIntake(*request, service_->options_.max_faces_per_request,
                                          /*allow_empty=*/false, &request_, &scan);
        !intake.ok()) {
      Complete(&work_.done, intake);
      return;
    }
    work_.ten_crop = request_.options().ten_crop();
    service_->Process(&work_);
  }

  void OnCancel() override { cancelled_.store(true, std::memory_order_relaxed); }
  void OnDone() override { delete this; }

 private:
  void OnWorkDone(absl::Status status) {
    if (status.ok()) {
      ClassifyResponse answer;
      service_->FillPredictions(work_, answer.mutable_predictions());
      status = SerializeTo(answer, response_);
      if (status.ok()) service_->metrics_->AddFaces(work_.faces->size());
    }
    service_->metrics_->OnRequestDone(Rpc::kClassify, status.code(), absl::Now() - start_);
    service_->metrics_->AddInflightRequests(-1);
    Finish(ToGrpcStatus(status));  // OnDone may delete this from now on.
  }

  ExpressionService* const service_;
  grpc::ByteBuffer* const response_;
  const absl::Time start_;
  std::atomic<bool> cancelled_{false};
  ClassifyRequest request_;  // parsed from the wire bytes; work_.faces points into it
  Work work_;
};

// ---------------------------------------------------------------------------
// ClassifyStream: one reactor per stream. Every member below mu_ is guarded by
// it. gRPC never runs OnReadDone or OnWriteDone inline in StartRead or
// StartWrite, so those are called with mu_ held. Finish is called without any
// lock, as a thread's last touch of the reactor: OnDone may run (even inline)
// and drop gRPC's reference at once. Drain holds a reference of its own while
// it reaches a stream found in the service's registry.
class ExpressionService::StreamCall final
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  StreamCall(ExpressionService* service, grpc::CallbackServerContext* context)
      : service_(service), deadline_(DeadlineOf(*context)) {
    // Until the handler returns, gRPC only records StartRead and Finish and
    // replays them in that order, so reading can begin before registration.
    reading_ = true;
    StartRead(&incoming_);
    if (absl::Status status = service_->RegisterStream(this); !status.ok()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        finished_ = true;
      }
      service_->metrics_->OnRequestDone(Rpc::kClassifyStream, status.code(), absl::ZeroDuration());
      Finish(ToGrpcStatus(status));
    }
  }

  void OnCancel() override { cancelled_.store(true, std::memory_order_relaxed); }

  void OnReadDone(bool ok) override {
    // Parsed before taking mu_, so that a large frame does not hold up the
    // stream's other frames: until reading_ is cleared below, nothing else
    // touches incoming_ or starts a read.
    absl::Status intake;
    std::unique_ptr<Frame> frame = ok ? TakeFrame(&intake) : nullptr;
    Frame* to_process = nullptr;
    std::unique_lock<std::mutex> lock(mu_);
    reading_ = false;
    if (finished_) return;  // a read that was pending when the stream ended
    if (!ok) {
      read_closed_ = true;
    } else {
      to_process = QueueLocked(std::move(frame), intake);
    }
    const bool finish = AdvanceLocked();
    lock.unlock();
    if (to_process != nullptr) {
      // The frame is not done, so the stream cannot finish before this call.
      service_->Process(&to_process->work);
    } else if (finish) {
      Finish(final_status_);
    }
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock<std::mutex> lock(mu_);
    writing_ = false;
    frames_.pop_front();
    if (!ok) broken_ = true;  // the client is gone: answer nothing more
    const bool finish = AdvanceLocked();
    lock.unlock();
    if (finish) Finish(final_status_);
  }

  void OnDone() override {
    service_->UnregisterStream(this);
    Unref();
  }

  // References: gRPC's (until OnDone), and Drain's while it reaches the stream.
  // The stream deletes itself when the last goes.
  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // From Drain: reads no more frames, and ends the stream with UNAVAILABLE
  // once the frames already read are answered.
  void BeginDrain() {
    std::unique_lock<std::mutex> lock(mu_);
    draining_ = true;
    const bool finish = AdvanceLocked();
    lock.unlock();
    if (finish) Finish(final_status_);
  }

 private:
  static constexpr char kDrainingMessage[] =
      "the server is shutting down; reconnect to continue the stream";

  struct Frame {
    ClassifyFrame request;
    FrameResult result;
    grpc::ByteBuffer wire_result;  // result, serialized for writing
    size_t wire_bytes = 0;         // its size on the wire; 0 once it is classified
    Work work;
    absl::Time received;
    bool done = false;  // result is final
  };

  static void SetError(Frame* frame, const absl::Status& status) {
    frame->result.clear_predictions();
    frame->result.mutable_status()->set_code(RpcCode(status.code()));
    frame->result.mutable_status()->set_message(std::string(status.message()));
  }

  // The frame just read, parsed from incoming_, which it empties. *intake
  // says why it cannot be classified (malformed, too many faces or unknown
  // fields); its frame_id is then what the bytes held before the fault.
  std::unique_ptr<Frame> TakeFrame(absl::Status* intake) {
    auto frame = std::make_unique<Frame>();
    frame->received = absl::Now();
    frame->wire_bytes = incoming_.Length();
    WireScan scan;
    *intake = ParseIntake(incoming_, service_->options_.max_faces_per_request,
                          /*allow_empty=*/true, &frame->request, &scan);
    incoming_.Clear();  // parsed or refused: the wire bytes are not needed any more
    frame->result.set_frame_id(scan.frame_id);  // the parse's, when it parsed
    frame->work.faces = &frame->request.faces();
    frame->work.ten_crop = frame->request.options().ten_crop();
    frame->work.deadline = deadline_;
    frame->work.cancelled = &cancelled_;
    Frame* raw = frame.get();
    frame->work.done = [this, raw](absl::Status status) { OnFrameDone(raw, status); };
    return frame;
  }

  // Requires mu_. Queues frame for its answer in order; returns it when it is
  // to be classified (its bytes then count as in flight), null when it is
  // answered at once.
  Frame* QueueLocked(std::unique_ptr<Frame> frame, const absl::Status& intake) {
    Frame* raw = frame.get();
    frames_.push_back(std::move(frame));
    if (draining_) {
      SetError(raw, absl::UnavailableError(kDrainingMessage));
    } else if (!intake.ok()) {
      SetError(raw, intake);  // answered in its turn; the stream goes on
    } else if (raw->request.faces_size() > 0) {
      bytes_in_flight_ += raw->wire_bytes;
      return raw;
    }
    // Answered at once (a frame with no faces has no predictions, as the API
    // promises).
    raw->request = ClassifyFrame();
    raw->wire_bytes = 0;
    raw->done = true;
    return nullptr;
  }

  // From the frame's Work: a batcher worker, a preprocessing thread, or the
  // reading thread (a frame refused at admission).
  void OnFrameDone(Frame* frame, const absl::Status& status) {
    // The frame is not done yet, so nothing else touches its result.
    if (status.ok()) {
      service_->FillPredictions(frame->work, frame->result.mutable_predictions());
      service_->metrics_->AddFaces(frame->request.faces_size());
    } else {
      SetError(frame, status);
    }
    // Its faces are classified (or refused): free the images now rather than
    // when the result has been written.
    frame->request = ClassifyFrame();
    std::unique_lock<std::mutex> lock(mu_);
    bytes_in_flight_ -= frame->wire_bytes;
    frame->wire_bytes = 0;
    frame->done = true;
    const bool finish = AdvanceLocked();
    lock.unlock();
    if (finish) Finish(final_status_);
  }

  // Requires mu_. Writes the oldest frame if it is answered and no write is
  // outstanding, reads the next frame if the window has room (in frames, and
  // in bytes being classified), and returns true (having set finished_ and
  // final_status_) when the stream is to be finished now; the caller then
  // calls Finish after releasing mu_.
  bool AdvanceLocked() {
    if (finished_) return false;
    while (!writing_ && !frames_.empty() && frames_.front()->done) {
      Frame* head = frames_.front().get();
      if (!broken_) {
        if (absl::Status serialized = SerializeTo(head->result, &head->wire_result);
            !serialized.ok()) {
          SetError(head, serialized);
          head->wire_result.Clear();
          SerializeTo(head->result, &head->wire_result).IgnoreError();  // a short status only
        }
      }
      const absl::StatusCode code =
          broken_ ? absl::StatusCode::kCancelled
                  : static_cast<absl::StatusCode>(head->result.status().code());
      service_->metrics_->OnRequestDone(Rpc::kClassifyStream, code, absl::Now() - head->received);
      if (broken_) {
        frames_.pop_front();
      } else {
        writing_ = true;
        StartWrite(&head->wire_result);
      }
    }
    const bool stop_reading = read_closed_ || draining_ || broken_;
    if (!reading_ && !stop_reading &&
        frames_.size() < static_cast<size_t>(service_->options_.stream_window) &&
        bytes_in_flight_ < kStreamBytesInFlight) {
      reading_ = true;
      StartRead(&incoming_);
    }
    // A read still pending when draining or broken is fine: gRPC completes
    // it (unsuccessfully) as part of finishing.
    if (!stop_reading || writing_ || !frames_.empty()) return false;
    if (broken_ || cancelled_.load(std::memory_order_relaxed)) {
      final_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled the stream");
    } else if (draining_ && !read_closed_) {
      final_status_ = ToGrpcStatus(absl::UnavailableError(kDrainingMessage));
    } else {
      final_status_ = grpc::Status::OK;
    }
    finished_ = true;
    return true;
  }

  ExpressionService* const service_;
  const absl::Time deadline_;
  std::atomic<bool> cancelled_{false};
  std::atomic<int> refs_{1};

  std::mutex mu_;
  grpc::ByteBuffer incoming_;  // the read buffer; gRPC's while reading_
  // Frames read and not yet fully written, oldest first; at most
  // stream_window of them.
  std::deque<std::unique_ptr<Frame>> frames_;
  bool reading_ = false;        // a read is outstanding
  bool writing_ = false;        // frames_.front() is being written
  bool read_closed_ = false;    // the client half-closed, or the read side failed
  bool draining_ = false;       // BeginDrain was called
  bool broken_ = false;         // a write failed: the client is gone
  bool finished_ = false;       // Finish is called or due
  size_t bytes_in_flight_ = 0;  // wire bytes of the frames being classified
  grpc::Status final_status_;
};

// ---------------------------------------------------------------------------

ExpressionService::ExpressionService(const ServiceOptions& options, Engine* engine,
                                     ServerMetrics* metrics)
    : options_(options),
      engine_(engine),
      metrics_(metrics),
      num_classes_(engine->num_classes()),
      face_bytes_(engine->face_bytes()) {}

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
    instance.runner = engine->NewRunner();
    instance.inputs.resize(max_batch * service->face_bytes_);
    instance.outputs.resize(max_batch * service->num_classes_);
  }
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

absl::Status ExpressionService::WarmUp(size_t index, int faces) {
  Instance& instance = instances_[index];
  std::fill_n(instance.inputs.begin(), faces * face_bytes_, kWarmupPixel);
  // Twice: the first run pays for lazy initialisation, the second is what a
  // batch of this size costs, and seeds the batcher's estimate.
  for (int run = 0; run < 2; ++run) {
    const absl::Time begin = absl::Now();
    if (absl::Status status =
            instance.runner->Classify(instance.inputs.data(), faces, instance.outputs.data());
        !status.ok()) {
      return absl::Status(status.code(), absl::StrCat("warm-up batch on instance ", index,
                                                      " failed: ", status.message()));
    }
    if (run == 1) batcher_->RecordBatchTime(faces, absl::Now() - begin);
  }
  // A model that answers NaN (finite weights can still overflow) would serve
  // NaN probabilities to every client: refuse it here.
  const auto outputs = instance.outputs.begin();
  if (!std::all_of(outputs, outputs + faces * num_classes_,
                   [](float p) { return std::isfinite(p); })) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the model answers NaN or infinite probabilities in the warm-up batch on instance ", index,
        "; its weights are broken (overflowing or diverged)"));
  }
  return absl::OkStatus();
}

absl::Status ExpressionService::Start() {
  if (options_.warmup) {
    const bool gpu = absl::StartsWith(engine_->device(), "cuda");
    const int faces = gpu ? options_.batching.max_batch_size : kCpuWarmupFaces;
    // No call is admitted before state_ is kServing, so the workers are idle
    // and the runners free to use here.
    for (size_t i = 0; i < instances_.size(); ++i) {
      if (absl::Status status = WarmUp(i, faces); !status.ok()) return status;
    }
    if (gpu) metrics_->SetGpuMemoryBytes(engine_->DeviceMemoryBytes());
  }
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
  auto job = std::make_shared<BatchJob>();
  job->faces.resize(model_faces);
  for (int i = 0; i < model_faces; ++i) {
    job->faces[i].pixels = work->pixels.data() + static_cast<size_t>(i) * face_bytes_;
    job->faces[i].output = work->outputs.data() + static_cast<size_t>(i) * num_classes_;
  }
  job->deadline = work->deadline;
  job->is_cancelled = [cancelled = work->cancelled] {
    return cancelled->load(std::memory_order_relaxed);
  };
  job->done = std::move(work->done);
  // From here on work may be gone at any moment: the job's done owns it.
  status = batcher_->SubmitReserved(job);
  if (!status.ok()) job->done(status);  // refused, so the batcher never calls done
}

void ExpressionService::FillPredictions(const Work& work,
                                        RepeatedPtrField<Prediction>* predictions) const {
  const int crops = work.crops();
  const std::vector<std::string>& labels = engine_->meta().labels;
  std::vector<float> mean(num_classes_);
  predictions->Reserve(work.faces->size());
  for (int face = 0; face < work.faces->size(); ++face) {
    std::fill(mean.begin(), mean.end(), 0.0f);
    const float* rows = work.outputs.data() + static_cast<size_t>(face) * crops * num_classes_;
    for (int crop = 0; crop < crops; ++crop) {
      for (int c = 0; c < num_classes_; ++c) mean[c] += rows[crop * num_classes_ + c];
    }
    Prediction* prediction = predictions->Add();
    prediction->mutable_probabilities()->Reserve(num_classes_);
    int top = 0;
    for (int c = 0; c < num_classes_; ++c) {
      mean[c] /= static_cast<float>(crops);
      prediction->add_probabilities(mean[c]);
      if (mean[c] > mean[top]) top = c;
    }
    prediction->set_top_label(top);
    if (top < static_cast<int>(labels.size())) prediction->set_top_label_name(labels[top]);
    prediction->set_confidence(mean[top]);
  }
}

absl::Status ExpressionService::RunBatch(int instance_index, absl::Span<const FaceRef> faces) {
  Instance& instance = instances_[instance_index];
  const int n = static_cast<int>(faces.size());
  for (int i = 0; i < n; ++i) {
    std::memcpy(instance.inputs.data() + static_cast<size_t>(i) * face_bytes_, faces[i].pixels,
                face_bytes_);
  }
  if (absl::Status status =
          instance.runner->Classify(instance.inputs.data(), n, instance.outputs.data());
      !status.ok()) {
    return status;
  }
  for (int i = 0; i < n; ++i) {
    std::memcpy(faces[i].output, instance.outputs.data() + static_cast<size_t>(i) * num_classes_,
                num_classes_ * sizeof(float));
  }
  if (absl::StartsWith(engine_->device(), "cuda")) {
    metrics_->SetGpuMemoryBytes(engine_->DeviceMemoryBytes());
  }
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

grpc::ServerUnaryReactor* ExpressionService::GetModelInfo(
    grpc::CallbackServerContext* context, const fer::v1::GetModelInfoRequest* /*request*/,
    fer::v1::ModelInfo* response) {
  const absl::Time start = absl::Now();
  const ModelMeta& meta = engine_->meta();
  for (const std::string& label : meta.labels) response->add_labels(label);
  response->set_input_size(meta.input_size);
  response->set_color(meta.color);
  response->set_version(meta.version);
  response->set_trained_on(meta.trained_on);
  response->set_parameters(static_cast<uint64_t>(engine_->num_parameters()));
  response->set_device(engine_->device());
  response->set_precision(engine_->precision());
  response->set_max_batch_size(options_.batching.max_batch_size);
  response->set_max_queue_delay_us(
      static_cast<uint32_t>(absl::ToInt64Microseconds(options_.batching.max_queue_delay)));
  response->set_max_queue_faces(options_.batching.max_queue_faces);
  response->set_max_faces_per_request(options_.max_faces_per_request);
  response->set_max_image_bytes(options_.preprocess.max_encoded_bytes);
  response->set_max_image_pixels(options_.preprocess.max_pixels);
  response->set_instances(options_.batching.num_instances);
  metrics_->OnRequestDone(Rpc::kGetModelInfo, absl::StatusCode::kOk, absl::Now() - start);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace fer
