// The model an ExpressionService serves: its generations (an Engine with one
// Runner per batcher instance and its version), their warm-up, and Reload,
// which swaps a new generation in while calls admitted under the old one
// finish on it. See "Versions and reload" in service.h.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/service.h"
#include "server/service_work.h"

namespace fer {
namespace {

// Faces of the warm-up batch on a CPU: one is enough to build the kernels'
// state, and a full batch of a 112x112 model costs seconds there. On a GPU the
// warm-up runs a full batch (max_batch_size faces), which also sizes the
// allocator's pools for the largest batch.
constexpr int kCpuWarmupFaces = 1;
// Mid-grey: the warm-up faces' pixel value (any value works).
constexpr uint8_t kWarmupPixel = 128;

}  // namespace

std::shared_ptr<ExpressionService::Generation> ExpressionService::NewGeneration(
    std::shared_ptr<Engine> engine) const {
  auto generation = std::make_shared<Generation>();
  generation->version = engine->meta().version;
  for (size_t i = 0; i < instances_.size(); ++i) generation->runners.push_back(engine->NewRunner());
  generation->engine = std::move(engine);
  return generation;
}

std::shared_ptr<const ExpressionService::Generation> ExpressionService::CurrentGeneration() const {
  std::lock_guard<std::mutex> lock(generation_mu_);
  return generation_;
}

std::string ExpressionService::model_version() const { return CurrentGeneration()->version; }

absl::Status ExpressionService::WarmUp(const Generation& generation, size_t index, int faces) {
  // Buffers of its own: the instance's are its worker's, busy while a reload
  // warms up.
  std::vector<uint8_t> inputs(faces * face_bytes_, kWarmupPixel);
  std::vector<float> outputs(faces * num_classes_);
  Runner* runner = generation.runners[index].get();
  // Twice: the first run pays for lazy initialisation, the second is what a
  // batch of this size costs, and seeds the batcher's estimate.
  for (int run = 0; run < 2; ++run) {
    const absl::Time begin = absl::Now();
    if (absl::Status status = runner->Classify(inputs.data(), faces, outputs.data());
        !status.ok()) {
      return absl::Status(status.code(), absl::StrCat("warm-up batch on instance ", index,
                                                      " failed: ", status.message()));
    }
    if (run == 1) batcher_->RecordBatchTime(faces, absl::Now() - begin);
  }
  // A model that answers NaN (finite weights can still overflow) would serve
  // NaN probabilities to every client: refuse it here.
  if (!std::all_of(outputs.begin(), outputs.end(), [](float p) { return std::isfinite(p); })) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the model answers NaN or infinite probabilities in the warm-up batch on instance ", index,
        "; its weights are broken (overflowing or diverged)"));
  }
  return absl::OkStatus();
}

absl::Status ExpressionService::WarmUpAll(const Generation& generation) {
  if (!options_.warmup) return absl::OkStatus();
  const int faces = gpu_ ? options_.batching.max_batch_size : kCpuWarmupFaces;
  for (size_t i = 0; i < instances_.size(); ++i) {
    if (absl::Status status = WarmUp(generation, i, faces); !status.ok()) return status;
  }
  if (gpu_) metrics_->SetGpuMemoryBytes(generation.engine->DeviceMemoryBytes());
  return absl::OkStatus();
}

absl::Status ExpressionService::Reload(absl::StatusOr<std::unique_ptr<Engine>> loaded) {
  std::lock_guard<std::mutex> lock(reload_mu_);
  absl::Status status = loaded.status();
  if (status.ok()) status = SwapIn(std::shared_ptr<Engine>(*std::move(loaded)));
  metrics_->OnModelReload(status.ok());
  if (status.ok()) metrics_->SetModelVersion(model_version());
  return status;
}

absl::Status ExpressionService::SwapIn(std::shared_ptr<Engine> engine) {
  if (state_.load() != State::kServing) {
    return absl::FailedPreconditionError("the service is not serving (starting or draining)");
  }
  if (engine->face_bytes() != face_bytes_ || engine->num_classes() != num_classes_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the new model takes ", engine->meta().input_size, "x", engine->meta().input_size, " ",
        engine->meta().color, " faces and gives ", engine->num_classes(),
        " classes, unlike the served one; changing that needs a restart"));
  }
  std::shared_ptr<const Generation> next = NewGeneration(std::move(engine));
  if (absl::Status status = WarmUpAll(*next); !status.ok()) return status;
  // The old generation goes when the last call admitted under it is answered.
  std::lock_guard<std::mutex> lock(generation_mu_);
  generation_ = std::move(next);
  return absl::OkStatus();
}

}  // namespace fer
