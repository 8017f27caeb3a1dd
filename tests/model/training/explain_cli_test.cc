// fer-model explain as a user runs it: a grid of real faces with their
// attention maps, CSV rows that agree with the maps they carry, faces taken in
// turn from each class, misaligned faces and patches of a photo without
// faces.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "model/core/attention_quality.h"
#include "tests/support/face_tree.h"
#include "tests/support/files.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace fer {
namespace {

namespace fs = std::filesystem;
using test_support::RunResult;
using ::testing::HasSubstr;

const fs::path kFer2013Val = fs::path(FER_SHARED_DATA) / "fer2013" / "val";
constexpr int kMapCells = 49;  // 7 x 7 for the 112 px model.

#define REQUIRE_REAL_FACES()                                                         \
  if (!fs::exists(kFer2013Val)) {                                                    \
    GTEST_SKIP() << "needs the FER2013 faces of the shared data in " << kFer2013Val; \
  }

struct Row {
  std::string file, truth, predicted;
  double confidence = 0, center_share = 0;
  std::vector<float> map;
};

// The rows of explain's CSV (no field of these tests is quoted).
std::vector<Row> ReadRows(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line.rfind("file,true,predicted,confidence,center_share,a_0_0,a_0_1,", 0), 0u) << line;
  std::vector<Row> rows;
  while (std::getline(in, line)) {
    const std::vector<std::string> f = absl::StrSplit(line, ',');
    if (f.size() != 5 + kMapCells) {
      ADD_FAILURE() << "fields: " << f.size() << " in " << line;
      continue;
    }
    Row row{f[0], f[1], f[2]};
    EXPECT_TRUE(absl::SimpleAtod(f[3], &row.confidence));
    EXPECT_TRUE(absl::SimpleAtod(f[4], &row.center_share));
    for (int k = 0; k < kMapCells; ++k) {
      float v = 0;
      EXPECT_TRUE(absl::SimpleAtof(f[5 + k], &v));
      row.map.push_back(v);
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

// Width and height from a PNG's IHDR chunk.
std::pair<uint32_t, uint32_t> PngSize(const std::string& path) {
  const std::string bytes = test_support::ReadFile(path);
  if (bytes.size() < 24 || bytes.compare(1, 3, "PNG") != 0) return {0, 0};
  auto be32 = [&](size_t at) {
    uint32_t v = 0;
    for (size_t i = 0; i < 4; ++i) v = v << 8 | static_cast<uint8_t>(bytes[at + i]);
    return v;
  };
  return {be32(16), be32(20)};
}

class ExplainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = Path("model.pt");
    const RunResult init = FerModel({"init", "--out=" + model_, "--seed=2"});
    ASSERT_EQ(init.exit_code, 0) << init.err;
  }
  RunResult FerModel(std::vector<std::string> args) {
    args.insert(args.begin(), FER_MODEL_BIN);
    return test_support::Run(args, dir_.string());
  }
  RunResult Explain(std::vector<std::string> args) {
    args.insert(args.begin(), {"explain", "--model=" + model_, "--device=cpu", "--threads=1"});
    return FerModel(args);
  }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  const test_support::TempDir scratch_{"explain_cli_test_"};
  const fs::path dir_ = scratch_.path();
  std::string model_;
};

TEST_F(ExplainTest, DrawsAGridAndWritesOneRowPerFaceThatAgreesWithItsMap) {
  REQUIRE_REAL_FACES();
  const fs::path faces = dir_ / "faces";
  test_support::CopyFirstFacesPerClass(kFer2013Val, faces, 2);
  const RunResult run =
      Explain({"--data=" + faces.string(), "--count=0", "--columns=5", "--size=64",
               "--png=" + Path("grid.png"), "--csv=" + Path("faces.csv")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("explained 14 crops"));

  // 14 faces in 5 columns: 3 rows of 64 px faces, with text under each.
  const auto [width, height] = PngSize(Path("grid.png"));
  EXPECT_GT(width, 5u * 64);
  EXPECT_LT(width, 5u * 64 * 3 / 2);
  EXPECT_GT(height, 3u * 64 * 3 / 2);
  EXPECT_LT(height, 3u * 64 * 3);

  const std::vector<Row> rows = ReadRows(Path("faces.csv"));
  ASSERT_EQ(rows.size(), 14u);
  std::set<std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(faces)) {
    if (entry.is_regular_file()) files.insert(entry.path().string());
  }
  std::set<std::string> named;
  // The true label is the folder's, through the aliases.
  const std::map<std::string, std::string> label_of = {
      {"neutral", "neutral"}, {"angry", "anger"}, {"disgust", "disgust"},  {"fear", "fear"},
      {"happy", "happiness"}, {"sad", "sadness"}, {"surprise", "surprise"}};
  std::set<std::string> labels;
  for (const auto& [folder, label] : label_of) labels.insert(label);
  for (const Row& row : rows) {
    named.insert(row.file);
    EXPECT_EQ(row.truth, label_of.at(fs::path(row.file).parent_path().filename().string()));
    EXPECT_TRUE(labels.count(row.predicted)) << row.predicted;
    EXPECT_GE(row.confidence, 1.0 / 7 - 1e-6);
    EXPECT_LE(row.confidence, 1.0);
    for (float v : row.map) {
      EXPECT_GE(v, 0.0f);
      EXPECT_LE(v, 1.0f);
    }
    EXPECT_NEAR(row.center_share, AttentionCenterShare(row.map, 7, 7), 1e-5) << row.file;
  }
  EXPECT_EQ(named, files);
}

TEST_F(ExplainTest, CountTakesFacesInTurnFromEachClass) {
  REQUIRE_REAL_FACES();
  const fs::path faces = dir_ / "faces";
  test_support::CopyFirstFacesPerClass(kFer2013Val, faces, 3);
  const RunResult run =
      Explain({"--data=" + faces.string(), "--count=9", "--seed=4", "--csv=" + Path("f.csv")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::vector<Row> rows = ReadRows(Path("f.csv"));
  ASSERT_EQ(rows.size(), 9u);
  std::set<std::string> first_round;
  for (size_t i = 0; i < 7; ++i) first_round.insert(rows[i].truth);
  EXPECT_EQ(first_round.size(), 7u);
  EXPECT_NE(rows[7].file, rows[0].file);
  EXPECT_EQ(rows[7].truth, rows[0].truth);
}

TEST_F(ExplainTest, MisalignedFacesGetOtherMapsAndPatchesHaveNoTrueLabel) {
  REQUIRE_REAL_FACES();
  const fs::path faces = dir_ / "faces";
  test_support::CopyFirstFacesPerClass(kFer2013Val, faces, 1);
  ASSERT_EQ(Explain({"--data=" + faces.string(), "--count=0", "--csv=" + Path("a.csv")}).exit_code,
            0);
  const RunResult shifted = Explain(
      {"--data=" + faces.string(), "--count=0", "--misalign=shift", "--csv=" + Path("b.csv")});
  ASSERT_EQ(shifted.exit_code, 0) << shifted.err;
  const std::vector<Row> aligned = ReadRows(Path("a.csv")), moved = ReadRows(Path("b.csv"));
  ASSERT_EQ(aligned.size(), 7u);
  ASSERT_EQ(moved.size(), 7u);
  for (size_t i = 0; i < aligned.size(); ++i) {
    EXPECT_EQ(moved[i].file, aligned[i].file);
    EXPECT_NE(moved[i].map, aligned[i].map);
  }

  // A grey 160 x 120 PGM ramp with stripes: a photo with no face in it.
  fs::create_directories(dir_ / "photos");
  std::ofstream pgm(dir_ / "photos" / "ramp.pgm", std::ios::binary);
  pgm << "P5\n160 120\n255\n";
  for (int y = 0; y < 120; ++y) {
    for (int x = 0; x < 160; ++x) pgm.put(static_cast<char>((x + 40 * ((y / 10) % 2)) % 256));
  }
  pgm.close();
  const RunResult patches = Explain({"--patches_from=" + Path("photos"), "--count=3",
                                     "--csv=" + Path("p.csv"), "--png=" + Path("p.png")});
  ASSERT_EQ(patches.exit_code, 0) << patches.err;
  const std::vector<Row> rows = ReadRows(Path("p.csv"));
  ASSERT_EQ(rows.size(), 3u);
  for (const Row& row : rows) {
    EXPECT_EQ(row.truth, "");
    EXPECT_THAT(row.file, HasSubstr("ramp.pgm@"));
  }
  EXPECT_GT(PngSize(Path("p.png")).first, 0u);
}

TEST_F(ExplainTest, ASourceAndAnOutputAreRequired) {
  const RunResult neither = Explain({"--csv=" + Path("x.csv")});
  EXPECT_EQ(neither.exit_code, 1);
  EXPECT_THAT(neither.err, HasSubstr("give one of --data and --patches_from"));
  const RunResult no_output = Explain({"--data=" + Path("x")});
  EXPECT_EQ(no_output.exit_code, 1);
  EXPECT_THAT(no_output.err, HasSubstr("--png or --csv"));
}

}  // namespace
}  // namespace fer
