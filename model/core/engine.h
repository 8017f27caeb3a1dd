// The inference engine: a weight file loaded for serving. At load time the
// network is put in eval mode, every BatchNorm is folded into the convolution
// before it, weights are cast to the serving precision and laid out
// channels-last on the chosen device. Torch-free interface: the server and the
// benchmarks hand it 8-bit faces and get probabilities back.
#ifndef FER_MODEL_ENGINE_H_
#define FER_MODEL_ENGINE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/core/model_meta.h"

namespace fer {

struct EngineOptions {
  // auto | cpu | cuda | cuda:N. auto: cuda:0 when present, the fastest
  // device for a library caller (fer-model bench, the benchmarks). fer-server
  // defaults to cpu instead (server/server_main.cc): a replica's device is what
  // its deployment says, not whatever its node happens to have.
  std::string device = "auto";
  std::string precision = "fp32";  // fp32 | bf16 | fp16 (fp16 on CUDA only).
  // CPU intra-op threads of LibTorch (process-wide); 0: UsableCpuCount(), the
  // CPUs this process may use (affinity mask and cgroup CPU quota).
  int threads = 0;
};

// One instance's private state for running batches: on CUDA its own stream and
// pinned host staging buffers, so that several runners share one copy of the
// weights and overlap their copies and kernels. A Runner is used by one thread
// at a time; distinct Runners of an Engine may run concurrently.
class Runner {
 public:
  virtual ~Runner() = default;

  // faces: n consecutive 8-bit faces of face_bytes() each (input_size x
  // input_size x input_channels, channels interleaved). Writes n x num_classes
  // softmax probabilities to probabilities. n must be >= 1.
  // attention: nullptr, or room for n x Engine::attention_size() floats, which
  // receive each face's attention map from the same forward pass (row-major,
  // attention_height() x attention_width(), values in [0, 1], face-crop
  // orientation: row 0 is the top of the crop; docs/model.md, "Attention
  // maps"). Asking for maps does not change the probabilities. A model without
  // attention modules (attention_size() == 0) answers InvalidArgument to a
  // non-null attention.
  virtual absl::Status Classify(const uint8_t* faces, int n, float* probabilities,
                                float* attention) = 0;

  // Classify without attention maps.
  absl::Status Classify(const uint8_t* faces, int n, float* probabilities) {
    return Classify(faces, n, probabilities, nullptr);
  }
};

class Engine {
 public:
  // Loads and prepares the model. Errors name the file and the problem.
  static absl::StatusOr<std::unique_ptr<Engine>> Load(const std::string& path,
                                                      const EngineOptions& options);
  virtual ~Engine() = default;

  virtual std::unique_ptr<Runner> NewRunner() = 0;

  virtual const ModelMeta& meta() const = 0;
  virtual const std::string& device() const = 0;     // "cpu" or "cuda:N".
  virtual const std::string& precision() const = 0;  // as resolved.
  int num_classes() const { return meta().arch.num_classes; }
  // Trainable parameters of the network as defined (LlaNet::ParameterCount:
  // 23,715,783 for the default 7-class LLA-Net), counted at load before
  // BatchNorm folding, so it does not change with folding or precision.
  virtual int64_t num_parameters() const = 0;
  size_t face_bytes() const {
    return static_cast<size_t>(meta().input_size) * meta().input_size * meta().input_channels();
  }
  // Shape of one face's attention map (Runner::Classify): the grid of the last
  // stage, input_size / 16 rounded up per side (7 x 7 for 112 x 112 faces), or
  // 0 x 0 when the model has no attention modules.
  int attention_height() const { return AttentionSide(); }
  int attention_width() const { return AttentionSide(); }
  size_t attention_size() const {
    return static_cast<size_t>(attention_height()) * attention_width();
  }

  // Bytes of device memory the process holds through LibTorch's allocator;
  // 0 on the CPU.
  virtual int64_t DeviceMemoryBytes() const = 0;

 private:
  // The stem keeps the size; the max-pool and the first convolution of stages
  // 2-4 (3x3, stride 2, padding 1) each halve it, rounding up.
  int AttentionSide() const {
    if (!meta().arch.attention) return 0;
    int side = meta().input_size;
    for (int halvings = 0; halvings < 4; ++halvings) side = (side + 1) / 2;
    return side;
  }
};

}  // namespace fer

#endif  // FER_MODEL_ENGINE_H_
