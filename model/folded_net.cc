#include "model/folded_net.h"

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
  for (const torch::nn::Sequential* layer : {&net->layer1, &net->layer2, &net->layer3, &net->layer4}) {
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
  auto move = [&](torch::Tensor& t) {
    t = t.to(device, dtype);
    if (t.dim() == 4) t = t.contiguous(torch::MemoryFormat::ChannelsLast);
  };
  auto move_conv = [&](Conv& c) {
    move(c.weight);
    move(c.bias);
  };
  move_conv(stem_);
  for (Block& b : blocks_) {
    move_conv(b.conv1);
    move_conv(b.conv2);
    if (b.downsample) move_conv(*b.downsample);
    if (b.llam) move_conv(*b.llam);
  }
  move(fc_weight_);
  move(fc_bias_);
}

torch::Tensor FoldedNet::Conv::Apply(const torch::Tensor& x) const {
  return torch::conv2d(x, weight, bias, stride, padding);
}

torch::Tensor FoldedNet::Forward(const torch::Tensor& x) const {
  torch::Tensor out = stem_.Apply(x).relu_();
  out = torch::max_pool2d(out, /*kernel_size=*/3, /*stride=*/2, /*padding=*/1);
  for (const Block& b : blocks_) {
    torch::Tensor identity = b.downsample ? b.downsample->Apply(out) : out;
    torch::Tensor current = b.conv2.Apply(b.conv1.Apply(out).relu_());
    current = current.add_(identity).relu_();
    if (b.llam) {
      current = current.mul_(b.llam->Apply(torch::cat({identity, current}, 1)).sigmoid_());
    }
    out = current;
  }
  out = torch::adaptive_avg_pool2d(out, {1, 1}).flatten(1);
  return torch::linear(out, fc_weight_, fc_bias_);
}

}  // namespace fer
