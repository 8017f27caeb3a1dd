#include "model/core/lla_net.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace fer {
namespace {

constexpr int64_t kDefaultParameters = 23715783;   // The specification's count.
constexpr int64_t kResNet18Parameters = 11180103;  // Same names without llam.

std::set<std::string> StateDictNames(const LlaNet& net) {
  std::set<std::string> names;
  for (const auto& p : net->named_parameters()) names.insert(p.key());
  for (const auto& b : net->named_buffers()) names.insert(b.key());
  return names;
}

std::set<std::string> SpecNames(bool attention) {
  std::set<std::string> names = {"conv1.weight", "fc.weight", "fc.bias"};
  auto add_bn = [&](const std::string& prefix) {
    for (const char* s : {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}) {
      names.insert(prefix + "." + s);
    }
  };
  add_bn("bn1");
  for (int layer = 1; layer <= 4; ++layer) {
    for (int block = 0; block < 2; ++block) {
      const std::string p = "layer" + std::to_string(layer) + "." + std::to_string(block);
      names.insert(p + ".conv1.weight");
      names.insert(p + ".conv2.weight");
      add_bn(p + ".bn1");
      add_bn(p + ".bn2");
      if (attention) {
        names.insert(p + ".llam.conv.weight");
        names.insert(p + ".llam.conv.bias");
      }
      if (layer > 1 && block == 0) {
        names.insert(p + ".downsample.0.weight");
        add_bn(p + ".downsample.1");
      }
    }
  }
  return names;
}

TEST(LlaNetTest, DefaultModelHasTheSpecifiedParameterCount) {
  EXPECT_EQ(LlaNet()->ParameterCount(), kDefaultParameters);
}

TEST(LlaNetTest, AttentionOffIsPlainResNet18) {
  EXPECT_EQ(LlaNet(ArchOptions{7, 3, false})->ParameterCount(), kResNet18Parameters);
}

TEST(LlaNetTest, KernelOneAttentionHasANinthOfTheAttentionWeights) {
  const int64_t attention_biases = 2 * (64 + 128 + 256 + 512);
  const int64_t attention_weights_3x3 = kDefaultParameters - kResNet18Parameters - attention_biases;
  EXPECT_EQ(LlaNet(ArchOptions{7, 1, true})->ParameterCount(),
            kResNet18Parameters + attention_weights_3x3 / 9 + attention_biases);
}

TEST(LlaNetTest, StateDictNamesAreTorchvisionStylePlusLlam) {
  EXPECT_EQ(StateDictNames(LlaNet()), SpecNames(true));
  EXPECT_EQ(StateDictNames(LlaNet(ArchOptions{7, 3, false})), SpecNames(false));
}

TEST(LlaNetTest, ShapesThroughEveryBlockIncludingDownsamplingOnes) {
  LlaNet net;
  net->eval();
  torch::NoGradGuard no_grad;
  torch::Tensor x = torch::randn({2, 3, 112, 112});
  torch::Tensor out = torch::relu(net->bn1->forward(net->conv1->forward(x)));
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 64, 112, 112})) << "stem keeps the size";
  out = torch::max_pool2d(out, 3, 2, 1);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 64, 56, 56}));
  const std::vector<std::vector<int64_t>> expected = {
      {2, 64, 56, 56},  {2, 64, 56, 56},  {2, 128, 28, 28}, {2, 128, 28, 28},
      {2, 256, 14, 14}, {2, 256, 14, 14}, {2, 512, 7, 7},   {2, 512, 7, 7}};
  size_t i = 0;
  for (auto* layer : {&net->layer1, &net->layer2, &net->layer3, &net->layer4}) {
    for (const auto& block : (*layer)->children()) {
      out = std::dynamic_pointer_cast<BasicBlockImpl>(block)->forward(out);
      EXPECT_EQ(out.sizes(), expected[i]) << "block " << i;
      ++i;
    }
  }
  EXPECT_EQ(i, expected.size());
  EXPECT_EQ(net->forward(x).sizes(), (std::vector<int64_t>{2, 7}));
  EXPECT_EQ(LlaNet(ArchOptions{5, 3, true})->forward(x).sizes(), (std::vector<int64_t>{2, 5}));
}

TEST(LlaNetTest, LlamGatesTheCurrentFeaturesWithASigmoidOfBothInputs) {
  torch::manual_seed(1);
  Llam llam(8, 3);
  torch::Tensor previous = torch::randn({1, 8, 5, 5});
  torch::Tensor current = torch::randn({1, 8, 5, 5});
  torch::Tensor expected =
      current * torch::sigmoid(torch::conv2d(torch::cat({previous, current}, 1), llam->conv->weight,
                                             llam->conv->bias, 1, 1));
  EXPECT_TRUE(torch::allclose(llam->forward(previous, current), expected, 1e-6, 1e-6));
  EXPECT_EQ(llam->conv->weight.sizes(), (std::vector<int64_t>{8, 16, 3, 3}));
}

TEST(LlaNetTest, DownsamplingBlockFeedsTheShortcutProjectionToLlam) {
  torch::manual_seed(2);
  BasicBlock block(64, 128, 2, ArchOptions());
  block->eval();
  torch::NoGradGuard no_grad;
  torch::Tensor x = torch::randn({1, 64, 16, 16});
  torch::Tensor identity = block->downsample->forward(x);
  torch::Tensor current = torch::relu(block->bn2->forward(block->conv2->forward(torch::relu(
                                          block->bn1->forward(block->conv1->forward(x))))) +
                                      identity);
  EXPECT_TRUE(torch::allclose(block->forward(x), block->llam->forward(identity, current)));
}

