#include "model/core/torch_version.h"

#include <torch/version.h>

namespace fer {

std::string TorchVersion() {
#ifdef TORCH_VERSION
  return TORCH_VERSION;
#else
  // Old headers carry only the numbers.
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
#endif
}

}  // namespace fer
