// Evaluation metrics for the seven-class expression model, as the ABAW
// challenge and the LLA-Net paper report them: overall accuracy, per-class
// accuracy (recall), precision and F1, the unweighted mean F1 over all seven
// classes, and the challenge score 0.67 * F1 + 0.33 * accuracy.
//
// A ConfusionMatrix counts (true label, predicted label) pairs; a
// ClassificationReport is computed from it once and then formatted as a text
// table, an aligned confusion table, CSV or JSON (the `fer-model eval --json`
// contract: keys accuracy, f1, score, per_class, confusion). Labels are indices
// in the order of model/core/labels.h everywhere. Nothing here depends on LibTorch
// or OpenCV; the PNG heat map lives in model/training/heatmap.h.
//
// Division by zero never happens and never yields NaN: every ratio with a zero
// denominator is 0, as scikit-learn computes with zero_division=0. In
// particular a class with no true and no predicted samples has precision,
// accuracy and F1 all 0, and it still counts in the mean F1, which always
// averages all kNumClasses classes (scikit-learn's
// f1_score(average="macro", labels=range(7), zero_division=0); scikit-learn's
// default would instead average only the labels that occur). An evaluation set
// that lacks a class is thereby penalised rather than silently scored on six.
#ifndef FER_MODEL_METRICS_H_
#define FER_MODEL_METRICS_H_

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/core/labels.h"

namespace fer {

// Weights of the ABAW expression challenge score.
inline constexpr double kScoreF1Weight = 0.67;
inline constexpr double kScoreAccuracyWeight = 0.33;

// Counts of (true label, predicted label) pairs over kNumClasses labels.
// Rows are true labels, columns predicted labels. A plain value type: copy
// it, merge partial matrices from several threads or shards with Merge.
class ConfusionMatrix {
 public:
  // counts[truth][predicted].
  using Counts = std::array<std::array<int64_t, kNumClasses>, kNumClasses>;

  // An empty matrix (all counts zero).
  ConfusionMatrix();

  // A matrix holding the given counts. Fails with InvalidArgument for a
  // negative count.
  static absl::StatusOr<ConfusionMatrix> FromCounts(const Counts& counts);

  // Counts one sample. Fails with InvalidArgument, counting nothing, unless
  // both labels are in [0, kNumClasses).
  absl::Status Add(int truth, int predicted);

  // Counts truth[i] against predicted[i] for every i. Fails with
  // InvalidArgument, counting nothing, for spans of different sizes or any
  // label out of range (the message names the first bad index).
  absl::Status AddAll(absl::Span<const int> truth, absl::Span<const int> predicted);

  // Adds every count of other to this matrix.
  void Merge(const ConfusionMatrix& other);

  const Counts& counts() const { return counts_; }
  // Requires both labels in [0, kNumClasses).
  int64_t count(int truth, int predicted) const { return counts_[truth][predicted]; }
  // Samples whose true label is `truth` (the class's support).
  int64_t TrueCount(int truth) const;
  // Samples predicted as `predicted`.
  int64_t PredictedCount(int predicted) const;
  // Correct predictions (the diagonal).
  int64_t Correct() const;
  // All samples counted.
  int64_t Total() const;

  friend bool operator==(const ConfusionMatrix& a, const ConfusionMatrix& b) {
    return a.counts_ == b.counts_;
  }
  friend bool operator!=(const ConfusionMatrix& a, const ConfusionMatrix& b) { return !(a == b); }

 private:
  Counts counts_;
};

// Metrics of one class; every ratio is 0 where its denominator is 0.
struct ClassMetrics {
  double accuracy = 0;   // recall: TP / (TP + FN), the paper's per-class accuracy
  double precision = 0;  // TP / (TP + FP)
  double f1 = 0;         // 2 TP / (2 TP + FP + FN), the harmonic mean of the two above
  int64_t support = 0;   // TP + FN: samples whose true label is this class
};

// Everything `fer-model eval` and training report about one evaluation.
struct ClassificationReport {
  double accuracy = 0;  // correct / total; 0 for an empty matrix
  double f1 = 0;        // unweighted mean of per_class[*].f1 over all kNumClasses classes
  double score = 0;     // kScoreF1Weight * f1 + kScoreAccuracyWeight * accuracy
  int64_t total = 0;    // samples counted
  std::array<ClassMetrics, kNumClasses> per_class;  // in label order
  ConfusionMatrix confusion;                        // the matrix it was computed from
};

// Computes every metric of the report from the matrix. Always succeeds; an
// empty matrix gives all zeros.
ClassificationReport ComputeReport(const ConfusionMatrix& confusion);

// Per-class metrics as an aligned text table (one row per label name, columns
// accuracy, precision, f1, support), followed by a line with the overall
// accuracy, mean F1, score and sample count. Ends with a newline.
std::string FormatClassTable(const ClassificationReport& report);

// The confusion matrix as an aligned text table with label names, rows true
// labels and columns predicted labels. Ends with a newline.
std::string FormatConfusionTable(const ConfusionMatrix& confusion);

// The confusion matrix as CSV: a header "true/predicted,neutral,anger,..." then
// one line per true label, its name followed by its counts. Lines end with
// "\n"; no cell needs quoting.
std::string ConfusionCsv(const ConfusionMatrix& confusion);

// The report as one line of JSON (RFC 8259, no trailing newline):
//   {"accuracy": a, "f1": f, "score": s,
//    "per_class": [{"label": "neutral", "accuracy": .., "precision": ..,
//                   "f1": .., "support": n}, ... in label order],
//    "confusion": [[counts of true label 0 by predicted label], ...]}
// Ratios are written with six decimals, counts as integers.
std::string ReportJson(const ClassificationReport& report);

}  // namespace fer

#endif  // FER_MODEL_METRICS_H_
