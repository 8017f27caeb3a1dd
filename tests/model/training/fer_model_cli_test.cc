// The fer-model binary as a user runs it: --help and --version, flags that
// belong to another subcommand, image folders given to eval and train, and
// pack on folders holding a decompression bomb and a symbolic-link loop.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/model/training/png_fixtures.h"
#include "tests/support/files.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace fer {
namespace {

namespace fs = std::filesystem;
using test_support::RunResult;
using ::testing::HasSubstr;
using ::testing::Not;

const fs::path kFer2013Train = fs::path(FER_SHARED_DATA) / "fer2013" / "train";
const char* const kCommands[] = {"init", "info",  "convert", "bench",
                                 "pack", "train", "eval",    "explain"};

class FerModelTest : public ::testing::Test {
 protected:
  RunResult FerModel(std::vector<std::string> args) {
    args.insert(args.begin(), FER_MODEL_BIN);
    return test_support::Run(args, dir_.string());
  }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  // class/ folders holding the first n real FER2013 faces of each class.
  void CopyFaces(const fs::path& root, const std::vector<std::string>& classes, size_t n) {
    for (const std::string& name : classes) {
      std::vector<fs::path> faces;
      for (const auto& entry : fs::directory_iterator(kFer2013Train / name)) {
        faces.push_back(entry.path());
      }
      std::sort(faces.begin(), faces.end());
      fs::create_directories(root / name);
      for (size_t i = 0; i < n && i < faces.size(); ++i) {
        fs::copy_file(faces[i], root / name / faces[i].filename());
      }
    }
  }

