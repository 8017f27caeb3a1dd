#include "model/core/labels.h"

#include <gtest/gtest.h>

namespace fer {
namespace {

TEST(LabelsTest, OrderIsAffWild2ExprOrder) {
  const auto& names = LabelNames();
  ASSERT_EQ(names.size(), 7u);
  EXPECT_EQ(names[0], "neutral");
  EXPECT_EQ(names[1], "anger");
  EXPECT_EQ(names[2], "disgust");
  EXPECT_EQ(names[3], "fear");
  EXPECT_EQ(names[4], "happiness");
  EXPECT_EQ(names[5], "sadness");
  EXPECT_EQ(names[6], "surprise");
}

TEST(LabelsTest, EveryAliasOfTheSpecMapsToItsLabel) {
  const std::vector<std::pair<std::string, int>> cases = {
      {"neutral", 0}, {"ne", 0},        {"anger", 1},    {"angry", 1},     {"an", 1},
      {"disgust", 2}, {"disgusted", 2}, {"di", 2},       {"fear", 3},      {"fearful", 3},
      {"fe", 3},      {"happiness", 4}, {"happy", 4},    {"ha", 4},        {"sadness", 5},
      {"sad", 5},     {"sa", 5},        {"surprise", 6}, {"surprised", 6}, {"su", 6}};
  for (const auto& [alias, label] : cases) {
    ASSERT_TRUE(LabelFromAlias(alias).has_value()) << alias;
    EXPECT_EQ(*LabelFromAlias(alias), label) << alias;
  }
}

TEST(LabelsTest, AliasesIgnoreCase) {
  EXPECT_EQ(LabelFromAlias("Happy"), 4);
  EXPECT_EQ(LabelFromAlias("ANGRY"), 1);
}

TEST(LabelsTest, UnknownClassesAreNotMapped) {
  EXPECT_FALSE(LabelFromAlias("contempt").has_value());
  EXPECT_FALSE(LabelFromAlias("unknown").has_value());
  EXPECT_FALSE(LabelFromAlias("other").has_value());
  EXPECT_FALSE(LabelFromAlias("").has_value());
}

}  // namespace
}  // namespace fer
