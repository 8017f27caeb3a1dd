// PackedDataset: exact round trips through Write/Read on real FER2013 faces,
// and clear errors (never crashes, never huge allocations) for missing,
// foreign, truncated and corrupt files.
#include "model/training/packed_dataset.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "model/core/labels.h"
#include "model/training/readers.h"
#include "tests/support/face_tree.h"
#include "tests/support/files.h"
#include "tests/support/temp_dir.h"

namespace fer {
namespace {

namespace fs = std::filesystem;

const fs::path kFer2013Train = fs::path(FER_SHARED_DATA) / "fer2013" / "train";

using test_support::ReadFile;
using test_support::WriteFile;

void ExpectSameSets(const PackedDataset& a, const PackedDataset& b) {
  ASSERT_EQ(a.size(), b.size());
  ASSERT_EQ(a.face_size(), b.face_size());
  ASSERT_EQ(a.channels(), b.channels());
  EXPECT_EQ(a.video_names(), b.video_names());
  EXPECT_EQ(a.source(), b.source());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a.label(i), b.label(i)) << "face " << i;
    ASSERT_EQ(a.video(i), b.video(i)) << "face " << i;
    ASSERT_EQ(a.frame(i), b.frame(i)) << "face " << i;
    ASSERT_EQ(0, std::memcmp(a.face(i), b.face(i), a.face_bytes())) << "pixels of face " << i;
  }
}

class PackedDatasetTest : public ::testing::Test {
 protected:
  // Real FER2013 faces: a tree of the first per_class images of each class,
  // read at 48x48. Callers check HaveFaces() first.
  PackedDataset RealFaces(size_t per_class, int channels = 1) {
    const fs::path tree = dir_ / ("tree" + std::to_string(channels));
    test_support::CopyFirstFacesPerClass(kFer2013Train, tree, per_class);
    ReaderOptions options;
    options.channels = channels;
    absl::StatusOr<ReadResult> read = ReadImageFolder(tree.string(), options);
    EXPECT_TRUE(read.ok()) << read.status();
    return read.ok() ? std::move(read->data) : PackedDataset(48, channels);
  }

  static bool HaveFaces() {
#ifndef FER_WITH_OPENCV
    return false;
#else
    return fs::exists(kFer2013Train);
#endif
  }

  const test_support::TempDir scratch_{"fer_packed_dataset_test_"};
  const fs::path dir_ = scratch_.path();
};

#define REQUIRE_REAL_FACES()                                           \
  if (!HaveFaces()) {                                                  \
    GTEST_SKIP() << "needs FER2013 faces in " << kFer2013Train         \
                 << " and fer-model built with OpenCV to decode them"; \
  }

TEST_F(PackedDatasetTest, RealFacesRoundTripExactlyWithLabelsVideosAndFrames) {
  REQUIRE_REAL_FACES();
  PackedDataset data = RealFaces(40);
  ASSERT_EQ(data.size(), 7u * 40);
  // Pretend the faces come from three videos so that ids and names travel too.
  PackedDataset framed(data.face_size(), data.channels());
  framed.video_names() = {"video1", "video10_left", "video2"};
  for (size_t i = 0; i < data.size(); ++i) {
    const int video = static_cast<int>(i % 4) - 1;  // -1 (still) and 0..2
    framed.Add(data.face(i), data.label(i), video, video < 0 ? -1 : static_cast<int>(i + 1));
  }
  framed.source() = "fer-model pack format=folder data=train size=48 color=gray stride=none";

  const fs::path path = dir_ / "faces.pack";
  ASSERT_TRUE(framed.Write(path.string()).ok());
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));
  absl::StatusOr<PackedDataset> read = PackedDataset::Read(path.string());
  ASSERT_TRUE(read.ok()) << read.status();
  ExpectSameSets(framed, *read);
  EXPECT_EQ(read->ClassCounts(), std::vector<size_t>(kNumClasses, 40));

  // The predictor and zlib must pay for themselves on real faces.
  const double raw = static_cast<double>(framed.size() * framed.face_bytes());
  EXPECT_LT(static_cast<double>(fs::file_size(path)), 0.8 * raw);
}

TEST_F(PackedDatasetTest, RgbFacesSurviveManySmallBlocksAndThreads) {
  REQUIRE_REAL_FACES();
  PackedDataset data = RealFaces(10, 3);
  ASSERT_EQ(data.channels(), 3);
  PackedDataset::WriteOptions write;
  write.block_bytes = 3 * data.face_bytes() + 1;  // 3 faces per block, a short last block
  write.threads = 3;
  const fs::path path = dir_ / "rgb.pack";
  ASSERT_TRUE(data.Write(path.string(), write).ok());
  PackedDataset::ReadOptions read_options;
  read_options.threads = 2;
  absl::StatusOr<PackedDataset> read = PackedDataset::Read(path.string(), read_options);
  ASSERT_TRUE(read.ok()) << read.status();
  ExpectSameSets(data, *read);
}

