#include "model/core/folded_net.h"

namespace fer {

FoldedNet::Conv FoldedNet::FoldConvBn(const torch::nn::Conv2d& conv,
                                      const torch::nn::BatchNorm2d& bn) {
  torch::NoGradGuard no_grad;
  const auto& options = bn->options;
  torch::Tensor scale = bn->weight / torch::sqrt(bn->running_var + options.eps());
  Conv folded;
  folded.weight = conv->weight * scale.view({-1, 1, 1, 1});
  folded.bias = bn->bias - bn->running_mean * scale;
  if (conv->bias.defined()) folded.bias = folded.bias + conv->bias * scale;
  folded.stride = conv->options.stride()->at(0);
  // Every convolution of the network pads by half its kernel.
  folded.padding = conv->weight.size(2) / 2;
  return folded;
}

FoldedNet FoldedNet::Fold(LlaNet net) {
  torch::NoGradGuard no_grad;
  FoldedNet folded;
  folded.stem_ = FoldConvBn(net->conv1, net->bn1);
  for (const torch::nn::Sequential* layer :
       {&net->layer1, &net->layer2, &net->layer3, &net->layer4}) {
    for (const auto& module : (*layer)->children()) {
      auto block = std::dynamic_pointer_cast<BasicBlockImpl>(module);
      TORCH_CHECK(block, "unexpected module in a stage");
      Block b;
      b.conv1 = FoldConvBn(block->conv1, block->bn1);
      b.conv2 = FoldConvBn(block->conv2, block->bn2);
      if (block->downsample) {
        auto conv = std::dynamic_pointer_cast<torch::nn::Conv2dImpl>(block->downsample->ptr(0));
        auto bn = std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(block->downsample->ptr(1));
        TORCH_CHECK(conv && bn, "downsample must be a convolution and a BatchNorm");
        b.downsample = FoldConvBn(torch::nn::Conv2d(conv), torch::nn::BatchNorm2d(bn));
      }
      if (block->llam) {
        const auto& conv = block->llam->conv;
        b.llam = Conv{conv->weight.detach().clone(), conv->bias.detach().clone(), 1,
                      conv->weight.size(2) / 2};
      }
      folded.blocks_.push_back(std::move(b));
    }
  }
  folded.fc_weight_ = net->fc->weight.detach().clone();
  folded.fc_bias_ = net->fc->bias.detach().clone();
  return folded;
}

void FoldedNet::To(const torch::Device& device, torch::ScalarType dtype) {
  auto move = [&](torch::Tensor& t, torch::ScalarType type) {
    t = t.to(device, type);
    if (t.dim() == 4) t = t.contiguous(torch::MemoryFormat::ChannelsLast);
  };
  auto move_conv = [&](Conv& c) {
    move(c.weight, dtype);
    move(c.bias, dtype);
  };
  move_conv(stem_);
  for (Block& b : blocks_) {
    move_conv(b.conv1);
    move_conv(b.conv2);
    if (b.downsample) move_conv(*b.downsample);
    if (b.llam) move_conv(*b.llam);
  }
  // The head stays fp32 whatever the precision (see Forward).
  move(fc_weight_, torch::kFloat32);
  move(fc_bias_, torch::kFloat32);
}

torch::Tensor FoldedNet::Conv::Apply(const torch::Tensor& x) const {
  return torch::conv2d(x, weight, bias, stride, padding);
}

torch::Tensor FoldedNet::Gate(const torch::Tensor& current, const torch::Tensor& logits,
                              torch::Tensor* map) {
  if (current.scalar_type() == torch::kFloat32) {
    torch::Tensor m = logits.sigmoid();
    if (map != nullptr) *map = m.mean(1);
    return current.mul_(m);
  }
  // At reduced precision the sigmoid and the product run in fp32 and only the
  // result is rounded: the attention map multiplies every activation, so its
  // rounding error would otherwise compound over the eight blocks.
  torch::Tensor m = logits.to(torch::kFloat32).sigmoid_();
  if (map != nullptr) *map = m.mean(1);
  return current.to(torch::kFloat32).mul_(m).to(current.scalar_type());
}

torch::Tensor FoldedNet::Forward(const torch::Tensor& x, torch::Tensor* attention) const {
  TORCH_CHECK(attention == nullptr || HasAttention(),
              "attention map asked of a network without LLAM");
  torch::Tensor out = stem_.Apply(x).relu_();
  out = torch::max_pool2d(out, /*kernel_size=*/3, /*stride=*/2, /*padding=*/1);
  for (const Block& b : blocks_) {
    torch::Tensor identity = b.downsample ? b.downsample->Apply(out) : out;
    torch::Tensor current = b.conv2.Apply(b.conv1.Apply(out).relu_());
    current = current.add_(identity).relu_();
    if (b.llam) {
      // The served map is the last block's (docs/model.md, "Attention maps").
      torch::Tensor* map = &b == &blocks_.back() ? attention : nullptr;
      current = Gate(current, b.llam->Apply(torch::cat({identity, current}, 1)), map);
    }
    out = current;
  }
  // The head in fp32: a 512-wide mean and a 512 -> 7 product cost nothing
  // next to the convolutions, and rounding the logits to bf16 would flip the
  // top label of faces whose two best classes are close.
  out = torch::adaptive_avg_pool2d(out.to(torch::kFloat32), {1, 1}).flatten(1);
  return torch::linear(out, fc_weight_, fc_bias_);
}

}  // namespace fer
