// Metrics against confusion matrices whose every number is worked out by hand
// below, the JSON / CSV / text formats, and (with OpenCV) the PNG heat map.
#include "model/training/classification_report.h"

#include <cctype>
#include <cstddef>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/common/json_text.h"
#include "model/core/labels.h"

#ifdef FER_WITH_OPENCV
#include <opencv2/imgcodecs.hpp>

#include "model/training/heatmap.h"
#endif

namespace fer {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr double kTolerance = 1e-12;

// Label indices, for readable matrices.
constexpr int kNeutral = 0;
constexpr int kAnger = 1;
constexpr int kDisgust = 2;
constexpr int kFear = 3;
constexpr int kHappiness = 4;
constexpr int kSadness = 5;
constexpr int kSurprise = 6;

// A mixed evaluation worked by hand. Rows true, columns predicted.
//                 ne an di fe ha sa su   support  TP  predicted
//   neutral    [  5, 1, 0, 0, 2, 0, 0 ]     8      5     10
//   anger      [  1, 3, 1, 0, 0, 0, 0 ]     5      3      6
//   disgust    [  0, 2, 2, 0, 0, 0, 0 ]     4      2      3
//   fear       [  1, 0, 0, 0, 0, 1, 0 ]     2      0      0   (never predicted)
//   happiness  [  1, 0, 0, 0, 6, 1, 0 ]     8      6      8
//   sadness    [  2, 0, 0, 0, 0, 1, 0 ]     3      1      3
//   surprise   [  0, 0, 0, 0, 0, 0, 0 ]     0      0      0   (never present)
// total 30, correct 5+3+2+0+6+1 = 17, accuracy 17/30.
// per class: recall = TP/support, precision = TP/predicted, F1 = 2TP/(support+predicted)
//   neutral   5/8  5/10  10/18 = 5/9
//   anger     3/5  3/6    6/11
//   disgust   2/4  2/3    4/7
//   fear      0    0      0
//   happiness 6/8  6/8   12/16 = 3/4
//   sadness   1/3  1/3    2/6 = 1/3
//   surprise  0    0      0
// mean F1 = (5/9 + 6/11 + 4/7 + 3/4 + 1/3) / 7 = (1540 + 1512 + 1584 + 2079 + 924) / 2772 / 7
//         = 7639 / 19404 = 0.3936817...
// score = 0.67 * 7639/19404 + 0.33 * 17/30 = 0.2637667... + 0.187 = 0.4507667...
ConfusionMatrix::Counts MixedCounts() {
  return {{{5, 1, 0, 0, 2, 0, 0},
           {1, 3, 1, 0, 0, 0, 0},
           {0, 2, 2, 0, 0, 0, 0},
           {1, 0, 0, 0, 0, 1, 0},
           {1, 0, 0, 0, 6, 1, 0},
           {2, 0, 0, 0, 0, 1, 0},
           {0, 0, 0, 0, 0, 0, 0}}};
}

ConfusionMatrix Mixed() {
  absl::StatusOr<ConfusionMatrix> matrix = ConfusionMatrix::FromCounts(MixedCounts());
  EXPECT_TRUE(matrix.ok()) << matrix.status();
  return *matrix;
}

// A strict RFC 8259 syntax check, enough to prove the hand-written JSON parses.
class JsonChecker {
 public:
  explicit JsonChecker(std::string_view text) : text_(text) {}

  bool Valid() {
    pos_ = 0;
    return Value() && (SkipSpace(), pos_ == text_.size());
  }

