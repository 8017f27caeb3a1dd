#include "model/training/train.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <numeric>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "model/common/progress.h"
#include "model/core/device.h"
#include "model/core/image_ops.h"
#include "model/core/weights.h"

namespace fer {
namespace {

namespace F = torch::nn::functional;

// fp16 training scales the loss so that small gradients survive; the scale
// halves on overflow (the step is skipped) and doubles after this many good steps.
constexpr double kInitialLossScale = 65536.0;
constexpr int kLossScaleGrowthInterval = 2000;
// Batches prepared ahead of the training step, per loader thread.
constexpr int kPrefetchPerThread = 2;

absl::StatusOr<torch::ScalarType> AutocastType(const std::string& precision, bool cuda) {
  if (precision == "fp32") return torch::kFloat32;
  if (precision == "bf16") return torch::kBFloat16;
  if (precision == "fp16" && cuda) return torch::kFloat16;
  if (precision == "fp16") return absl::InvalidArgumentError("fp16 training needs CUDA; use bf16");
  return absl::InvalidArgumentError(absl::StrCat("unknown precision \"", precision, "\""));
}

// Autocast on for one forward pass; the cache of cast weights is dropped at the
// end, as leaving Python's autocast context does (weights change every step).
class AutocastScope {
 public:
  AutocastScope(const torch::Device& device, torch::ScalarType dtype)
      : enabled_(dtype != torch::kFloat32), cuda_(device.is_cuda()) {
    if (!enabled_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    const auto type = cuda_ ? at::kCUDA : at::kCPU;
    at::autocast::set_autocast_dtype(type, dtype);
    at::autocast::set_autocast_enabled(type, true);
#else
    if (cuda_) {
      at::autocast::set_autocast_gpu_dtype(dtype);
      at::autocast::set_enabled(true);
    } else {
      at::autocast::set_autocast_cpu_dtype(dtype);
      at::autocast::set_cpu_enabled(true);
    }
#endif
  }
  ~AutocastScope() {
    if (!enabled_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(cuda_ ? at::kCUDA : at::kCPU, false);
#else
    if (cuda_) {
      at::autocast::set_enabled(false);
    } else {
      at::autocast::set_cpu_enabled(false);
    }
#endif
    at::autocast::clear_cache();
  }

 private:
  bool enabled_;
  bool cuda_;
};

// One batch as the loader hands it over: 8-bit faces, labels, augmentation.
struct Batch {
  torch::Tensor faces;   // B x S x S x C uint8 (pinned when training on CUDA).
  torch::Tensor labels;  // B int64.
  Augmentation augmentation;
};

// Assembles batches on several threads, handing them over in order. The
// augmentation of batch b is drawn from a generator seeded by (seed, epoch, b),
// so a run is reproducible whatever the thread timing, and a resumed run
// repeats exactly what the uninterrupted one would have done.
class BatchLoader {
 public:
  BatchLoader(const PackedDataset& data, std::vector<size_t> order, int batch_size, int threads,
              bool pin, const TrainOptions& options, int epoch)
      : data_(data),
        order_(std::move(order)),
        batch_size_(batch_size),
        num_batches_(static_cast<int>(order_.size() / batch_size)),
        pin_(pin),
        options_(options),
        epoch_(epoch),
        capacity_(std::max(1, threads) * kPrefetchPerThread) {
    if (options.max_steps_per_epoch > 0)
      num_batches_ = std::min(num_batches_, options.max_steps_per_epoch);
    for (int i = 0; i < std::max(1, threads); ++i) workers_.emplace_back([this] { Work(); });
  }

  ~BatchLoader() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  int num_batches() const { return num_batches_; }

  // Returns batch `next` in order, waiting for it; false after the last.
  bool Next(Batch* batch) {
    std::unique_lock<std::mutex> lock(mu_);
    if (next_out_ >= num_batches_) return false;
    cv_.wait(lock, [&] { return ready_.count(next_out_) > 0; });
    *batch = std::move(ready_[next_out_]);
    ready_.erase(next_out_);
    ++next_out_;
    cv_.notify_all();
    return true;
  }

 private:
  void Work() {
    while (true) {
      int index;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] {
          return stopping_ || next_build_ < std::min(num_batches_, next_out_ + capacity_);
        });
        if (stopping_ || next_build_ >= num_batches_) return;
        index = next_build_++;
      }
      Batch batch = Build(index);
      {
        std::lock_guard<std::mutex> lock(mu_);
        ready_[index] = std::move(batch);
      }
      cv_.notify_all();
    }
  }

