#include "model/core/device.h"

#include <torch/torch.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace fer {

absl::StatusOr<std::string> ResolveDevice(const std::string& device) {
  if (device == "cpu") return device;
  if (device == "auto") return torch::cuda::is_available() ? std::string("cuda:0") : "cpu";
  absl::string_view rest = device;
  if (!absl::ConsumePrefix(&rest, "cuda")) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown device \"", device, "\" (auto, cpu, cuda or cuda:N)"));
  }
  int index = 0;
  if (!rest.empty() &&
      (!absl::ConsumePrefix(&rest, ":") || !absl::SimpleAtoi(rest, &index) || index < 0)) {
    return absl::InvalidArgumentError(absl::StrCat("bad CUDA device \"", device, "\""));
  }
  if (!torch::cuda::is_available()) {
    return absl::FailedPreconditionError(
        absl::StrCat("device ", device, " asked for, but this LibTorch sees no CUDA device"));
  }
  if (index >= static_cast<int>(torch::cuda::device_count())) {
    return absl::InvalidArgumentError(absl::StrCat("device ", device, " does not exist (",
                                                   torch::cuda::device_count(), " CUDA devices)"));
  }
  return absl::StrCat("cuda:", index);
}

}  // namespace fer
