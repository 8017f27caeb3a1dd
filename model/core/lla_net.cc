#include "model/core/lla_net.h"

#include <algorithm>
#include <cmath>

namespace fer {
namespace {

constexpr int64_t kStemChannels = 64;
constexpr int64_t kStemKernel = 7;
constexpr int64_t kStageChannels[] = {64, 128, 256, 512};
constexpr int64_t kBlocksPerStage = 2;

torch::nn::Conv2d Conv(int64_t in, int64_t out, int64_t kernel, int64_t stride, bool bias) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(bias));
}

}  // namespace

LlamImpl::LlamImpl(int64_t channels, int64_t kernel_size) {
  TORCH_CHECK(kernel_size == 1 || kernel_size == 3, "attention kernel must be 1 or 3, got ",
              kernel_size);
  conv = register_module("conv", Conv(2 * channels, channels, kernel_size, 1, /*bias=*/true));
}

torch::Tensor LlamImpl::forward(const torch::Tensor& previous, const torch::Tensor& current) {
  return current * Map(previous, current);
}

torch::Tensor LlamImpl::Map(const torch::Tensor& previous, const torch::Tensor& current) {
  return torch::sigmoid(conv->forward(torch::cat({previous, current}, 1)));
}

BasicBlockImpl::BasicBlockImpl(int64_t in_channels, int64_t channels, int64_t stride,
                               const ArchOptions& arch) {
  conv1 = register_module("conv1", Conv(in_channels, channels, 3, stride, false));
  bn1 = register_module("bn1", torch::nn::BatchNorm2d(channels));
  conv2 = register_module("conv2", Conv(channels, channels, 3, 1, false));
  bn2 = register_module("bn2", torch::nn::BatchNorm2d(channels));
  if (stride != 1 || in_channels != channels) {
    downsample = register_module(
        "downsample", torch::nn::Sequential(Conv(in_channels, channels, 1, stride, false),
                                            torch::nn::BatchNorm2d(channels)));
  }
  if (arch.attention) llam = register_module("llam", Llam(channels, arch.attention_kernel));
}

torch::Tensor BasicBlockImpl::forward(const torch::Tensor& x) {
  return ForwardWithAttention(x, nullptr);
}

torch::Tensor BasicBlockImpl::ForwardWithAttention(const torch::Tensor& x,
                                                   torch::Tensor* attention) {
  TORCH_CHECK(attention == nullptr || llam, "attention map asked of a block without LLAM");
  torch::Tensor identity = downsample ? downsample->forward(x) : x;
  torch::Tensor out = torch::relu(bn1->forward(conv1->forward(x)));
  out = bn2->forward(conv2->forward(out));
  out = torch::relu(out + identity);
  if (!llam) return out;
  torch::Tensor map = llam->Map(identity, out);
  if (attention != nullptr) *attention = map.mean(1).to(torch::kFloat32);
  return out * map;
}

LlaNetImpl::LlaNetImpl(const ArchOptions& arch) : arch_(arch) {
  TORCH_CHECK(arch.num_classes >= 2, "num_classes must be at least 2, got ", arch.num_classes);
  conv1 = register_module("conv1", Conv(3, kStemChannels, kStemKernel, 1, false));
  bn1 = register_module("bn1", torch::nn::BatchNorm2d(kStemChannels));
  torch::nn::Sequential* layers[] = {&layer1, &layer2, &layer3, &layer4};
  int64_t in_channels = kStemChannels;
  for (int stage = 0; stage < 4; ++stage) {
    torch::nn::Sequential blocks;
    for (int b = 0; b < kBlocksPerStage; ++b) {
      const int64_t stride = (stage > 0 && b == 0) ? 2 : 1;
      blocks->push_back(BasicBlock(in_channels, kStageChannels[stage], stride, arch));
      in_channels = kStageChannels[stage];
    }
    *layers[stage] = register_module("layer" + std::to_string(stage + 1), blocks);
  }
  fc = register_module("fc", torch::nn::Linear(in_channels, arch.num_classes));

  // torchvision's initialisation: He (fan-out) for convolutions, BN at 1/0.
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* conv = module->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
    } else if (auto* bn = module->as<torch::nn::BatchNorm2d>()) {
      torch::nn::init::ones_(bn->weight);
      torch::nn::init::zeros_(bn->bias);
    }
  }
}

torch::Tensor LlaNetImpl::forward(const torch::Tensor& x) {
  return ForwardWithAttention(x, nullptr);
}

