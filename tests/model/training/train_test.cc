#include "model/training/train.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <string>

#include "absl/strings/str_format.h"
#include "model/core/image_ops.h"
#include "model/core/weights.h"
#include "tests/support/temp_dir.h"

namespace fer {
namespace {

namespace fs = std::filesystem;

constexpr int kInputSize = 28;  // Small, so that training steps take seconds; 28 * 8 / 7 = 32.

// Faces whose label is visible in their pixels (a bright band at a label-
// dependent row), so that a few steps can learn something.
PackedDataset SyntheticFaces(int count, int size, uint64_t seed) {
  PackedDataset data(size, 1);
  std::mt19937 rng(seed);
  std::vector<uint8_t> face(size * size);
  for (int i = 0; i < count; ++i) {
    const int label = i % 7;
    for (auto& v : face) v = static_cast<uint8_t>(rng() % 64);
    const int row = label * size / 7;
    for (int x = 0; x < size; ++x) face[row * size + x] = 250;
    data.Add(face.data(), label);
  }
  return data;
}

ModelMeta SmallMeta() {
  ModelMeta meta = DefaultMeta();
  meta.input_size = kInputSize;
  return meta;
}

class TrainTest : public ::testing::Test {
 protected:
  void SetUp() override { torch::set_num_threads(2); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  const test_support::TempDir scratch_{"fer_train_test_"};
  const fs::path dir_ = scratch_.path();
};

TEST_F(TrainTest, TenCropGivesTenFacesPerFaceInTorchvisionOrder) {
  const int n = 2, size = 48;
  torch::Tensor faces = torch::randint(0, 256, {n, size, size, 1}, torch::kUInt8);
  torch::Tensor crops = TenCropFaces(faces, kInputSize);
  ASSERT_EQ(crops.sizes(), (std::vector<int64_t>{10 * n, 1, kInputSize, kInputSize}));
  const int resized = TenCropResizeSize(kInputSize);
  namespace F = torch::nn::functional;
  torch::Tensor full = F::interpolate(faces.permute({0, 3, 1, 2}).to(torch::kFloat32),
                                      F::InterpolateFuncOptions()
                                          .size(std::vector<int64_t>{resized, resized})
                                          .mode(torch::kBilinear)
                                          .align_corners(false));
  const auto boxes = TenCropBoxes(resized, kInputSize);
  for (int face = 0; face < n; ++face) {
    for (int c = 0; c < 10; ++c) {
      torch::Tensor expected =
          full[face].narrow(1, boxes[c].y, kInputSize).narrow(2, boxes[c].x, kInputSize);
      if (boxes[c].mirrored) expected = expected.flip({2});
      EXPECT_TRUE(torch::equal(crops[face * 10 + c], expected)) << "face " << face << " crop " << c;
    }
  }
  EXPECT_EQ(boxes[0].x, 0);
  EXPECT_EQ(boxes[3].x, resized - kInputSize);
  EXPECT_TRUE(boxes[5].mirrored && !boxes[4].mirrored);
}

TEST_F(TrainTest, UnaugmentedCropEqualsTheTenCropCentreAndMirrorsFlipIt) {
  torch::Tensor faces = torch::randint(0, 256, {1, 48, 48, 1}, torch::kUInt8);
  Augmentation centre{{0.0f}, {0.0f}, {0}};
  Augmentation mirrored{{0.0f}, {0.0f}, {1}};
  torch::Tensor a = SampleFaces(faces, kInputSize, &centre);
  torch::Tensor ten = TenCropFaces(faces, kInputSize);
  EXPECT_LT((a[0] - ten[4]).abs().max().item<float>(), 1e-3);
  EXPECT_LT((SampleFaces(faces, kInputSize, &mirrored)[0] - ten[9]).abs().max().item<float>(),
            1e-3);
}

TEST_F(TrainTest, OneTrainingStepLowersTheLossOnAFixedBatch) {
  torch::manual_seed(1);
  ModelMeta meta = SmallMeta();
  LlaNet net(meta.arch);
  PackedDataset data = SyntheticFaces(16, kInputSize, 2);
  torch::Tensor faces = torch::from_blob(const_cast<uint8_t*>(data.face(0)),
                                         {16, kInputSize, kInputSize, 1}, torch::kUInt8);
  std::vector<int64_t> labels_vector;
  for (size_t i = 0; i < data.size(); ++i) labels_vector.push_back(data.label(i));
  torch::Tensor labels = torch::tensor(labels_vector);
  torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9));
  auto loss_of = [&] {
    return torch::cross_entropy_loss(
        net->forward(NormalizePixelsForTraining(SampleFaces(faces, kInputSize, nullptr), meta)),
        labels);
  };
  net->train();
  torch::Tensor before = loss_of();
  sgd.zero_grad();
  before.backward();
  sgd.step();
  torch::Tensor after = loss_of();
  EXPECT_LT(after.item<double>(), before.item<double>());
}

TEST_F(TrainTest, ResumingFromTheCheckpointGivesTheUninterruptedWeights) {
  PackedDataset train = SyntheticFaces(16, kInputSize, 3);
  PackedDataset val = SyntheticFaces(7, kInputSize, 4);
  TrainOptions options;
  options.batch_size = 8;
  options.device = "cpu";
  options.loader_threads = 2;
  options.progress = false;
  options.epochs = 2;

  torch::manual_seed(9);
  LlaNet whole(SmallMeta().arch);
  options.out = Path("whole.pt");
  auto results = Train(whole, SmallMeta(), train, val, options);
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_EQ(results->size(), 2u);

  torch::manual_seed(9);
  LlaNet first(SmallMeta().arch);
  options.out = Path("split.pt");
  options.checkpoint = Path("checkpoint.pt");
  options.epochs = 1;
  auto first_results = Train(first, SmallMeta(), train, val, options);
  ASSERT_TRUE(first_results.ok()) << first_results.status();
  ASSERT_TRUE(fs::exists(options.checkpoint));
  torch::manual_seed(123);  // A fresh process: different initial weights, replaced by the resume.
  LlaNet resumed(SmallMeta().arch);
  options.epochs = 2;
  testing::internal::CaptureStderr();
  auto resumed_results = Train(resumed, SmallMeta(), train, val, options);
  const std::string resume_log = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(resumed_results.ok()) << resumed_results.status();
  // The best score so far comes back as it was saved (it decides whether a
  // resumed epoch replaces options.out).
  EXPECT_THAT(resume_log, testing::HasSubstr(
                              absl::StrFormat("(best score %.4f)", (*first_results)[0].val.score)));
  ASSERT_EQ(resumed_results->size(), 1u) << "only the second epoch runs";
  EXPECT_EQ((*resumed_results)[0].epoch, 1);

  auto a = whole->named_parameters();
  auto b = resumed->named_parameters();
  for (const auto& item : a) {
    EXPECT_TRUE(torch::equal(item.value().contiguous(), b[item.key()].contiguous())) << item.key();
  }
  EXPECT_EQ((*results)[1].train_loss, (*resumed_results)[0].train_loss);
}

TEST_F(TrainTest, TheBestEpochIsWrittenWithItsValidationMetrics) {
  PackedDataset train = SyntheticFaces(16, kInputSize, 5);
  PackedDataset val = SyntheticFaces(7, kInputSize, 6);
  TrainOptions options;
  options.batch_size = 8;
  options.device = "cpu";
  options.progress = false;
  options.epochs = 1;
  options.out = Path("best.pt");
  options.log_csv = Path("log.csv");
  torch::manual_seed(2);
  ASSERT_TRUE(Train(LlaNet(SmallMeta().arch), SmallMeta(), train, val, options).ok());
  auto loaded = LoadWeightFile(options.out);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->meta.metrics.count("val_score"), 1u);
  EXPECT_EQ(loaded->meta.input_size, kInputSize);
  EXPECT_TRUE(fs::file_size(options.log_csv) > 0);
}

}  // namespace
}  // namespace fer