TEST_F(PackedDatasetTest, ExtremePixelsRoundTripThroughThePredictorWraparound) {
  // Noise, hard edges and saturated values exercise every residual mod 256.
  for (int channels : {1, 3}) {
    PackedDataset data(7, channels);
    std::mt19937 random(42);
    std::vector<uint8_t> face(data.face_bytes());
    for (int kind = 0; kind < 5; ++kind) {
      for (size_t i = 0; i < face.size(); ++i) {
        switch (kind) {
          case 0:
            face[i] = static_cast<uint8_t>(random());
            break;
          case 1:
            face[i] = 0;
            break;
          case 2:
            face[i] = 255;
            break;
          case 3:
            face[i] = (i / channels) % 2 ? 255 : 0;
            break;
          default:
            face[i] = static_cast<uint8_t>(i * 37);
            break;
        }
      }
      data.Add(face.data(), kind % kNumClasses);
    }
    const fs::path path = dir_ / ("extreme" + std::to_string(channels) + ".pack");
    ASSERT_TRUE(data.Write(path.string()).ok());
    absl::StatusOr<PackedDataset> read = PackedDataset::Read(path.string());
    ASSERT_TRUE(read.ok()) << read.status();
    ExpectSameSets(data, *read);
  }
}

TEST_F(PackedDatasetTest, EmptySetRoundTrips) {
  PackedDataset data(112, 3);
  const fs::path path = dir_ / "empty.pack";
  ASSERT_TRUE(data.Write(path.string()).ok());
  absl::StatusOr<PackedDataset> read = PackedDataset::Read(path.string());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->size(), 0u);
  EXPECT_EQ(read->face_size(), 112);
  EXPECT_EQ(read->channels(), 3);
}

TEST_F(PackedDatasetTest, MissingFileIsNotFound) {
  absl::StatusOr<PackedDataset> read = PackedDataset::Read((dir_ / "nothing.pack").string());
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(read.status().message().find("does not exist"), absl::string_view::npos);
}

TEST_F(PackedDatasetTest, ForeignFilesAreRejectedAsNotPacked) {
  std::vector<fs::path> foreign = {dir_ / "notes.txt", dir_ / "empty.pack"};
  WriteFile(foreign[0], "emotion,pixels,Usage\n0,1 2 3,Training\n");
  WriteFile(foreign[1], "");
  if (fs::exists(kFer2013Train / "happy")) {
    foreign.push_back(fs::directory_iterator(kFer2013Train / "happy")->path());  // a JPEG
  }
  for (const fs::path& path : foreign) {
    absl::StatusOr<PackedDataset> read = PackedDataset::Read(path.string());
    ASSERT_FALSE(read.ok()) << path;
    EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument) << path;
    EXPECT_NE(read.status().message().find("is not a packed data set"), absl::string_view::npos)
        << read.status();
  }
  absl::StatusOr<PackedDataset> folder = PackedDataset::Read((dir_ / "").string());
  ASSERT_FALSE(folder.ok());
  EXPECT_EQ(folder.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(PackedDatasetTest, EveryTruncationFailsWithAnError) {
  REQUIRE_REAL_FACES();
  PackedDataset data = RealFaces(3);
  // Still faces and faces of two videos, so that every section has bytes.
  PackedDataset framed(data.face_size(), 1);
  framed.video_names() = {"a", "bb"};
  for (size_t i = 0; i < data.size(); ++i) {
    framed.Add(data.face(i), data.label(i), static_cast<int>(i % 3) - 1, static_cast<int>(i));
  }
  framed.source() = "truncation test";
  PackedDataset::WriteOptions write;
  write.block_bytes = 4 * framed.face_bytes();  // several blocks
  const fs::path path = dir_ / "whole.pack";
  ASSERT_TRUE(framed.Write(path.string(), write).ok());
  const std::string bytes = ReadFile(path);
  const fs::path cut = dir_ / "cut.pack";
  for (size_t length = 0; length < bytes.size(); length += (length < 400 ? 1 : 97)) {
    WriteFile(cut, bytes.substr(0, length));
    absl::StatusOr<PackedDataset> read = PackedDataset::Read(cut.string());
    ASSERT_FALSE(read.ok()) << "a file cut at " << length << " of " << bytes.size() << " bytes";
    if (length >= 8) {
      EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss) << read.status();
    }
  }
  // One byte too many is corrupt as well.
  WriteFile(cut, bytes + "x");
  absl::StatusOr<PackedDataset> longer = PackedDataset::Read(cut.string());
  ASSERT_FALSE(longer.ok());
  EXPECT_EQ(longer.status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(PackedDatasetTest, CorruptPixelsAreDataLoss) {
  REQUIRE_REAL_FACES();
  PackedDataset data = RealFaces(2);
  const fs::path path = dir_ / "faces.pack";
  ASSERT_TRUE(data.Write(path.string()).ok());
  std::string bytes = ReadFile(path);
  bytes[bytes.size() - 40] ^= 0x5a;  // inside the zlib stream
  WriteFile(path, bytes);
  absl::StatusOr<PackedDataset> read = PackedDataset::Read(path.string());
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss) << read.status();
  EXPECT_NE(read.status().message().find("corrupt"), absl::string_view::npos) << read.status();
}

// A header that claims far more than the file holds must fail before any
// allocation of that size (the test would run out of memory otherwise).
TEST_F(PackedDatasetTest, HugeClaimedCountsFailWithoutAllocating) {
  auto u32 = [](uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); };
  auto u64 = [](uint64_t v) { return std::string(reinterpret_cast<const char*>(&v), 8); };
  const std::string prefix = std::string("FERPACK1");
  const std::vector<std::string> files = {
      // 2^40 faces.
      prefix + u32(48) + u32(1) + u64(uint64_t{1} << 40) + u32(0) + u32(0),
      // A source text of 4 GB.
      prefix + u32(48) + u32(1) + u64(0) + u32(0xffffffffu),
      // 2^31 video names.
      prefix + u32(48) + u32(1) + u64(0) + u32(0) + u32(0x80000000u),
      // Ten 4096x4096 RGB faces (500 MB) from a file of a few hundred bytes.
      prefix + u32(4096) + u32(3) + u64(10) + u32(0) + u32(0) + std::string(10, '\0') +
          std::string(80, '\0') + u32(1) + u64(10) + std::string(200, '\0'),
      // A 4096x4096 face size that is out of range.
      prefix + u32(5000) + u32(1) + u64(0),
  };
  const fs::path path = dir_ / "hostile.pack";
  for (const std::string& bytes : files) {
    WriteFile(path, bytes);
    absl::StatusOr<PackedDataset> read = PackedDataset::Read(path.string());
    ASSERT_FALSE(read.ok());
    EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss) << read.status();
  }
}