  const test_support::TempDir scratch_{"fer_model_cli_test_"};
  const fs::path dir_ = scratch_.path();
};

#define REQUIRE_REAL_FACES()                                                           \
  if (!fs::exists(kFer2013Train)) {                                                    \
    GTEST_SKIP() << "needs the FER2013 faces of the shared data in " << kFer2013Train; \
  }

// The VERSION of the top-level CMakeLists.txt's project().
std::string CMakeProjectVersion() {
  const std::string text = test_support::ReadFile(std::string(FER_SOURCE_DIR) + "/CMakeLists.txt");
  std::smatch match;
  if (!std::regex_search(text, match, std::regex(R"(project\([^)]*VERSION ([0-9.]+))"))) return "";
  return match[1];
}

// "--name" of every line "    --name (help...)" that --help prints.
std::set<std::string> ListedFlags(const std::string& help) {
  std::set<std::string> names;
  const std::regex line(R"(^    --([a-z0-9_]+) \()");
  std::istringstream in(help);
  for (std::string text; std::getline(in, text);) {
    std::smatch match;
    if (std::regex_search(text, match, line)) names.insert(match[1]);
  }
  return names;
}

// The flags --helpfull lists under "Flags from <file>:" sections whose file
// starts with prefix.
std::set<std::string> FlagsFromFiles(const std::string& helpfull, const std::string& prefix) {
  std::set<std::string> names;
  bool inside = false;
  std::istringstream in(helpfull);
  for (std::string text; std::getline(in, text);) {
    if (text.rfind("  Flags from ", 0) == 0) {
      inside = text.rfind("  Flags from " + prefix, 0) == 0;
      continue;
    }
    std::smatch match;
    if (inside && std::regex_search(text, match, std::regex(R"(^    --([a-z0-9_]+) )"))) {
      names.insert(match[1]);
    }
  }
  return names;
}

size_t Lines(const std::string& text) { return std::count(text.begin(), text.end(), '\n'); }

// ----------------------------------------------------------- --version, --help

TEST_F(FerModelTest, VersionNamesTheProjectVersionAndLibTorchsForEveryCommand) {
  const std::string version = CMakeProjectVersion();
  ASSERT_FALSE(version.empty());
  const std::regex expected("fer-model " + std::regex_replace(version, std::regex("\\."), "\\.") +
                            R"( \(LibTorch [0-9]+\.[0-9]+\.[0-9]+[^)]*\)\n)");
  std::vector<std::vector<std::string>> calls = {{"--version"}};
  for (const char* command : kCommands) calls.push_back({command, "--version"});
  for (const auto& call : calls) {
    SCOPED_TRACE(call[0]);
    const RunResult run = FerModel(call);
    EXPECT_EQ(run.exit_code, 0) << run.err;
    EXPECT_TRUE(std::regex_match(run.out, expected)) << run.out;
    EXPECT_THAT(run.out + run.err, Not(HasSubstr("Debug build")));
  }
}

TEST_F(FerModelTest, HelpListsTheFlagsOfThatCommandAndTogetherEveryFlag) {
  // Abseil (20220623) ends --helpfull with exit status 1.
  const RunResult full = FerModel({"init", "--helpfull"});
  ASSERT_THAT(full.out, HasSubstr("Flags from")) << full.err;
  const std::set<std::string> defined = FlagsFromFiles(full.out, "model/training/tools/");
  ASSERT_GT(defined.size(), 40u) << full.out;

  std::set<std::string> listed;
  for (const char* command : kCommands) {
    SCOPED_TRACE(command);
    const RunResult help = FerModel({command, "--help"});
    EXPECT_EQ(help.exit_code, 0) << help.err;
    EXPECT_THAT(help.out, HasSubstr(std::string("fer-model ") + command));
    EXPECT_THAT(help.out, Not(HasSubstr("No flags matched")));
    const std::set<std::string> flags = ListedFlags(help.out);
    EXPECT_FALSE(flags.empty());
    for (const std::string& flag : flags) {
      EXPECT_TRUE(defined.count(flag)) << "--" << flag << " is listed but not defined";
    }
    listed.insert(flags.begin(), flags.end());
  }
  // No flag that no command accepts.
  EXPECT_EQ(listed, defined);

  const std::set<std::string> train = ListedFlags(FerModel({"train", "--help"}).out);
  for (const char* own : {"data", "val", "out", "epochs", "model_version", "max_image_pixels"}) {
    EXPECT_TRUE(train.count(own)) << own;
  }
  for (const char* other : {"ten_crop", "batch_sizes", "half", "version", "model"}) {
    EXPECT_FALSE(train.count(other)) << other;
  }
}

TEST_F(FerModelTest, HelpfullShowsFilesRelativeToTheProject) {
  const RunResult full = FerModel({"eval", "--helpfull"});
  std::istringstream in(full.out);
  int sections = 0;
  for (std::string text; std::getline(in, text);) {
    if (text.rfind("  Flags from ", 0) != 0) continue;
    ++sections;
    const std::string file = text.substr(13);
    EXPECT_TRUE(file.rfind("model/", 0) == 0 || file.rfind("absl/", 0) == 0) << file;
  }
  EXPECT_GT(sections, 3);
  EXPECT_THAT(full.out, Not(HasSubstr(FER_SOURCE_DIR)));
  EXPECT_THAT(full.out, Not(HasSubstr(FER_BINARY_DIR)));
}

// --------------------------------------------------------- flags of a command

TEST_F(FerModelTest, AFlagOfAnotherCommandIsOneLineAndExitOne) {
  for (const std::vector<std::string>& call : {std::vector<std::string>{"eval", "--epochs=3"},
                                               {"info", "--epochs", "3"},
                                               {"init", "--noflip"},
                                               {"eval", "--epochs=not-a-number"}}) {
    SCOPED_TRACE(call[0] + " " + call[1]);
    const RunResult run = FerModel(call);
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_EQ(Lines(run.err), 1u) << run.err;
    const std::string flag = call[1] == "--noflip" ? "flip" : "epochs";
    EXPECT_THAT(run.err, HasSubstr("fer-model " + call[0] + ": --" + flag + " is not a flag of " +
                                   call[0] + " (it is for train)"));
  }
  // Through a flag file too.
  std::ofstream(Path("flags.txt")) << "--batch_sizes=1,2\n--seconds=2\n";
  const RunResult file = FerModel({"info", "--flagfile=" + Path("flags.txt")});
  EXPECT_EQ(file.exit_code, 1);
  EXPECT_EQ(Lines(file.err), 1u) << file.err;
  EXPECT_THAT(file.err, HasSubstr("--batch_sizes, --seconds are not flags of info"));
  // A command's own flags pass on to the command (which then wants --model).
  const RunResult own = FerModel({"info", "--json"});
  EXPECT_EQ(own.exit_code, 1);
  EXPECT_THAT(own.err, HasSubstr("--model is required"));
}

// ------------------------------------------------------------- image folders

TEST_F(FerModelTest, EvalReadsAnImageFolderAsItReadsThePackOfIt) {
  REQUIRE_REAL_FACES();
  const fs::path faces = dir_ / "faces";
  CopyFaces(faces, {"happy", "sad", "surprise"}, 8);
  const std::string model = Path("model.pt");
  ASSERT_EQ(FerModel({"init", "--input_size=32", "--out=" + model}).exit_code, 0);
  const RunResult pack = FerModel({"pack", "--data=" + faces.string(), "--out=" + Path("f.pack")});
  ASSERT_EQ(pack.exit_code, 0) << pack.err;

  const std::vector<std::string> eval = {"eval", "--model=" + model, "--json", "--device=cpu",
                                         "--threads=1"};
  std::vector<std::string> from_folder = eval, from_pack = eval;
  from_folder.push_back("--data=" + faces.string());
  from_pack.push_back("--data=" + Path("f.pack"));
  const RunResult folder = FerModel(from_folder);
  const RunResult packed = FerModel(from_pack);
  ASSERT_EQ(folder.exit_code, 0) << folder.err;
  ASSERT_EQ(packed.exit_code, 0) << packed.err;
  EXPECT_THAT(folder.out, HasSubstr("\"accuracy\""));
  EXPECT_EQ(folder.out, packed.out);  // the same 24 faces, pixel for pixel

  // A folder without a single face is one line and exit 1.
  fs::create_directories(dir_ / "empty" / "happy");
  std::vector<std::string> empty = eval;
  empty.push_back("--data=" + Path("empty"));
  const RunResult none = FerModel(empty);
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_EQ(Lines(none.err), 1u) << none.err;
  EXPECT_THAT(none.err, HasSubstr("no faces found"));
}

TEST_F(FerModelTest, TrainReadsImageFoldersAndStoresTheModelVersion) {
  REQUIRE_REAL_FACES();
  const fs::path faces = dir_ / "faces";
  CopyFaces(faces, {"angry", "neutral"}, 6);
  const std::string out = Path("trained.pt");
  const RunResult train =
      FerModel({"train", "--data=" + faces.string(), "--val=" + faces.string(), "--out=" + out,
                "--epochs=1", "--steps_per_epoch=1", "--batch_size=4", "--train_input_size=32",
                "--device=cpu", "--threads=1", "--loader_threads=1", "--model_version=cli-test-7"});
  ASSERT_EQ(train.exit_code, 0) << train.err;
  EXPECT_THAT(train.err, HasSubstr("training on 12 faces (48x48 x1), validating on 12"));
  const RunResult info = FerModel({"info", "--model=" + out, "--json"});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_THAT(info.out, HasSubstr("\"version\": \"cli-test-7\""));
  EXPECT_THAT(info.out, HasSubstr("\"color\": \"gray3\""));
}

TEST_F(FerModelTest, PackCountsABombAndALinkLoopAndGoesOn) {
  REQUIRE_REAL_FACES();
  const fs::path faces = dir_ / "faces";
  CopyFaces(faces, {"happy", "fear"}, 5);
  std::ofstream(faces / "happy" / "bomb.png", std::ios::binary)
      << test::DeclaringPng(100000, 100000);
  fs::create_directory_symlink("..", faces / "fear" / "loop");
  const RunResult pack = FerModel({"pack", "--data=" + faces.string(), "--out=" + Path("f.pack")});
  ASSERT_EQ(pack.exit_code, 0) << pack.err;
  EXPECT_THAT(pack.out, HasSubstr("skipped images over the pixel limit: 1"));
  EXPECT_THAT(pack.out, HasSubstr("bomb.png: 100000 x 100000"));
  EXPECT_THAT(pack.out, HasSubstr("already read through another path (symbolic links): 1"));
  EXPECT_THAT(pack.out, HasSubstr(": 10 faces of 48x48 gray"));

  // A limit under the faces' 48 x 48 leaves none to pack: one line, exit 1.
  const RunResult tight = FerModel(
      {"pack", "--data=" + faces.string(), "--out=" + Path("g.pack"), "--max_image_pixels=1000"});
  EXPECT_EQ(tight.exit_code, 1);
  // The decoding progress line comes first, then the one error line.
  EXPECT_EQ(std::count_if(tight.err.begin(), tight.err.end(), [](char c) { return c == '\n'; }), 2)
      << tight.err;
  EXPECT_THAT(tight.err, HasSubstr("\nfer-model pack: no faces found"));
  EXPECT_THAT(tight.err, HasSubstr("over the pixel limit: 11"));
}

}  // namespace
}  // namespace fer
