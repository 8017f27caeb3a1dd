#include "server/postprocess.h"

#include <cstddef>

#include "model/core/attention_quality.h"

namespace fer {

void MeanOverCrops(absl::Span<const float> rows, int crops, absl::Span<float> mean) {
  const size_t classes = mean.size();
  for (float& m : mean) m = 0.0f;
  for (int crop = 0; crop < crops; ++crop) {
    for (size_t c = 0; c < classes; ++c) mean[c] += rows[crop * classes + c];
  }
  for (float& m : mean) m /= static_cast<float>(crops);
}

int ArgMax(absl::Span<const float> values) {
  int top = 0;
  for (int c = 1; c < static_cast<int>(values.size()); ++c) {
    if (values[c] > values[top]) top = c;
  }
  return top;
}

void FillPrediction(absl::Span<const float> probabilities, const std::vector<std::string>& labels,
                    fer::v1::Prediction* prediction) {
  prediction->mutable_probabilities()->Reserve(static_cast<int>(probabilities.size()));
  for (float p : probabilities) prediction->add_probabilities(p);
  const int top = ArgMax(probabilities);
  prediction->set_top_label(top);
  if (top < static_cast<int>(labels.size())) prediction->set_top_label_name(labels[top]);
  prediction->set_confidence(probabilities[top]);
}

void FillAttentionMap(absl::Span<const float> values, int height, int width,
                      fer::v1::AttentionMap* map) {
  map->set_height(height);
  map->set_width(width);
  map->mutable_values()->Add(values.begin(), values.end());
  map->set_center_share(AttentionCenterShare(values, height, width));
}

void FillPredictions(absl::Span<const float> outputs, int faces, int crops, int num_classes,
                     const std::vector<std::string>& labels,
                     google::protobuf::RepeatedPtrField<fer::v1::Prediction>* predictions,
                     const FaceAttention& attention) {
  const size_t face_values = static_cast<size_t>(crops) * num_classes;
  const size_t map_values = static_cast<size_t>(attention.height) * attention.width;
  std::vector<float> mean(num_classes);
  predictions->Reserve(predictions->size() + faces);
  for (int face = 0; face < faces; ++face) {
    MeanOverCrops(outputs.subspan(face * face_values, face_values), crops, absl::MakeSpan(mean));
    fer::v1::Prediction* prediction = predictions->Add();
    FillPrediction(mean, labels, prediction);
    if (!attention.values.empty()) {
      FillAttentionMap(attention.values.subspan(face * map_values, map_values), attention.height,
                       attention.width, prediction->mutable_attention());
    }
  }
}

}  // namespace fer
