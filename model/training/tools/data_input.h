// The data sets eval and train read: an image folder (one folder per class,
// read as `fer-model pack` reads it) or a packed file.
#ifndef FER_MODEL_TOOLS_DATA_INPUT_H_
#define FER_MODEL_TOOLS_DATA_INPUT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/training/packed_dataset.h"

namespace fer {

// A folder is read with ReadImageFolder at `channels` (1 or 3), the face size
// pack would choose, --threads and --max_image_pixels; what it skipped is
// printed on stderr as "fer-model COMMAND: PATH: ..." lines, and a folder
// without a single face is an error. Anything else is read as a packed file.
// sources, when not null, receives the file of each face of a folder (empty
// for a packed file).
absl::StatusOr<PackedDataset> ReadDataSet(const std::string& path, int channels,
                                          const char* command,
                                          std::vector<std::string>* sources = nullptr);

}  // namespace fer

#endif  // FER_MODEL_TOOLS_DATA_INPUT_H_
