// Helpers shared by the service and fer-server tests: the small test model,
// real faces as request images, hand-made hostile images, free ports and a
// reader of the Prometheus text format.
#ifndef FER_TESTS_SERVER_SERVER_TEST_UTIL_H_
#define FER_TESTS_SERVER_SERVER_TEST_UTIL_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "fer/v1/expression.pb.h"
#include "tests/server/test_images.h"

namespace fer {
namespace test_util {

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
    if (index < paths.size()) faces.push_back(test_images::ReadFile(paths[index]));
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

// A loopback port that was free a moment ago (for subprocesses, which cannot
// report a port 0 choice back as easily).
inline int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  close(fd);
  return port;
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
  char path[] = "/tmp/fer_metrics_XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) return -1;
  const ssize_t written = write(fd, exposition.data(), exposition.size());
  close(fd);
  if (written != static_cast<ssize_t>(exposition.size())) return -1;
  const std::string command = std::string("promtool check metrics < ") + path + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  char buffer[4096];
  output->clear();
  while (size_t n = fread(buffer, 1, sizeof(buffer), pipe)) output->append(buffer, n);
  const int status = pclose(pipe);
  unlink(path);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace test_util
}  // namespace fer

#endif  // FER_TESTS_SERVER_SERVER_TEST_UTIL_H_
