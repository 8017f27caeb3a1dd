// A small image-folder tree of real faces, for tests of the readers and of
// what is built on them.
#ifndef FER_TESTS_SUPPORT_FACE_TREE_H_
#define FER_TESTS_SUPPORT_FACE_TREE_H_

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <vector>

namespace fer {
namespace test_support {

// Copies the first per_class files (in name order) of every class folder of
// `classes` (a folder of one folder per class, as ../shared/data/fer2013/val)
// into tree/<class>/, creating the folders. Requires `classes` to exist.
inline void CopyFirstFacesPerClass(const std::filesystem::path& classes,
                                   const std::filesystem::path& tree, size_t per_class) {
  namespace fs = std::filesystem;
  for (const auto& entry : fs::directory_iterator(classes)) {
    std::vector<fs::path> files;
    for (const auto& file : fs::directory_iterator(entry.path())) files.push_back(file.path());
    std::sort(files.begin(), files.end());
    fs::create_directories(tree / entry.path().filename());
    for (size_t i = 0; i < std::min(per_class, files.size()); ++i) {
      fs::copy_file(files[i], tree / entry.path().filename() / files[i].filename());
    }
  }
}

}  // namespace test_support
}  // namespace fer

#endif  // FER_TESTS_SUPPORT_FACE_TREE_H_
