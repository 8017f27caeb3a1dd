// fer-model train: the paper's recipe on packed data sets or image folders.
#include <cstdio>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "model/core/weights.h"
#include "model/training/packed_dataset.h"
#include "model/training/tools/commands.h"
#include "model/training/tools/data_input.h"
#include "model/training/tools/flags_util.h"
#include "model/training/train.h"

// --color (init's flag) picks the channels image folders are read at when
// training a new model.
ABSL_DECLARE_FLAG(std::string, color);

ABSL_FLAG(std::string, val, "",
          "train: validation set, packed file or image folder (the epoch best on it is kept)");
ABSL_FLAG(std::string, init, "",
          "train: start from this weight file (the paper pre-trains on RAF-DB)");
ABSL_FLAG(int, epochs, 60, "train: epochs");
ABSL_FLAG(int, batch_size, 256, "train: faces per step");
ABSL_FLAG(double, lr, 0.01, "train: initial learning rate");
ABSL_FLAG(double, momentum, 0.9, "train: SGD momentum");
ABSL_FLAG(double, weight_decay, 5e-4, "train: SGD weight decay");
ABSL_FLAG(double, lr_decay, 0.9, "train: exponential learning-rate decay per epoch");
ABSL_FLAG(int, decay_from, 0, "train: first epoch (0-based) of the decay");
ABSL_FLAG(bool, flip, true, "train: random horizontal flip");
ABSL_FLAG(bool, random_crop, true, "train: random crop");
ABSL_FLAG(int, train_input_size, 112, "train: input size of a new model (ignored with --init)");
ABSL_FLAG(double, input_blur, 0,
          "train: inference-time Gaussian blur of a new model, sigma as a fraction of the face "
          "side, for training data blurrier than the faces served (stored in the meta)");
ABSL_FLAG(int, loader_threads, 4, "train: batch assembly threads");
ABSL_FLAG(int, steps_per_epoch, 0, "train: cap on steps per epoch (0: whole epochs)");
ABSL_FLAG(double, max_minutes, 0, "train: stop after the epoch that passes this many minutes");
ABSL_FLAG(std::string, checkpoint, "",
          "train: checkpoint written every epoch, resumed when present");
ABSL_FLAG(std::string, log, "", "train: CSV log, one row per epoch");
ABSL_FLAG(std::string, trained_on, "", "train: description stored in the weight file's meta");
ABSL_FLAG(std::string, model_version, "",
          "train: model version stored in the weight file's meta (served as the model version)");

