// Readers: ImageFolder trees, Aff-Wild2 EXPR annotations and FER2013's CSV,
// each built at test time from real FER2013 faces, plus the resize and format
// helpers every reader shares.
#include "model/training/readers.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "model/core/image_ops.h"
#include "model/core/labels.h"
#include "tests/model/training/png_fixtures.h"
#include "tests/support/files.h"
#include "tests/support/temp_dir.h"

#ifdef FER_WITH_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#endif

namespace fer {
namespace {

namespace fs = std::filesystem;
using test_support::ReadFile;
using test_support::WriteFile;

const fs::path kFer2013Train = fs::path(FER_SHARED_DATA) / "fer2013" / "train";

// The sorted JPEGs of one FER2013 training class folder.
std::vector<fs::path> Faces(const std::string& folder) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(kFer2013Train / folder)) {
    files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// Copies the first n faces of a FER2013 class (after skipping `skip`) into dir.
std::vector<fs::path> CopyFaces(const std::string& folder, size_t skip, size_t n,
                                const fs::path& dir) {
  fs::create_directories(dir);
  const std::vector<fs::path> faces = Faces(folder);
  std::vector<fs::path> copies;
  for (size_t i = skip; i < skip + n; ++i) {
    copies.push_back(dir / faces[i].filename());
    fs::copy_file(faces[i], copies.back());
  }
  return copies;
}

// The reference decode: OpenCV's own grey JPEG decoding.
std::vector<uint8_t> DecodeGrey(const fs::path& path) {
#ifdef FER_WITH_OPENCV
  const cv::Mat image = cv::imread(path.string(), cv::IMREAD_GRAYSCALE);
  return std::vector<uint8_t>(image.data, image.data + image.total());
#else
  (void)path;
  return {};  // unreachable: tests that decode skip without OpenCV
#endif
}

bool SameFace(const PackedDataset& data, size_t i, const std::vector<uint8_t>& expected) {
  return expected.size() == data.face_bytes() &&
         std::memcmp(data.face(i), expected.data(), expected.size()) == 0;
}

class ReadersTest : public ::testing::Test {
 protected:
  const test_support::TempDir scratch_{"fer_readers_test_"};
  const fs::path dir_ = scratch_.path();
};

#ifdef FER_WITH_OPENCV
#define REQUIRE_REAL_FACES()                                                           \
  if (!fs::exists(kFer2013Train)) {                                                    \
    GTEST_SKIP() << "needs the FER2013 faces of the shared data in " << kFer2013Train; \
  }
#else
#define REQUIRE_REAL_FACES() \
  GTEST_SKIP() << "fer-model was built without OpenCV: image readers are unavailable"
#endif

// ---------------------------------------------------------------- ImageFolder

TEST_F(ReadersTest, ImageFolderMapsAliasesSkipsUnknownClassesAndKeepsSortedOrder) {
  REQUIRE_REAL_FACES();
  const fs::path root = dir_ / "tree";
  const std::vector<fs::path> angry = CopyFaces("angry", 0, 5, root / "Angry");
  CopyFaces("happy", 0, 7, root / "happy");
  CopyFaces("neutral", 0, 4, root / "ne");
  CopyFaces("surprise", 0, 3, root / "Surprised" / "batch1");  // nested below the class
  CopyFaces("sad", 0, 6, root / "contempt");
  CopyFaces("fear", 0, 2, root / "fear");
  WriteFile(root / "fear" / "broken.jpg", "not a jpeg");
  WriteFile(root / "happy" / "notes.txt", "ignored: not an image");
  WriteFile(root / "labels.csv", "ignored: not in a class folder");

  absl::StatusOr<ReadResult> read = ReadImageFolder(root.string(), ReaderOptions());
  ASSERT_TRUE(read.ok()) << read.status();
  const PackedDataset& data = read->data;
  EXPECT_EQ(data.face_size(), 48);  // min(112, 48)
  EXPECT_EQ(data.channels(), 1);
  ASSERT_EQ(data.size(), 5u + 7 + 4 + 3 + 2);
  // neutral, anger, disgust, fear, happiness, sadness, surprise
  EXPECT_EQ(data.ClassCounts(), (std::vector<size_t>{4, 5, 0, 2, 7, 0, 3}));
  EXPECT_EQ(read->report.found, (std::array<size_t, kNumClasses>{4, 5, 0, 3, 7, 0, 3}));
  ASSERT_EQ(read->report.unknown_classes.size(), 1u);
  EXPECT_EQ(read->report.unknown_classes.at("contempt"), 6u);
  EXPECT_EQ(read->report.undecodable, 1u);
  ASSERT_EQ(read->report.undecodable_examples.size(), 1u);
  EXPECT_NE(read->report.undecodable_examples[0].find("broken.jpg"), std::string::npos);
  EXPECT_NE(read->report.Summary().find("contempt"), std::string::npos);

  // Folders in byte order (Angry, Surprised, contempt, fear, happy, ne), files
  // sorted within: the first faces are the Angry ones, pixel for pixel.
  for (size_t i = 0; i < angry.size(); ++i) {
    EXPECT_EQ(data.label(i), 1);
    EXPECT_EQ(data.video(i), -1);
    EXPECT_EQ(data.frame(i), -1);
    EXPECT_TRUE(SameFace(data, i, DecodeGrey(angry[i]))) << angry[i];
  }
  // Each face names its file; the broken one is skipped, not named.
  ASSERT_EQ(read->sources.size(), data.size());
  for (size_t i = 0; i < angry.size(); ++i) EXPECT_EQ(read->sources[i], angry[i].string());
  EXPECT_NE(read->sources[5].find("batch1"), std::string::npos) << read->sources[5];
  for (const std::string& source : read->sources) {
    EXPECT_EQ(source.find("broken.jpg"), std::string::npos);
  }
  EXPECT_EQ(data.label(5), 6);   // Surprised
  EXPECT_EQ(data.label(8), 3);   // fear
  EXPECT_EQ(data.label(10), 4);  // happy
  EXPECT_EQ(data.label(17), 0);  // ne
}

TEST_F(ReadersTest, ImageFolderResizesAndExpandsGreyToRgb) {
  REQUIRE_REAL_FACES();
  const fs::path root = dir_ / "tree";
  const std::vector<fs::path> happy = CopyFaces("happy", 10, 3, root / "happiness");
  const std::vector<uint8_t> grey = DecodeGrey(happy[0]);

  ReaderOptions rgb;
  rgb.channels = 3;
  rgb.face_size = 112;
  absl::StatusOr<ReadResult> big = ReadImageFolder(root.string(), rgb);
  ASSERT_TRUE(big.ok()) << big.status();
  ASSERT_EQ(big->data.size(), 3u);
  EXPECT_EQ(big->data.face_size(), 112);
  EXPECT_EQ(big->data.channels(), 3);
  std::vector<uint8_t> expected(112 * 112 * 3);
  std::vector<uint8_t> grey3(48 * 48 * 3);
  for (size_t i = 0; i < grey.size(); ++i)
    grey3[3 * i] = grey3[3 * i + 1] = grey3[3 * i + 2] = grey[i];
  ResizeBilinear(grey3.data(), 48, 48, 3, expected.data(), 112, 112);  // upscaling is bilinear
  EXPECT_TRUE(SameFace(big->data, 0, expected));

  ReaderOptions small;
  small.face_size = 24;
  absl::StatusOr<ReadResult> shrunk = ReadImageFolder(root.string(), small);
  ASSERT_TRUE(shrunk.ok()) << shrunk.status();
  std::vector<uint8_t> area(24 * 24);
  ResizeFace(grey.data(), 48, 48, 1, area.data(), 24);
  EXPECT_TRUE(SameFace(shrunk->data, 0, area));
  // A 2:1 area average is the mean of each 2x2 block, rounded.
  const int mean = (grey[0] + grey[1] + grey[48] + grey[49] + 2) / 4;
  EXPECT_NEAR(shrunk->data.face(0)[0], mean, 1);
}

TEST_F(ReadersTest, ImageFolderOutputDoesNotDependOnThreads) {
  REQUIRE_REAL_FACES();
  const fs::path root = dir_ / "tree";
  CopyFaces("sad", 0, 40, root / "sad");
  CopyFaces("disgust", 0, 30, root / "disgusted");
  ReaderOptions one;
  one.threads = 1;
  ReaderOptions many;
  many.threads = 5;
  size_t calls = 0;
  size_t last_done = 0;
  many.progress = [&](size_t done, size_t total) {
    ++calls;
    EXPECT_EQ(total, 70u);
    EXPECT_GE(done, last_done);
    last_done = done;
  };
  absl::StatusOr<ReadResult> a = ReadImageFolder(root.string(), one);
  absl::StatusOr<ReadResult> b = ReadImageFolder(root.string(), many);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->data.size(), 70u);
  ASSERT_EQ(b->data.size(), 70u);
  for (size_t i = 0; i < 70; ++i) {
    EXPECT_EQ(a->data.label(i), b->data.label(i));
    EXPECT_EQ(std::memcmp(a->data.face(i), b->data.face(i), a->data.face_bytes()), 0);
  }
  EXPECT_GE(calls, 2u);
  EXPECT_EQ(last_done, 70u);
}

TEST_F(ReadersTest, ImageFolderFailsClearlyForMissingRootAndBadOptions) {
  absl::StatusOr<ReadResult> missing = ReadImageFolder((dir_ / "absent").string(), {});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  ReaderOptions two_channels;
  two_channels.channels = 2;
  EXPECT_EQ(ReadImageFolder(dir_.string(), two_channels).status().code(),
            absl::StatusCode::kInvalidArgument);
#ifndef FER_WITH_OPENCV
  absl::StatusOr<ReadResult> no_decoder = ReadImageFolder(dir_.string(), {});
  ASSERT_FALSE(no_decoder.ok());
  EXPECT_EQ(no_decoder.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(no_decoder.status().message().find("without OpenCV"), absl::string_view::npos);
#endif
}

TEST(DeclaredSizeTest, ReadsTheSizeOfEveryFormatTheFolderReaderTakes) {
#ifndef FER_WITH_OPENCV
  GTEST_SKIP() << "writing the fixtures needs OpenCV";
#else
  cv::Mat image(37, 53, CV_8UC3, cv::Scalar(10, 20, 30));  // 53 wide, 37 high
  for (const char* ext : {".jpg", ".png", ".bmp", ".webp", ".tif", ".ppm", ".pgm"}) {
    SCOPED_TRACE(ext);
    std::vector<uchar> bytes;
    const cv::Mat source =
        std::string(ext) == ".pgm" ? cv::Mat(37, 53, CV_8UC1, cv::Scalar(20)) : image;
    ASSERT_TRUE(cv::imencode(ext, source, bytes));
    absl::StatusOr<DeclaredSize> size = ReadDeclaredSize(
        std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    ASSERT_TRUE(size.ok()) << size.status();
    EXPECT_EQ(size->width, 53);
    EXPECT_EQ(size->height, 37);
  }
#endif
}

TEST(DeclaredSizeTest, ReadsHeadersWithoutDecodingAndRefusesWhatItCannotSize) {
  const std::string bomb = test::DeclaringPng(100000, 100000);
  EXPECT_LT(bomb.size(), 80u);
  absl::StatusOr<DeclaredSize> size = ReadDeclaredSize(bomb);
  ASSERT_TRUE(size.ok()) << size.status();
  EXPECT_EQ(size->width, 100000);
  EXPECT_EQ(size->height, 100000);

  absl::StatusOr<DeclaredSize> pam = ReadDeclaredSize(
      "P7\nWIDTH 640\nHEIGHT 480\nDEPTH 1\n"
      "MAXVAL 255\nTUPLTYPE GRAYSCALE\nENDHDR\n");
  ASSERT_TRUE(pam.ok()) << pam.status();
  EXPECT_EQ(pam->width, 640);
  EXPECT_EQ(pam->height, 480);
  absl::StatusOr<DeclaredSize> pgm = ReadDeclaredSize("P5 # a comment\n 7 9\n255\n");
  ASSERT_TRUE(pgm.ok()) << pgm.status();
  EXPECT_EQ(pgm->width, 7);
  EXPECT_EQ(pgm->height, 9);

  for (const std::string& bad :
       {std::string(), std::string("not an image"), std::string("GIF89a\x01\0\x01\0", 10),
        std::string("P5\n0 9\n255\n"), std::string("II*\0\x08\0\0\0\0\0", 10),
        bomb.substr(0, 30)}) {
    SCOPED_TRACE(bad);
    absl::StatusOr<DeclaredSize> refused = ReadDeclaredSize(bad);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_FALSE(refused.status().message().empty());
  }
  EXPECT_NE(ReadDeclaredSize(std::string("GIF89a\x01\0\x01\0", 10)).status().message().find("GIF"),
            absl::string_view::npos);
}

TEST_F(ReadersTest, ImageFolderSkipsBombsOversizedAndBrokenImagesAndGoesOn) {
  REQUIRE_REAL_FACES();
#ifdef FER_WITH_OPENCV
  const fs::path root = dir_ / "tree";
  const std::vector<fs::path> happy = CopyFaces("happy", 0, 4, root / "happy");
  WriteFile(root / "happy" / "bomb.png", test::DeclaringPng(100000, 100000));
  // Decodable, but larger than the limit set below.
  ASSERT_TRUE(cv::imwrite((root / "happy" / "large.png").string(),
                          cv::Mat(200, 300, CV_8UC1, cv::Scalar(128))));
  // A real JPEG cut in half.
  const std::string jpeg = ReadFile(happy[0]);
  WriteFile(root / "happy" / "truncated.jpg", jpeg.substr(0, jpeg.size() / 2));
  WriteFile(root / "happy" / "empty.png", "");

  ReaderOptions options;
  options.max_pixels = 100 * 100;
  options.threads = 3;
  absl::StatusOr<ReadResult> read = ReadImageFolder(root.string(), options);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->data.size(), 4u);
  EXPECT_EQ(read->data.face_size(), 48);  // chosen from a header that passed the limit
  EXPECT_EQ(read->report.found[4], 8u);
  EXPECT_EQ(read->report.oversized, 2u);
  EXPECT_EQ(read->report.undecodable, 2u);
  const std::string summary = read->report.Summary();
  EXPECT_NE(summary.find("over the pixel limit: 2"), std::string::npos) << summary;
  EXPECT_NE(summary.find("100000 x 100000"), std::string::npos) << summary;
  EXPECT_NE(summary.find("undecodable images: 2"), std::string::npos) << summary;
  EXPECT_NE(summary.find("truncated.jpg"), std::string::npos) << summary;

  // The faces that were packed are the real ones, in order.
  for (size_t i = 0; i < happy.size(); ++i) {
    EXPECT_TRUE(SameFace(read->data, i, DecodeGrey(happy[i]))) << happy[i];
  }
  // With the default limit only the bomb is too large.
  absl::StatusOr<ReadResult> defaults = ReadImageFolder(root.string(), ReaderOptions());
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->data.size(), 5u);
  EXPECT_EQ(defaults->report.oversized, 1u);
  ReaderOptions zero;
  zero.max_pixels = 0;
  EXPECT_EQ(ReadImageFolder(root.string(), zero).status().code(),
            absl::StatusCode::kInvalidArgument);
#endif
}

TEST_F(ReadersTest, ImageFolderReadsEveryFolderOnceThroughSymbolicLinks) {
  REQUIRE_REAL_FACES();
  const fs::path root = dir_ / "tree";
  CopyFaces("sad", 0, 3, root / "sad" / "part1");
  CopyFaces("fear", 0, 2, root / "fear");
  fs::create_directory_symlink("..", root / "sad" / "part1" / "loop");  // back to sad/
  fs::create_directory_symlink(root / "sad", root / "sadness");  // a second name, same folder
  fs::create_directory_symlink(root / "fear", root / "sad" / "fear_link");  // fear, inside sad
  fs::create_directory_symlink(dir_ / "absent", root / "sad" / "dangling");

  absl::StatusOr<ReadResult> read = ReadImageFolder(root.string(), ReaderOptions());
  ASSERT_TRUE(read.ok()) << read.status();
  // fear/ is read first (sorted), so its link inside sad/ adds nothing; the
  // loop back to sad/ and the second name sadness/ are not entered again.
  EXPECT_EQ(read->data.ClassCounts(), (std::vector<size_t>{0, 0, 0, 2, 0, 3, 0}));
  EXPECT_EQ(read->report.repeated_folders, 3u);
  EXPECT_NE(read->report.Summary().find("already read"), std::string::npos);
}

TEST_F(ReadersTest, ImageFolderReadsColourInRgbOrder) {
#ifndef FER_WITH_OPENCV
  GTEST_SKIP() << "fer-model was built without OpenCV: image readers are unavailable";
#else
  const fs::path root = dir_ / "tree";
  fs::create_directories(root / "anger");
  cv::Mat image(16, 16, CV_8UC3, cv::Scalar(255, 0, 0));      // BGR: blue ...
  image(cv::Rect(0, 0, 8, 16)).setTo(cv::Scalar(0, 0, 255));  // ... red on the left half
  ASSERT_TRUE(cv::imwrite((root / "anger" / "a.png").string(), image));
  ReaderOptions rgb;
  rgb.channels = 3;
  absl::StatusOr<ReadResult> read = ReadImageFolder(root.string(), rgb);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->data.size(), 1u);
  const uint8_t* face = read->data.face(0);
  EXPECT_EQ(std::vector<int>(face, face + 3), (std::vector<int>{255, 0, 0}));  // red
  const uint8_t* right = face + 3 * 15;
  EXPECT_EQ(std::vector<int>(right, right + 3), (std::vector<int>{0, 0, 255}));  // blue
#endif
}