  Batch Build(int index) const {
    const int64_t size = data_.face_size();
    auto options = torch::TensorOptions().dtype(torch::kUInt8).pinned_memory(pin_);
    Batch batch;
    batch.faces = torch::empty({batch_size_, size, size, data_.channels()}, options);
    batch.labels = torch::empty({batch_size_},
                                torch::TensorOptions().dtype(torch::kInt64).pinned_memory(pin_));
    uint8_t* out = batch.faces.data_ptr<uint8_t>();
    int64_t* labels = batch.labels.data_ptr<int64_t>();
    const size_t bytes = data_.face_bytes();
    for (int i = 0; i < batch_size_; ++i) {
      const size_t face = order_[static_cast<size_t>(index) * batch_size_ + i];
      std::memcpy(out + i * bytes, data_.face(face), bytes);
      labels[i] = data_.label(face);
    }
    std::mt19937_64 rng(options_.seed * 1000003ULL + epoch_ * 7919ULL + index);
    std::uniform_real_distribution<float> offset(-1.0f, 1.0f);
    std::bernoulli_distribution coin(0.5);
    Augmentation& aug = batch.augmentation;
    for (int i = 0; i < batch_size_; ++i) {
      aug.offset_x.push_back(options_.random_crop ? offset(rng) : 0.0f);
      aug.offset_y.push_back(options_.random_crop ? offset(rng) : 0.0f);
      aug.mirrored.push_back(options_.flip && coin(rng));
    }
    return batch;
  }

