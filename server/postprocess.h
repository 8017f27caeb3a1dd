// Model outputs into answers: the mean of a face's ten crops, the top class,
// and the fer.v1.Prediction a client receives. Pure functions on probability
// rows; no gRPC, no LibTorch, no threads.
#ifndef FER_SERVER_POSTPROCESS_H_
#define FER_SERVER_POSTPROCESS_H_

#include <string>
#include <vector>

#include "absl/types/span.h"
#include "fer/v1/expression.pb.h"

namespace fer {

// Writes the per-class mean of `crops` consecutive rows of mean.size()
// probabilities each into mean. Requires crops >= 1 and rows.size() ==
// crops * mean.size(). The sum runs over the crops in order and is divided by
// crops once, so that one crop gives its row exactly.
void MeanOverCrops(absl::Span<const float> rows, int crops, absl::Span<float> mean);

// The index of the first largest value (a later equal one does not win).
// Requires values to be non-empty.
int ArgMax(absl::Span<const float> values);

// Fills *prediction (which must be empty) from one face's probabilities:
// every probability in class order, the top class, its name when labels has
// one, and its probability as the confidence. Requires probabilities to be
// non-empty.
void FillPrediction(absl::Span<const float> probabilities, const std::vector<std::string>& labels,
                    fer::v1::Prediction* prediction);

// Fills *map from one face's attention map: height x width values, row-major,
// and their AttentionCenterShare (model/core/attention_quality.h). Requires
// values.size() == height * width.
void FillAttentionMap(absl::Span<const float> values, int height, int width,
                      fer::v1::AttentionMap* map);

// The attention maps of a call's faces, one height x width map per face, face
// after face (not per crop: the service keeps one map per face); values empty
// when the call did not ask for maps.
struct FaceAttention {
  absl::Span<const float> values;
  int height = 0;
  int width = 0;
};

// Appends one Prediction per face to *predictions, in face order. outputs
// holds, face after face, `crops` rows of num_classes probabilities (a face's
// ten crops are averaged). Requires crops >= 1, num_classes >= 1 and
// outputs.size() == faces * crops * num_classes. With attention values, each
// Prediction also gets its face's map (FillAttentionMap); then
// attention.values.size() must be faces * height * width.
void FillPredictions(absl::Span<const float> outputs, int faces, int crops, int num_classes,
                     const std::vector<std::string>& labels,
                     google::protobuf::RepeatedPtrField<fer::v1::Prediction>* predictions,
                     const FaceAttention& attention = {});

}  // namespace fer

#endif  // FER_SERVER_POSTPROCESS_H_
