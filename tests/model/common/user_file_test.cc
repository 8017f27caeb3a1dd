// OpenRegularFile / ReadRegularFile: what every binary reads a user-named
// file with. Each kind of path that used to throw from inside a stream
// library (a folder, /proc/self/mem) or block (a fifo) gives one error.
#include "model/common/user_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/support/temp_dir.h"

namespace fer {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class UserFileTest : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  const test_support::TempDir scratch_{"fer_user_file_test_"};
  const fs::path dir_ = scratch_.path();
};

TEST_F(UserFileTest, ReadsARegularFileWhole) {
  std::string contents(3 << 20, 'x');  // more than one read chunk
  contents[12345] = '\0';
  std::ofstream(Path("f.bin"), std::ios::binary) << contents;
  absl::StatusOr<std::string> read = ReadRegularFile(Path("f.bin"), "test file");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, contents);
  absl::StatusOr<std::vector<char>> bytes = ReadRegularFileBytes(Path("f.bin"));
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(std::string(bytes->begin(), bytes->end()), contents);
  std::ofstream(Path("empty"));
  EXPECT_EQ(ReadRegularFile(Path("empty")).value(), "");
}

TEST_F(UserFileTest, ReadsProcFilesPastTheirZeroStatSize) {
  absl::StatusOr<std::string> status = ReadRegularFile("/proc/self/status");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_THAT(*status, HasSubstr("Pid:"));
}

TEST_F(UserFileTest, AMissingFileIsNotFoundNamingIt) {
  absl::StatusOr<std::string> read = ReadRegularFile(Path("missing.pt"), "weight file");
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(read.status().message(),
            "cannot read weight file " + Path("missing.pt") + ": does not exist");
}

TEST_F(UserFileTest, AFolderIsRefusedAsNotAFile) {
  absl::StatusOr<std::string> read = ReadRegularFile(dir_.string(), "weight file");
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(read.status().message(),
            "cannot read weight file " + dir_.string() + ": is a directory, not a file");
}

TEST_F(UserFileTest, AFifoIsRefusedWithoutWaitingForAWriter) {
  ASSERT_EQ(::mkfifo(Path("fifo").c_str(), 0600), 0);
  absl::StatusOr<std::string> read = ReadRegularFile(Path("fifo"));
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr("is a fifo, not a regular file"));
}

TEST_F(UserFileTest, DevicesAreRefused) {
  for (const char* device : {"/dev/zero", "/dev/null"}) {
    SCOPED_TRACE(device);
    absl::StatusOr<std::string> read = ReadRegularFile(device);
    EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(read.status().message(), HasSubstr("is a device, not a regular file"));
  }
}

TEST_F(UserFileTest, AReadErrorIsUnavailableNotAThrow) {
  // /proc/self/mem opens as a regular file, but reading offset 0 fails (EIO).
  absl::StatusOr<std::string> read = ReadRegularFile("/proc/self/mem", "weight file");
  EXPECT_EQ(read.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(read.status().message(), HasSubstr("cannot read weight file /proc/self/mem: "));
}

TEST_F(UserFileTest, AnUnreadableFileIsPermissionDenied) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads files whatever their mode";
  std::ofstream(Path("secret")) << "x";
  fs::permissions(Path("secret"), fs::perms::none);
  EXPECT_EQ(ReadRegularFile(Path("secret")).status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(UserFileTest, AFileLargerThanTheBoundIsRefused) {
  std::ofstream(Path("big")) << std::string(1000, 'x');
  absl::StatusOr<std::string> read = ReadRegularFile(Path("big"), "", 999);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr("larger than 999 bytes"));
  EXPECT_TRUE(ReadRegularFile(Path("big"), "", 1000).ok());
}

TEST_F(UserFileTest, OpenRegularFileFollowsSymlinks) {
  std::ofstream(Path("target")) << "hello";
  fs::create_symlink(Path("target"), Path("link"));
  EXPECT_EQ(ReadRegularFile(Path("link")).value(), "hello");
  fs::create_directory_symlink(dir_, Path("dirlink"));
  EXPECT_THAT(ReadRegularFile(Path("dirlink")).status().message(), HasSubstr("is a directory"));
}

}  // namespace
}  // namespace fer
