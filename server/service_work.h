// Internal to the service (server/service.cc, server/service_calls.cc): the
// unit of work that a Classify call or a stream frame hands to the
// admit / preprocess / batch pipeline (ExpressionService::Process).
#ifndef FER_SERVER_SERVICE_WORK_H_
#define FER_SERVER_SERVICE_WORK_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "fer/v1/expression.pb.h"
#include "model/core/engine.h"
#include "server/postprocess.h"
#include "server/preprocess.h"
#include "server/service.h"

namespace fer {

// One loaded model as the service runs it: shared by every call admitted
// under it, so that it lives until the last of them is answered (see
// "Versions and reload" in service.h). Immutable once built, but for the
// runners' own state, which only the instance's worker (or warm-up, before the
// generation serves) touches.
struct ExpressionService::Generation {
  std::shared_ptr<Engine> engine;
  std::vector<std::unique_ptr<Runner>> runners;  // one per instance
  std::string version;                           // engine->meta().version
};

// One request's or one frame's faces on their way through admission,
// preprocessing and the batcher.
struct ExpressionService::Work {
  // Set by the caller of Process, and kept alive until done has been called.
  const google::protobuf::RepeatedPtrField<fer::v1::Image>* faces = nullptr;
  bool ten_crop = false;
  bool attention = false;  // ClassifyOptions.attention
  absl::Time deadline = absl::InfiniteFuture();
  const std::atomic<bool>* cancelled = nullptr;
  // Called exactly once. It may destroy this Work, so it is moved out first.
  std::function<void(absl::Status)> done;

  // Set by Process on admission: the model the faces run on, whose version
  // and labels the answer carries.
  std::shared_ptr<const Generation> generation;

  // Filled by Process: every model face's input, then its probabilities.
  std::vector<uint8_t> pixels;
  std::vector<float> outputs;
  // Filled by the batcher: the faces' time queued and in the model.
  JobTiming timing;
  // When attention: one map per request face, not per model face (a ten-crop
  // face keeps its centre crop's map, kTenCropCentreBox), face after face.
  std::vector<float> attention_maps;

  int crops() const { return ten_crop ? kTenCropCount : 1; }
  int model_faces() const { return faces->size() * crops(); }

  // The answer once done with OK: one Prediction per face appended to
  // *predictions, in face order, each with its map when attention was asked.
  void Answer(google::protobuf::RepeatedPtrField<fer::v1::Prediction>* predictions) const {
    const Engine& engine = *generation->engine;
    FaceAttention maps;
    if (attention) maps = {attention_maps, engine.attention_height(), engine.attention_width()};
    FillPredictions(outputs, faces->size(), crops(), engine.num_classes(), engine.meta().labels,
                    predictions, maps);
  }
};

// Calls *done with status, having moved it out first (done may destroy the
// Work that holds it).
inline void Complete(std::function<void(absl::Status)>* done, absl::Status status) {
  std::function<void(absl::Status)> callback = std::move(*done);
  callback(std::move(status));
}

}  // namespace fer

#endif  // FER_SERVER_SERVICE_WORK_H_
