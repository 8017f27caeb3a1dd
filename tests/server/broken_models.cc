#include "tests/server/broken_models.h"

#include <torch/torch.h>

#include <functional>
#include <limits>

#include "absl/strings/str_cat.h"
#include "model/core/weights.h"

namespace fer::test_util {
namespace {

constexpr float kHugeWeight = 1e30f;

// Loads from, applies edit to the named parameter or buffer, saves to to.
absl::Status Rewrite(const std::string& from, const std::string& to, const std::string& tensor,
                     const std::function<void(torch::Tensor&)>& edit) {
  absl::StatusOr<LoadedModel> loaded = LoadWeightFile(from);
  if (!loaded.ok()) return loaded.status();
  torch::NoGradGuard no_grad;
  bool found = false;
  for (auto& item : loaded->net->named_parameters()) {
    if (item.key() == tensor) edit(item.value()), found = true;
  }
  for (auto& item : loaded->net->named_buffers()) {
    if (item.key() == tensor) edit(item.value()), found = true;
  }
  if (!found) return absl::NotFoundError(absl::StrCat("no tensor ", tensor, " in ", from));
  return SaveWeightFile(to, loaded->net, loaded->meta);
}

}  // namespace

absl::Status WriteModelWithNan(const std::string& from, const std::string& to,
                               const std::string& tensor) {
  return Rewrite(from, to, tensor, [](torch::Tensor& t) {
    t.view(-1)[t.numel() / 2] = std::numeric_limits<float>::quiet_NaN();
  });
}

absl::Status WriteOverflowingModel(const std::string& from, const std::string& to) {
  absl::StatusOr<LoadedModel> loaded = LoadWeightFile(from);
  if (!loaded.ok()) return loaded.status();
  torch::NoGradGuard no_grad;
  // 1e30 is finite, but two layers of it are not: float overflows to
  // infinity by the second convolution, and inf - inf is NaN from there on.
  for (auto& item : loaded->net->named_parameters()) item.value().fill_(kHugeWeight);
  return SaveWeightFile(to, loaded->net, loaded->meta);
}

absl::Status WriteModelWithVersion(const std::string& from, const std::string& to,
                                   const std::string& version) {
  absl::StatusOr<LoadedModel> loaded = LoadWeightFile(from);
  if (!loaded.ok()) return loaded.status();
  loaded->meta.version = version;
  return SaveWeightFile(to, loaded->net, loaded->meta);
}

}  // namespace fer::test_util