// The served map recomputed from the model specification (docs/model.md:
// M = sigmoid(f([F_pre : F_cur])), f a 3x3 convolution with bias) with plain
// torch ops on the network's own intermediate features: the input of layer4.1
// comes from the modules, the last block and its LLAM are written out here.
torch::Tensor ReferenceAttention(LlaNet& net, const torch::Tensor& x) {
  torch::Tensor out = torch::relu(net->bn1->forward(net->conv1->forward(x)));
  out = torch::max_pool2d(out, 3, 2, 1);
  out = net->layer3->forward(net->layer2->forward(net->layer1->forward(out)));
  out = net->layer4[0]->as<BasicBlockImpl>()->forward(out);
  auto* last = net->layer4[1]->as<BasicBlockImpl>();
  const torch::Tensor f_pre = out;  // Shapes match: the block input itself.
  torch::Tensor f_cur = torch::relu(last->bn1->forward(last->conv1->forward(out)));
  f_cur = torch::relu(last->bn2->forward(last->conv2->forward(f_cur)) + f_pre);
  torch::Tensor m = torch::sigmoid(torch::conv2d(torch::cat({f_pre, f_cur}, 1),
                                                 last->llam->conv->weight, last->llam->conv->bias,
                                                 /*stride=*/1, /*padding=*/1));
  return m.mean(1);
}

TEST(LlaNetTest, ServedAttentionIsTheChannelMeanOfTheLastLlamMapFromTheSpec) {
  torch::manual_seed(4);
  LlaNet net;
  net->eval();
  torch::NoGradGuard no_grad;
  for (int size : {32, 40}) {
    SCOPED_TRACE(size);
    torch::Tensor x = torch::randn({2, 3, size, size});
    torch::Tensor map;
    torch::Tensor logits = net->ForwardWithAttention(x, &map);
    const int64_t side = (size + 15) / 16;  // 2 for 32, 3 for 40 (rounding up).
    ASSERT_EQ(map.sizes(), (std::vector<int64_t>{2, side, side}));
    EXPECT_EQ(map.scalar_type(), torch::kFloat32);
    EXPECT_LT((map - ReferenceAttention(net, x)).abs().max().item<double>(), 1e-6);
    EXPECT_GE(map.min().item<double>(), 0.0);
    EXPECT_LE(map.max().item<double>(), 1.0);
    // Asking for the map does not change the logits.
    EXPECT_TRUE(torch::equal(logits, net->forward(x)));
  }
}

TEST(LlaNetTest, AttentionMapOfANetworkWithoutLlamIsAnError) {
  LlaNet plain(ArchOptions{7, 3, false});
  torch::NoGradGuard no_grad;
  torch::Tensor map;
  EXPECT_THROW(plain->ForwardWithAttention(torch::randn({1, 3, 32, 32}), &map), c10::Error);
  EXPECT_EQ(plain->ForwardWithAttention(torch::randn({1, 3, 32, 32}), nullptr).size(1), 7);
}

TEST(LlaNetTest, GradientsReachEveryAttentionConvolution) {
  torch::manual_seed(3);
  LlaNet net;
  torch::Tensor loss =
      torch::cross_entropy_loss(net->forward(torch::randn({2, 3, 64, 64})), torch::tensor({1, 4}));
  loss.backward();
  int checked = 0;
  for (const auto& p : net->named_parameters()) {
    if (p.key().find("llam.conv") == std::string::npos) continue;
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
    ++checked;
  }
  EXPECT_EQ(checked, 16);  // weight and bias of 8 modules.
}

TEST(LlaNetTest, NormalizeFacesScalesRepeatsGreyAndStandardises) {
  ModelMeta meta = DefaultMeta();
  meta.mean = {0.5f, 0.5f, 0.5f};
  meta.std = {0.25f, 0.25f, 0.25f};
  torch::Tensor faces = torch::tensor({0, 255, 51, 204}, torch::kUInt8).view({1, 2, 2, 1});
  torch::Tensor x = NormalizeFaces(faces, meta);
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{1, 3, 2, 2}));
  torch::Tensor expected = torch::tensor({-2.0f, 2.0f, -1.2f, 1.2f}).view({1, 1, 2, 2});
  for (int c = 0; c < 3; ++c) {
    EXPECT_TRUE(torch::allclose(x.narrow(1, c, 1), expected, 1e-5, 1e-5)) << "channel " << c;
  }
}

TEST(LlaNetTest, OnlyInferenceNormalisationAppliesTheMetaBlur) {
  ModelMeta meta = DefaultMeta();
  torch::Tensor pixels = torch::zeros({1, 1, 16, 16});
  pixels.index_put_({0, 0, 8, 8}, 255.0f);  // A point: any blur spreads it.
  meta.input_blur = 0;
  EXPECT_TRUE(torch::equal(NormalizePixelsForInference(pixels, meta),
                           NormalizePixelsForTraining(pixels, meta)));
  meta.input_blur = 0.1;
  torch::Tensor served = NormalizePixelsForInference(pixels, meta);
  torch::Tensor trained = NormalizePixelsForTraining(pixels, meta);
  EXPECT_FALSE(torch::allclose(served, trained, 1e-3, 1e-3));
  torch::Tensor blurred = NormalizePixelsForTraining(GaussianBlur(pixels, 0.1 * 16), meta);
  EXPECT_TRUE(torch::allclose(served, blurred, 1e-6, 1e-6));
}

}  // namespace
}  // namespace fer
