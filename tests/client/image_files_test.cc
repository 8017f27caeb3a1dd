// ListImageFiles: files as given, folders walked recursively for image
// extensions, sorted, and clear errors for missing paths and empty folders.
#include "client/image_files.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/support/temp_dir.h"

namespace fer::client {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class ImageFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(root_ / "b" / "deep");
    fs::create_directories(root_ / "empty");
  }

  std::string Touch(const fs::path& relative, const std::string& content = "x") {
    std::ofstream(root_ / relative) << content;
    return (root_ / relative).string();
  }

  const test_support::TempDir scratch_{"fer_image_files_test_"};
  const fs::path root_ = scratch_.path();
};

TEST_F(ImageFilesTest, WalksFoldersRecursivelyKeepingImagesSorted) {
  const std::string z = Touch("z.PNG");
  const std::string a = Touch("a.jpg");
  const std::string deep = Touch("b/deep/c.webp");
  const std::string bmp = Touch("b/d.bmp");
  Touch("notes.txt");
  Touch("b/deep/model.pt");
  auto files = ListImageFiles({root_.string()});
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_THAT(*files, ElementsAre(a, bmp, deep, z));  // plain string order
}

TEST_F(ImageFilesTest, KeepsExplicitFilesWhateverTheirExtension) {
  const std::string txt = Touch("face.data");
  const std::string jpg = Touch("b/x.jpeg");
  auto files = ListImageFiles({txt, jpg});
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_THAT(*files, ElementsAre(txt, jpg));
}

TEST_F(ImageFilesTest, NamesAMissingPath) {
  const std::string missing = (root_ / "nope.jpg").string();
  auto files = ListImageFiles({missing});
  ASSERT_FALSE(files.ok());
  EXPECT_EQ(files.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(files.status().message()), HasSubstr(missing + ": no such file"));
}

TEST_F(ImageFilesTest, RefusesAFolderWithoutImagesAndNoPathsAtAll) {
  auto files = ListImageFiles({(root_ / "empty").string()});
  ASSERT_FALSE(files.ok());
  EXPECT_THAT(std::string(files.status().message()), HasSubstr("no images"));
  EXPECT_FALSE(ListImageFiles({}).ok());
}

TEST_F(ImageFilesTest, ReadsWholeFilesAndNamesUnreadableOnes) {
  const std::string path = Touch("a.jpg", std::string("\xff\xd8\x00\x01", 4));
  auto bytes = ReadFileBytes(path);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(*bytes, std::string("\xff\xd8\x00\x01", 4));
  EXPECT_FALSE(ReadFileBytes((root_ / "missing.jpg").string()).ok());
}

TEST(HasImageExtensionTest, MatchesTheServersFormatsInAnyCase) {
  for (const char* name : {"a.jpg", "a.JPEG", "a.png", "a.Bmp", "a.webp"}) {
    EXPECT_TRUE(HasImageExtension(name)) << name;
  }
  for (const char* name : {"a.gif", "a.tiff", "jpg", "a.jpg.txt"}) {
    EXPECT_FALSE(HasImageExtension(name)) << name;
  }
}

}  // namespace
}  // namespace fer::client