TEST_F(PackedDatasetTest, AppendShiftsVideoIdsPastTheFirstSet) {
  const std::vector<uint8_t> face(4 * 4, 9);
  PackedDataset a(4, 1);
  a.video_names() = {"v0", "v1"};
  a.Add(face.data(), 0, 1, 5);
  a.Add(face.data(), 1);
  PackedDataset b(4, 1);
  b.video_names() = {"w0"};
  b.Add(face.data(), 2, 0, 7);
  b.Add(face.data(), 3);
  ASSERT_TRUE(a.Append(b).ok());
  ASSERT_EQ(a.size(), 4u);
  EXPECT_EQ(a.video_names(), (std::vector<std::string>{"v0", "v1", "w0"}));
  EXPECT_EQ(a.video(2), 2);
  EXPECT_EQ(a.frame(2), 7);
  EXPECT_EQ(a.video(3), -1);
  EXPECT_EQ(a.label(3), 3);

  PackedDataset other_size(5, 1);
  EXPECT_EQ(a.Append(other_size).code(), absl::StatusCode::kInvalidArgument);
  PackedDataset other_channels(4, 3);
  EXPECT_EQ(a.Append(other_channels).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(PackedDatasetTest, SelectKeepsListedFacesInOrderWithRepeats) {
  PackedDataset data(2, 1);
  for (int i = 0; i < 5; ++i) {
    const std::vector<uint8_t> face(4, static_cast<uint8_t>(10 * i));
    data.Add(face.data(), i % kNumClasses, -1, i);
  }
  data.Select({4, 1, 1});
  ASSERT_EQ(data.size(), 3u);
  EXPECT_EQ(data.face(0)[0], 40);
  EXPECT_EQ(data.face(1)[3], 10);
  EXPECT_EQ(data.frame(2), 1);
  EXPECT_EQ(data.label(0), 4);
  EXPECT_EQ(data.ClassCounts(), (std::vector<size_t>{0, 2, 0, 0, 1, 0, 0}));
}

TEST_F(PackedDatasetTest, WriteRefusesBadLabelsAndVideosAndUnwritablePaths) {
  const std::vector<uint8_t> face(4, 1);
  PackedDataset bad_label(2, 1);
  bad_label.Add(face.data(), 7);
  EXPECT_EQ(bad_label.Write((dir_ / "a.pack").string()).code(), absl::StatusCode::kInvalidArgument);
  PackedDataset bad_video(2, 1);
  bad_video.video_names() = {"only"};
  bad_video.Add(face.data(), 0, 1, 1);
  EXPECT_EQ(bad_video.Write((dir_ / "b.pack").string()).code(), absl::StatusCode::kInvalidArgument);
  PackedDataset good(2, 1);
  good.Add(face.data(), 0);
  EXPECT_FALSE(good.Write((dir_ / "no" / "such" / "dir.pack").string()).ok());
  EXPECT_FALSE(fs::exists(dir_ / "a.pack"));
}

}  // namespace
}  // namespace fer