  const PackedDataset& data_;
  const std::vector<size_t> order_;
  const int batch_size_;
  int num_batches_;
  const bool pin_;
  const TrainOptions& options_;
  const int epoch_;
  const int capacity_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int, Batch> ready_;
  int next_build_ = 0;
  int next_out_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

void ToChannelsLast(LlaNet& net) {
  torch::NoGradGuard no_grad;
  for (auto& p : net->parameters()) {
    if (p.dim() == 4) p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
  }
}

struct Checkpoint {
  int next_epoch = 0;
  double best_score = -1;
  double loss_scale = kInitialLossScale;
};

void SaveCheckpoint(const std::string& path, LlaNet& net, torch::optim::SGD& optimizer,
                    const Checkpoint& state) {
  torch::serialize::OutputArchive archive, model, optim;
  net->save(model);
  optimizer.save(optim);
  archive.write("model", model);
  archive.write("optimizer", optim);
  archive.write("next_epoch", torch::tensor(static_cast<int64_t>(state.next_epoch)));
  archive.write("best_score", torch::tensor(state.best_score, torch::kFloat64));
  archive.write("loss_scale", torch::tensor(state.loss_scale, torch::kFloat64));
  const std::string temp = path + ".tmp";
  archive.save_to(temp);
  std::filesystem::rename(temp, path);
}

absl::StatusOr<Checkpoint> LoadCheckpoint(const std::string& path, LlaNet& net,
                                          torch::optim::SGD& optimizer,
                                          const torch::Device& device) {
  Checkpoint state;
  try {
    torch::serialize::InputArchive archive, model, optim;
    archive.load_from(path, device);
    archive.read("model", model);
    archive.read("optimizer", optim);
    net->load(model);
    optimizer.load(optim);
    // A fresh tensor per read: reading into one that exists keeps its dtype,
    // and would reinterpret the float64 scores as the int64 epoch count.
    torch::Tensor next_epoch, best_score, loss_scale;
    archive.read("next_epoch", next_epoch);
    state.next_epoch = static_cast<int>(next_epoch.item<int64_t>());
    archive.read("best_score", best_score);
    state.best_score = best_score.item<double>();
    archive.read("loss_scale", loss_scale);
    state.loss_scale = loss_scale.item<double>();
  } catch (const std::exception& e) {
    std::string what = e.what();
    return absl::InvalidArgumentError(absl::StrCat("cannot resume from checkpoint ", path, ": ",
                                                   what.substr(0, what.find('\n'))));
  }
  return state;
}

double LearningRate(const TrainOptions& o, int epoch) {
  return o.learning_rate * std::pow(o.lr_decay, std::max(0, epoch - o.decay_from_epoch));
}

}  // namespace

torch::Tensor SampleFaces(const torch::Tensor& faces_u8, int input_size,
                          const Augmentation* augmentation) {
  torch::Tensor x = faces_u8.permute({0, 3, 1, 2}).to(torch::kFloat32);
  if (augmentation == nullptr) {
    if (x.size(2) == input_size && x.size(3) == input_size) return x.contiguous();
    return F::interpolate(x, F::InterpolateFuncOptions()
                                 .size(std::vector<int64_t>{input_size, input_size})
                                 .mode(torch::kBilinear)
                                 .align_corners(false));
  }
  const int64_t n = x.size(0);
  const float scale = static_cast<float>(input_size) / TenCropResizeSize(input_size);
  const float margin = 1.0f - scale;
  std::vector<float> theta(static_cast<size_t>(n) * 6);
  for (int64_t i = 0; i < n; ++i) {
    float* t = theta.data() + i * 6;
    t[0] = augmentation->mirrored[i] ? -scale : scale;
    t[1] = 0;
    t[2] = augmentation->offset_x[i] * margin;
    t[3] = 0;
    t[4] = scale;
    t[5] = augmentation->offset_y[i] * margin;
  }
  torch::Tensor affine = torch::from_blob(theta.data(), {n, 2, 3}, torch::kFloat32)
                             .to(x.device(), /*non_blocking=*/false);
  torch::Tensor grid = F::affine_grid(affine, {n, x.size(1), input_size, input_size},
                                      /*align_corners=*/false);
  return F::grid_sample(x, grid,
                        F::GridSampleFuncOptions()
                            .mode(torch::kBilinear)
                            .padding_mode(torch::kBorder)
                            .align_corners(false));
}

torch::Tensor TenCropFaces(const torch::Tensor& faces_u8, int input_size) {
  const int resized_size = TenCropResizeSize(input_size);
  torch::Tensor x = faces_u8.permute({0, 3, 1, 2}).to(torch::kFloat32);
  torch::Tensor resized =
      F::interpolate(x, F::InterpolateFuncOptions()
                            .size(std::vector<int64_t>{resized_size, resized_size})
                            .mode(torch::kBilinear)
                            .align_corners(false));
  std::vector<torch::Tensor> crops;
  for (const CropBox& box : TenCropBoxes(resized_size, input_size)) {
    torch::Tensor crop = resized.narrow(2, box.y, box.size).narrow(3, box.x, box.size);
    crops.push_back(box.mirrored ? crop.flip({3}) : crop);
  }
  // N x 10 x C x H x W, then 10N rows with a face's crops together.
  return torch::stack(crops, 1).flatten(0, 1);
}

void PixelStatistics(const PackedDataset& data, std::array<float, 3>* mean,
                     std::array<float, 3>* std) {
  const int channels = data.channels();
  std::array<double, 3> sum{}, sum_sq{};
  const size_t pixels = data.face_bytes() / channels;
  for (size_t i = 0; i < data.size(); ++i) {
    const uint8_t* face = data.face(i);
    for (size_t p = 0; p < pixels; ++p) {
      for (int c = 0; c < channels; ++c) {
        const double v = face[p * channels + c] / 255.0;
        sum[c] += v;
        sum_sq[c] += v * v;
      }
    }
  }
  const double count = static_cast<double>(pixels) * std::max<size_t>(1, data.size());
  for (int c = 0; c < 3; ++c) {
    const int source = channels == 1 ? 0 : c;
    const double m = sum[source] / count;
    (*mean)[c] = static_cast<float>(m);
    (*std)[c] = static_cast<float>(std::sqrt(std::max(1e-12, sum_sq[source] / count - m * m)));
  }
}

absl::StatusOr<ConfusionMatrix> Evaluate(LlaNet net, const ModelMeta& meta,
                                         const PackedDataset& data, const EvalOptions& options,
                                         std::vector<float>* probabilities) {
  auto device_name = ResolveDevice(options.device);
  if (!device_name.ok()) return device_name.status();
  const torch::Device device(*device_name);
  auto dtype = AutocastType(options.precision, device.is_cuda());
  if (!dtype.ok()) return dtype.status();
  if (data.size() == 0) return absl::InvalidArgumentError("the data set is empty");
  if (data.channels() != meta.input_channels()) {
    return absl::InvalidArgumentError(absl::StrCat("the data set has ", data.channels(),
                                                   " channels, the model takes ",
                                                   meta.input_channels()));
  }
  const bool was_training = net->is_training();
  net->eval();
  net->to(device);
  torch::NoGradGuard no_grad;
  ConfusionMatrix confusion;
  const int classes = meta.arch.num_classes;
  if (probabilities) probabilities->assign(data.size() * classes, 0.0f);
  std::unique_ptr<ProgressBar> bar;
  if (options.progress) bar = std::make_unique<ProgressBar>("eval", data.size());
  const int64_t size = data.face_size();
  for (size_t start = 0; start < data.size(); start += options.batch_size) {
    const int64_t n = std::min<int64_t>(options.batch_size, data.size() - start);
    torch::Tensor faces = torch::from_blob(const_cast<uint8_t*>(data.face(start)),
                                           {n, size, size, data.channels()}, torch::kUInt8)
                              .to(device);
    torch::Tensor pixels = options.ten_crop ? TenCropFaces(faces, meta.input_size)
                                            : SampleFaces(faces, meta.input_size, nullptr);
    torch::Tensor probs;
    {
      AutocastScope autocast(device, *dtype);
      probs = torch::softmax(
          net->forward(NormalizePixelsForInference(pixels, meta)).to(torch::kFloat32), 1);
    }
    if (options.ten_crop) probs = probs.view({n, 10, classes}).mean(1);
    probs = probs.to(torch::kCPU).contiguous();
    torch::Tensor predicted = probs.argmax(1);
    for (int64_t i = 0; i < n; ++i) {
      const int truth = data.label(start + i);
      if (truth >= 0 && truth < kNumClasses) {
        if (auto s = confusion.Add(truth, static_cast<int>(predicted[i].item<int64_t>()));
            !s.ok()) {
          return s;
        }
      }
    }
    if (probabilities) {
      std::memcpy(probabilities->data() + start * classes, probs.data_ptr<float>(),
                  probs.numel() * sizeof(float));
    }
    if (bar) bar->Update(start + n);
  }
  if (bar) bar->Finish();
  if (was_training) net->train();
  return confusion;
}

namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// What Train refuses before touching the model: data sets that do not fit it,
// batches too small for batch norm or larger than the training set, no output.
absl::Status CheckTrainInputs(const ModelMeta& meta, const PackedDataset& train,
                              const PackedDataset& val, const TrainOptions& options) {
  if (train.channels() != meta.input_channels() || val.channels() != meta.input_channels()) {
    return absl::InvalidArgumentError(absl::StrCat("packed sets have ", train.channels(), " and ",
                                                   val.channels(), " channels; the model (color ",
                                                   meta.color, ") takes ", meta.input_channels()));
  }
  if (options.batch_size < 2) return absl::InvalidArgumentError("batch size must be at least 2");
  if (train.size() < static_cast<size_t>(options.batch_size)) {
    return absl::InvalidArgumentError(absl::StrCat("the training set has ", train.size(),
                                                   " faces, fewer than one batch of ",
                                                   options.batch_size));
  }
  if (options.out.empty()) return absl::InvalidArgumentError("no output weight file given");
  return absl::OkStatus();
}

// net moved to device in the memory layout training runs fastest in.
LlaNet OnDevice(LlaNet net, const torch::Device& device) {
  if (device.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);
  net->to(device);
  ToChannelsLast(net);
  return net;
}

// The training faces in the order epoch visits them: a shuffle seeded by
// (seed, epoch), so that a resumed run visits them as the whole run would.
std::vector<size_t> EpochOrder(size_t size, uint64_t seed, int epoch) {
  std::vector<size_t> order(size);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 shuffle_rng(seed * 1000003ULL + epoch);
  std::shuffle(order.begin(), order.end(), shuffle_rng);
  return order;
}

// Loss and accuracy of one epoch's training steps, summed on the device so
// that a step does not wait for the host.
struct EpochTotals {
  explicit EpochTotals(const torch::Device& device)
      : loss_sum(torch::zeros({}, torch::TensorOptions().device(device).dtype(torch::kFloat64))),
        correct(torch::zeros({}, torch::TensorOptions().device(device).dtype(torch::kInt64))) {}

