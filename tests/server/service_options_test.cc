// The service's options on their own: each bad value is refused with
// INVALID_ARGUMENT naming it, the defaults are accepted, and the device's
// default batch size. No model, no gRPC and no Batcher: the test links only
// fer_service_options.
#include "server/service_options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/batcher.h"

namespace fer {
namespace {

using ::testing::HasSubstr;

struct BadOption {
  std::string name;  // what the error must name
  std::function<void(ServiceOptions*)> spoil;
};

TEST(ServiceOptionsTest, DefaultsAreAccepted) {
  EXPECT_TRUE(ValidateServiceOptions(ServiceOptions()).ok());
}

TEST(ServiceOptionsTest, RefusesEachBadOptionWithInvalidArgumentNamingIt) {
  const std::vector<BadOption> cases = {
      {"max_faces_per_request", [](ServiceOptions* o) { o->max_faces_per_request = 0; }},
      {"max_faces_per_request",
       [](ServiceOptions* o) { o->max_faces_per_request = o->batching.max_queue_faces + 1; }},
      {"max_concurrent_streams", [](ServiceOptions* o) { o->max_concurrent_streams = 0; }},
      {"stream_window", [](ServiceOptions* o) { o->stream_window = 0; }},
      {"stream_window", [](ServiceOptions* o) { o->stream_window = kMaxStreamWindow + 1; }},
      {"preprocess_threads", [](ServiceOptions* o) { o->preprocess_threads = -1; }},
      {"preprocess_threads",
       [](ServiceOptions* o) { o->preprocess_threads = kMaxPreprocessThreads + 1; }},
      {"max_encoded_bytes", [](ServiceOptions* o) { o->preprocess.max_encoded_bytes = 0; }},
      {"max_pixels", [](ServiceOptions* o) { o->preprocess.max_pixels = 0; }},
      // The batcher's own options, judged as ValidateBatcherOptions does.
      {"BatcherOptions.max_batch_size", [](ServiceOptions* o) { o->batching.max_batch_size = 0; }},
      {"BatcherOptions.max_queue_delay",
       [](ServiceOptions* o) { o->batching.max_queue_delay = absl::InfiniteDuration(); }},
      {"BatcherOptions.max_queue_faces",
       [](ServiceOptions* o) {
         o->batching.max_queue_faces = o->batching.max_batch_size - 1;
         o->max_faces_per_request = 1;
       }},
      {"BatcherOptions.max_queue_time",
       [](ServiceOptions* o) { o->batching.max_queue_time = absl::ZeroDuration(); }},
      // Thousands of instances are refused without starting a thread.
      {"BatcherOptions.num_instances",
       [](ServiceOptions* o) { o->batching.num_instances = kMaxBatcherInstances + 1; }},
  };
  for (const BadOption& bad : cases) {
    ServiceOptions options;
    bad.spoil(&options);
    const absl::Status status = ValidateServiceOptions(options);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad.name << ": " << status;
    EXPECT_THAT(status.message(), HasSubstr(bad.name));
  }
}

TEST(ServiceOptionsTest, AcceptsTheBoundsOfEachRange) {
  ServiceOptions options;
  options.max_faces_per_request = options.batching.max_queue_faces;
  options.stream_window = kMaxStreamWindow;
  options.preprocess_threads = kMaxPreprocessThreads;
  options.max_concurrent_streams = 1;
  options.batching.num_instances = kMaxBatcherInstances;
  EXPECT_TRUE(ValidateServiceOptions(options).ok());
  options.max_faces_per_request = 1;
  options.stream_window = 1;
  options.preprocess_threads = 0;
  options.batching.num_instances = 1;
  EXPECT_TRUE(ValidateServiceOptions(options).ok());
}

TEST(ServiceOptionsTest, IgnoresTheInputSizeWhichTheModelDecides) {
  ServiceOptions options;
  options.preprocess.input_size = 0;
  EXPECT_TRUE(ValidateServiceOptions(options).ok());
}

TEST(ServiceOptionsTest, DefaultMaxBatchSizeIsLargerOnCudaDevices) {
  EXPECT_EQ(DefaultMaxBatchSize("cpu"), kCpuMaxBatchSize);
  EXPECT_EQ(DefaultMaxBatchSize("cuda"), kGpuMaxBatchSize);
  EXPECT_EQ(DefaultMaxBatchSize("cuda:1"), kGpuMaxBatchSize);
  EXPECT_EQ(DefaultMaxBatchSize(""), kCpuMaxBatchSize);
  EXPECT_LT(kCpuMaxBatchSize, kGpuMaxBatchSize);
}

}  // namespace
}  // namespace fer