 private:
  void SkipSpace() {
    while (pos_ < text_.size() &&
           std::string_view(" \t\n\r").find(text_[pos_]) != std::string_view::npos) {
      ++pos_;
    }
  }
  bool Consume(char c) {
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool Literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  bool Digits() {
    const size_t start = pos_;
    while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    return pos_ > start;
  }
  bool Number() {
    if (pos_ < text_.size() && text_[pos_] == '-') ++pos_;
    if (pos_ < text_.size() && text_[pos_] == '0') {
      ++pos_;
    } else if (!Digits()) {
      return false;
    }
    if (pos_ < text_.size() && text_[pos_] == '.') {
      ++pos_;
      if (!Digits()) return false;
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
      if (!Digits()) return false;
    }
    return true;
  }
  bool String() {
    if (!Consume('"')) return false;
    while (pos_ < text_.size()) {
      const unsigned char c = static_cast<unsigned char>(text_[pos_++]);
      if (c == '"') return true;
      if (c < 0x20) return false;
      if (c != '\\') continue;
      if (pos_ >= text_.size()) return false;
      const char escape = text_[pos_++];
      if (escape == 'u') {
        for (int i = 0; i < 4; ++i) {
          if (pos_ >= text_.size() || !std::isxdigit(static_cast<unsigned char>(text_[pos_++]))) {
            return false;
          }
        }
      } else if (std::string_view("\"\\/bfnrt").find(escape) == std::string_view::npos) {
        return false;
      }
    }
    return false;
  }
  template <typename Element>
  bool Sequence(char close, Element element) {
    if (Consume(close)) return true;
    do {
      if (!element()) return false;
    } while (Consume(','));
    return Consume(close);
  }
  bool Value() {
    SkipSpace();
    if (pos_ >= text_.size()) return false;
    switch (text_[pos_]) {
      case '{':
        ++pos_;
        return Sequence('}', [this] { return String() && Consume(':') && Value(); });
      case '[':
        ++pos_;
        return Sequence(']', [this] { return Value(); });
      case '"':
        return String();
      case 't':
        return Literal("true");
      case 'f':
        return Literal("false");
      case 'n':
        return Literal("null");
      default:
        return Number();
    }
  }

  std::string_view text_;
  size_t pos_ = 0;
};

TEST(JsonCheckerTest, AcceptsValidAndRejectsInvalidJson) {
  EXPECT_TRUE(JsonChecker(R"({"a": [1, -2.5e3, "x\"\u00e9"], "b": {}, "c": null})").Valid());
  EXPECT_FALSE(JsonChecker(R"({"a": 1,})").Valid());
  EXPECT_FALSE(JsonChecker(R"({"a": nan})").Valid());
  EXPECT_FALSE(JsonChecker("\"raw\nnewline\"").Valid());
  EXPECT_FALSE(JsonChecker(R"([1] 2)").Valid());
}

TEST(ConfusionMatrixTest, StartsEmpty) {
  ConfusionMatrix matrix;
  EXPECT_EQ(matrix.Total(), 0);
  EXPECT_EQ(matrix.Correct(), 0);
  for (int t = 0; t < kNumClasses; ++t) {
    for (int p = 0; p < kNumClasses; ++p) EXPECT_EQ(matrix.count(t, p), 0);
  }
}

TEST(ConfusionMatrixTest, AddCountsRowsAsTruthAndColumnsAsPrediction) {
  ConfusionMatrix matrix;
  ASSERT_TRUE(matrix.Add(kAnger, kDisgust).ok());
  ASSERT_TRUE(matrix.Add(kAnger, kDisgust).ok());
  ASSERT_TRUE(matrix.Add(kHappiness, kHappiness).ok());
  EXPECT_EQ(matrix.count(kAnger, kDisgust), 2);
  EXPECT_EQ(matrix.count(kDisgust, kAnger), 0);
  EXPECT_EQ(matrix.TrueCount(kAnger), 2);
  EXPECT_EQ(matrix.PredictedCount(kDisgust), 2);
  EXPECT_EQ(matrix.PredictedCount(kAnger), 0);
  EXPECT_EQ(matrix.Correct(), 1);
  EXPECT_EQ(matrix.Total(), 3);
}

TEST(ConfusionMatrixTest, AddRejectsLabelsOutOfRangeAndCountsNothing) {
  ConfusionMatrix matrix;
  for (auto [truth, predicted] :
       std::vector<std::pair<int, int>>{{-1, 0}, {0, -1}, {kNumClasses, 0}, {0, kNumClasses}}) {
    absl::Status status = matrix.Add(truth, predicted);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << truth << ", " << predicted;
  }
  EXPECT_EQ(matrix.Total(), 0);
}

TEST(ConfusionMatrixTest, AddAllMatchesAddOneByOne) {
  const std::vector<int> truth = {kNeutral, kAnger, kSurprise, kSurprise, kFear};
  const std::vector<int> predicted = {kNeutral, kSadness, kSurprise, kNeutral, kFear};
  ConfusionMatrix all;
  ASSERT_TRUE(all.AddAll(truth, predicted).ok());
  ConfusionMatrix one_by_one;
  for (size_t i = 0; i < truth.size(); ++i)
    ASSERT_TRUE(one_by_one.Add(truth[i], predicted[i]).ok());
  EXPECT_EQ(all, one_by_one);
  EXPECT_EQ(all.Total(), 5);
  EXPECT_EQ(all.Correct(), 3);
}

TEST(ConfusionMatrixTest, AddAllRejectsBadInputAtomically) {
  ConfusionMatrix matrix;
  const std::vector<int> two = {kNeutral, kAnger};
  const std::vector<int> three = {kNeutral, kAnger, kFear};
  EXPECT_EQ(matrix.AddAll(two, three).code(), absl::StatusCode::kInvalidArgument);
  const std::vector<int> bad_last = {kNeutral, kAnger, 7};
  absl::Status status = matrix.AddAll(three, bad_last);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("sample 2"));
  EXPECT_EQ(matrix.Total(), 0) << "the valid samples before the bad one are not counted either";
}

