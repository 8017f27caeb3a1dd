// A stand-in for a loaded model in service tests: an fer::Engine without
// LibTorch whose probabilities are a cheap, deterministic function of each
// face's pixels, and whose batches can be held at a gate until the test lets
// them through. It counts the faces its runners have been given, so that a
// test can see how much work the service has handed to the model.
#ifndef FER_TESTS_SUPPORT_FAKE_ENGINE_H_
#define FER_TESTS_SUPPORT_FAKE_ENGINE_H_

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "model/core/engine.h"

namespace fer {
namespace test_support {

class FakeEngine final : public Engine {
 public:
  // A gray3 model of input_size x input_size faces and the seven FER2013
  // classes, on "cpu" in "fp32", with attention maps unless attention is
  // false (meta().arch.attention; it then refuses maps as the real engine
  // does). The gate starts open.
  explicit FakeEngine(int input_size = 32, bool attention = true);
  ~FakeEngine() override;

  // Sets meta().version ("fake" unless set); before the engine is served.
  void set_version(const std::string& version) { meta_.version = version; }

  // The probabilities the fake gives one face of face_bytes bytes: num_classes
  // positive values that sum to 1 and depend on every pixel.
  static std::vector<float> Probabilities(const uint8_t* face, size_t face_bytes, int num_classes);
  // The attention map it gives one face (attention_size() values, row-major):
  // each cell is the first channel of the face pixel at its centre (16 r,
  // 16 c), over 255.
  std::vector<float> AttentionMap(const uint8_t* face) const;

  // Engine.
  std::unique_ptr<Runner> NewRunner() override;
  const ModelMeta& meta() const override { return meta_; }
  const std::string& device() const override { return device_; }
  const std::string& precision() const override { return precision_; }
  int64_t num_parameters() const override { return 0; }
  int64_t DeviceMemoryBytes() const override { return 0; }

  // The gate. Hold: from now on every batch waits in Runner::Classify (having
  // been counted as received) until it is let through. Let(n): the next n
  // batches to arrive while held pass, in the order they arrived (those
  // waiting first); a batch arriving later waits for a later Let even if a
  // let-through one has not woken yet. Open: every batch passes, now and later.
  void Hold();
  void Let(int batches);
  void Open();

  // Faces given to Classify so far (counted on entry, before the gate), and
  // faces whose Classify has returned.
  int64_t faces_received() const;
  int64_t faces_finished() const;
  // The most faces that were ever inside Classify at once (received, not
  // finished): what the service had handed to the model and not yet got back.
  int64_t max_faces_inside() const;
  // Faces of the batches that were given room for attention maps (a non-null
  // Runner::Classify attention).
  int64_t faces_with_maps() const;
  // Waits until faces_received() >= faces; false if timeout passes first (a
  // bound on a hang, not a timing assumption).
  bool WaitForFacesReceived(int64_t faces, absl::Duration timeout) const;

 private:
  class FakeRunner;

  // FakeRunner::Classify's bookkeeping around the computation.
  void Enter(int faces);
  void Leave(int faces);
  void CountMaps(int faces);

  ModelMeta meta_;
  const std::string device_ = "cpu";
  const std::string precision_ = "fp32";

  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  bool held_ = false;        // guarded by mu_
  int64_t next_ticket_ = 0;  // batches that have arrived, numbering them
  int64_t let_through_ = 0;  // batches numbered below this pass while held_
  int64_t received_ = 0;     // faces
  int64_t finished_ = 0;     // faces
  int64_t max_inside_ = 0;   // faces
  int64_t with_maps_ = 0;    // faces
};

}  // namespace test_support
}  // namespace fer

#endif  // FER_TESTS_SUPPORT_FAKE_ENGINE_H_