  void Add(const torch::Tensor& loss, const torch::Tensor& logits, const torch::Tensor& labels) {
    torch::NoGradGuard no_grad;
    loss_sum += loss.detach().to(torch::kFloat64) * labels.size(0);
    correct += (logits.argmax(1) == labels).sum();
    seen += labels.size(0);
  }

  torch::Tensor loss_sum;
  torch::Tensor correct;
  int64_t seen = 0;
  double seconds = 0;  // Of the training steps, set when the epoch's steps are done.
};

// One call of Train: the model, its optimiser and the state a checkpoint
// carries, from the first epoch of this call to the last.
class Trainer {
 public:
  // Requires: the inputs passed CheckTrainInputs; device_name is resolved.
  Trainer(LlaNet net, ModelMeta meta, const PackedDataset& train, const PackedDataset& val,
          const TrainOptions& options, const std::string& device_name, torch::ScalarType dtype)
      : meta_(std::move(meta)),
        train_(train),
        val_(val),
        options_(options),
        device_name_(device_name),
        device_(device_name),
        dtype_(dtype),
        net_(OnDevice(std::move(net), device_)),
        optimizer_(net_->parameters(), torch::optim::SGDOptions(options.learning_rate)
                                           .momentum(options.momentum)
                                           .weight_decay(options.weight_decay)) {}

