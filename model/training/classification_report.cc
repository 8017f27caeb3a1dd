#include "model/training/classification_report.h"

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "model/common/json_text.h"

namespace fer {
namespace {

// Decimals of the ratios in text tables and JSON: enough to compare runs,
// short enough to read.
constexpr int kRatioDecimals = 6;
// Spaces between columns of the text tables.
constexpr int kColumnGap = 2;
// Corner cell of the confusion tables: rows are true labels, columns predicted.
constexpr std::string_view kTextCorner = "true \\ predicted";
constexpr std::string_view kCsvCorner = "true/predicted";

bool ValidLabel(int label) { return label >= 0 && label < kNumClasses; }

double Ratio(int64_t numerator, int64_t denominator) {
  return denominator == 0 ? 0.0 : static_cast<double>(numerator) / static_cast<double>(denominator);
}

std::string FormatRatio(double value) { return absl::StrFormat("%.*f", kRatioDecimals, value); }
// In JSON a ratio that is not a number is null, keeping the report valid JSON.
std::string JsonRatio(double value) { return JsonNumber(value, kRatioDecimals); }

size_t LongestLabelName() {
  size_t longest = 0;
  for (std::string_view name : LabelNames()) longest = std::max(longest, name.size());
  return longest;
}

}  // namespace

ConfusionMatrix::ConfusionMatrix() {
  for (auto& row : counts_) row.fill(0);
}

absl::StatusOr<ConfusionMatrix> ConfusionMatrix::FromCounts(const Counts& counts) {
  for (int t = 0; t < kNumClasses; ++t) {
    for (int p = 0; p < kNumClasses; ++p) {
      if (counts[t][p] < 0) {
        return absl::InvalidArgumentError(
            absl::StrFormat("confusion matrix: negative count %d for true %s, predicted %s",
                            counts[t][p], LabelNames()[t], LabelNames()[p]));
      }
    }
  }
  ConfusionMatrix matrix;
  matrix.counts_ = counts;
  return matrix;
}

absl::Status ConfusionMatrix::Add(int truth, int predicted) {
  if (!ValidLabel(truth) || !ValidLabel(predicted)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("confusion matrix: label out of range [0, %d): true %d, predicted %d",
                        kNumClasses, truth, predicted));
  }
  ++counts_[truth][predicted];
  return absl::OkStatus();
}

absl::Status ConfusionMatrix::AddAll(absl::Span<const int> truth, absl::Span<const int> predicted) {
  if (truth.size() != predicted.size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "confusion matrix: %d true labels but %d predictions", truth.size(), predicted.size()));
  }
  for (size_t i = 0; i < truth.size(); ++i) {
    if (!ValidLabel(truth[i]) || !ValidLabel(predicted[i])) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "confusion matrix: sample %d has a label out of range [0, %d): true %d, predicted %d", i,
          kNumClasses, truth[i], predicted[i]));
    }
  }
  for (size_t i = 0; i < truth.size(); ++i) ++counts_[truth[i]][predicted[i]];
  return absl::OkStatus();
}

void ConfusionMatrix::Merge(const ConfusionMatrix& other) {
  for (int t = 0; t < kNumClasses; ++t) {
    for (int p = 0; p < kNumClasses; ++p) counts_[t][p] += other.counts_[t][p];
  }
}

int64_t ConfusionMatrix::TrueCount(int truth) const {
  int64_t sum = 0;
  for (int64_t n : counts_[truth]) sum += n;
  return sum;
}

int64_t ConfusionMatrix::PredictedCount(int predicted) const {
  int64_t sum = 0;
  for (const auto& row : counts_) sum += row[predicted];
  return sum;
}

int64_t ConfusionMatrix::Correct() const {
  int64_t sum = 0;
  for (int c = 0; c < kNumClasses; ++c) sum += counts_[c][c];
  return sum;
}

int64_t ConfusionMatrix::Total() const {
  int64_t sum = 0;
  for (int t = 0; t < kNumClasses; ++t) sum += TrueCount(t);
  return sum;
}

ClassificationReport ComputeReport(const ConfusionMatrix& confusion) {
  ClassificationReport report;
  report.confusion = confusion;
  report.total = confusion.Total();
  report.accuracy = Ratio(confusion.Correct(), report.total);
  double f1_sum = 0;
  for (int c = 0; c < kNumClasses; ++c) {
    const int64_t tp = confusion.count(c, c);
    const int64_t support = confusion.TrueCount(c);         // TP + FN
    const int64_t predicted = confusion.PredictedCount(c);  // TP + FP
    ClassMetrics& m = report.per_class[c];
    m.support = support;
    m.accuracy = Ratio(tp, support);
    m.precision = Ratio(tp, predicted);
    // 2PR / (P + R) rewritten without the intermediate ratios: exact, and 0
    // (not NaN) when the class is neither present nor predicted.
    m.f1 = Ratio(2 * tp, support + predicted);
    f1_sum += m.f1;
  }
  report.f1 = f1_sum / kNumClasses;
  report.score = kScoreF1Weight * report.f1 + kScoreAccuracyWeight * report.accuracy;
  return report;
}

