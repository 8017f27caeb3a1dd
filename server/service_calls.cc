#include "server/service_calls.h"

#include <grpcpp/support/proto_buffer_reader.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/status_mapping.h"
#include "server/wire_scan.h"

namespace fer {
namespace {

using fer::v1::ClassifyFrame;
using fer::v1::ClassifyResponse;
using fer::v1::FrameResult;

// A stream reads no further frame while the frames it has sent to be
// classified hold this many wire bytes or more (each holds about its wire
// size parsed until its faces are classified). One frame of any size is
// always read: the receive limit bounds it.
constexpr size_t kStreamBytesInFlight = size_t{64} << 20;

constexpr char kDrainingMessage[] = "the server is shutting down; reconnect to continue the stream";

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

void SetError(FrameResult* result, const absl::Status& status) {
  result->clear_predictions();
  result->mutable_status()->set_code(RpcCode(status.code()));
  result->mutable_status()->set_message(std::string(status.message()));
}

}  // namespace

// ---------------------------------------------------------------------------
// Classify

ExpressionService::UnaryCall::UnaryCall(ExpressionService* service,
                                        grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request, grpc::ByteBuffer* response)
    : service_(service), response_(response), start_(absl::Now()) {
  service_->metrics_->AddInflightRequests(1);
  AccessLog* log = service_->access_log();
  logged_ = log != nullptr && log->Sample();
  if (logged_) peer_ = context->peer();
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
  work_.attention = request_.options().attention();
  service_->Process(&work_);
}

void ExpressionService::UnaryCall::OnWorkDone(absl::Status status) {
  if (status.ok()) {
    ClassifyResponse answer;
    work_.Answer(answer.mutable_predictions());
    answer.set_model_version(work_.generation->version);
    status = SerializeTo(answer, response_);
    if (status.ok()) service_->metrics_->AddFaces(work_.faces->size());
  }
  service_->metrics_->OnRequestDone(Rpc::kClassify, status.code(), absl::Now() - start_);
  service_->metrics_->AddInflightRequests(-1);
  if (logged_) Log(status);
  Finish(ToGrpcStatus(status));  // OnDone may delete this from now on.
}

void ExpressionService::UnaryCall::Log(const absl::Status& status) {
  AccessLogEntry entry;
  entry.method = kAccessLogClassify;
  entry.peer = std::move(peer_);
  entry.code = status.code();
  entry.message = status.message();
  entry.faces = request_.faces_size();
  entry.queue = work_.timing.queue_wait;
  entry.model = work_.timing.compute;
  entry.total = absl::Now() - start_;
  if (status.ok()) entry.model_version = work_.generation->version;
  service_->access_log()->Record(entry);
}

// ---------------------------------------------------------------------------
// ClassifyStream

struct ExpressionService::StreamCall::Frame {
  ClassifyFrame request;
  FrameResult result;
  grpc::ByteBuffer wire_result;  // result, serialized for writing
  Work work;
  absl::Time received;
  size_t wire_bytes = 0;  // its size on the wire
  uint64_t seq = 0;       // its number in window_
};

ExpressionService::StreamCall::StreamCall(ExpressionService* service,
                                          grpc::CallbackServerContext* context)
    : service_(service),
      deadline_(DeadlineOf(*context)),
      start_(absl::Now()),
      window_(service->options_.stream_window, kStreamBytesInFlight) {
  AccessLog* log = service_->access_log();
  logged_ = log != nullptr && log->Sample();
  if (logged_) peer_ = context->peer();
  // Until the handler returns, gRPC only records StartRead and Finish and
  // replays them in that order, so reading can begin before registration.
  {
    std::lock_guard<std::mutex> lock(mu_);
    AdvanceLocked();  // an empty window reads its first frame
  }
  if (absl::Status status = service_->RegisterStream(this); !status.ok()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      window_.FinishNow();
      final_status_ = ToGrpcStatus(status);
    }
    service_->metrics_->OnRequestDone(Rpc::kClassifyStream, status.code(), absl::ZeroDuration());
    Finish(ToGrpcStatus(status));
  }
}

ExpressionService::StreamCall::~StreamCall() = default;

void ExpressionService::StreamCall::OnReadDone(bool ok) {
  // Parsed before taking mu_, so that a large frame does not hold up the
  // stream's other frames: until the window hears of the read below, nothing
  // else touches incoming_ or starts a read.
  absl::Status intake;
  std::unique_ptr<Frame> frame = ok ? TakeFrame(&intake) : nullptr;
  Frame* to_process = nullptr;
  std::unique_lock<std::mutex> lock(mu_);
  window_.ReadDone(ok);
  if (window_.finishing()) return;  // a read that was pending when the stream ended
  if (ok) to_process = QueueLocked(std::move(frame), intake);
  const bool finish = AdvanceLocked();
  lock.unlock();
  if (to_process != nullptr) {
    // The frame is not done, so the stream cannot finish before this call.
    service_->Process(&to_process->work);
  } else if (finish) {
    Finish(final_status_);
  }
}

void ExpressionService::StreamCall::OnWriteDone(bool ok) {
  std::unique_lock<std::mutex> lock(mu_);
  window_.WriteDone(ok);  // a failed write: the client is gone, answer nothing more
  frames_.pop_front();
  const bool finish = AdvanceLocked();
  lock.unlock();
  if (finish) Finish(final_status_);
}

