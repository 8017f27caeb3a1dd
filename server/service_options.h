// What the gRPC service (server/service.h) can be told, with one default each,
// and the check of those options. Kept apart from the service so that a binary
// or a test can build and judge options without gRPC, a model or a Batcher.
#ifndef FER_SERVER_SERVICE_OPTIONS_H_
#define FER_SERVER_SERVICE_OPTIONS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/batcher.h"
#include "server/preprocess.h"

namespace fer {

class AccessLog;  // server/access_log.h

// Upper bounds of the service's own options: guards against typos.
inline constexpr int kMaxStreamWindow = 4096;
inline constexpr int kMaxPreprocessThreads = 1024;

struct ServiceOptions {
  // Batching policy (server/batcher.h).
  BatcherOptions batching;
  // Image limits. input_size and gray are taken from the model, whatever is
  // set here.
  PreprocessOptions preprocess;
  // Most faces in one Classify request or stream frame. >= 1, and at most
  // batching.max_queue_faces so that a request can fit in the queue.
  int max_faces_per_request = 64;
  // Most ClassifyStream streams open at once. >= 1.
  int max_concurrent_streams = 256;
  // Frames a stream reads ahead of its written answers. In [1, kMaxStreamWindow].
  int stream_window = 8;
  // Preprocessing threads; 0: one per CPU this process may use (cgroup-aware).
  // In [0, kMaxPreprocessThreads].
  int preprocess_threads = 0;
  // Start() runs one batch on each instance before serving, so that the first
  // requests do not pay for lazy initialisation (CUDA context, kernels).
  bool warmup = true;
  // Where the service's front ends log their calls (server/access_log.h);
  // null: no access log. Not owned: it must outlive the service.
  AccessLog* access_log = nullptr;
};

// The batch size a server uses unless told otherwise: small on a CPU, where a
// batch's time grows with its size (so large batches only add latency and
// make short deadlines unmeetable), larger on a GPU, where it barely does.
inline constexpr int kCpuMaxBatchSize = 8;
inline constexpr int kGpuMaxBatchSize = 32;
// kGpuMaxBatchSize for "cuda" and "cuda:N", kCpuMaxBatchSize otherwise.
int DefaultMaxBatchSize(absl::string_view device);

// Returns OK, or INVALID_ARGUMENT naming the first option that cannot be used
// (the batching options included, as ValidateBatcherOptions judges them), so
// that a server can refuse bad flags before it spends time loading a model.
// preprocess.input_size and gray are not checked: ExpressionService::Create
// takes them from the model. Starts no thread and needs no model.
absl::Status ValidateServiceOptions(const ServiceOptions& options);

}  // namespace fer

#endif  // FER_SERVER_SERVICE_OPTIONS_H_
