#include "model/core/engine.h"

#include <c10/core/impl/VirtualGuardImpl.h>
#include <dlfcn.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "model/common/cpu_count.h"
#include "model/core/device.h"
#include "model/core/folded_net.h"
#include "model/core/lla_net.h"
#include "model/core/weights.h"

namespace fer {
namespace {

absl::StatusOr<torch::ScalarType> ParsePrecision(const std::string& precision, bool cuda) {
  if (precision == "fp32") return torch::kFloat32;
  if (precision == "bf16") return torch::kBFloat16;
  if (precision == "fp16") {
    if (!cuda) return absl::InvalidArgumentError("precision fp16 needs a CUDA device; use bf16");
    return torch::kFloat16;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown precision \"", precision, "\" (fp32, bf16 or fp16)"));
}

// The part of an Engine its Runners share: folded weights on the device.
struct SharedModel {
  ModelMeta meta;
  int64_t num_parameters = 0;  // of the unfolded network
  FoldedNet net;
  torch::Device device{torch::kCPU};
  torch::ScalarType dtype = torch::kFloat32;

  // 8-bit faces (N x H x W x C, on device) to float probabilities (N x classes);
  // when attention is not null, also the faces' attention maps (N x h x w fp32).
  torch::Tensor Probabilities(const torch::Tensor& faces, torch::Tensor* attention) const {
    torch::Tensor x = NormalizeFaces(faces, meta).to(dtype);
    return torch::softmax(net.Forward(x, attention).to(torch::kFloat32), 1);
  }
};

// The checks every runner makes before a batch.
absl::Status CheckBatch(const SharedModel& model, int n, const float* attention) {
  if (n < 1) return absl::InvalidArgumentError("a batch needs at least one face");
  if (attention != nullptr && !model.net.HasAttention()) {
    return absl::InvalidArgumentError("attention maps asked of a model without attention modules");
  }
  return absl::OkStatus();
}

class CpuRunner : public Runner {
 public:
  explicit CpuRunner(std::shared_ptr<const SharedModel> model) : model_(std::move(model)) {}

  using Runner::Classify;
  absl::Status Classify(const uint8_t* faces, int n, float* probabilities,
                        float* attention) override {
    if (auto s = CheckBatch(*model_, n, attention); !s.ok()) return s;
    try {
      c10::InferenceMode inference;
      const int64_t size = model_->meta.input_size;
      torch::Tensor input =
          torch::from_blob(const_cast<uint8_t*>(faces),
                           {n, size, size, model_->meta.input_channels()}, torch::kUInt8);
      torch::Tensor maps;
      torch::Tensor probs =
          model_->Probabilities(input, attention != nullptr ? &maps : nullptr).contiguous();
      std::memcpy(probabilities, probs.data_ptr<float>(), probs.numel() * sizeof(float));
      if (attention != nullptr) {
        maps = maps.contiguous();
        std::memcpy(attention, maps.data_ptr<float>(), maps.numel() * sizeof(float));
      }
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("inference failed: ", e.what()));
    }
    return absl::OkStatus();
  }

 private:
  std::shared_ptr<const SharedModel> model_;
};

// Copies through pinned host buffers on the runner's own stream, so a batch's
// upload, kernels and download queue behind each other without blocking other
// runners, and the host waits once per batch.
class CudaRunner : public Runner {
 public:
  explicit CudaRunner(std::shared_ptr<const SharedModel> model)
      : model_(std::move(model)),
        stream_(c10::impl::VirtualGuardImpl(c10::DeviceType::CUDA)
                    .getStreamFromGlobalPool(model_->device, /*isHighPriority=*/false)) {}

