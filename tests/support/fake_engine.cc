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
    if (attention != nullptr && engine_->attention_size() == 0) {
      return absl::InvalidArgumentError("the fake model has no attention maps");
    }
    engine_->Enter(n);
    if (attention != nullptr) engine_->CountMaps(n);
    const size_t face_bytes = engine_->face_bytes();
    const int classes = engine_->num_classes();
    for (int i = 0; i < n; ++i) {
      const std::vector<float> row = Probabilities(faces + i * face_bytes, face_bytes, classes);
      std::copy(row.begin(), row.end(), probabilities + static_cast<size_t>(i) * classes);
      if (attention != nullptr) {
        const std::vector<float> map = engine_->AttentionMap(faces + i * face_bytes);
        std::copy(map.begin(), map.end(), attention + i * engine_->attention_size());
      }
    }
    engine_->Leave(n);
    return absl::OkStatus();
  }

 private:
  FakeEngine* const engine_;
};

FakeEngine::FakeEngine(int input_size, bool attention) {
  meta_.input_size = input_size;
  meta_.arch.attention = attention;
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

std::vector<float> FakeEngine::AttentionMap(const uint8_t* face) const {
  const int side = meta().input_size, channels = meta().input_channels();
  std::vector<float> map;
  map.reserve(attention_size());
  for (int r = 0; r < attention_height(); ++r) {
    for (int c = 0; c < attention_width(); ++c) {
      map.push_back(face[(static_cast<size_t>(16 * r) * side + 16 * c) * channels] / 255.0f);
    }
  }
  return map;
}

void FakeEngine::CountMaps(int faces) {
  std::lock_guard<std::mutex> lock(mu_);
  with_maps_ += faces;
}

int64_t FakeEngine::faces_with_maps() const {
  std::lock_guard<std::mutex> lock(mu_);
  return with_maps_;
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