TEST(ConfusionMatrixTest, FromCountsKeepsCountsAndRejectsNegatives) {
  ConfusionMatrix matrix = Mixed();
  EXPECT_EQ(matrix.counts(), MixedCounts());
  EXPECT_EQ(matrix.Total(), 30);
  EXPECT_EQ(matrix.Correct(), 17);

  ConfusionMatrix::Counts negative = MixedCounts();
  negative[kFear][kSadness] = -1;
  absl::StatusOr<ConfusionMatrix> bad = ConfusionMatrix::FromCounts(negative);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("fear"));
}

TEST(ConfusionMatrixTest, MergeAddsEveryCell) {
  ConfusionMatrix a = Mixed();
  ConfusionMatrix b;
  ASSERT_TRUE(b.Add(kSurprise, kSurprise).ok());
  ASSERT_TRUE(b.Add(kNeutral, kAnger).ok());
  a.Merge(b);
  EXPECT_EQ(a.Total(), 32);
  EXPECT_EQ(a.count(kSurprise, kSurprise), 1);
  EXPECT_EQ(a.count(kNeutral, kAnger), 2);
  EXPECT_EQ(a.count(kNeutral, kNeutral), 5);
}

TEST(ClassificationReportTest, MixedMatrixMatchesHandComputedMetrics) {
  const ClassificationReport report = ComputeReport(Mixed());
  EXPECT_EQ(report.total, 30);
  EXPECT_NEAR(report.accuracy, 17.0 / 30.0, kTolerance);

  struct Expected {
    double accuracy, precision, f1;
    int64_t support;
  };
  const Expected expected[kNumClasses] = {
      {5.0 / 8, 5.0 / 10, 5.0 / 9, 8},  // neutral
      {3.0 / 5, 3.0 / 6, 6.0 / 11, 5},  // anger
      {2.0 / 4, 2.0 / 3, 4.0 / 7, 4},   // disgust
      {0, 0, 0, 2},                     // fear: present, never predicted
      {6.0 / 8, 6.0 / 8, 3.0 / 4, 8},   // happiness
      {1.0 / 3, 1.0 / 3, 1.0 / 3, 3},   // sadness
      {0, 0, 0, 0},                     // surprise: neither present nor predicted
  };
  for (int c = 0; c < kNumClasses; ++c) {
    SCOPED_TRACE(LabelNames()[c]);
    EXPECT_NEAR(report.per_class[c].accuracy, expected[c].accuracy, kTolerance);
    EXPECT_NEAR(report.per_class[c].precision, expected[c].precision, kTolerance);
    EXPECT_NEAR(report.per_class[c].f1, expected[c].f1, kTolerance);
    EXPECT_EQ(report.per_class[c].support, expected[c].support);
  }
  EXPECT_NEAR(report.f1, 7639.0 / 19404.0, kTolerance);
  EXPECT_NEAR(report.score, 0.67 * 7639.0 / 19404.0 + 0.33 * 17.0 / 30.0, kTolerance);
  EXPECT_NEAR(report.score, 0.4507667491, 1e-10);
  EXPECT_EQ(report.confusion, Mixed());
}

