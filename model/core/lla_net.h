// LLA-Net: ResNet-18 whose BasicBlocks are each followed by a Lossless
// Attention Module (LLAM), as fixed by the model specification. Parameter
// names follow torchvision's resnet18 state_dict, plus `llam.conv.*`, so that
// weight files are interchangeable with a Python re-implementation.
#ifndef FER_MODEL_LLA_NET_H_
#define FER_MODEL_LLA_NET_H_

#include <torch/torch.h>

#include "model/core/model_meta.h"

namespace fer {

// LLAM: F' = F_cur * sigmoid(conv([F_pre : F_cur])), where conv maps 2C -> C
// channels with a k x k kernel (padding k/2, with bias, no BatchNorm). No
// channel reduction and no pooling: the attention map is C x H x W.
class LlamImpl : public torch::nn::Module {
 public:
  LlamImpl(int64_t channels, int64_t kernel_size);
  torch::Tensor forward(const torch::Tensor& previous, const torch::Tensor& current);
  // The attention map M = sigmoid(conv([previous : current])), C x H x W per
  // sample; forward(previous, current) is current * Map(previous, current).
  torch::Tensor Map(const torch::Tensor& previous, const torch::Tensor& current);

  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(Llam);

// A ResNet BasicBlock followed by LLAM. F_cur is the block's output (after the
// residual add and ReLU); F_pre is the block input, or the shortcut projection
// downsample(x) when the block changes shape.
class BasicBlockImpl : public torch::nn::Module {
 public:
  BasicBlockImpl(int64_t in_channels, int64_t channels, int64_t stride, const ArchOptions& arch);
  torch::Tensor forward(const torch::Tensor& x);
  // forward(x) that also stores in *attention (when not null) the mean over
  // channels of this block's LLAM map M: N x H x W fp32 in [0, 1]. Requires
  // the block to have an LLAM when attention is not null.
  torch::Tensor ForwardWithAttention(const torch::Tensor& x, torch::Tensor* attention);

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  torch::nn::Sequential downsample{nullptr};  // 1x1 conv stride 2 + BN, or null.
  Llam llam{nullptr};                         // Null when attention is off.
};
TORCH_MODULE(BasicBlock);

// The whole network for square crops (112x112 by default): a 7x7 stride-1 stem,
// 3x3/2 max-pool, four stages of two blocks, global average pool, fc -> logits.
class LlaNetImpl : public torch::nn::Module {
 public:
  explicit LlaNetImpl(const ArchOptions& arch = ArchOptions());
  // x: N x 3 x H x W normalised input. Returns N x num_classes logits.
  torch::Tensor forward(const torch::Tensor& x);
  // forward(x) that, when attention is not null, also stores the served
  // attention map of the same pass (docs/model.md, "Attention maps"): the mean
  // over channels of the last LLAM's M (layer4.1), N x ceil(H/16) x ceil(W/16)
  // fp32 in [0, 1]. Requires arch().attention when attention is not null.
  torch::Tensor ForwardWithAttention(const torch::Tensor& x, torch::Tensor* attention);

  const ArchOptions& arch() const { return arch_; }
  // Number of trainable parameters (23,715,783 for the default).
  int64_t ParameterCount() const;

  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr};
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr};
  torch::nn::Linear fc{nullptr};

 private:
  ArchOptions arch_;
};
TORCH_MODULE(LlaNet);

// Turns batches of 8-bit faces (N x H x W x C, C = 1 for gray3 or 3 for rgb) into
// the normalised N x 3 x H x W float input of the network, on the faces'
// device: x / 255, grey repeated on three channels, (x - mean) / std.
torch::Tensor NormalizeFaces(const torch::Tensor& faces_u8, const ModelMeta& meta);

// The same for float pixels in [0, 255], N x C x H x W (C = 1 or 3), as served:
// meta.input_blur > 0 low-passes the faces first (sigma = input_blur x width).
torch::Tensor NormalizePixelsForInference(const torch::Tensor& pixels, const ModelMeta& meta);

// The same as NormalizePixelsForInference without the blur: training faces are
// used as they are (the blur describes how served faces differ from them).
torch::Tensor NormalizePixelsForTraining(const torch::Tensor& pixels, const ModelMeta& meta);

// Gaussian blur of N x C x H x W float pixels, sigma in pixels, reflected borders.
torch::Tensor GaussianBlur(const torch::Tensor& pixels, double sigma);

}  // namespace fer

#endif  // FER_MODEL_LLA_NET_H_
