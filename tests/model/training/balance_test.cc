// Class balancing: stride sampling of label runs (checked on hand-computed
// sequences), extra samples from other packed sets and re-cropping (on real
// FER2013 faces), and the Table II style distribution table.
#include "model/training/balance.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "model/core/image_ops.h"
#include "model/core/labels.h"
#include "model/training/packed_dataset.h"
#include "model/training/readers.h"
#include "tests/support/face_tree.h"
#include "tests/support/temp_dir.h"

namespace fer {
namespace {

namespace fs = std::filesystem;

const fs::path kFer2013Val = fs::path(FER_SHARED_DATA) / "fer2013" / "val";

// Real faces: the first per_class FER2013 validation faces of every class, in
// a tree built under dir, read at 48x48 grey. Empty set when unavailable.
PackedDataset RealFaces(const test_support::TempDir& dir, size_t per_class) {
#ifdef FER_WITH_OPENCV
  const fs::path tree = dir / "tree";
  test_support::CopyFirstFacesPerClass(kFer2013Val, tree, per_class);
  absl::StatusOr<ReadResult> read = ReadImageFolder(tree.string(), ReaderOptions());
  if (read.ok()) return std::move(read->data);
  ADD_FAILURE() << read.status();
#else
  (void)dir;
  (void)per_class;
#endif
  return PackedDataset(48, 1);
}

bool HaveFaces() {
#ifdef FER_WITH_OPENCV
  return fs::exists(kFer2013Val);
#else
  return false;
#endif
}

#define REQUIRE_REAL_FACES()                                                                  \
  if (!HaveFaces()) {                                                                         \
    GTEST_SKIP() << "needs FER2013 faces in " << kFer2013Val << " and OpenCV to decode them"; \
  }

// ------------------------------------------------------------------- strides

TEST(StridesTest, ParsesNamesAndAliasesAndRejectsNonsense) {
  absl::StatusOr<ClassStrides> paper = ParseClassStrides("neutral:12,happiness:2");
  ASSERT_TRUE(paper.ok()) << paper.status();
  EXPECT_EQ(*paper, DefaultAffWild2Strides());
  EXPECT_EQ(DefaultAffWild2Strides(), (ClassStrides{12, 1, 1, 1, 2, 1, 1}));
  EXPECT_EQ(ParseClassStrides(" Happy:3 , an:4 ").value(), (ClassStrides{1, 4, 1, 1, 3, 1, 1}));
  EXPECT_EQ(ParseClassStrides("").value(), NoStrides());
  EXPECT_EQ(ParseClassStrides("none").value(), NoStrides());
  for (const char* bad : {"contempt:2", "neutral:0", "neutral", "neutral:x", "neutral:2:3",
                          "neutral:-1", "neutral:2,"}) {
    EXPECT_FALSE(ParseClassStrides(bad).ok()) << bad;
  }
  EXPECT_EQ(FormatClassStrides(DefaultAffWild2Strides()), "neutral:12,happiness:2");
  EXPECT_EQ(FormatClassStrides(NoStrides()), "none");
}

TEST(StridesTest, KeepsEveryKthFrameOfEachRunOnAHandComputedSequence) {
  // video 0: neutral frames 1..30, happiness 31..35, frame 36 not annotated,
  // neutral 37..40, anger 41..43; video 1: neutral 1..5 (continues the label
  // of video 0's last neutral run, but a new video starts a new run).
  std::vector<int8_t> labels;
  std::vector<int32_t> videos;
  std::vector<int32_t> frames;
  auto run = [&](int label, int video, int first, int last) {
    for (int f = first; f <= last; ++f) {
      labels.push_back(static_cast<int8_t>(label));
      videos.push_back(video);
      frames.push_back(f);
    }
  };
  run(0, 0, 1, 30);
  run(4, 0, 31, 35);
  run(0, 0, 37, 40);
  run(1, 0, 41, 43);
  run(0, 1, 1, 5);
  const std::vector<size_t> kept = StrideIndices(labels, videos, frames, DefaultAffWild2Strides());
  std::vector<std::pair<int, int>> kept_frames;
  for (size_t i : kept) kept_frames.emplace_back(videos[i], frames[i]);
  const std::vector<std::pair<int, int>> expected = {
      {0, 1},  {0, 13}, {0, 25},  // neutral 1..30, k = 12
      {0, 31}, {0, 33}, {0, 35},  // happiness 31..35, k = 2
      {0, 37},                    // neutral after the gap: a new run
      {0, 41}, {0, 42}, {0, 43},  // anger, k = 1
      {1, 1}};                    // video 1: a new run
  EXPECT_EQ(kept_frames, expected);
  EXPECT_TRUE(std::is_sorted(kept.begin(), kept.end()));
}

TEST(StridesTest, StillImagesOfOneClassFormOneRunInFileOrder) {
  const std::vector<int8_t> labels = {4, 4, 4, 4, 4, 1, 1, 4, 4};
  const std::vector<int32_t> none(labels.size(), -1);
  ClassStrides strides = NoStrides();
  strides[4] = 3;
  EXPECT_EQ(StrideIndices(labels, none, none, strides), (std::vector<size_t>{0, 3, 5, 6, 7}));
}

TEST(StridesTest, ApplyStridesRemovesTheRightFacesFromAPackedSet) {
  PackedDataset data(2, 1);
  data.video_names() = {"v"};
  for (int f = 1; f <= 7; ++f) {
    const std::vector<uint8_t> face(4, static_cast<uint8_t>(f));
    data.Add(face.data(), f <= 5 ? 0 : 5, 0, f);  // neutral 1..5, sadness 6..7
  }
  ClassStrides strides = NoStrides();
  strides[0] = 2;
  EXPECT_EQ(ApplyStrides(data, strides), 2u);
  ASSERT_EQ(data.size(), 5u);
  std::vector<int> pixels;
  for (size_t i = 0; i < data.size(); ++i) pixels.push_back(data.face(i)[0]);
  EXPECT_EQ(pixels, (std::vector<int>{1, 3, 5, 6, 7}));
  EXPECT_EQ(data.video_names(), std::vector<std::string>{"v"});
}

// ------------------------------------------------------------- extra samples

TEST(ExtraSourcesTest, ParsesPathsWithClassListsInOneOrManySpecs) {
  absl::StatusOr<std::vector<ExtraSource>> sources =
      ParseExtraSources({"fer.pack:anger,disgust,fear,raf.pack:fe", "all.pack"});
  ASSERT_TRUE(sources.ok()) << sources.status();
  ASSERT_EQ(sources->size(), 3u);
  EXPECT_EQ((*sources)[0].path, "fer.pack");
  EXPECT_EQ((*sources)[0].classes, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ((*sources)[1].path, "raf.pack");
  EXPECT_EQ((*sources)[1].classes, (std::vector<int>{3}));
  EXPECT_EQ((*sources)[2].path, "all.pack");
  EXPECT_EQ((*sources)[2].classes, (std::vector<int>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_FALSE(ParseExtraSources({"fer.pack:contempt"}).ok());
  EXPECT_FALSE(ParseExtraSources({":anger"}).ok());
  EXPECT_TRUE(ParseExtraSources({}).value().empty());
}

TEST(ExtraSamplesTest, AddsOnlyChosenClassesConvertedToTheTargetFaces) {
  REQUIRE_REAL_FACES();
  const test_support::TempDir dir("fer_balance_test_");
  const PackedDataset faces = RealFaces(dir, 6);
  ASSERT_EQ(faces.size(), 42u);
  // The extra set travels through a file, as `pack --extra` reads it.
  ASSERT_TRUE(faces.Write(dir / "extra.pack").ok());
  absl::StatusOr<PackedDataset> extra = PackedDataset::Read(dir / "extra.pack");
  ASSERT_TRUE(extra.ok()) << extra.status();

  PackedDataset target(64, 3);
  target.video_names() = {"video1"};
  const std::vector<uint8_t> blank(target.face_bytes(), 0);
  for (int f = 1; f <= 3; ++f) target.Add(blank.data(), 0, 0, f);
  const std::vector<int> classes = {1, 2, 3};  // anger, disgust, fear
  absl::StatusOr<size_t> added = AddExtraSamples(*extra, classes, target);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(*added, 18u);
  ASSERT_EQ(target.size(), 21u);
  EXPECT_EQ(target.ClassCounts(), (std::vector<size_t>{3, 6, 6, 6, 0, 0, 0}));

  std::vector<uint8_t> expected(target.face_bytes());
  size_t next = 3;
  for (size_t i = 0; i < extra->size(); ++i) {
    if (extra->label(i) < 1 || extra->label(i) > 3) continue;
    ConvertFace(extra->face(i), 48, 1, expected.data(), 64, 3);
    EXPECT_EQ(target.label(next), extra->label(i));
    EXPECT_EQ(target.video(next), -1);
    EXPECT_EQ(target.frame(next), -1);
    EXPECT_EQ(std::memcmp(target.face(next), expected.data(), expected.size()), 0) << i;
    ++next;
  }
  // A grey face repeated on three channels stays grey.
  const uint8_t* face = target.face(3);
  EXPECT_EQ(face[0], face[1]);
  EXPECT_EQ(face[1], face[2]);
  EXPECT_FALSE(AddExtraSamples(*extra, std::vector<int>{7}, target).ok());
}

// ------------------------------------------------------------------- re-crop

TEST(RecropTest, KeepsTheCentreOfRealFacesAtTheirSize) {
  REQUIRE_REAL_FACES();
  const test_support::TempDir dir("fer_balance_test_");
  PackedDataset faces = RealFaces(dir, 1);
  ASSERT_EQ(faces.size(), 7u);
  const PackedDataset original = faces;
  ASSERT_TRUE(Recrop(faces, 0.75).ok());
  ASSERT_EQ(faces.face_size(), 48);
  std::vector<uint8_t> centre(36 * 36);
  std::vector<uint8_t> expected(48 * 48);
  for (size_t i = 0; i < faces.size(); ++i) {
    Crop(original.face(i), 48, 1, CropBox{6, 6, 36, false}, centre.data());
    ResizeBilinear(centre.data(), 36, 36, 1, expected.data(), 48, 48);
    EXPECT_EQ(std::memcmp(faces.face(i), expected.data(), expected.size()), 0) << i;
    EXPECT_EQ(faces.label(i), original.label(i));
  }
  PackedDataset unchanged = original;
  ASSERT_TRUE(Recrop(unchanged, 1.0).ok());
  EXPECT_EQ(std::memcmp(unchanged.face(0), original.face(0), original.face_bytes()), 0);
  for (double bad : {0.0, -0.5, 1.5}) EXPECT_FALSE(Recrop(unchanged, bad).ok()) << bad;
}

// --------------------------------------------------------------------- table

TEST(DistributionTableTest, ShowsCountsPercentagesAndTotalsBeforeAndAfter) {
  const std::vector<size_t> before = {600, 100, 0, 50, 200, 40, 10};
  const std::vector<size_t> after = {50, 100, 0, 50, 100, 40, 10};
  const std::string table = ClassDistributionTable(before, after);
  EXPECT_NE(table.find("before"), std::string::npos) << table;
  EXPECT_NE(table.find("after"), std::string::npos) << table;
  // neutral: 600 of 1000 before, 50 of 350 after.
  EXPECT_NE(table.find("neutral           600  60.00%         50  14.29%"), std::string::npos)
      << table;
  EXPECT_NE(table.find("total            1000 100.00%        350 100.00%"), std::string::npos)
      << table;
  EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), kNumClasses + 2);

  const std::string single = ClassDistributionTable(before);
  EXPECT_EQ(single.find("after"), std::string::npos);
  EXPECT_NE(single.find("happiness         200  20.00%"), std::string::npos) << single;
  const std::string empty = ClassDistributionTable(std::vector<size_t>(kNumClasses, 0));
  EXPECT_NE(empty.find("0.00%"), std::string::npos);
}

}  // namespace
}  // namespace fer
