// Whole files as byte strings, for tests that write fixtures and read back
// what a program wrote.
#ifndef FER_TESTS_SUPPORT_FILES_H_
#define FER_TESTS_SUPPORT_FILES_H_

#include <fstream>
#include <iterator>
#include <string>

namespace fer {
namespace test_support {

// The bytes of the file at path; empty when it cannot be read.
inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Replaces (or creates) the file at path with bytes; false on any failure.
inline bool WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out.flush());
}

}  // namespace test_support
}  // namespace fer

#endif  // FER_TESTS_SUPPORT_FILES_H_
