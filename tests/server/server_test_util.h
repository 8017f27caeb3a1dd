// Helpers shared by the service and fer-server tests: the small test model,
// real faces as request images, hand-made hostile images and a reader (and
// promtool's check) of the Prometheus text format.
#ifndef FER_TESTS_SERVER_SERVER_TEST_UTIL_H_
#define FER_TESTS_SERVER_SERVER_TEST_UTIL_H_

#include <google/protobuf/unknown_field_set.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "fer/v1/expression.pb.h"
#include "server/service_options.h"
#include "tests/server/test_images.h"
#include "tests/support/files.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace fer {
namespace test_util {

// The service options of the in-process service tests: batches of 8 after 1 ms,
// 2 preprocessing threads, and no bound on queue time (it depends on this
// machine's speed; the batcher's tests cover it).
inline ServiceOptions TestServiceOptions(int max_faces_per_request) {
  ServiceOptions options;
  options.batching.max_batch_size = 8;
  options.batching.max_queue_delay = absl::Milliseconds(1);
  options.batching.max_queue_time = absl::InfiniteDuration();
  options.preprocess_threads = 2;
  options.max_faces_per_request = max_faces_per_request;
  return options;
}

// An untrained 32 x 32 LLA-Net that the build writes with `fer-model init
// --input_size=32` (tests/server/CMakeLists.txt): a forward costs a fraction
// of the 112 x 112 model's, which keeps the end-to-end tests fast.
inline std::string TestModelPath() { return FER_TEST_MODEL; }

// Encoded FER2013 JPEGs, `count` of them, taken round-robin over the classes
// so that neighbours differ; empty when the data set is absent.
inline std::vector<std::string> RealFaces(size_t count) {
  const std::vector<std::string> paths = test_images::FacePaths((count + 6) / 7);  // 7 classes
  std::vector<std::string> faces;
  const size_t per_class = (count + 6) / 7;
  for (size_t i = 0; faces.size() < count && i < paths.size(); ++i) {
    // paths is class-major: step through classes first.
    const size_t index = (i % 7) * per_class + i / 7;
    if (index < paths.size()) faces.push_back(test_support::ReadFile(paths[index]));
  }
  return faces;
}

inline fer::v1::Image Encoded(const std::string& bytes) {
  fer::v1::Image image;
  image.set_encoded(bytes);
  return image;
}

inline std::string Be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

// A structurally complete PNG that declares width x height but holds one byte
// of image data: a decompression bomb's header. The CRCs are left zero.
inline std::string BombPng(uint32_t width, uint32_t height) {
  auto chunk = [](const std::string& type, const std::string& payload) {
    return Be32(static_cast<uint32_t>(payload.size())) + type + payload + std::string(4, '\0');
  };
  const std::string ihdr = Be32(width) + Be32(height) + std::string(1, 8) + std::string(4, '\0');
  return std::string("\x89PNG\r\n\x1A\n", 8) + chunk("IHDR", ihdr) + chunk("IDAT", "x") +
         chunk("IEND", "");
}

// The value of the sample `series` (name and labels exactly as exposed, e.g.
// `fer_requests_total{code="OK",rpc="Classify"}`, or a bare name) in a
// Prometheus text exposition; -1 when absent. Labels are matched as a set, in
// any order.
inline double MetricValue(const std::string& exposition, const std::string& series) {
  auto labels_of = [](const std::string& s) {
    std::vector<std::string> labels;
    const size_t open = s.find('{');
    if (open == std::string::npos) return labels;
    std::stringstream in(s.substr(open + 1, s.rfind('}') - open - 1));
    std::string label;
    while (std::getline(in, label, ',')) labels.push_back(label);
    std::sort(labels.begin(), labels.end());
    return labels;
  };
  const std::string name = series.substr(0, series.find('{'));
  const std::vector<std::string> labels = labels_of(series);
  std::istringstream lines(exposition);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    const std::string key = line.substr(0, space);
    if (key.substr(0, key.find('{')) == name && labels_of(key) == labels) {
      return std::strtod(line.c_str() + space + 1, nullptr);
    }
  }
  return -1;
}

// Runs `promtool check metrics` on exposition; returns its exit status and
// puts what it printed in *output.
inline int PromtoolCheckMetrics(const std::string& exposition, std::string* output) {
  const test_support::TempDir dir("fer_metrics_");
  const std::string path = dir / "metrics.prom";
  if (!test_support::WriteFile(path, exposition)) return -1;
  return test_support::RunShell("promtool check metrics < " + path + " 2>&1", output);
}

// The length-delimited values of field number `field` in a serialized message
// read without its type (UnknownFieldSet): for messages with no C++ stubs
// here, such as gRPC reflection's. Empty when bytes do not parse.
inline std::vector<std::string> LengthDelimited(const std::string& bytes, int field) {
  google::protobuf::UnknownFieldSet set;
  std::vector<std::string> values;
  if (!set.ParseFromString(bytes)) return values;
  for (int i = 0; i < set.field_count(); ++i) {
    if (set.field(i).number() == field &&
        set.field(i).type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) {
      values.push_back(set.field(i).length_delimited());
    }
  }
  return values;
}

}  // namespace test_util
}  // namespace fer

#endif  // FER_TESTS_SERVER_SERVER_TEST_UTIL_H_
