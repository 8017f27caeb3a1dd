// A scratch folder for one test (or one suite), made fresh under the system's
// temporary folder and removed with everything in it at the end.
#ifndef FER_TESTS_SUPPORT_TEMP_DIR_H_
#define FER_TESTS_SUPPORT_TEMP_DIR_H_

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace fer {
namespace test_support {

class TempDir {
 public:
  // Makes <temp>/<prefix>XXXXXX with a unique suffix (mkdtemp), so that
  // parallel runs of one test never share it. path() is empty when the folder
  // cannot be made; the test's file operations then fail visibly.
  explicit TempDir(const std::string& prefix = "fer_test_") {
    std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "XXXXXX")).string();
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // The path of name inside the folder (name may hold further folders).
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace test_support
}  // namespace fer

#endif  // FER_TESTS_SUPPORT_TEMP_DIR_H_