  // Resumes from options.checkpoint when it exists, then opens the CSV log
  // (appending to it when resuming).
  absl::Status Start();

  // Runs the epochs left, keeping the best in options.out; stops early at
  // options.max_minutes.
  absl::StatusOr<std::vector<EpochResult>> Run();

 private:
  absl::Status Resume();
  absl::Status OpenLog();
  void SetLearningRate(double lr);
  EpochTotals TrainEpoch(int epoch, Clock::time_point epoch_start);
  void TrainStep(const Batch& batch, EpochTotals* totals);
  bool ScaledBackward(const torch::Tensor& loss);
  absl::StatusOr<EpochResult> Validate(int epoch, double lr, const EpochTotals& totals);
  void Report(const EpochResult& result, double seconds);
  absl::Status KeepIfBest(const EpochResult& result);
  bool OutOfTime(int epoch, Clock::time_point run_start) const;

  ModelMeta meta_;
  const PackedDataset& train_;
  const PackedDataset& val_;
  const TrainOptions& options_;
  const std::string device_name_;
  const torch::Device device_;
  const torch::ScalarType dtype_;
  LlaNet net_;
  torch::optim::SGD optimizer_;
  Checkpoint state_;
  int good_steps_ = 0;  // fp16 steps since the loss scale last changed.
  std::ofstream log_;
};

absl::Status Trainer::Start() {
  if (auto s = Resume(); !s.ok()) return s;
  return OpenLog();
}

absl::Status Trainer::Resume() {
  if (options_.checkpoint.empty() || !std::filesystem::exists(options_.checkpoint)) {
    return absl::OkStatus();
  }
  auto loaded = LoadCheckpoint(options_.checkpoint, net_, optimizer_, device_);
  if (!loaded.ok()) return loaded.status();
  state_ = *loaded;
  ToChannelsLast(net_);
  std::fprintf(stderr, "resuming from %s at epoch %d (best score %.4f)\n",
               options_.checkpoint.c_str(), state_.next_epoch + 1, state_.best_score);
  return absl::OkStatus();
}

absl::Status Trainer::OpenLog() {
  if (options_.log_csv.empty()) return absl::OkStatus();
  const bool fresh = !std::filesystem::exists(options_.log_csv) || state_.next_epoch == 0;
  log_.open(options_.log_csv, fresh ? std::ios::trunc : std::ios::app);
  if (!log_) return absl::UnavailableError(absl::StrCat("cannot write ", options_.log_csv));
  if (fresh) {
    log_ << "epoch,lr,train_loss,train_accuracy,val_accuracy,val_f1,val_score,faces_per_s,"
            "seconds\n";
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<EpochResult>> Trainer::Run() {
  const auto run_start = Clock::now();
  std::vector<EpochResult> results;
  for (int epoch = state_.next_epoch; epoch < options_.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    const double lr = LearningRate(options_, epoch);
    SetLearningRate(lr);
    const EpochTotals totals = TrainEpoch(epoch, epoch_start);
    auto result = Validate(epoch, lr, totals);
    if (!result.ok()) return result.status();
    Report(*result, SecondsSince(epoch_start));
    if (auto s = KeepIfBest(*result); !s.ok()) return s;
    state_.next_epoch = epoch + 1;
    if (!options_.checkpoint.empty()) SaveCheckpoint(options_.checkpoint, net_, optimizer_, state_);
    results.push_back(*result);
    if (OutOfTime(epoch, run_start)) break;
  }
  return results;
}

void Trainer::SetLearningRate(double lr) {
  for (auto& group : optimizer_.param_groups()) {
    static_cast<torch::optim::SGDOptions&>(group.options()).lr(lr);
  }
}

EpochTotals Trainer::TrainEpoch(int epoch, Clock::time_point epoch_start) {
  BatchLoader loader(train_, EpochOrder(train_.size(), options_.seed, epoch), options_.batch_size,
                     options_.loader_threads, device_.is_cuda(), options_, epoch);
  net_->train();
  std::unique_ptr<ProgressBar> bar;
  if (options_.progress) {
    bar = std::make_unique<ProgressBar>(
        absl::StrFormat("epoch %d/%d", epoch + 1, options_.epochs),
        static_cast<size_t>(loader.num_batches()) * options_.batch_size);
  }
  EpochTotals totals(device_);
  Batch batch;
  int step = 0;
  while (loader.Next(&batch)) {
    TrainStep(batch, &totals);
    ++step;
    if (bar && (step % 10 == 0 || step == loader.num_batches())) {
      const int64_t seen = totals.seen;
      bar->Update(seen, absl::StrFormat("loss %.3f acc %.3f %.0f faces/s",
                                        totals.loss_sum.item<double>() / seen,
                                        totals.correct.item<int64_t>() / static_cast<double>(seen),
                                        seen / SecondsSince(epoch_start)));
    }
  }
  totals.seconds = SecondsSince(epoch_start);
  if (bar) bar->Finish();
  return totals;
}

void Trainer::TrainStep(const Batch& batch, EpochTotals* totals) {
  torch::Tensor faces = batch.faces.to(device_, /*non_blocking=*/true);
  torch::Tensor labels = batch.labels.to(device_, /*non_blocking=*/true);
  torch::Tensor x =
      NormalizePixelsForTraining(SampleFaces(faces, meta_.input_size, &batch.augmentation), meta_);
  torch::Tensor logits;
  {
    AutocastScope autocast(device_, dtype_);
    logits = net_->forward(x);
  }
  torch::Tensor loss = torch::cross_entropy_loss(logits.to(torch::kFloat32), labels);
  optimizer_.zero_grad();
  bool apply = true;
  if (dtype_ == torch::kFloat16) {
    apply = ScaledBackward(loss);
  } else {
    loss.backward();
  }
  if (apply) optimizer_.step();
  totals->Add(loss, logits, labels);
}

// fp16's backward pass with dynamic loss scaling. Returns whether the
// gradients (unscaled again) are finite; when they are not, the step is to be
// skipped and the scale halves.
bool Trainer::ScaledBackward(const torch::Tensor& loss) {
  (loss * state_.loss_scale).backward();
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> norms;
  for (auto& p : net_->parameters()) {
    if (p.grad().defined()) {
      p.grad().div_(state_.loss_scale);
      norms.push_back(p.grad().abs().sum());
    }
  }
  const bool finite = torch::stack(norms).sum().isfinite().item<bool>();
  if (!finite) {
    state_.loss_scale /= 2;
    good_steps_ = 0;
  } else if (++good_steps_ % kLossScaleGrowthInterval == 0) {
    state_.loss_scale *= 2;
  }
  return finite;
}

absl::StatusOr<EpochResult> Trainer::Validate(int epoch, double lr, const EpochTotals& totals) {
  const int64_t seen = std::max<int64_t>(1, totals.seen);
  EpochResult result;
  result.epoch = epoch;
  result.learning_rate = lr;
  result.train_loss = totals.loss_sum.item<double>() / seen;
  result.train_accuracy = totals.correct.item<int64_t>() / static_cast<double>(seen);
  result.faces_per_s = totals.seen / totals.seconds;
  auto confusion =
      Evaluate(net_, meta_, val_, EvalOptions{device_name_, options_.precision, false});
  if (!confusion.ok()) return confusion.status();
  result.val = ComputeReport(*confusion);
  return result;
}

// One line on stderr and, with a log, one CSV row.
void Trainer::Report(const EpochResult& result, double seconds) {
  const EpochResult& r = result;
  std::fprintf(stderr,
               "epoch %d/%d lr %.5f loss %.4f train acc %.4f | val acc %.4f f1 %.4f score %.4f | "
               "%.0f faces/s %.1fs\n",
               r.epoch + 1, options_.epochs, r.learning_rate, r.train_loss, r.train_accuracy,
               r.val.accuracy, r.val.f1, r.val.score, r.faces_per_s, seconds);
  if (log_) {
    log_ << absl::StrFormat("%d,%.6g,%.6f,%.6f,%.6f,%.6f,%.6f,%.1f,%.2f\n", r.epoch + 1,
                            r.learning_rate, r.train_loss, r.train_accuracy, r.val.accuracy,
                            r.val.f1, r.val.score, r.faces_per_s, seconds);
    log_.flush();
  }
}

// Writes options.out, with the epoch's metrics in the meta, when the epoch
// beats the best validation score so far (of this run and the ones it resumes).
absl::Status Trainer::KeepIfBest(const EpochResult& result) {
  if (!(result.val.score > state_.best_score)) return absl::OkStatus();
  state_.best_score = result.val.score;
  meta_.metrics = {{"val_accuracy", result.val.accuracy},
                   {"val_f1", result.val.f1},
                   {"val_score", result.val.score},
                   {"epoch", result.epoch + 1}};
  return SaveWeightFile(options_.out, net_, meta_);
}

// Whether options.max_minutes stops the run after epoch (never after the last).
bool Trainer::OutOfTime(int epoch, Clock::time_point run_start) const {
  const double minutes = SecondsSince(run_start) / 60;
  if (options_.max_minutes > 0 && minutes >= options_.max_minutes && epoch + 1 < options_.epochs) {
    std::fprintf(stderr, "stopping after epoch %d: %.1f minutes reached the --max_minutes limit\n",
                 epoch + 1, minutes);
    return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<std::vector<EpochResult>> Train(LlaNet net, ModelMeta meta,
                                               const PackedDataset& train, const PackedDataset& val,
                                               const TrainOptions& options) {
  auto device_name = ResolveDevice(options.device);
  if (!device_name.ok()) return device_name.status();
  auto dtype = AutocastType(options.precision, torch::Device(*device_name).is_cuda());
  if (!dtype.ok()) return dtype.status();
  if (auto s = CheckTrainInputs(meta, train, val, options); !s.ok()) return s;
  Trainer trainer(std::move(net), std::move(meta), train, val, options, *device_name, *dtype);
  if (auto s = trainer.Start(); !s.ok()) return s;
  return trainer.Run();
}

}  // namespace fer
