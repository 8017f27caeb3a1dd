// Weight files: a pickled dict readable by Python's torch.load and written by
// torch.save (and the reverse), as the model specification fixes:
//   {"format": "lla-net/1", "state_dict": {name: tensor}, "meta": {...}}
#ifndef FER_MODEL_WEIGHTS_H_
#define FER_MODEL_WEIGHTS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/core/lla_net.h"
#include "model/core/model_meta.h"

namespace fer {

inline constexpr char kWeightFormat[] = "lla-net/1";

struct LoadedModel {
  LlaNet net{nullptr};
  ModelMeta meta;
};

enum class StoredPrecision { kFloat32, kFloat16 };

// Writes net's state_dict and meta to path (atomically: a temporary file
// renamed into place). kFloat16 halves the file; loading restores float32.
absl::Status SaveWeightFile(const std::string& path, LlaNet net, const ModelMeta& meta,
                            StoredPrecision precision = StoredPrecision::kFloat32);

// Reads a weight file and builds the network its meta describes (on the CPU, in
// float32, train mode as constructed). Files from Python's torch.save load as
// users write them (state_dict() OrderedDicts, lists or tuples in the meta,
// see model/core/torch_file.h). Every parameter and buffer name and shape is
// checked: the error names the first missing, unexpected or mis-shaped entry,
// or the first that holds a NaN or an infinity. A missing, unreadable,
// truncated or foreign file, or a path that is not a regular file (a
// directory, a fifo, /proc/self/mem), gives an error that says which, never a
// crash.
absl::StatusOr<LoadedModel> LoadWeightFile(const std::string& path);

}  // namespace fer

#endif  // FER_MODEL_WEIGHTS_H_