TEST(ClassificationReportTest, AbsentClassCountsAsZeroInTheMeanF1) {
  // Only neutral and anger, both always right: each has F1 1, the five absent
  // classes F1 0, so the mean over seven is 2/7, not 1.
  ConfusionMatrix matrix;
  ASSERT_TRUE(matrix.Add(kNeutral, kNeutral).ok());
  ASSERT_TRUE(matrix.Add(kAnger, kAnger).ok());
  const ClassificationReport report = ComputeReport(matrix);
  EXPECT_DOUBLE_EQ(report.accuracy, 1.0);
  EXPECT_NEAR(report.f1, 2.0 / 7.0, kTolerance);
  EXPECT_EQ(report.per_class[kSurprise].f1, 0.0);
  EXPECT_EQ(report.per_class[kSurprise].precision, 0.0);
  EXPECT_EQ(report.per_class[kSurprise].accuracy, 0.0);
}

TEST(ClassificationReportTest, PerfectClassifierScoresOne) {
  // Diagonal 3, 1, 4, 1, 5, 9, 2: every recall, precision and F1 is 1.
  ConfusionMatrix::Counts counts{};
  const int diagonal[kNumClasses] = {3, 1, 4, 1, 5, 9, 2};
  for (int c = 0; c < kNumClasses; ++c) counts[c][c] = diagonal[c];
  const ClassificationReport report = ComputeReport(*ConfusionMatrix::FromCounts(counts));
  EXPECT_EQ(report.total, 25);
  EXPECT_DOUBLE_EQ(report.accuracy, 1.0);
  EXPECT_DOUBLE_EQ(report.f1, 1.0);
  EXPECT_NEAR(report.score, 1.0, kTolerance);
  for (int c = 0; c < kNumClasses; ++c) {
    EXPECT_DOUBLE_EQ(report.per_class[c].accuracy, 1.0);
    EXPECT_DOUBLE_EQ(report.per_class[c].precision, 1.0);
    EXPECT_DOUBLE_EQ(report.per_class[c].f1, 1.0);
    EXPECT_EQ(report.per_class[c].support, diagonal[c]);
  }
}

TEST(ClassificationReportTest, DataOfOneClassOnly) {
  // 10 happy faces, all predicted happy: accuracy 1 but mean F1 only 1/7.
  ConfusionMatrix matrix;
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(matrix.Add(kHappiness, kHappiness).ok());
  const ClassificationReport report = ComputeReport(matrix);
  EXPECT_DOUBLE_EQ(report.accuracy, 1.0);
  EXPECT_NEAR(report.f1, 1.0 / 7.0, kTolerance);
  EXPECT_NEAR(report.score, 0.67 / 7.0 + 0.33, kTolerance);
}

TEST(ClassificationReportTest, ClassifierPredictingOneClassOnly) {
  // 4 neutral, 2 anger, 4 happiness, all predicted neutral.
  // accuracy 4/10; neutral: recall 4/4, precision 4/10, F1 8/14 = 4/7; the rest 0.
  // mean F1 = 4/49; score = 0.67 * 4/49 + 0.33 * 0.4.
  ConfusionMatrix::Counts counts{};
  counts[kNeutral][kNeutral] = 4;
  counts[kAnger][kNeutral] = 2;
  counts[kHappiness][kNeutral] = 4;
  const ClassificationReport report = ComputeReport(*ConfusionMatrix::FromCounts(counts));
  EXPECT_NEAR(report.accuracy, 0.4, kTolerance);
  EXPECT_NEAR(report.per_class[kNeutral].accuracy, 1.0, kTolerance);
  EXPECT_NEAR(report.per_class[kNeutral].precision, 0.4, kTolerance);
  EXPECT_NEAR(report.per_class[kNeutral].f1, 4.0 / 7.0, kTolerance);
  EXPECT_EQ(report.per_class[kAnger].f1, 0.0);
  EXPECT_EQ(report.per_class[kAnger].support, 2);
  EXPECT_EQ(report.per_class[kHappiness].accuracy, 0.0);
  EXPECT_NEAR(report.f1, 4.0 / 49.0, kTolerance);
  EXPECT_NEAR(report.score, 0.67 * 4.0 / 49.0 + 0.33 * 0.4, kTolerance);
}

TEST(ClassificationReportTest, EmptyMatrixGivesZerosNotNaN) {
  const ClassificationReport report = ComputeReport(ConfusionMatrix());
  EXPECT_EQ(report.total, 0);
  EXPECT_EQ(report.accuracy, 0.0);
  EXPECT_EQ(report.f1, 0.0);
  EXPECT_EQ(report.score, 0.0);
  for (const ClassMetrics& m : report.per_class) {
    EXPECT_EQ(m.accuracy, 0.0);
    EXPECT_EQ(m.precision, 0.0);
    EXPECT_EQ(m.f1, 0.0);
  }
  EXPECT_TRUE(JsonChecker(ReportJson(report)).Valid());
}