namespace fer {
namespace {

// The model train starts from: the weight file of --init, or (without it) a
// new one still to be built, whose faces are read at --color's channels.
struct StartingModel {
  bool from_init = false;
  LlaNet net{nullptr};  // Null until BuildNewModel when not from_init.
  ModelMeta meta;
  int channels = 0;  // What image folders are read at.
};

absl::StatusOr<StartingModel> StartingModelFromFlags() {
  StartingModel start;
  const std::string init = absl::GetFlag(FLAGS_init);
  if (!init.empty()) {
    auto loaded = LoadWeightFile(init);
    if (!loaded.ok()) return loaded.status();
    start.from_init = true;
    start.net = loaded->net;
    start.meta = loaded->meta;
    start.channels = start.meta.input_channels();
    return start;
  }
  const std::string color = absl::GetFlag(FLAGS_color);
  if (color != "gray3" && color != "gray" && color != "grey" && color != "rgb") {
    return absl::InvalidArgumentError("--color must be gray3 (or gray) or rgb");
  }
  start.channels = color == "rgb" ? 3 : 1;
  return start;
}

// Builds the new model when there is no --init (after torch's seed is set, as
// its weights are random): its meta from the flags and train's pixel statistics.
void BuildNewModel(const PackedDataset& train, StartingModel* start) {
  if (start->from_init) return;
  ModelMeta& meta = start->meta;
  meta = DefaultMeta();
  meta.input_size = absl::GetFlag(FLAGS_train_input_size);
  meta.color = train.channels() == 3 ? "rgb" : "gray3";
  PixelStatistics(train, &meta.mean, &meta.std);
  meta.input_blur = absl::GetFlag(FLAGS_input_blur);
  start->net = LlaNet(meta.arch);
}

// What the weight file will say about where it comes from, new model or not.
void DescribeProvenance(const std::string& data_path, const PackedDataset& train, ModelMeta* meta) {
  meta->trained_on = absl::GetFlag(FLAGS_trained_on);
  if (meta->trained_on.empty())
    meta->trained_on = train.source().empty() ? data_path : train.source();
  meta->version = absl::GetFlag(FLAGS_model_version);
  meta->created = DefaultMeta().created;
}

TrainOptions TrainOptionsFromFlags() {
  TrainOptions options;
  options.epochs = absl::GetFlag(FLAGS_epochs);
  options.batch_size = absl::GetFlag(FLAGS_batch_size);
  options.learning_rate = absl::GetFlag(FLAGS_lr);
  options.momentum = absl::GetFlag(FLAGS_momentum);
  options.weight_decay = absl::GetFlag(FLAGS_weight_decay);
  options.lr_decay = absl::GetFlag(FLAGS_lr_decay);
  options.decay_from_epoch = absl::GetFlag(FLAGS_decay_from);
  options.flip = absl::GetFlag(FLAGS_flip);
  options.random_crop = absl::GetFlag(FLAGS_random_crop);
  options.device = absl::GetFlag(FLAGS_device);
  options.precision = absl::GetFlag(FLAGS_precision);
  options.loader_threads = absl::GetFlag(FLAGS_loader_threads);
  options.seed = absl::GetFlag(FLAGS_seed);
  options.max_steps_per_epoch = absl::GetFlag(FLAGS_steps_per_epoch);
  options.max_minutes = absl::GetFlag(FLAGS_max_minutes);
  options.checkpoint = absl::GetFlag(FLAGS_checkpoint);
  options.log_csv = absl::GetFlag(FLAGS_log);
  options.out = absl::GetFlag(FLAGS_out);
  return options;
}

// Trains, then prints the one-line summary on stdout.
int TrainAndReport(const StartingModel& start, const PackedDataset& train, const PackedDataset& val,
                   const TrainOptions& options) {
  std::fprintf(stderr, "training on %zu faces (%dx%d x%d), validating on %zu; device %s, %s\n",
               train.size(), train.face_size(), train.face_size(), train.channels(), val.size(),
               options.device.c_str(), options.precision.c_str());
  auto results = Train(start.net, start.meta, train, val, options);
  if (!results.ok()) return Fail("train", results.status());
  double best = -1;
  for (const EpochResult& r : *results) best = std::max(best, r.val.score);
  std::printf("trained %zu epochs; best validation score in this run %.4f; weights in %s\n",
              results->size(), best, options.out.c_str());
  return 0;
}

}  // namespace

int RunTrain(int argc, char** argv) {
  if (!ParseCommandFlags(argc, argv,
                         "fer-model train --data=TRAIN.pack|DIR --val=VAL.pack|DIR --out=FILE "
                         "[--init] [--epochs] [--device] [--precision] [--checkpoint] [--log] "
                         "...")) {
    return 2;
  }
  const std::string data_path = absl::GetFlag(FLAGS_data);
  const std::string val_path = absl::GetFlag(FLAGS_val);
  if (data_path.empty() || val_path.empty() || absl::GetFlag(FLAGS_out).empty()) {
    return Fail("train", absl::InvalidArgumentError("--data, --val and --out are required"));
  }
  // The model comes first: with --init, image folders are read at its channels.
  auto start = StartingModelFromFlags();
  if (!start.ok()) return Fail("train", start.status());
  auto train = ReadDataSet(data_path, start->channels, "train");
  if (!train.ok()) return Fail("train", train.status());
  auto val = ReadDataSet(val_path, start->channels, "train");
  if (!val.ok()) return Fail("train", val.status());

  torch::manual_seed(absl::GetFlag(FLAGS_seed));
  BuildNewModel(*train, &*start);
  DescribeProvenance(data_path, *train, &start->meta);
  const TrainOptions options = TrainOptionsFromFlags();
  if (ThreadsFlag() < 1) {
    return Fail("train", absl::InvalidArgumentError("--threads must not be negative"));
  }
  torch::set_num_threads(ThreadsFlag());
  return TrainAndReport(*start, *train, *val, options);
}

}  // namespace fer
