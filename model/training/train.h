// Training and evaluation of LLA-Net on packed data sets (model/training/packed_dataset.h),
// on the CPU or a CUDA device, following the paper's recipe by default.
#ifndef FER_MODEL_TRAIN_H_
#define FER_MODEL_TRAIN_H_

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/core/lla_net.h"
#include "model/core/model_meta.h"
#include "model/training/classification_report.h"
#include "model/training/packed_dataset.h"

namespace fer {

// The recipe of the specification (paper, section IV) unless changed.
struct TrainOptions {
  int epochs = 60;
  int batch_size = 256;
  double learning_rate = 0.01;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  double lr_decay = 0.9;     // lr = learning_rate * lr_decay^(epoch - decay_from), per epoch...
  int decay_from_epoch = 0;  // ...from this epoch (0-based) on; constant before it.
  bool flip = true;          // Random horizontal flip.
  bool random_crop = true;   // Random crop of input_size from the face at TenCropResizeSize.
  std::string device = "auto";
  std::string precision = "fp32";  // Autocast: fp32 (off), bf16, fp16 (CUDA, loss-scaled).
  int loader_threads = 4;
  uint64_t seed = 0;
  int max_steps_per_epoch = 0;  // 0: whole epochs. Tests use a few steps.
  double max_minutes = 0;       // 0: no limit; else stop after the epoch that passes it.
  std::string checkpoint;       // Written after every epoch; resumed from when it exists.
  std::string log_csv;          // One row per epoch.
  std::string out;              // Weight file of the best epoch (by validation score).
  bool progress = true;         // Progress bar on stderr.
};

struct EpochResult {
  int epoch = 0;
  double learning_rate = 0;
  double train_loss = 0;
  double train_accuracy = 0;
  double faces_per_s = 0;
  ClassificationReport val;
};

// Trains net (its meta gives input size, colour and normalisation) on train,
// selecting the epoch with the best validation challenge score and writing it to
// options.out with meta.metrics filled in. Returns one result per epoch run in
// this call (a resumed run returns only the epochs it ran).
absl::StatusOr<std::vector<EpochResult>> Train(LlaNet net, ModelMeta meta,
                                               const PackedDataset& train, const PackedDataset& val,
                                               const TrainOptions& options);

// One optimisation step's building blocks, exposed for tests.
struct Augmentation {
  // Per face: crop centre offsets in [-1, 1] of the free margin, and mirroring.
  std::vector<float> offset_x, offset_y;
  std::vector<uint8_t> mirrored;
};
// Samples 8-bit faces (N x S x S x C on any device) into N x C x input_size^2
// float pixels in [0, 255]: the face resized to TenCropResizeSize(input_size)
// and cropped at the given offsets (0 = centre), mirrored where asked. With no
// augmentation (nullptr) the whole face is resized to input_size.
torch::Tensor SampleFaces(const torch::Tensor& faces_u8, int input_size,
                          const Augmentation* augmentation);

// The ten crops of each face (torchvision TenCrop order) as 10N faces, crop
// index major within a face: rows [10 i, 10 i + 10) belong to face i.
torch::Tensor TenCropFaces(const torch::Tensor& faces_u8, int input_size);

struct EvalOptions {
  std::string device = "auto";
  std::string precision = "fp32";
  bool ten_crop = false;
  int batch_size = 256;
  bool progress = false;
};

// Evaluates net (in eval mode) on every face of data. probabilities, if given,
// receives N x num_classes averaged probabilities.
absl::StatusOr<ConfusionMatrix> Evaluate(LlaNet net, const ModelMeta& meta,
                                         const PackedDataset& data, const EvalOptions& options,
                                         std::vector<float>* probabilities = nullptr);

// Mean and std of a packed set's pixels scaled to [0, 1], per model channel.
void PixelStatistics(const PackedDataset& data, std::array<float, 3>* mean,
                     std::array<float, 3>* std);

}  // namespace fer

#endif  // FER_MODEL_TRAIN_H_
