#include "server/service_options.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace fer {

int DefaultMaxBatchSize(absl::string_view device) {
  return absl::StartsWith(device, "cuda") ? kGpuMaxBatchSize : kCpuMaxBatchSize;
}

absl::Status ValidateServiceOptions(const ServiceOptions& options) {
  PreprocessOptions limits = options.preprocess;
  limits.input_size = PreprocessOptions().input_size;  // the model's, checked by Create
  if (absl::Status status = ValidatePreprocessOptions(limits); !status.ok()) return status;
  if (absl::Status status = ValidateBatcherOptions(options.batching); !status.ok()) return status;
  if (options.max_faces_per_request < 1 ||
      options.max_faces_per_request > options.batching.max_queue_faces) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_faces_per_request must be in [1, max_queue_faces = ", options.batching.max_queue_faces,
        "], got ", options.max_faces_per_request));
  }
  if (options.max_concurrent_streams < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_concurrent_streams must be >= 1, got ", options.max_concurrent_streams));
  }
  if (options.stream_window < 1 || options.stream_window > kMaxStreamWindow) {
    return absl::InvalidArgumentError(absl::StrCat(
        "stream_window must be in [1, ", kMaxStreamWindow, "], got ", options.stream_window));
  }
  if (options.preprocess_threads < 0 || options.preprocess_threads > kMaxPreprocessThreads) {
    return absl::InvalidArgumentError(absl::StrCat("preprocess_threads must be in [0, ",
                                                   kMaxPreprocessThreads, "], got ",
                                                   options.preprocess_threads));
  }
  return absl::OkStatus();
}

}  // namespace fer
