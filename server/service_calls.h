// Internal to the service: the reactors of its two raw methods, on gRPC's
// callback API. A UnaryCall answers one Classify call; a StreamCall carries
// one ClassifyStream, its window of frames kept by a StreamWindow. Both hand
// their faces to ExpressionService::Process as a Work
// (server/service_work.h) and turn the outputs into predictions
// (server/postprocess.h).
#ifndef FER_SERVER_SERVICE_CALLS_H_
#define FER_SERVER_SERVICE_CALLS_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "fer/v1/expression.pb.h"
#include "server/access_log.h"
#include "server/service.h"
#include "server/service_work.h"
#include "server/stream_window.h"

namespace fer {

// Classify: one reactor per call, deleted by gRPC's OnDone. The constructor
// refuses the call, or starts its work; the work's completion finishes it.
class ExpressionService::UnaryCall final : public grpc::ServerUnaryReactor {
 public:
  UnaryCall(ExpressionService* service, grpc::CallbackServerContext* context,
            const grpc::ByteBuffer* request, grpc::ByteBuffer* response);

  void OnCancel() override { cancelled_.store(true, std::memory_order_relaxed); }
  void OnDone() override { delete this; }

 private:
  void OnWorkDone(absl::Status status);
  // The call's access log line, if it was sampled.
  void Log(const absl::Status& status);

  ExpressionService* const service_;
  grpc::ByteBuffer* const response_;
  const absl::Time start_;
  std::atomic<bool> cancelled_{false};
  bool logged_ = false;               // sampled for the access log
  std::string peer_;                  // when logged_
  fer::v1::ClassifyRequest request_;  // parsed from the wire bytes; work_.faces points into it
  Work work_;
};

// ClassifyStream: one reactor per stream. window_ and every member below mu_
// are guarded by it. gRPC never runs OnReadDone or OnWriteDone inline in
// StartRead or StartWrite, so those are called with mu_ held. Finish is
// called without any lock, as a thread's last touch of the reactor: OnDone may
// run (even inline) and drop gRPC's reference at once. Drain holds a reference
// of its own while it reaches a stream found in the service's registry.
class ExpressionService::StreamCall final
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  StreamCall(ExpressionService* service, grpc::CallbackServerContext* context);
  ~StreamCall() override;  // out of line: Frame is complete only in service_calls.cc

  void OnCancel() override { cancelled_.store(true, std::memory_order_relaxed); }
  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone() override;

  // References: gRPC's (until OnDone), and Drain's while it reaches the stream.
  // The stream deletes itself when the last goes.
  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // From Drain: reads no more frames, and ends the stream with UNAVAILABLE
  // once the frames already read are answered.
  void BeginDrain();

 private:
  struct Frame;

  // The frame just read, parsed from incoming_, which it empties. *intake
  // says why it cannot be classified (malformed, too many faces or unknown
  // fields); its frame_id is then what the bytes held before the fault.
  std::unique_ptr<Frame> TakeFrame(absl::Status* intake);
  // Requires mu_. Queues frame for its answer in order; returns it when it is
  // to be classified (its bytes then count as in flight), null when it is
  // answered at once.
  Frame* QueueLocked(std::unique_ptr<Frame> frame, const absl::Status& intake);
  // From the frame's Work: a batcher worker, a preprocessing thread, or the
  // reading thread (a frame refused at admission).
  void OnFrameDone(Frame* frame, const absl::Status& status);
  // Requires mu_. Carries out the window's steps (writes the answers due,
  // starts the next read) and returns true, final_status_ set, when the
  // stream is to be finished now; the caller then calls Finish after
  // releasing mu_.
  bool AdvanceLocked();
  // Requires mu_. Starts writing frames_.front(), or drops it when the
  // client is gone; counts it as answered either way.
  void WriteOrDropHeadLocked(bool drop);
  // The status the stream ends with, from the window's ending.
  grpc::Status FinalStatusLocked() const;
  // The stream's access log line, if it was sampled; once it has ended.
  void Log();

  ExpressionService* const service_;
  const absl::Time deadline_;
  const absl::Time start_;
  std::atomic<bool> cancelled_{false};
  std::atomic<int> refs_{1};
  bool logged_ = false;  // sampled for the access log
  std::string peer_;     // when logged_

  std::mutex mu_;
  StreamWindow window_;
  grpc::ByteBuffer incoming_;  // the read buffer; gRPC's while a read is pending
  // The frames window_ holds, oldest first, in the same order.
  std::deque<std::unique_ptr<Frame>> frames_;
  grpc::Status final_status_;
  // For the access log: frames read and their faces; frames answered with an
  // error (or dropped), the longest queue wait and the summed model time over
  // the frames, and the model version of the last frame answered by one.
  int frames_read_ = 0;
  int faces_read_ = 0;
  int frame_errors_ = 0;
  JobTiming timing_;
  std::string last_version_;
};

}  // namespace fer

#endif  // FER_SERVER_SERVICE_CALLS_H_