// ------------------------------------------------------------------ Aff-Wild2

// An Aff-Wild2-shaped fixture: three videos of real faces as numbered frames.
class AffWild2Test : public ReadersTest {
 protected:
  void SetUp() override {
#ifdef FER_WITH_OPENCV
    if (!fs::exists(kFer2013Train)) GTEST_SKIP() << "needs the FER2013 faces in " << kFer2013Train;
#else
    GTEST_SKIP() << "fer-model was built without OpenCV: image readers are unavailable";
#endif
    annotations_ = dir_ / "EXPR_Set" / "Train_Set";
    images_ = dir_ / "cropped_aligned";
    fs::create_directories(annotations_);
    // vid_a: neutral x3, happiness x2 (frame 5's image is missing), not
    // annotated, anger, Other, disgust.
    WriteFile(
        annotations_ / "vid_a.txt",
        "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise\n0\n0\n0\n4\n4\n-1\n1\n7\n2\n");
    MakeFrames("vid_a", 9, {5});
    // vid_b: the later header with Other; fear x2, sadness.
    WriteFile(annotations_ / "vid_b.txt",
              "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n3\n3\n5\n");
    MakeFrames("vid_b", 3, {});
    // vid_c_left: Windows line ends and a trailing blank line; surprise x2.
    WriteFile(annotations_ / "vid_c_left.txt",
              "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise\r\n6\r\n6\r\n\r\n");
    MakeFrames("vid_c_left", 2, {});
    WriteFile(annotations_ / "README.md", "not an annotation file");
  }

