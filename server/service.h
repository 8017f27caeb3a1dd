// The gRPC service fer.v1.ExpressionClassifier, on gRPC's callback API: where
// requests become preprocessed faces in the batcher, and batch outputs become
// predictions. It owns the batcher, one model Runner per batcher instance and
// the preprocessing threads; the server binary (server_main.cc) owns the gRPC
// server, health, signals and metrics endpoint around it.
//
// Where the code is: service.cc (options, start, drain and the admit /
// preprocess / batch pipeline), service_calls.{h,cc} (the Classify and
// ClassifyStream reactors), stream_window.h (a stream's window of frames:
// what to read, write and when to finish) and postprocess.h (outputs into
// fer.v1.Prediction).
//
// Threads and what runs where:
//  - gRPC's callback threads run the method handlers and stream reactions.
//    They only check limits, admit work and schedule it: never decode, never
//    wait.
//  - A pool of preprocessing threads (ServiceOptions.preprocess_threads)
//    decodes and resizes every face of a request or frame, then submits them
//    to the batcher as one job.
//  - The batcher's workers (one per instance) run the model, then complete
//    the jobs: turn probabilities into predictions and hand the response to
//    gRPC (which never blocks in the callback API).
//
// Intake: Classify and ClassifyStream take their messages as wire bytes (raw
// methods; for clients nothing changes, and reflection still describes the
// typed API). Before protobuf parses a request or frame, a scan of its bytes
// (server/wire_scan.h) counts the faces and unknown fields the parse would
// make; malformed bytes, more than max_faces_per_request faces and a flood of
// unknown fields are refused there with INVALID_ARGUMENT, so that no message
// is parsed into more than its wire size W plus a small constant per face.
// Memory a call holds (W is at most the server's receive limit, 64 MiB by
// default):
//  - Classify: W of wire bytes (gRPC's, for the whole call) plus, once
//    admitted, at most W parsed plus its faces' model input; a refused call
//    holds W alone;
//  - ClassifyStream: the frame being read (W, and W more while it is parsed)
//    plus the frames being classified, which hold about their wire size
//    parsed: the stream reads no further frame while these hold 64 MiB or
//    more (nor while stream_window frames are unanswered). A frame that is
//    answered and waits to be written holds only its result.
// A malformed unary request ends INVALID_ARGUMENT ("malformed
// fer.v1.ClassifyRequest at byte N: why"); a malformed frame is answered in
// order with that status (frame_id: what the bytes held before the fault,
// else 0) and the stream goes on. Both are counted in fer_requests_total.
//
// Admission and limits, in the order they apply, each answered at once:
//  - not started yet or draining: UNAVAILABLE;
//  - malformed bytes, no faces (unary), more than max_faces_per_request faces,
//    more than kMaxUnknownFields unknown fields: INVALID_ARGUMENT;
//  - ClassifyOptions.attention on a model without attention modules (the
//    generation the call would run on): INVALID_ARGUMENT, since the request
//    asks for what this model cannot give (the client reads ModelInfo's
//    attention_height to know);
//  - the batcher's admission (server/batcher.h), which reserves queue room
//    for the faces while they are decoded: the queue is full by faces
//    (max_queue_faces, a ten-crop face counting ten) or by time
//    (max_queue_time), or the work ahead would make the call late:
//    RESOURCE_EXHAUSTED; the deadline is closer than the model needs for the
//    faces: DEADLINE_EXCEEDED; nothing is buffered beyond that capacity;
//  - a face that fails preprocessing: INVALID_ARGUMENT "face N: reason"
//    (N is its 0-based index in the request or frame);
//  - a call cancelled or past its deadline while queued, or whose batch would
//    finish after its deadline: its faces are dropped before compute and the
//    call ends CANCELLED or DEADLINE_EXCEEDED; one answered after its
//    deadline ends DEADLINE_EXCEEDED too.
// Every accepted call is answered exactly once.
//
// ClassifyStream: at most max_concurrent_streams streams at once (more are
// refused with RESOURCE_EXHAUSTED). Each stream reads at most stream_window
// frames ahead of the results it has written, and no further frame while the
// frames being classified hold 64 MiB of wire bytes: once either is reached it
// stops reading until a frame is answered, so a client that sends
// faster than the server classifies, or stops reading its answers, is held
// back by gRPC's flow control instead of being buffered. Frames are processed
// concurrently and answered in the order they were read. A frame that fails is
// answered with its status in FrameResult.status and the stream goes on.
//
// Drain: Drain() refuses new calls and frames, lets every stream answer the
// frames it has read and then ends it with UNAVAILABLE, and runs the accepted
// work through the batcher for at most the drain timeout (what is still queued
// then fails with UNAVAILABLE).
//
// Attention maps (ClassifyOptions.attention): a call or frame that asks gets
// one map per face (a ten-crop face its centre crop's, see AttentionMap in the
// proto); FaceRef::attention points where each face's map goes, null for the
// faces of calls that did not ask, and a batch without any face asking runs
// without maps.
//
// Versions and reload: the model is held as a generation (its Engine, one
// Runner per instance, its version), and every call or frame holds the
// generation it was admitted under until it is answered: its faces run on that
// generation's runners, and its answer carries that generation's version
// (ClassifyResponse.model_version, FrameResult.model_version). Reload builds
// and warms a new generation beside the serving one, then swaps it in; work
// admitted before the swap still finishes on the old one, which is freed when
// its last call is answered. A batch never runs faces of two generations in
// one model call: the batcher may form a batch that straddles a swap, and it
// then runs as one call per generation.
#ifndef FER_SERVER_SERVICE_H_
#define FER_SERVER_SERVICE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fer/v1/expression.grpc.pb.h"
#include "model/core/engine.h"
#include "server/batcher.h"
#include "server/preprocess.h"
#include "server/server_metrics.h"
#include "server/service_options.h"
#include "server/thread_pool.h"

