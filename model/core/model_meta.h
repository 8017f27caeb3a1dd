// What a weight file says about its model, beside the tensors: architecture,
// input preprocessing and provenance. Torch-free, so that the server and the
// client can read it without LibTorch headers.
#ifndef FER_MODEL_MODEL_META_H_
#define FER_MODEL_MODEL_META_H_

#include <array>
#include <map>
#include <string>
#include <vector>

namespace fer {

// Options of LLA-Net (model/core/lla_net.h). The default is the model of the
// specification: 7 classes, a 3x3 attention convolution after every BasicBlock.
struct ArchOptions {
  int num_classes = 7;
  int attention_kernel = 3;  // 3 (default) or 1.
  bool attention = true;     // false: plain ResNet-18 with the same names, for ablations.
};

// The "trained_on" value fer-model init writes. A server that loads a file
// saying this warns loudly that its predictions are meaningless.
inline constexpr char kUntrained[] = "untrained";

struct ModelMeta {
  ArchOptions arch;
  int input_size = 112;
  // Per-channel mean and std of pixels scaled to [0, 1].
  std::array<float, 3> mean = {0.5f, 0.5f, 0.5f};
  std::array<float, 3> std = {0.25f, 0.25f, 0.25f};
  std::string color = "gray3";  // "gray3": grey repeated on 3 channels; "rgb".
  // Gaussian low-pass applied to every face at inference (serving and
  // evaluation, not training), sigma as a fraction of the face side; 0 = none.
  // It matches sharp inputs to a model trained on blurred faces (see
  // model/MODEL_CARD.md).
  double input_blur = 0;
  std::vector<std::string> labels;
  std::string trained_on = kUntrained;
  std::map<std::string, double> metrics;
  std::string created;
  std::string version;  // Free text such as "lla-net-fer2013-2026-11-27"; may be empty.

  // Channels of the 8-bit faces the model takes: 1 for gray3, 3 for rgb.
  int input_channels() const { return color == "rgb" ? 3 : 1; }
  bool untrained() const { return trained_on == kUntrained; }
};

// Meta for a new model: the label names of model/core/labels.h, today's date.
ModelMeta DefaultMeta(const ArchOptions& arch = ArchOptions());

}  // namespace fer

#endif  // FER_MODEL_MODEL_META_H_
