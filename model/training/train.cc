#include "model/training/train.h"

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

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "model/core/device.h"
#include "model/core/image_ops.h"
#include "model/common/progress.h"
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
    if (options.max_steps_per_epoch > 0) num_batches_ = std::min(num_batches_, options.max_steps_per_epoch);
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
        cv_.wait(lock, [&] { return stopping_ || next_build_ < std::min(num_batches_, next_out_ + capacity_); });
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
    batch.labels = torch::empty({batch_size_}, torch::TensorOptions().dtype(torch::kInt64).pinned_memory(pin_));
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
    torch::Tensor t;
    archive.read("next_epoch", t);
    state.next_epoch = static_cast<int>(t.item<int64_t>());
    archive.read("best_score", t);
    state.best_score = t.item<double>();
    archive.read("loss_scale", t);
    state.loss_scale = t.item<double>();
  } catch (const std::exception& e) {
    std::string what = e.what();
    return absl::InvalidArgumentError(
        absl::StrCat("cannot resume from checkpoint ", path, ": ", what.substr(0, what.find('\n'))));
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
  return F::grid_sample(x, grid, F::GridSampleFuncOptions()
                                     .mode(torch::kBilinear)
                                     .padding_mode(torch::kBorder)
                                     .align_corners(false));
}

torch::Tensor TenCropFaces(const torch::Tensor& faces_u8, int input_size) {
  const int resized_size = TenCropResizeSize(input_size);
  torch::Tensor x = faces_u8.permute({0, 3, 1, 2}).to(torch::kFloat32);
  torch::Tensor resized = F::interpolate(x, F::InterpolateFuncOptions()
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
    torch::Tensor faces =
        torch::from_blob(const_cast<uint8_t*>(data.face(start)), {n, size, size, data.channels()},
                         torch::kUInt8)
            .to(device);
    torch::Tensor pixels = options.ten_crop ? TenCropFaces(faces, meta.input_size)
                                            : SampleFaces(faces, meta.input_size, nullptr);
    torch::Tensor probs;
    {
      AutocastScope autocast(device, *dtype);
      probs = torch::softmax(net->forward(NormalizePixels(pixels, meta)).to(torch::kFloat32), 1);
    }
    if (options.ten_crop) probs = probs.view({n, 10, classes}).mean(1);
    probs = probs.to(torch::kCPU).contiguous();
    torch::Tensor predicted = probs.argmax(1);
    for (int64_t i = 0; i < n; ++i) {
      const int truth = data.label(start + i);
      if (truth >= 0 && truth < kNumClasses) {
        if (auto s = confusion.Add(truth, static_cast<int>(predicted[i].item<int64_t>())); !s.ok()) {
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

absl::StatusOr<std::vector<EpochResult>> Train(LlaNet net, ModelMeta meta,
                                               const PackedDataset& train,
                                               const PackedDataset& val,
                                               const TrainOptions& options) {
  auto device_name = ResolveDevice(options.device);
  if (!device_name.ok()) return device_name.status();
  const torch::Device device(*device_name);
  auto dtype = AutocastType(options.precision, device.is_cuda());
  if (!dtype.ok()) return dtype.status();
  if (train.channels() != meta.input_channels() || val.channels() != meta.input_channels()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "packed sets have ", train.channels(), " and ", val.channels(),
        " channels; the model (color ", meta.color, ") takes ", meta.input_channels()));
  }
  if (options.batch_size < 2) return absl::InvalidArgumentError("batch size must be at least 2");
  if (train.size() < static_cast<size_t>(options.batch_size)) {
    return absl::InvalidArgumentError(absl::StrCat("the training set has ", train.size(),
                                                   " faces, fewer than one batch of ",
                                                   options.batch_size));
  }
  if (options.out.empty()) return absl::InvalidArgumentError("no output weight file given");
  if (device.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);

  net->to(device);
  ToChannelsLast(net);
  torch::optim::SGD optimizer(net->parameters(), torch::optim::SGDOptions(options.learning_rate)
                                                     .momentum(options.momentum)
                                                     .weight_decay(options.weight_decay));
  Checkpoint state;
  if (!options.checkpoint.empty() && std::filesystem::exists(options.checkpoint)) {
    auto loaded = LoadCheckpoint(options.checkpoint, net, optimizer, device);
    if (!loaded.ok()) return loaded.status();
    state = *loaded;
    ToChannelsLast(net);
    std::fprintf(stderr, "resuming from %s at epoch %d (best score %.4f)\n",
                 options.checkpoint.c_str(), state.next_epoch + 1, state.best_score);
  }

  std::ofstream log;
  if (!options.log_csv.empty()) {
    const bool fresh = !std::filesystem::exists(options.log_csv) || state.next_epoch == 0;
    log.open(options.log_csv, fresh ? std::ios::trunc : std::ios::app);
    if (!log) return absl::UnavailableError(absl::StrCat("cannot write ", options.log_csv));
    if (fresh) {
      log << "epoch,lr,train_loss,train_accuracy,val_accuracy,val_f1,val_score,faces_per_s,"
             "seconds\n";
    }
  }

  const auto run_start = std::chrono::steady_clock::now();
  std::vector<EpochResult> results;
  int good_steps = 0;
  for (int epoch = state.next_epoch; epoch < options.epochs; ++epoch) {
    const auto epoch_start = std::chrono::steady_clock::now();
    const double lr = LearningRate(options, epoch);
    for (auto& group : optimizer.param_groups()) {
      static_cast<torch::optim::SGDOptions&>(group.options()).lr(lr);
    }
    std::vector<size_t> order(train.size());
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 shuffle_rng(options.seed * 1000003ULL + epoch);
    std::shuffle(order.begin(), order.end(), shuffle_rng);
    BatchLoader loader(train, std::move(order), options.batch_size, options.loader_threads,
                       device.is_cuda(), options, epoch);

    net->train();
    std::unique_ptr<ProgressBar> bar;
    if (options.progress) {
      bar = std::make_unique<ProgressBar>(absl::StrFormat("epoch %d/%d", epoch + 1, options.epochs),
                                          static_cast<size_t>(loader.num_batches()) * options.batch_size);
    }
    torch::Tensor loss_sum = torch::zeros({}, torch::TensorOptions().device(device).dtype(torch::kFloat64));
    torch::Tensor correct = torch::zeros({}, torch::TensorOptions().device(device).dtype(torch::kInt64));
    int64_t seen = 0;
    Batch batch;
    int step = 0;
    while (loader.Next(&batch)) {
      torch::Tensor faces = batch.faces.to(device, /*non_blocking=*/true);
      torch::Tensor labels = batch.labels.to(device, /*non_blocking=*/true);
      torch::Tensor x = NormalizePixels(SampleFaces(faces, meta.input_size, &batch.augmentation),
                                        meta, /*inference=*/false);
      torch::Tensor logits;
      {
        AutocastScope autocast(device, *dtype);
        logits = net->forward(x);
      }
      torch::Tensor loss = torch::cross_entropy_loss(logits.to(torch::kFloat32), labels);
      optimizer.zero_grad();
      bool apply = true;
      if (*dtype == torch::kFloat16) {
        (loss * state.loss_scale).backward();
        torch::NoGradGuard no_grad;
        std::vector<torch::Tensor> norms;
        for (auto& p : net->parameters()) {
          if (p.grad().defined()) {
            p.grad().div_(state.loss_scale);
            norms.push_back(p.grad().abs().sum());
          }
        }
        apply = torch::stack(norms).sum().isfinite().item<bool>();
        if (!apply) {
          state.loss_scale /= 2;
          good_steps = 0;
        } else if (++good_steps % kLossScaleGrowthInterval == 0) {
          state.loss_scale *= 2;
        }
      } else {
        loss.backward();
      }
      if (apply) optimizer.step();
      {
        torch::NoGradGuard no_grad;
        loss_sum += loss.detach().to(torch::kFloat64) * labels.size(0);
        correct += (logits.argmax(1) == labels).sum();
      }
      seen += labels.size(0);
      ++step;
      if (bar && (step % 10 == 0 || step == loader.num_batches())) {
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
        bar->Update(seen, absl::StrFormat("loss %.3f acc %.3f %.0f faces/s",
                                          loss_sum.item<double>() / seen,
                                          correct.item<int64_t>() / static_cast<double>(seen),
                                          seen / seconds));
      }
    }
    const double train_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
    if (bar) bar->Finish();

    EpochResult result;
    result.epoch = epoch;
    result.learning_rate = lr;
    result.train_loss = loss_sum.item<double>() / std::max<int64_t>(1, seen);
    result.train_accuracy = correct.item<int64_t>() / static_cast<double>(std::max<int64_t>(1, seen));
    result.faces_per_s = seen / train_seconds;
    auto confusion = Evaluate(net, meta, val, EvalOptions{*device_name, options.precision, false});
    if (!confusion.ok()) return confusion.status();
    result.val = ComputeReport(*confusion);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
    std::fprintf(stderr,
                 "epoch %d/%d lr %.5f loss %.4f train acc %.4f | val acc %.4f f1 %.4f score %.4f | "
                 "%.0f faces/s %.1fs\n",
                 epoch + 1, options.epochs, lr, result.train_loss, result.train_accuracy,
                 result.val.accuracy, result.val.f1, result.val.score, result.faces_per_s, seconds);
    if (log) {
      log << absl::StrFormat("%d,%.6g,%.6f,%.6f,%.6f,%.6f,%.6f,%.1f,%.2f\n", epoch + 1, lr,
                             result.train_loss, result.train_accuracy, result.val.accuracy,
                             result.val.f1, result.val.score, result.faces_per_s, seconds);
      log.flush();
    }
    if (result.val.score > state.best_score) {
      state.best_score = result.val.score;
      meta.metrics = {{"val_accuracy", result.val.accuracy},
                      {"val_f1", result.val.f1},
                      {"val_score", result.val.score},
                      {"epoch", epoch + 1}};
      if (auto s = SaveWeightFile(options.out, net, meta); !s.ok()) return s;
    }
    state.next_epoch = epoch + 1;
    if (!options.checkpoint.empty()) SaveCheckpoint(options.checkpoint, net, optimizer, state);
    results.push_back(result);
    const double minutes =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count() / 60;
    if (options.max_minutes > 0 && minutes >= options.max_minutes && epoch + 1 < options.epochs) {
      std::fprintf(stderr, "stopping after epoch %d: %.1f minutes reached the --max_minutes limit\n",
                   epoch + 1, minutes);
      break;
    }
  }
  return results;
}

}  // namespace fer