  // Frames 1..n of video from distinct real faces, except the missing ones.
  void MakeFrames(const std::string& video, int n, const std::vector<int>& missing) {
    fs::create_directories(images_ / video);
    const std::vector<fs::path> faces = Faces("neutral");
    for (int i = 1; i <= n; ++i) {
      if (std::find(missing.begin(), missing.end(), i) != missing.end()) continue;
      const fs::path frame = images_ / video / absl::StrFormat("%05d.jpg", i);
      fs::copy_file(faces[used_++], frame);
      sources_[video + "/" + std::to_string(i)] = frame;
    }
  }

  fs::path annotations_;
  fs::path images_;
  size_t used_ = 0;
  std::map<std::string, fs::path> sources_;
};

TEST_F(AffWild2Test, ReadsAnnotatedFramesWithVideoAndFrameIds) {
  absl::StatusOr<ReadResult> read =
      ReadAffWild2(annotations_.string(), images_.string(), ReaderOptions());
  ASSERT_TRUE(read.ok()) << read.status();
  const PackedDataset& data = read->data;
  EXPECT_EQ(data.video_names(), (std::vector<std::string>{"vid_a", "vid_b", "vid_c_left"}));
  EXPECT_EQ(data.face_size(), 48);
  struct Expected {
    int label, video, frame;
  };
  const std::vector<Expected> expected = {{0, 0, 1}, {0, 0, 2}, {0, 0, 3}, {4, 0, 4}, {1, 0, 7},
                                          {2, 0, 9},  // frame 5 missing
                                          {3, 1, 1}, {3, 1, 2}, {5, 1, 3}, {6, 2, 1}, {6, 2, 2}};
  ASSERT_EQ(data.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(data.label(i), expected[i].label) << "face " << i;
    EXPECT_EQ(data.video(i), expected[i].video) << "face " << i;
    EXPECT_EQ(data.frame(i), expected[i].frame) << "face " << i;
    const std::string key = data.video_names()[data.video(i)] + "/" + std::to_string(data.frame(i));
    EXPECT_TRUE(SameFace(data, i, DecodeGrey(sources_.at(key)))) << key;
  }
  const ReadReport& report = read->report;
  EXPECT_EQ(report.found, (std::array<size_t, kNumClasses>{3, 1, 1, 2, 2, 1, 2}));
  EXPECT_EQ(report.not_annotated, 1u);
  EXPECT_EQ(report.other, 1u);
  EXPECT_EQ(report.missing_frames, 1u);
  EXPECT_EQ(report.missing_per_video.at("vid_a"), 1u);
  ASSERT_EQ(report.missing_examples.size(), 1u);
  EXPECT_NE(report.missing_examples[0].find("00005.jpg"), std::string::npos);
  EXPECT_EQ(report.undecodable, 0u);
  EXPECT_EQ(report.dropped_by_stride, 0u);
}

