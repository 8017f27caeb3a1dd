// The LibTorch version this project was compiled against, for --version.
// The header keeps LibTorch out of its includers (fer-server's main has none).
#ifndef FER_MODEL_TORCH_VERSION_H_
#define FER_MODEL_TORCH_VERSION_H_

#include <string>

namespace fer {

// "1.13.0", "2.11.0+cu130"... as torch/version.h states it.
std::string TorchVersion();

}  // namespace fer

#endif  // FER_MODEL_TORCH_VERSION_H_
