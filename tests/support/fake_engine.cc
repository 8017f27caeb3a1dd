#include "tests/support/fake_engine.h"

#include <algorithm>

namespace fer {
namespace test_support {

class FakeEngine::FakeRunner final : public Runner {
 public:
  explicit FakeRunner(FakeEngine* engine) : engine_(engine) {}

  using Runner::Classify;
  absl::Status Classify(const uint8_t* faces, int n, float* probabilities,
                        float* attention) override {
    engine_->Enter(n);
    const size_t face_bytes = engine_->face_bytes();
    const int classes = engine_->num_classes();
    for (int i = 0; i < n; ++i) {
      const std::vector<float> row = Probabilities(faces + i * face_bytes, face_bytes, classes);
      std::copy(row.begin(), row.end(), probabilities + static_cast<size_t>(i) * classes);
      if (attention != nullptr) {
        Attention(faces + i * face_bytes, attention + i * engine_->attention_size());
      }
    }
    engine_->Leave(n);
    return absl::OkStatus();
  }

 private:
  // A trivial deterministic map: each cell is the first channel of the pixel
  // at its top-left corner (cells are 16 pixels apart), over 255.
  void Attention(const uint8_t* face, float* map) const {
    const int side = engine_->meta().input_size, channels = engine_->meta().input_channels();
    for (int r = 0; r < engine_->attention_height(); ++r) {
      for (int c = 0; c < engine_->attention_width(); ++c) {
        const uint8_t pixel = face[(static_cast<size_t>(16 * r) * side + 16 * c) * channels];
        *map++ = pixel / 255.0f;
      }
    }
  }

  FakeEngine* const engine_;
};

FakeEngine::FakeEngine(int input_size) {
  meta_.input_size = input_size;
  meta_.color = "gray3";
  meta_.labels = {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"};
  meta_.arch.num_classes = static_cast<int>(meta_.labels.size());
  meta_.version = "fake";
}

FakeEngine::~FakeEngine() = default;

std::vector<float> FakeEngine::Probabilities(const uint8_t* face, size_t face_bytes,
                                             int num_classes) {
  // A position-weighted checksum, so that moving a pixel changes the answer.
  uint64_t hash = 0;
  for (size_t i = 0; i < face_bytes; ++i) hash = hash * 31 + face[i];
  std::vector<float> row(num_classes);
  float sum = 0;
  for (int c = 0; c < num_classes; ++c) {
    row[c] = 1.0f + static_cast<float>((hash >> (c * 5)) % 32);
    sum += row[c];
  }
  for (float& p : row) p /= sum;
  return row;
}

std::unique_ptr<Runner> FakeEngine::NewRunner() { return std::make_unique<FakeRunner>(this); }

void FakeEngine::Hold() {
  std::lock_guard<std::mutex> lock(mu_);
  held_ = true;
  let_through_ = next_ticket_;
}

void FakeEngine::Let(int batches) {
  std::lock_guard<std::mutex> lock(mu_);
  let_through_ += batches;
  changed_.notify_all();
}

void FakeEngine::Open() {
  std::lock_guard<std::mutex> lock(mu_);
  held_ = false;
  changed_.notify_all();
}

void FakeEngine::Enter(int faces) {
  std::unique_lock<std::mutex> lock(mu_);
  received_ += faces;
  max_inside_ = std::max(max_inside_, received_ - finished_);
  const int64_t ticket = next_ticket_++;
  changed_.notify_all();
  changed_.wait(lock, [&] { return !held_ || ticket < let_through_; });
}

void FakeEngine::Leave(int faces) {
  std::lock_guard<std::mutex> lock(mu_);
  finished_ += faces;
  changed_.notify_all();
}

int64_t FakeEngine::faces_received() const {
  std::lock_guard<std::mutex> lock(mu_);
  return received_;
}

int64_t FakeEngine::faces_finished() const {
  std::lock_guard<std::mutex> lock(mu_);
  return finished_;
}

int64_t FakeEngine::max_faces_inside() const {
  std::lock_guard<std::mutex> lock(mu_);
  return max_inside_;
}

bool FakeEngine::WaitForFacesReceived(int64_t faces, absl::Duration timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return changed_.wait_for(lock, absl::ToChronoMicroseconds(timeout),
                           [&] { return received_ >= faces; });
}

}  // namespace test_support
}  // namespace fer