TEST_F(AffWild2Test, StridesApplyToAnnotatedRunsBeforeDecoding) {
  ReaderOptions options;
  options.strides = NoStrides();
  options.strides[0] = 2;  // neutral run 1,2,3 -> frames 1 and 3
  options.strides[4] = 2;  // happiness run 4,5 -> frame 4 only: 5 is never looked for
  options.strides[6] = 2;  // surprise run 1,2 -> frame 1
  absl::StatusOr<ReadResult> read = ReadAffWild2(annotations_.string(), images_.string(), options);
  ASSERT_TRUE(read.ok()) << read.status();
  std::vector<std::string> kept;
  for (size_t i = 0; i < read->data.size(); ++i) {
    kept.push_back(absl::StrCat(read->data.video(i), ":", read->data.frame(i)));
  }
  EXPECT_EQ(absl::StrJoin(kept, " "), "0:1 0:3 0:4 0:7 0:9 1:1 1:2 1:3 2:1");
  EXPECT_EQ(read->report.dropped_by_stride, 3u);
  EXPECT_EQ(read->report.missing_frames, 0u);
}

TEST_F(AffWild2Test, BadHeadersAndLabelsNameTheFileAndLine) {
  WriteFile(annotations_ / "vid_b.txt",
            "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise\n3\n9\n");
  absl::StatusOr<ReadResult> bad_label = ReadAffWild2(annotations_.string(), images_.string(), {});
  ASSERT_FALSE(bad_label.ok());
  EXPECT_EQ(bad_label.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_label.status().message().find("vid_b.txt:3"), absl::string_view::npos)
      << bad_label.status();

  WriteFile(annotations_ / "vid_b.txt",
            "Anger,Neutral,Disgust,Fear,Happiness,Sadness,Surprise\n3\n");
  absl::StatusOr<ReadResult> bad_header = ReadAffWild2(annotations_.string(), images_.string(), {});
  ASSERT_FALSE(bad_header.ok());
  EXPECT_NE(bad_header.status().message().find("EXPR header"), absl::string_view::npos)
      << bad_header.status();

  EXPECT_EQ(ReadAffWild2(annotations_.string(), (dir_ / "nope").string(), {}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(ReadAffWild2(images_.string(), images_.string(), {}).status().code(),
            absl::StatusCode::kInvalidArgument);  // no .txt files
}

// ------------------------------------------------------------------- FER2013

TEST(Fer2013Test, EmotionCodesMapToOurLabelOrder) {
  // FER2013: 0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral.
  const std::vector<std::string> names = {"anger",   "disgust",  "fear",   "happiness",
                                          "sadness", "surprise", "neutral"};
  for (int code = 0; code < 7; ++code) {
    EXPECT_EQ(LabelFromFer2013Emotion(code), LabelFromAlias(names[code]).value()) << code;
  }
  EXPECT_EQ(LabelFromFer2013Emotion(7), -1);
  EXPECT_EQ(LabelFromFer2013Emotion(-1), -1);
}

class Fer2013CsvTest : public ReadersTest {
 protected:
  void SetUp() override {
#ifdef FER_WITH_OPENCV
    if (!fs::exists(kFer2013Train)) GTEST_SKIP() << "needs the FER2013 faces in " << kFer2013Train;
#else
    GTEST_SKIP() << "writing the CSV fixture needs OpenCV to decode the shared JPEG faces";
#endif
    // Two faces per FER2013 code, from the class folder of that code, with
    // Usage cycling through the three splits.
    const std::vector<std::string> folders = {"angry", "disgust",  "fear",   "happy",
                                              "sad",   "surprise", "neutral"};
    std::string csv = "emotion,pixels,Usage\r\n";
    for (int row = 0; row < 14; ++row) {
      const int code = row % 7;
      const fs::path face = Faces(folders[code])[row / 7];
      const std::vector<uint8_t> pixels = DecodeGrey(face);
      codes_.push_back(code);
      usages_.push_back(std::string(kFer2013Usages[row % 3]));
      pixels_.push_back(pixels);
      csv += absl::StrCat(code, ",", absl::StrJoin(pixels, " "), ",", usages_.back(), "\r\n");
    }
    csv_ = dir_ / "fer2013.csv";
    WriteFile(csv_, csv);
  }

  fs::path csv_;
  std::vector<int> codes_;
  std::vector<std::string> usages_;
  std::vector<std::vector<uint8_t>> pixels_;
};

TEST_F(Fer2013CsvTest, ReadsEveryRowWithMappedLabelsAndExactPixels) {
  ReaderOptions options;
  options.threads = 3;
  absl::StatusOr<ReadResult> read = ReadFer2013Csv(csv_.string(), "", options);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->data.size(), codes_.size());
  EXPECT_EQ(read->data.face_size(), 48);
  for (size_t i = 0; i < codes_.size(); ++i) {
    EXPECT_EQ(read->data.label(i), LabelFromFer2013Emotion(codes_[i])) << "row " << i;
    EXPECT_TRUE(SameFace(read->data, i, pixels_[i])) << "row " << i;
  }
  EXPECT_EQ(read->data.label(6), 0);  // code 6 is Neutral, our label 0
  EXPECT_EQ(read->data.label(0), 1);  // code 0 is Angry, our label 1
  EXPECT_EQ(read->data.ClassCounts(), std::vector<size_t>(kNumClasses, 2));
}

TEST_F(Fer2013CsvTest, UsageFilterKeepsOneSplit) {
  absl::StatusOr<ReadResult> read = ReadFer2013Csv(csv_.string(), "publictest", {});
  ASSERT_TRUE(read.ok()) << read.status();
  std::vector<size_t> rows;
  for (size_t i = 0; i < usages_.size(); ++i) {
    if (usages_[i] == "PublicTest") rows.push_back(i);
  }
  ASSERT_EQ(read->data.size(), rows.size());
  for (size_t k = 0; k < rows.size(); ++k) EXPECT_TRUE(SameFace(read->data, k, pixels_[rows[k]]));
  EXPECT_EQ(read->report.skipped_usage, usages_.size() - rows.size());

  EXPECT_EQ(ReadFer2013Csv(csv_.string(), "Validation", {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(Fer2013CsvTest, RgbAndResizedFacesComeFromTheSamePixels) {
  ReaderOptions options;
  options.channels = 3;
  options.face_size = 112;
  absl::StatusOr<ReadResult> read = ReadFer2013Csv(csv_.string(), "", options);
  ASSERT_TRUE(read.ok()) << read.status();
  std::vector<uint8_t> expected(112 * 112 * 3);
  ConvertFace(pixels_[3].data(), 48, 1, expected.data(), 112, 3);
  EXPECT_TRUE(SameFace(read->data, 3, expected));
}

TEST_F(ReadersTest, Fer2013CsvErrorsNameTheLine) {
  std::string pixels;
  for (int i = 0; i < 48 * 48; ++i) absl::StrAppend(&pixels, i ? " " : "", i % 256);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"emotion,pixels,Usage\n0," + pixels + ",Training\n9," + pixels + ",Training\n", ":3"},
      {"emotion,pixels,Usage\n0," + pixels + ",Training\n1,1 2 3,Training\n", ":3"},
      {"emotion,pixels,Usage\n0," + pixels + ",Training\n1," + pixels + " 300,Training\n", ":3"},
      {"emotion,pixels,Usage\n0,1 2 3,Training\n", ":2"},
      {"label,image\n0,1 2 3 4\n", "emotion and pixels"},
  };
  for (const auto& [text, needle] : cases) {
    const fs::path path = dir_ / "bad.csv";
    WriteFile(path, text);
    absl::StatusOr<ReadResult> read = ReadFer2013Csv(path.string(), "", {});
    ASSERT_FALSE(read.ok()) << needle;
    EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(read.status().message().find(needle), absl::string_view::npos) << read.status();
  }
  EXPECT_EQ(ReadFer2013Csv((dir_ / "absent.csv").string(), "", {}).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ReadersTest, Fer2013CsvAcceptsQuotesAnyColumnOrderAndNoUsage) {
  std::string pixels;
  for (int i = 0; i < 16; ++i) absl::StrAppend(&pixels, i ? " " : "", i * 16);
  const fs::path path = dir_ / "quoted.csv";
  WriteFile(path, "\"pixels\",\"Emotion\"\n\"" + pixels + "\",\"5\"\n");
  absl::StatusOr<ReadResult> read = ReadFer2013Csv(path.string(), "", {});
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->data.size(), 1u);
  EXPECT_EQ(read->data.face_size(), 4);  // a 4x4 face stays 4x4
  EXPECT_EQ(read->data.label(0), 6);     // FER2013 5 = Surprise
  EXPECT_EQ(read->data.face(0)[15], 240);
  // Filtering needs a Usage column.
  EXPECT_EQ(ReadFer2013Csv(path.string(), "Training", {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ------------------------------------------------------------ shared helpers

TEST_F(ReadersTest, DetectDataFormatTellsTheThreeLayoutsApart) {
  WriteFile(dir_ / "faces.CSV", "emotion,pixels\n");
  fs::create_directories(dir_ / "annotations");
  WriteFile(dir_ / "annotations" / "video1.txt", "Neutral\n");
  fs::create_directories(dir_ / "tree" / "happy");
  WriteFile(dir_ / "tree" / "readme.txt", "a tree may hold text files too");
  WriteFile(dir_ / "model.pack", "x");
  EXPECT_EQ(DetectDataFormat((dir_ / "faces.CSV").string()).value(), DataFormat::kFer2013Csv);
  EXPECT_EQ(DetectDataFormat((dir_ / "annotations").string()).value(), DataFormat::kAffWild2);
  EXPECT_EQ(DetectDataFormat((dir_ / "tree").string()).value(), DataFormat::kFolder);
  EXPECT_EQ(DetectDataFormat((dir_ / "model.pack").string()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DetectDataFormat((dir_ / "absent").string()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(ParseDataFormat("AffWild2").value(), DataFormat::kAffWild2);
  EXPECT_EQ(ParseDataFormat("fer2013csv").value(), DataFormat::kFer2013Csv);
  EXPECT_FALSE(ParseDataFormat("imagenet").ok());
}

TEST(ResizeFaceTest, ShrinkingAveragesAreasAndGrowingIsBilinear) {
  const std::vector<uint8_t> src = {0,   10,  20,  30,   //
                                    40,  50,  60,  70,   //
                                    80,  90,  100, 110,  //
                                    120, 130, 140, 150};
  std::vector<uint8_t> half(4);
  ResizeFace(src.data(), 4, 4, 1, half.data(), 2);
  EXPECT_EQ(half, (std::vector<uint8_t>{25, 45, 105, 125}));

  std::vector<uint8_t> same(16);
  ResizeFace(src.data(), 4, 4, 1, same.data(), 4);
  EXPECT_EQ(same, src);

  std::vector<uint8_t> grown(64);
  std::vector<uint8_t> bilinear(64);
  ResizeFace(src.data(), 4, 4, 1, grown.data(), 8);
  ResizeBilinear(src.data(), 4, 4, 1, bilinear.data(), 8, 8);
  EXPECT_EQ(grown, bilinear);

  // A 6x3 image is stretched to a square: rows grow, columns shrink.
  std::vector<uint8_t> wide(18, 7);
  std::vector<uint8_t> square(16);
  ResizeFace(wide.data(), 6, 3, 1, square.data(), 4);
  EXPECT_EQ(square, std::vector<uint8_t>(16, 7));
}

TEST(ResizeFaceTest, ConvertFaceRepeatsGreyAndTakesLumaOfRgb) {
  const std::vector<uint8_t> grey = {10, 200, 30, 40};
  std::vector<uint8_t> rgb(12);
  ConvertFace(grey.data(), 2, 1, rgb.data(), 2, 3);
  EXPECT_EQ(rgb, (std::vector<uint8_t>{10, 10, 10, 200, 200, 200, 30, 30, 30, 40, 40, 40}));
  const std::vector<uint8_t> colour = {255, 0, 0, 0, 255, 0, 0, 0, 255, 100, 100, 100};
  std::vector<uint8_t> back(4);
  ConvertFace(colour.data(), 2, 3, back.data(), 2, 1);
  EXPECT_EQ(back, (std::vector<uint8_t>{76, 150, 29, 100}));
}

}  // namespace
}  // namespace fer
