#include "model/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "model/cpu_count.h"
#include "model/folded_net.h"
#include "model/lla_net.h"
#include "model/packed_dataset.h"
#include "model/readers.h"
#include "model/weights.h"

namespace fer {
namespace {

namespace fs = std::filesystem;

// Small faces keep these tests fast on two CPU cores; the graph is the same.
constexpr int kTestInputSize = 32;

// A network whose BatchNorms hold non-trivial statistics, so that folding them
// is actually exercised.
LlaNet NetWithRandomStatistics(uint64_t seed) {
  torch::manual_seed(seed);
  LlaNet net;
  torch::NoGradGuard no_grad;
  for (auto& b : net->named_buffers()) {
    if (b.key().find("running_mean") != std::string::npos) b.value().normal_(0, 0.2);
    if (b.key().find("running_var") != std::string::npos) b.value().uniform_(0.5, 2.0);
  }
  for (auto& p : net->named_parameters()) {
    if (p.key().find("bn") != std::string::npos || p.key().find("downsample.1") != std::string::npos) {
      p.value().uniform_(0.5, 1.5);
    }
  }
  net->eval();
  return net;
}

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fer_engine_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(EngineTest, FoldedNetworkMatchesTheUnfoldedOneWithin1e4) {
  LlaNet net = NetWithRandomStatistics(11);
  FoldedNet folded = FoldedNet::Fold(net);
  torch::NoGradGuard no_grad;
  torch::Tensor x = torch::randn({4, 3, kTestInputSize, kTestInputSize});
  torch::Tensor expected = net->forward(x);
  torch::Tensor got = folded.Forward(x.contiguous(torch::MemoryFormat::ChannelsLast));
  EXPECT_LT((expected - got).abs().max().item<double>(), 1e-4);

  folded.To(torch::kCPU, torch::kFloat32);  // Channels-last weights give the same answer.
  got = folded.Forward(x.contiguous(torch::MemoryFormat::ChannelsLast));
  EXPECT_LT((expected - got).abs().max().item<double>(), 1e-4);
}

TEST_F(EngineTest, RunnerReturnsTheSoftmaxOfTheNetworkOnNormalisedFaces) {
  LlaNet net = NetWithRandomStatistics(12);
  ModelMeta meta = DefaultMeta();
  meta.input_size = kTestInputSize;
  meta.mean = {0.45f, 0.45f, 0.45f};
  meta.std = {0.2f, 0.2f, 0.2f};
  ASSERT_TRUE(SaveWeightFile(Path("w.pt"), net, meta).ok());

  auto engine = Engine::Load(Path("w.pt"), EngineOptions{"cpu", "fp32", 0});
  ASSERT_TRUE(engine.ok()) << engine.status();
  EXPECT_EQ((*engine)->device(), "cpu");
  EXPECT_EQ((*engine)->face_bytes(), static_cast<size_t>(kTestInputSize * kTestInputSize));
  const int n = 3;
  std::vector<uint8_t> faces((*engine)->face_bytes() * n);
  std::mt19937 rng(3);
  for (auto& v : faces) v = static_cast<uint8_t>(rng());
  std::vector<float> probs(n * 7);
  ASSERT_TRUE((*engine)->NewRunner()->Classify(faces.data(), n, probs.data()).ok());

  torch::NoGradGuard no_grad;
  torch::Tensor input = torch::from_blob(faces.data(), {n, kTestInputSize, kTestInputSize, 1},
                                         torch::kUInt8);
  torch::Tensor expected = torch::softmax(net->forward(NormalizeFaces(input, meta)), 1);
  torch::Tensor got = torch::from_blob(probs.data(), {n, 7});
  EXPECT_LT((expected - got).abs().max().item<double>(), 1e-5);
  EXPECT_NEAR(got.sum(1).min().item<double>(), 1.0, 1e-5);
}

TEST_F(EngineTest, CountsTheParametersOfTheNetworkBeforeFolding) {
  // The specification's count, as tests/model/lla_net_test.cc asserts it.
  constexpr int64_t kDefaultParameters = 23715783;
  LlaNet net;
  ASSERT_EQ(net->ParameterCount(), kDefaultParameters);
  ASSERT_TRUE(SaveWeightFile(Path("w.pt"), net, DefaultMeta()).ok());
  for (const char* precision : {"fp32", "bf16"}) {
    auto engine = Engine::Load(Path("w.pt"), EngineOptions{"cpu", precision, 0});
    ASSERT_TRUE(engine.ok()) << engine.status();
    EXPECT_EQ((*engine)->num_parameters(), kDefaultParameters) << precision;
  }

  // Another architecture: the count is the file's network's, not a constant.
  const ArchOptions plain{7, 3, /*attention=*/false};
  LlaNet resnet(plain);
  ASSERT_TRUE(SaveWeightFile(Path("plain.pt"), resnet, DefaultMeta(plain)).ok());
  auto engine = Engine::Load(Path("plain.pt"), EngineOptions{"cpu", "fp32", 0});
  ASSERT_TRUE(engine.ok()) << engine.status();
  EXPECT_EQ((*engine)->num_parameters(), resnet->ParameterCount());
  EXPECT_LT((*engine)->num_parameters(), kDefaultParameters);
}

TEST_F(EngineTest, BadOptionsAndFilesAreClearErrors) {
  ASSERT_TRUE(SaveWeightFile(Path("w.pt"), LlaNet(), DefaultMeta()).ok());
  EXPECT_EQ(Engine::Load(Path("w.pt"), EngineOptions{"gpu", "fp32", 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Engine::Load(Path("w.pt"), EngineOptions{"cpu", "fp64", 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Engine::Load(Path("w.pt"), EngineOptions{"cpu", "fp16", 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Engine::Load(Path("none.pt"), EngineOptions()).status().code(),
            absl::StatusCode::kNotFound);
  std::ofstream(Path("junk.pt")) << "not a weight file";
  EXPECT_EQ(Engine::Load(Path("junk.pt"), EngineOptions()).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto resolved = ResolveDevice("auto");
  ASSERT_TRUE(resolved.ok());
  EXPECT_TRUE(*resolved == "cpu" || resolved->rfind("cuda:", 0) == 0) << *resolved;
}

TEST_F(EngineTest, ThreadsZeroMeansTheCpusThisProcessMayUse) {
  ASSERT_TRUE(SaveWeightFile(Path("w.pt"), LlaNet(), DefaultMeta()).ok());
  std::printf("LibTorch's own default: %d intra-op threads; usable CPUs: %d\n",
              torch::get_num_threads(), UsableCpuCount());
  ASSERT_TRUE(Engine::Load(Path("w.pt"), EngineOptions{"cpu", "fp32", 3}).ok());
  EXPECT_EQ(torch::get_num_threads(), 3);
  ASSERT_TRUE(Engine::Load(Path("w.pt"), EngineOptions{"cpu", "fp32", 0}).ok());
  EXPECT_EQ(torch::get_num_threads(), UsableCpuCount());
}

// The bundled model must give the same top label in bf16 as in fp32 on at least
// 99% of real faces. Native bf16 needs AVX512-BF16 on the CPU; emulated bf16
// is correct but far too slow for a unit test.
TEST_F(EngineTest, Bf16AgreesWithFp32OnTheTopLabelOfRealFaces) {
  const fs::path parts = fs::path(FER_SOURCE_DIR) / "model/weights";
  const fs::path val = fs::path(FER_SHARED_DATA) / "fer2013/val";
  if (!fs::exists(parts / "lla-net-fer2013.pt.part0")) GTEST_SKIP() << "no bundled weights";
  if (!fs::exists(val)) GTEST_SKIP() << "real faces absent: " << val;
  if (!__builtin_cpu_supports("avx512bf16")) {
    GTEST_SKIP() << "this CPU has no native bf16 (AVX512-BF16); bf16 is emulated and too slow";
  }
  std::ofstream joined(Path("bundled.pt"), std::ios::binary);
  for (int i = 0; fs::exists(parts / ("lla-net-fer2013.pt.part" + std::to_string(i))); ++i) {
    std::ifstream part(parts / ("lla-net-fer2013.pt.part" + std::to_string(i)), std::ios::binary);
    joined << part.rdbuf();
  }
  joined.close();
  auto fp32 = Engine::Load(Path("bundled.pt"), EngineOptions{"cpu", "fp32", 0});
  auto bf16 = Engine::Load(Path("bundled.pt"), EngineOptions{"cpu", "bf16", 0});
  ASSERT_TRUE(fp32.ok()) << fp32.status();
  ASSERT_TRUE(bf16.ok()) << bf16.status();
  ReaderOptions options;
  options.face_size = (*fp32)->meta().input_size;
  auto read = ReadImageFolder(val.string(), options);
  ASSERT_TRUE(read.ok()) << read.status();
  constexpr size_t kFaces = 100;
  std::vector<size_t> picked;
  for (size_t i = 0; i < kFaces; ++i) picked.push_back(i * read->data.size() / kFaces);
  read->data.Select(picked);
  std::vector<float> a(kFaces * 7), b(kFaces * 7);
  auto runner32 = (*fp32)->NewRunner();
  auto runner16 = (*bf16)->NewRunner();
  for (size_t i = 0; i < kFaces; i += 10) {
    ASSERT_TRUE(runner32->Classify(read->data.face(i), 10, a.data() + i * 7).ok());
    ASSERT_TRUE(runner16->Classify(read->data.face(i), 10, b.data() + i * 7).ok());
  }
  int agree = 0;
  for (size_t i = 0; i < kFaces; ++i) {
    agree += std::max_element(a.begin() + i * 7, a.begin() + i * 7 + 7) - (a.begin() + i * 7) ==
             std::max_element(b.begin() + i * 7, b.begin() + i * 7 + 7) - (b.begin() + i * 7);
  }
  EXPECT_GE(agree, 99) << "bf16 top label agrees with fp32 on " << agree << " of " << kFaces;
}

}  // namespace
}  // namespace fer