void ExpressionService::StreamCall::OnDone() {
  service_->UnregisterStream(this);
  if (logged_) Log();
  Unref();
}

void ExpressionService::StreamCall::Log() {
  AccessLogEntry entry;
  entry.method = kAccessLogClassifyStream;
  entry.peer = std::move(peer_);
  std::lock_guard<std::mutex> lock(mu_);
  entry.code = static_cast<absl::StatusCode>(final_status_.error_code());
  const std::string message = final_status_.error_message();  // a copy: entry views it
  entry.message = message;
  entry.faces = faces_read_;
  entry.frames = frames_read_;
  entry.frame_errors = frame_errors_;
  entry.queue = timing_.queue_wait;
  entry.model = timing_.compute;
  entry.total = absl::Now() - start_;
  entry.model_version = last_version_;
  service_->access_log()->Record(entry);
}

void ExpressionService::StreamCall::BeginDrain() {
  std::unique_lock<std::mutex> lock(mu_);
  window_.BeginDrain();
  const bool finish = AdvanceLocked();
  lock.unlock();
  if (finish) Finish(final_status_);
}

std::unique_ptr<ExpressionService::StreamCall::Frame> ExpressionService::StreamCall::TakeFrame(
    absl::Status* intake) {
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
  frame->work.attention = frame->request.options().attention();
  frame->work.deadline = deadline_;
  frame->work.cancelled = &cancelled_;
  Frame* raw = frame.get();
  frame->work.done = [this, raw](absl::Status status) { OnFrameDone(raw, status); };
  return frame;
}

ExpressionService::StreamCall::Frame* ExpressionService::StreamCall::QueueLocked(
    std::unique_ptr<Frame> frame, const absl::Status& intake) {
  Frame* raw = frame.get();
  frames_.push_back(std::move(frame));
  ++frames_read_;
  faces_read_ += raw->request.faces_size();
  if (window_.refuses_frames()) {
    SetError(&raw->result, absl::UnavailableError(kDrainingMessage));
  } else if (!intake.ok()) {
    SetError(&raw->result, intake);  // answered in its turn; the stream goes on
  } else if (raw->request.faces_size() > 0) {
    raw->seq = window_.AddFrame(raw->wire_bytes);
    return raw;
  }
  // Answered at once (a frame with no faces has no predictions, as the API
  // promises).
  if (raw->result.status().code() == 0) raw->result.set_model_version(service_->model_version());
  raw->request = ClassifyFrame();
  raw->seq = window_.AddAnsweredFrame();
  return nullptr;
}

void ExpressionService::StreamCall::OnFrameDone(Frame* frame, const absl::Status& status) {
  // The frame is not done yet, so nothing else touches its result.
  if (status.ok()) {
    frame->work.Answer(frame->result.mutable_predictions());
    frame->result.set_model_version(frame->work.generation->version);
    service_->metrics_->AddFaces(frame->request.faces_size());
  } else {
    SetError(&frame->result, status);
  }
  // Its faces are classified (or refused): free the images now rather than
  // when the result has been written.
  frame->request = ClassifyFrame();
  std::unique_lock<std::mutex> lock(mu_);
  window_.Answered(frame->seq);
  const bool finish = AdvanceLocked();
  lock.unlock();
  if (finish) Finish(final_status_);
}

bool ExpressionService::StreamCall::AdvanceLocked() {
  for (;;) {
    switch (window_.NextStep()) {
      case StreamWindow::Step::kWait:
        return false;
      case StreamWindow::Step::kWrite:
        WriteOrDropHeadLocked(/*drop=*/false);
        break;
      case StreamWindow::Step::kDiscard:
        WriteOrDropHeadLocked(/*drop=*/true);
        break;
      case StreamWindow::Step::kRead:
        StartRead(&incoming_);
        break;
      case StreamWindow::Step::kFinish:
        final_status_ = FinalStatusLocked();
        return true;
    }
  }
}

void ExpressionService::StreamCall::WriteOrDropHeadLocked(bool drop) {
  Frame* head = frames_.front().get();
  if (!drop) {
    if (absl::Status serialized = SerializeTo(head->result, &head->wire_result); !serialized.ok()) {
      SetError(&head->result, serialized);
      head->wire_result.Clear();
      SerializeTo(head->result, &head->wire_result).IgnoreError();  // a short status only
    }
  }
  const absl::StatusCode code = drop ? absl::StatusCode::kCancelled
                                     : static_cast<absl::StatusCode>(head->result.status().code());
  service_->metrics_->OnRequestDone(Rpc::kClassifyStream, code, absl::Now() - head->received);
  if (code != absl::StatusCode::kOk) ++frame_errors_;
  if (!head->result.model_version().empty()) last_version_ = head->result.model_version();
  timing_.queue_wait = std::max(timing_.queue_wait, head->work.timing.queue_wait);
  timing_.compute += head->work.timing.compute;
  if (drop) {
    frames_.pop_front();
  } else {
    StartWrite(&head->wire_result);
  }
}

grpc::Status ExpressionService::StreamCall::FinalStatusLocked() const {
  if (window_.ending() == StreamWindow::Ending::kClientGone ||
      cancelled_.load(std::memory_order_relaxed)) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled the stream");
  }
  if (window_.ending() == StreamWindow::Ending::kServerDrained) {
    return ToGrpcStatus(absl::UnavailableError(kDrainingMessage));
  }
  return grpc::Status::OK;
}

}  // namespace fer