namespace fer {

// Classify and ClassifyStream on raw bytes (see Intake above), GetModelInfo
// typed.
using ExpressionServiceBase = fer::v1::ExpressionClassifier::WithRawCallbackMethod_Classify<
    fer::v1::ExpressionClassifier::WithRawCallbackMethod_ClassifyStream<
        fer::v1::ExpressionClassifier::WithCallbackMethod_GetModelInfo<
            fer::v1::ExpressionClassifier::Service>>>;

class ExpressionService final : public ExpressionServiceBase {
 public:
  // Checks options (ValidateServiceOptions, then the image limits with the
  // model's input size), creates one Runner per instance and starts the
  // batcher and the preprocessing threads. engine and metrics must outlive the
  // service. Calls are answered UNAVAILABLE until Start().
  static absl::StatusOr<std::unique_ptr<ExpressionService>> Create(const ServiceOptions& options,
                                                                   Engine* engine,
                                                                   ServerMetrics* metrics);

  // Drain(absl::InfiniteDuration()) unless Drain already ran. The gRPC server
  // must have shut down before (no call may be in flight).
  ~ExpressionService() override;

  // Runs the warm-up batch on every instance (if options.warmup), then starts
  // serving. Returns the runner's error if warm-up fails. Call once.
  absl::Status Start();

  // Refuses new calls and frames with UNAVAILABLE from now on, lets open
  // streams answer the frames they have read and end, and returns once every
  // accepted call has been answered: work still queued when drain_timeout has
  // passed fails with UNAVAILABLE. Idempotent. Requires Start() to have
  // returned (or not to be running).
  void Drain(absl::Duration drain_timeout);

  // Whether the batcher looks wedged (Batcher::Stalled): work waits and no
  // batch has finished for longer than timeout. For the liveness probe.
  bool Stalled(absl::Duration timeout) const { return batcher_->Stalled(timeout); }

  // Whether calls are taken now (Start has returned and Drain has not begun):
  // the readiness of other front ends on this service (server/oip_service.h).
  bool Serving() const { return CheckServing().ok(); }

  // The outcome of ClassifyFaces: on OK one Prediction per face, in order,
  // and the version of the model that produced them (see "Versions and
  // reload" above); on error no predictions and an empty version.
  using FacesDone =
      std::function<void(absl::Status, google::protobuf::RepeatedPtrField<fer::v1::Prediction>,
                         std::string model_version)>;

  // The entry point for front ends other than ExpressionClassifier (the Open
  // Inference Protocol, server/oip_service.h): classifies *faces as Classify
  // would, through the same admission, limits, preprocessing, batcher and
  // drain, with Classify's status codes and messages. Calls done exactly
  // once, possibly before returning and from any thread; done must not block.
  // *faces and *cancelled (set it when the call is cancelled) must outlive
  // that call. Counts the faces classified; the caller counts the request in
  // fer_requests_total under its own rpc. *timing (optional; must outlive the
  // call of done) is set, before done is called, to where the faces' time
  // went in the batcher (zero if they never got there): for the access log.
  void ClassifyFaces(const google::protobuf::RepeatedPtrField<fer::v1::Image>* faces,
                     const fer::v1::ClassifyOptions& options, absl::Time deadline,
                     const std::atomic<bool>* cancelled, FacesDone done,
                     JobTiming* timing = nullptr);

  // Where front ends log their calls (ServiceOptions.access_log, see
  // server/access_log.h); null when there is no access log.
  AccessLog* access_log() const { return options_.access_log; }