TEST(ClassificationReportTest, ScoreWeightsAreTheChallengeWeights) {
  EXPECT_EQ(kScoreF1Weight, 0.67);
  EXPECT_EQ(kScoreAccuracyWeight, 0.33);
  // The paper's validation result: accuracy 0.49, F1 0.38 -> score 0.4163 (reported 0.42).
  EXPECT_NEAR(kScoreF1Weight * 0.38 + kScoreAccuracyWeight * 0.49, 0.4163, kTolerance);
}

TEST(ReportJsonTest, HasTheEvalContractKeysAndValues) {
  const std::string json = ReportJson(ComputeReport(Mixed()));
  EXPECT_TRUE(JsonChecker(json).Valid()) << json;
  EXPECT_THAT(json, StartsWith(R"({"accuracy": 0.566667, "f1": 0.393682, "score": 0.450767, )"));
  EXPECT_THAT(json, HasSubstr(R"("per_class": [{"label": "neutral", "accuracy": 0.625000, )"
                              R"("precision": 0.500000, "f1": 0.555556, "support": 8}, )"
                              R"({"label": "anger", "accuracy": 0.600000, )"
                              R"("precision": 0.500000, "f1": 0.545455, "support": 5}, )"));
  EXPECT_THAT(json, HasSubstr(R"({"label": "surprise", "accuracy": 0.000000, )"
                              R"("precision": 0.000000, "f1": 0.000000, "support": 0}])"));
  EXPECT_THAT(json, HasSubstr(R"("confusion": [[5, 1, 0, 0, 2, 0, 0], [1, 3, 1, 0, 0, 0, 0], )"
                              R"([0, 2, 2, 0, 0, 0, 0], [1, 0, 0, 0, 0, 1, 0], )"
                              R"([1, 0, 0, 0, 6, 1, 0], [2, 0, 0, 0, 0, 1, 0], )"
                              R"([0, 0, 0, 0, 0, 0, 0]]})"));
  EXPECT_EQ(json.find('\n'), std::string::npos) << "one line";
  for (std::string_view name : LabelNames()) {
    EXPECT_THAT(json, HasSubstr(absl::StrCat("{\"label\": \"", std::string(name), "\"")));
  }
}

// The exact escapes are specified in tests/model/common/json_text_test.cc; here the
// JSON checker that validates ReportJson also accepts what they produce.
TEST(ReportJsonTest, EscapedStringsAreValidJson) {
  EXPECT_TRUE(JsonChecker(JsonString(std::string_view("x\"\\\n\x02y", 6))).Valid());
  EXPECT_TRUE(JsonChecker(JsonString("\b\f\r\t caf\xc3\xa9")).Valid());
}

TEST(ConfusionCsvTest, WritesHeaderAndOneRowPerTrueLabel) {
  ConfusionMatrix matrix;
  ASSERT_TRUE(matrix.Add(kNeutral, kNeutral).ok());
  ASSERT_TRUE(matrix.Add(kNeutral, kSurprise).ok());
  ASSERT_TRUE(matrix.Add(kSurprise, kFear).ok());
  EXPECT_EQ(ConfusionCsv(matrix),
            "true/predicted,neutral,anger,disgust,fear,happiness,sadness,surprise\n"
            "neutral,1,0,0,0,0,0,1\n"
            "anger,0,0,0,0,0,0,0\n"
            "disgust,0,0,0,0,0,0,0\n"
            "fear,0,0,0,0,0,0,0\n"
            "happiness,0,0,0,0,0,0,0\n"
            "sadness,0,0,0,0,0,0,0\n"
            "surprise,0,0,0,1,0,0,0\n");
}