  using Runner::Classify;
  absl::Status Classify(const uint8_t* faces, int n, float* probabilities,
                        float* attention) override {
    if (auto s = CheckBatch(*model_, n, attention); !s.ok()) return s;
    try {
      c10::InferenceMode inference;
      c10::StreamGuard guard(stream_);
      const int64_t size = model_->meta.input_size;
      const int64_t channels = model_->meta.input_channels();
      Reserve(n, attention != nullptr);
      torch::Tensor host_in = host_in_.narrow(0, 0, n);
      std::memcpy(host_in.data_ptr<uint8_t>(), faces, n * size * size * channels);
      torch::Tensor device_in = host_in.to(model_->device, /*non_blocking=*/true);
      torch::Tensor maps;
      torch::Tensor probs = model_->Probabilities(device_in, attention ? &maps : nullptr);
      torch::Tensor host_out = host_out_.narrow(0, 0, n);
      host_out.copy_(probs, /*non_blocking=*/true);
      torch::Tensor host_maps;
      if (attention != nullptr) {
        host_maps = host_maps_.narrow(0, 0, n);
        host_maps.copy_(maps, /*non_blocking=*/true);
      }
      stream_.synchronize();
      std::memcpy(probabilities, host_out.data_ptr<float>(), host_out.numel() * sizeof(float));
      if (attention != nullptr) {
        std::memcpy(attention, host_maps.data_ptr<float>(), host_maps.numel() * sizeof(float));
      }
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("inference failed: ", e.what()));
    }
    return absl::OkStatus();
  }

 private:
  // Grows the pinned buffers to hold n faces (in powers of two, never
  // shrinking), and n attention maps when maps is set (allocated on first use,
  // so runners never asked for maps hold no buffer for them).
  void Reserve(int64_t n, bool maps) {
    auto pinned = torch::TensorOptions().pinned_memory(true).dtype(torch::kFloat32);
    if (!host_in_.defined() || host_in_.size(0) < n) {
      int64_t capacity = 1;
      while (capacity < n) capacity *= 2;
      const int64_t size = model_->meta.input_size;
      host_in_ = torch::empty({capacity, size, size, model_->meta.input_channels()},
                              pinned.dtype(torch::kUInt8));
      host_out_ = torch::empty({capacity, model_->meta.arch.num_classes}, pinned);
      host_maps_ = torch::Tensor();
    }
    if (maps && !host_maps_.defined()) {
      // The map's side, as the network computes it (Engine::attention_height).
      int64_t side = model_->meta.input_size;
      for (int halvings = 0; halvings < 4; ++halvings) side = (side + 1) / 2;
      host_maps_ = torch::empty({host_in_.size(0), side, side}, pinned);
    }
  }

  std::shared_ptr<const SharedModel> model_;
  c10::Stream stream_;
  torch::Tensor host_in_, host_out_, host_maps_;
};

class TorchEngine : public Engine {
 public:
  TorchEngine(std::shared_ptr<SharedModel> model, std::string device, std::string precision)
      : model_(std::move(model)), device_(std::move(device)), precision_(std::move(precision)) {}

  std::unique_ptr<Runner> NewRunner() override {
    if (model_->device.is_cuda()) return std::make_unique<CudaRunner>(model_);
    return std::make_unique<CpuRunner>(model_);
  }
  const ModelMeta& meta() const override { return model_->meta; }
  int64_t num_parameters() const override { return model_->num_parameters; }
  const std::string& device() const override { return device_; }
  const std::string& precision() const override { return precision_; }

  int64_t DeviceMemoryBytes() const override {
    if (!model_->device.is_cuda()) return 0;
    // Looked up at run time so that the CPU build needs no CUDA headers; the
    // runtime library is loaded by LibTorch's CUDA backend.
    using MemGetInfo = int (*)(size_t*, size_t*);
    static auto mem_get_info = reinterpret_cast<MemGetInfo>(dlsym(RTLD_DEFAULT, "cudaMemGetInfo"));
    if (mem_get_info == nullptr) return 0;
    c10::impl::VirtualGuardImpl impl(c10::DeviceType::CUDA);
    c10::Device previous = impl.exchangeDevice(model_->device);
    size_t free = 0, total = 0;
    const int rc = mem_get_info(&free, &total);
    impl.setDevice(previous);
    return rc == 0 ? static_cast<int64_t>(total - free) : 0;
  }

 private:
  std::shared_ptr<const SharedModel> model_;
  std::string device_;
  std::string precision_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> Engine::Load(const std::string& path,
                                                     const EngineOptions& options) {
  auto device = ResolveDevice(options.device);
  if (!device.ok()) return device.status();
  const bool cuda = device->rfind("cuda", 0) == 0;
  auto dtype = ParsePrecision(options.precision, cuda);
  if (!dtype.ok()) return dtype.status();
  if (options.threads < 0) return absl::InvalidArgumentError("threads must be >= 0");
  // Process-wide in LibTorch. 0 is not left to LibTorch's default, which
  // ignores the affinity mask and the cgroup CPU quota (it chose one thread on
  // a two-CPU machine).
  torch::set_num_threads(options.threads > 0 ? options.threads : UsableCpuCount());

  auto loaded = LoadWeightFile(path);
  if (!loaded.ok()) return loaded.status();
  try {
    auto model = std::make_shared<SharedModel>();
    model->meta = loaded->meta;
    // Before folding, which merges each BatchNorm's parameters into its convolution.
    model->num_parameters = loaded->net->ParameterCount();
    loaded->net->eval();
    model->net = FoldedNet::Fold(loaded->net);
    model->device = torch::Device(*device);
    model->dtype = *dtype;
    model->net.To(model->device, *dtype);
    if (cuda) at::globalContext().setBenchmarkCuDNN(true);
    return std::unique_ptr<Engine>(new TorchEngine(std::move(model), *device, options.precision));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("cannot prepare ", path, ": ", e.what()));
  }
}

}  // namespace fer
