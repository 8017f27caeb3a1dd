// The post-processing of model outputs (server/postprocess.h): ten-crop mean,
// argmax and the fer.v1.Prediction a client receives.
#include "server/postprocess.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "model/core/attention_quality.h"

namespace fer {
namespace {

using ::testing::ElementsAre;
using ::testing::FloatEq;

const std::vector<std::string> kLabels = {"a", "b", "c"};

std::vector<float> Probabilities(const fer::v1::Prediction& prediction) {
  return {prediction.probabilities().begin(), prediction.probabilities().end()};
}

TEST(PostprocessTest, MeanOverCropsAveragesEachClassOverTheRows) {
  const std::vector<float> rows = {0.1f, 0.2f, 0.7f,   // crop 0
                                   0.3f, 0.4f, 0.3f};  // crop 1
  std::vector<float> mean(3, -1.0f);
  MeanOverCrops(rows, 2, absl::MakeSpan(mean));
  EXPECT_THAT(mean, ElementsAre(FloatEq(0.2f), FloatEq(0.3f), FloatEq(0.5f)));
}

TEST(PostprocessTest, MeanOverOneCropIsTheRowExactly) {
  const std::vector<float> row = {0.123456789f, 1e-30f, 0.876543211f};
  std::vector<float> mean(3);
  MeanOverCrops(row, 1, absl::MakeSpan(mean));
  EXPECT_EQ(mean, row);
}

TEST(PostprocessTest, MeanOverTenCropsSumsInOrderThenDividesOnce) {
  std::vector<float> rows;
  for (int crop = 0; crop < 10; ++crop) {
    rows.push_back(0.1f * crop);
    rows.push_back(1.0f - 0.1f * crop);
  }
  std::vector<float> mean(2);
  MeanOverCrops(rows, 10, absl::MakeSpan(mean));
  float first = 0, second = 0;
  for (int crop = 0; crop < 10; ++crop) {
    first += rows[2 * crop];
    second += rows[2 * crop + 1];
  }
  EXPECT_EQ(mean[0], first / 10.0f);
  EXPECT_EQ(mean[1], second / 10.0f);
}

TEST(PostprocessTest, ArgMaxIsTheFirstLargest) {
  EXPECT_EQ(ArgMax(std::vector<float>{0.1f, 0.7f, 0.2f}), 1);
  EXPECT_EQ(ArgMax(std::vector<float>{0.4f, 0.2f, 0.4f}), 0);  // a tie goes to the first
  EXPECT_EQ(ArgMax(std::vector<float>{0.2f, 0.4f, 0.4f}), 1);
  EXPECT_EQ(ArgMax(std::vector<float>{0.5f}), 0);
}

TEST(PostprocessTest, FillPredictionCarriesTheProbabilitiesTopClassNameAndConfidence) {
  fer::v1::Prediction prediction;
  FillPrediction(std::vector<float>{0.2f, 0.1f, 0.7f}, kLabels, &prediction);
  EXPECT_THAT(Probabilities(prediction), ElementsAre(0.2f, 0.1f, 0.7f));
  EXPECT_EQ(prediction.top_label(), 2u);
  EXPECT_EQ(prediction.top_label_name(), "c");
  EXPECT_EQ(prediction.confidence(), 0.7f);
}

TEST(PostprocessTest, ATopClassWithoutALabelHasNoName) {
  fer::v1::Prediction prediction;
  FillPrediction(std::vector<float>{0.1f, 0.9f}, {"only"}, &prediction);
  EXPECT_EQ(prediction.top_label(), 1u);
  EXPECT_TRUE(prediction.top_label_name().empty());
  EXPECT_EQ(prediction.confidence(), 0.9f);
}

TEST(PostprocessTest, FillPredictionsAnswersEveryFaceInOrder) {
  const std::vector<float> outputs = {0.6f, 0.3f, 0.1f,   // face 0
                                      0.1f, 0.1f, 0.8f};  // face 1
  google::protobuf::RepeatedPtrField<fer::v1::Prediction> predictions;
  FillPredictions(outputs, 2, 1, 3, kLabels, &predictions);
  ASSERT_EQ(predictions.size(), 2);
  EXPECT_THAT(Probabilities(predictions[0]), ElementsAre(0.6f, 0.3f, 0.1f));
  EXPECT_EQ(predictions[0].top_label_name(), "a");
  EXPECT_THAT(Probabilities(predictions[1]), ElementsAre(0.1f, 0.1f, 0.8f));
  EXPECT_EQ(predictions[1].top_label_name(), "c");
}

TEST(PostprocessTest, FillPredictionsAveragesEachFacesCrops) {
  // Two faces of two crops each: the top class comes from the mean, not from
  // any single crop.
  const std::vector<float> outputs = {
      0.9f, 0.1f, 0.0f, 0.0f, 0.4f, 0.6f,  // face 0: mean 0.45 0.25 0.30
      0.2f, 0.2f, 0.6f, 0.4f, 0.4f, 0.2f,  // face 1: mean 0.30 0.30 0.40
  };
  google::protobuf::RepeatedPtrField<fer::v1::Prediction> predictions;
  FillPredictions(outputs, 2, 2, 3, kLabels, &predictions);
  ASSERT_EQ(predictions.size(), 2);
  EXPECT_THAT(Probabilities(predictions[0]),
              ElementsAre(FloatEq(0.45f), FloatEq(0.25f), FloatEq(0.3f)));
  EXPECT_EQ(predictions[0].top_label(), 0u);
  EXPECT_THAT(predictions[0].confidence(), FloatEq(0.45f));
  EXPECT_THAT(Probabilities(predictions[1]),
              ElementsAre(FloatEq(0.3f), FloatEq(0.3f), FloatEq(0.4f)));
  EXPECT_EQ(predictions[1].top_label(), 2u);
}

TEST(PostprocessTest, FillAttentionMapCopiesTheMapAndItsCenterShare) {
  // 4 x 4: the central cells (rows and columns 1 and 2) hold 4 of the total 7.
  const std::vector<float> values = {0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 1.0f,  1.0f,  0.25f,
                                     0.25f, 1.0f,  1.0f,  0.25f, 0.25f, 0.25f, 0.25f, 0.25f};
  fer::v1::AttentionMap map;
  FillAttentionMap(values, 4, 4, &map);
  EXPECT_EQ(map.height(), 4u);
  EXPECT_EQ(map.width(), 4u);
  EXPECT_THAT(map.values(), ::testing::ElementsAreArray(values));
  EXPECT_FLOAT_EQ(map.center_share(), 4.0f / 7.0f);
  EXPECT_FLOAT_EQ(map.center_share(), AttentionCenterShare(values, 4, 4));
}

TEST(PostprocessTest, FillPredictionsGivesEachFaceItsOwnMapOnlyWhenThereAreMaps) {
  const std::vector<float> outputs = {0.2f, 0.3f, 0.5f, 0.6f, 0.3f, 0.1f};  // two faces, one crop
  const std::vector<float> maps = {0.1f, 0.2f, 0.3f, 0.4f,                  // face 0, 2 x 2
                                   0.5f, 0.6f, 0.7f, 0.8f};                 // face 1
  google::protobuf::RepeatedPtrField<fer::v1::Prediction> with_maps;
  FillPredictions(outputs, 2, 1, 3, kLabels, &with_maps, FaceAttention{maps, 2, 2});
  ASSERT_EQ(with_maps.size(), 2);
  for (int face = 0; face < 2; ++face) {
    ASSERT_TRUE(with_maps[face].has_attention());
    const fer::v1::AttentionMap& map = with_maps[face].attention();
    EXPECT_EQ(map.height(), 2u);
    EXPECT_EQ(map.width(), 2u);
    EXPECT_THAT(map.values(),
                ElementsAre(FloatEq(maps[4 * face]), FloatEq(maps[4 * face + 1]),
                            FloatEq(maps[4 * face + 2]), FloatEq(maps[4 * face + 3])));
  }
  EXPECT_EQ(with_maps[0].top_label(), 2u);
  EXPECT_EQ(with_maps[1].top_label(), 0u);

  google::protobuf::RepeatedPtrField<fer::v1::Prediction> without;
  FillPredictions(outputs, 2, 1, 3, kLabels, &without);
  ASSERT_EQ(without.size(), 2);
  EXPECT_FALSE(without[0].has_attention());
  EXPECT_FALSE(without[1].has_attention());
}

}  // namespace
}  // namespace fer