torch::Tensor LlaNetImpl::ForwardWithAttention(const torch::Tensor& x, torch::Tensor* attention) {
  TORCH_CHECK(attention == nullptr || arch_.attention,
              "attention map asked of a network without LLAM");
  torch::Tensor out = torch::relu(bn1->forward(conv1->forward(x)));
  out = torch::max_pool2d(out, /*kernel_size=*/3, /*stride=*/2, /*padding=*/1);
  out = layer3->forward(layer2->forward(layer1->forward(out)));
  // layer4 block by block: the served map is its last block's.
  const auto blocks = layer4->children();
  for (size_t i = 0; i < blocks.size(); ++i) {
    auto block = std::dynamic_pointer_cast<BasicBlockImpl>(blocks[i]);
    out = block->ForwardWithAttention(out, i + 1 == blocks.size() ? attention : nullptr);
  }
  out = torch::adaptive_avg_pool2d(out, {1, 1}).flatten(1);
  return fc->forward(out);
}

int64_t LlaNetImpl::ParameterCount() const {
  int64_t count = 0;
  for (const auto& p : parameters()) count += p.numel();
  return count;
}

torch::Tensor NormalizeFaces(const torch::Tensor& faces_u8, const ModelMeta& meta) {
  TORCH_CHECK(faces_u8.dim() == 4, "faces must be N x H x W x C");
  return NormalizePixelsForInference(faces_u8.permute({0, 3, 1, 2}).to(torch::kFloat32), meta);
}

torch::Tensor GaussianBlur(const torch::Tensor& pixels, double sigma) {
  const int64_t radius = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(3 * sigma)));
  const int64_t channels = pixels.size(1);
  auto options = torch::TensorOptions().dtype(pixels.scalar_type()).device(pixels.device());
  torch::Tensor offsets = torch::arange(-radius, radius + 1, options);
  torch::Tensor kernel = torch::exp(-offsets * offsets / (2 * sigma * sigma));
  kernel = kernel / kernel.sum();
  // Separable: a row pass and a column pass, each channel on its own.
  torch::Tensor row = kernel.view({1, 1, 1, -1}).expand({channels, 1, 1, -1}).contiguous();
  torch::Tensor column = kernel.view({1, 1, -1, 1}).expand({channels, 1, -1, 1}).contiguous();
  namespace F = torch::nn::functional;
  const int64_t pad = std::min(radius, std::min(pixels.size(2), pixels.size(3)) - 1);
  torch::Tensor x =
      F::pad(pixels.contiguous(), F::PadFuncOptions({pad, pad, pad, pad}).mode(torch::kReflect));
  if (pad < radius) {  // Tiny images: replicate beyond what reflection can give.
    x = F::pad(x, F::PadFuncOptions({radius - pad, radius - pad, radius - pad, radius - pad})
                      .mode(torch::kReplicate));
  }
  const std::vector<int64_t> ones = {1, 1}, zeros = {0, 0};
  x = torch::conv2d(x, row, torch::Tensor(), ones, c10::IntArrayRef(zeros), ones, channels);
  return torch::conv2d(x, column, torch::Tensor(), ones, c10::IntArrayRef(zeros), ones, channels);
}

torch::Tensor NormalizePixelsForInference(const torch::Tensor& pixels, const ModelMeta& meta) {
  TORCH_CHECK(pixels.dim() == 4, "pixels must be N x C x H x W");
  if (meta.input_blur > 0) {
    return NormalizePixelsForTraining(GaussianBlur(pixels, meta.input_blur * pixels.size(3)), meta);
  }
  return NormalizePixelsForTraining(pixels, meta);
}

torch::Tensor NormalizePixelsForTraining(const torch::Tensor& pixels, const ModelMeta& meta) {
  TORCH_CHECK(pixels.dim() == 4, "pixels must be N x C x H x W");
  auto options = torch::TensorOptions().dtype(torch::kFloat32).device(pixels.device());
  torch::Tensor x = pixels;
  if (x.size(1) == 1) x = x.expand({-1, 3, -1, -1});
  torch::Tensor mean = torch::tensor({meta.mean[0], meta.mean[1], meta.mean[2]}, options);
  torch::Tensor std = torch::tensor({meta.std[0], meta.std[1], meta.std[2]}, options);
  // (x / 255 - mean) / std as one multiply-add per pixel.
  torch::Tensor scale = (1.0 / (255.0 * std)).view({1, 3, 1, 1});
  torch::Tensor shift = (-mean / std).view({1, 3, 1, 1});
  return torch::addcmul(shift, x, scale).contiguous(torch::MemoryFormat::ChannelsLast);
}

}  // namespace fer
