// The device a model runs on: "auto", "cpu", "cuda" or "cuda:N", checked
// against what this LibTorch sees. Shared by inference (engine), training and
// the server's flags, so that none of them needs the others.
#ifndef FER_MODEL_CORE_DEVICE_H_
#define FER_MODEL_CORE_DEVICE_H_

#include <string>

#include "absl/status/statusor.h"

namespace fer {

// Checks a device string (auto, cpu, cuda, cuda:N) and resolves "auto": to
// "cuda:0" where LibTorch sees a CUDA device, else "cpu".
absl::StatusOr<std::string> ResolveDevice(const std::string& device);

}  // namespace fer

#endif  // FER_MODEL_CORE_DEVICE_H_