std::string FormatClassTable(const ClassificationReport& report) {
  const int name_width =
      static_cast<int>(std::max(LongestLabelName(), std::string_view("label").size()));
  // Ratios are at most "1.000000"; supports get as many digits as the total.
  const int ratio_width =
      std::max<int>(FormatRatio(1.0).size(), std::string_view("precision").size());
  const int support_width =
      std::max<int>(absl::StrCat(report.total).size(), std::string_view("support").size());
  const std::string gap(kColumnGap, ' ');

  std::string out = absl::StrFormat("%-*s%s%*s%s%*s%s%*s%s%*s\n", name_width, "label", gap,
                                    ratio_width, "accuracy", gap, ratio_width, "precision", gap,
                                    ratio_width, "f1", gap, support_width, "support");
  for (int c = 0; c < kNumClasses; ++c) {
    const ClassMetrics& m = report.per_class[c];
    absl::StrAppendFormat(&out, "%-*s%s%*s%s%*s%s%*s%s%*d\n", name_width, LabelNames()[c], gap,
                          ratio_width, FormatRatio(m.accuracy), gap, ratio_width,
                          FormatRatio(m.precision), gap, ratio_width, FormatRatio(m.f1), gap,
                          support_width, m.support);
  }
  absl::StrAppendFormat(&out, "accuracy %s  mean F1 %s  score %s  samples %d\n",
                        FormatRatio(report.accuracy), FormatRatio(report.f1),
                        FormatRatio(report.score), report.total);
  return out;
}

std::string FormatConfusionTable(const ConfusionMatrix& confusion) {
  const int row_header_width = static_cast<int>(std::max(LongestLabelName(), kTextCorner.size()));
  size_t cell_width = LongestLabelName();
  for (const auto& row : confusion.counts()) {
    for (int64_t n : row) cell_width = std::max(cell_width, absl::StrCat(n).size());
  }
  const int width = static_cast<int>(cell_width);
  const std::string gap(kColumnGap, ' ');

  std::string out = absl::StrFormat("%-*s", row_header_width, kTextCorner);
  for (std::string_view name : LabelNames()) absl::StrAppendFormat(&out, "%s%*s", gap, width, name);
  out += '\n';
  for (int t = 0; t < kNumClasses; ++t) {
    absl::StrAppendFormat(&out, "%-*s", row_header_width, LabelNames()[t]);
    for (int p = 0; p < kNumClasses; ++p) {
      absl::StrAppendFormat(&out, "%s%*d", gap, width, confusion.count(t, p));
    }
    out += '\n';
  }
  return out;
}

std::string ConfusionCsv(const ConfusionMatrix& confusion) {
  std::string out(kCsvCorner);
  for (std::string_view name : LabelNames()) out.append(",").append(name);
  out += '\n';
  for (int t = 0; t < kNumClasses; ++t) {
    out += LabelNames()[t];
    for (int p = 0; p < kNumClasses; ++p) absl::StrAppend(&out, ",", confusion.count(t, p));
    out += '\n';
  }
  return out;
}

std::string ReportJson(const ClassificationReport& report) {
  std::string out = absl::StrCat("{\"accuracy\": ", JsonRatio(report.accuracy),
                                 ", \"f1\": ", JsonRatio(report.f1),
                                 ", \"score\": ", JsonRatio(report.score), ", \"per_class\": [");
  for (int c = 0; c < kNumClasses; ++c) {
    const ClassMetrics& m = report.per_class[c];
    absl::StrAppend(&out, c == 0 ? "" : ", ", "{\"label\": ", JsonString(LabelNames()[c]),
                    ", \"accuracy\": ", JsonRatio(m.accuracy),
                    ", \"precision\": ", JsonRatio(m.precision), ", \"f1\": ", JsonRatio(m.f1),
                    ", \"support\": ", m.support, "}");
  }
  out += "], \"confusion\": [";
  for (int t = 0; t < kNumClasses; ++t) {
    out += t == 0 ? "[" : ", [";
    for (int p = 0; p < kNumClasses; ++p) {
      absl::StrAppend(&out, p == 0 ? "" : ", ", report.confusion.count(t, p));
    }
    out += "]";
  }
  out += "]}";
  return out;
}

}  // namespace fer