  // Model reload (see "Versions and reload" above). loaded is the new model,
  // or the error loading it failed with. Creates its runners and warms them
  // up (as Start does, beside the model serving meanwhile), then swaps it in:
  // calls admitted from then on run on it. On any error the serving model
  // stays and the error is returned: loading failed, the service is not
  // serving (starting or draining: FAILED_PRECONDITION), the new model takes
  // other faces or gives other classes (FAILED_PRECONDITION: that needs a
  // restart), or its warm-up fails. Counts the outcome in
  // fer_model_reloads_total and points fer_model_info at the served version.
  // Thread-safe; reloads run one at a time. The engine is destroyed once no
  // call uses it any more (possibly on a gRPC or batcher thread).
  absl::Status Reload(absl::StatusOr<std::unique_ptr<Engine>> loaded);
  // The version of the model calls are admitted under now.
  std::string model_version() const;
  // What GetModelInfo answers: the model calls are admitted under now, and
  // the limits in force. For other front ends (server/http_api.h).
  fer::v1::ModelInfo DescribeModel() const;

  // ExpressionClassifier. Classify: request is a serialized ClassifyRequest,
  // response gets a serialized ClassifyResponse; ClassifyStream reads
  // serialized ClassifyFrames and writes serialized FrameResults.
  grpc::ServerUnaryReactor* Classify(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* ClassifyStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* context,
                                         const fer::v1::GetModelInfoRequest* request,
                                         fer::v1::ModelInfo* response) override;

 private:
  class UnaryCall;
  class StreamCall;
  struct Work;
  struct Generation;  // a loaded model, in service_work.h

  ExpressionService(const ServiceOptions& options, Engine* engine, ServerMetrics* metrics);

  // Takes work (whose faces, already within the face-count limit, options,
  // deadline, cancelled and done are set) through admission, preprocessing and
  // the batcher. work->done is called exactly once, possibly before Process
  // returns; on OK, work->outputs holds the probabilities of each model face.
  void Process(Work* work);
  // The rest of Process, on a preprocessing thread.
  void PreprocessAndSubmit(Work* work);
  // Reserves batch-queue room for `faces` model faces due by deadline, or says
  // why not (UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED,
  // INVALID_ARGUMENT). Each OK is followed by one SubmitReserved or Unreserve
  // of the batcher.
  absl::Status Admit(int faces, absl::Time deadline);
  // Runs the warm-up batch of `faces` faces on instance `index` of
  // generation and checks that its outputs are finite.
  absl::Status WarmUp(const Generation& generation, size_t index, int faces);
  // WarmUp on every instance (if options.warmup).
  absl::Status WarmUpAll(const Generation& generation);
  // Reload's work, under reload_mu_: checks, builds and warms the new
  // generation and swaps it in.
  absl::Status SwapIn(std::shared_ptr<Engine> engine);
  // A generation of engine with one fresh Runner per instance.
  std::shared_ptr<Generation> NewGeneration(std::shared_ptr<Engine> engine) const;
  // The generation calls are admitted under now; never null.
  std::shared_ptr<const Generation> CurrentGeneration() const;
  // The batcher's BatchRunner: runs each run of faces of one generation (see
  // FaceRef::context) as one model call.
  absl::Status RunBatch(int instance, absl::Span<const FaceRef> faces);
  // One model call of faces on instance `instance_index` of generation.
  absl::Status RunOnGeneration(const Generation& generation, int instance_index,
                               absl::Span<const FaceRef> faces);
  // Whether calls are accepted now; if not, the status to refuse them with.
  absl::Status CheckServing() const;

  // Streams register while open so that Drain can reach them. Register fails
  // with RESOURCE_EXHAUSTED beyond max_concurrent_streams, UNAVAILABLE when
  // not serving.
  absl::Status RegisterStream(StreamCall* stream);
  void UnregisterStream(StreamCall* stream);

  const ServiceOptions options_;
  ServerMetrics* const metrics_;
  // What every generation takes and gives (Reload refuses a model that
  // differs), and where the models run.
  const int num_classes_;
  const size_t face_bytes_;
  const bool gpu_;

  // Per instance: staging buffers for one batch of inputs and outputs;
  // touched only by that instance's worker.
  struct Instance {
    std::vector<uint8_t> inputs;
    std::vector<float> outputs;
    std::vector<float> attention;  // sized by the first batch that asks for maps
  };
  std::vector<Instance> instances_;

  // The serving generation; replaced whole by Reload.
  mutable std::mutex generation_mu_;
  std::shared_ptr<const Generation> generation_;  // guarded by generation_mu_
  std::mutex reload_mu_;                          // held by Reload throughout

  enum class State { kStarting, kServing, kDraining };
  std::atomic<State> state_{State::kStarting};

  std::mutex streams_mu_;
  std::set<StreamCall*> streams_;  // guarded by streams_mu_

  std::once_flag drained_;

  // Declared last: destroyed first, so their threads stop before the state
  // above goes. The pool is destroyed before the batcher, since its tasks
  // submit to it.
  std::unique_ptr<Batcher> batcher_;
  std::unique_ptr<ThreadPool> preprocess_pool_;
};

}  // namespace fer

#endif  // FER_SERVER_SERVICE_H_
