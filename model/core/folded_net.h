// LLA-Net prepared for inference: each BatchNorm folded into the convolution
// before it (w' = w * g / sqrt(v + eps), b' = beta - m * g / sqrt(v + eps)), so a
// forward pass is convolutions, ReLUs, the attention gates and the head only.
// Internal to model/ and its tests; the server sees model/core/engine.h.
#ifndef FER_MODEL_FOLDED_NET_H_
#define FER_MODEL_FOLDED_NET_H_

#include <torch/torch.h>

#include <optional>
#include <vector>

#include "model/core/lla_net.h"

namespace fer {

class FoldedNet {
 public:
  // Folds a network's current weights and BatchNorm statistics (eval semantics).
  static FoldedNet Fold(LlaNet net);

  // Moves and casts every tensor; convolution weights take dtype, in
  // channels-last; the fully connected head stays fp32.
  void To(const torch::Device& device, torch::ScalarType dtype);

  // x: N x 3 x H x W normalised input in the convolutions' dtype and device.
  // Returns N x num_classes fp32 logits. At bf16/fp16 the convolutions run at
  // that precision; each attention gate (sigmoid and product) and the head
  // (pooling and the fully connected layer) run in fp32.
  // When attention is not null, the same pass also stores the served attention
  // map there (LlaNetImpl::ForwardWithAttention: the mean over channels of the
  // last LLAM's M), N x H/16 x W/16 (rounded up) fp32 in [0, 1], reduced in
  // fp32 from the fp32 sigmoid of the gate. Requires HasAttention() then.
  torch::Tensor Forward(const torch::Tensor& x, torch::Tensor* attention = nullptr) const;

  // Whether the network has LLAMs (and so an attention map to give).
  bool HasAttention() const { return !blocks_.empty() && blocks_.back().llam.has_value(); }

 private:
  struct Conv {
    torch::Tensor weight, bias;
    int64_t stride = 1, padding = 0;
    torch::Tensor Apply(const torch::Tensor& x) const;
  };
  struct Block {
    Conv conv1, conv2;
    std::optional<Conv> downsample, llam;
  };

  // current (*) sigmoid(logits), in place when fp32; computed in fp32 and
  // rounded back to current's dtype otherwise. When map is not null, stores
  // the fp32 mean over channels of sigmoid(logits) there (N x H x W).
  static torch::Tensor Gate(const torch::Tensor& current, const torch::Tensor& logits,
                            torch::Tensor* map);
  static Conv FoldConvBn(const torch::nn::Conv2d& conv, const torch::nn::BatchNorm2d& bn);

  Conv stem_;
  std::vector<Block> blocks_;
  torch::Tensor fc_weight_, fc_bias_;
};

}  // namespace fer

#endif  // FER_MODEL_FOLDED_NET_H_