TEST(FormatConfusionTableTest, AlignsColumnsUnderLabelNames) {
  ConfusionMatrix::Counts counts = MixedCounts();
  counts[kHappiness][kHappiness] = 1234567890123;  // wider than any label name
  const std::string table = FormatConfusionTable(*ConfusionMatrix::FromCounts(counts));
  std::vector<std::string> lines = absl::StrSplit(table, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u + kNumClasses) << table;
  EXPECT_THAT(lines[0], StartsWith("true \\ predicted"));
  for (const std::string& line : lines) EXPECT_EQ(line.size(), lines[0].size()) << table;
  for (int c = 0; c < kNumClasses; ++c) {
    EXPECT_THAT(lines[0], HasSubstr(std::string(LabelNames()[c])));
    EXPECT_THAT(lines[1 + c], StartsWith(std::string(LabelNames()[c])));
  }
  // Right-aligned: each count ends where its column's label name ends.
  const size_t neutral_end = lines[0].find("neutral") + std::string_view("neutral").size();
  EXPECT_EQ(lines[1][neutral_end - 1], '5');
  const size_t happiness_end = lines[0].find("happiness") + std::string_view("happiness").size();
  EXPECT_EQ(lines[1 + kHappiness].substr(happiness_end - 13, 13), "1234567890123");
  EXPECT_EQ(table.back(), '\n');
}

TEST(FormatClassTableTest, ListsEveryLabelWithItsMetrics) {
  const std::string table = FormatClassTable(ComputeReport(Mixed()));
  std::vector<std::string> lines = absl::StrSplit(table, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u + kNumClasses) << table;
  EXPECT_THAT(lines[0], StartsWith("label"));
  EXPECT_THAT(lines[0], HasSubstr("precision"));
  for (int c = 0; c < kNumClasses; ++c) {
    EXPECT_THAT(lines[1 + c], StartsWith(std::string(LabelNames()[c])));
    EXPECT_EQ(lines[1 + c].size(), lines[0].size()) << table;
  }
  const std::vector<std::string> neutral =
      absl::StrSplit(lines[1 + kNeutral], ' ', absl::SkipEmpty());
  EXPECT_THAT(neutral, ElementsAre("neutral", "0.625000", "0.500000", "0.555556", "8"));
  EXPECT_THAT(lines.back(), HasSubstr("accuracy 0.566667"));
  EXPECT_THAT(lines.back(), HasSubstr("mean F1 0.393682"));
  EXPECT_THAT(lines.back(), HasSubstr("score 0.450767"));
  EXPECT_THAT(lines.back(), HasSubstr("samples 30"));
}

#ifdef FER_WITH_OPENCV
TEST(HeatmapTest, WritesAReadablePng) {
  const std::string path = ::testing::TempDir() + "/metrics_test_heatmap.png";
  HeatmapOptions options;
  options.title = "mixed: accuracy 0.567, F1 0.394";
  ASSERT_TRUE(WriteConfusionHeatmap(Mixed(), path, options).ok());
  const cv::Mat image = cv::imread(path, cv::IMREAD_COLOR);
  ASSERT_FALSE(image.empty());
  EXPECT_GT(image.cols, kNumClasses * options.cell_size);
  EXPECT_GT(image.rows, kNumClasses * options.cell_size);
  std::remove(path.c_str());
}

TEST(HeatmapTest, WritesPngWhateverTheExtensionAndForAnEmptyMatrix) {
  const std::string path = ::testing::TempDir() + "/metrics_test_heatmap.out";
  HeatmapOptions options;
  options.cell_size = kMinHeatmapCellSize;
  ASSERT_TRUE(WriteConfusionHeatmap(ConfusionMatrix(), path, options).ok());
  const cv::Mat image = cv::imread(path, cv::IMREAD_COLOR);
  ASSERT_FALSE(image.empty());
  EXPECT_GT(image.cols, kNumClasses * kMinHeatmapCellSize);
  std::remove(path.c_str());
}

TEST(HeatmapTest, RejectsBadOptionsAndUnwritablePaths) {
  HeatmapOptions tiny;
  tiny.cell_size = kMinHeatmapCellSize - 1;
  const std::string path = ::testing::TempDir() + "/metrics_test_unused.png";
  EXPECT_EQ(WriteConfusionHeatmap(Mixed(), path, tiny).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteConfusionHeatmap(Mixed(), "").code(), absl::StatusCode::kInvalidArgument);
  absl::Status status =
      WriteConfusionHeatmap(Mixed(), ::testing::TempDir() + "/no/such/folder/heatmap.png");
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr("no/such/folder"));
}
#endif  // FER_WITH_OPENCV

}  // namespace
}  // namespace fer
