// fer-client end to end: the real binary against a real fer-server serving an
// untrained 32 x 32 model (fast on CPU; its predictions are meaningless, so
// the tests check structure, order and counts, never which label wins).
//
// One server serves the whole suite: CMake runs this binary as one ctest test.
// Tests that need FER2013 faces skip with a message when the data is absent.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tests/client/json_test_util.h"
#include "tests/server/test_images.h"
#include "tests/support/files.h"
#include "tests/support/free_port.h"
#include "tests/support/loopback_client.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

#ifdef FER_TEST_REFLECTION
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/descriptor_database.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#endif

namespace fer::client {
namespace {

namespace fs = std::filesystem;
using test::Lines;
using test_support::RunResult;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr int kNumLabels = 7;
constexpr std::chrono::seconds kServerStartTimeout(120);
constexpr std::chrono::seconds kServerStopTimeout(20);
// Frames of the test videos, and their rate.
constexpr int kVideoFrames = 24;
constexpr double kVideoFps = 12.0;

using test_support::FreePort;

// GET http://127.0.0.1:port/path; the body, or "" on any failure.
std::string HttpGet(int port, const std::string& path) {
  return test_support::HttpBody(
      test_support::HttpExchange(port, "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"));
}

// The value of the Prometheus sample whose line has every one of `parts`
// (name and label pairs); 0 when there is none.
double MetricValue(const std::string& exposition, const std::vector<std::string>& parts) {
  for (const std::string& line : Lines(exposition)) {
    if (line[0] == '#') continue;
    if (!std::all_of(parts.begin(), parts.end(),
                     [&](const std::string& p) { return line.find(p) != std::string::npos; })) {
      continue;
    }
    double value = 0;
    if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &value)) return value;
  }
  return 0;
}

std::vector<std::string> SplitCsv(const std::string& row) {
  return absl::StrSplit(row, ',');  // the test's paths hold no commas
}

// Checks a row's probabilities: kNumLabels numbers from `first`, summing to 1.
void ExpectProbabilities(const std::vector<std::string>& fields, size_t first) {
  ASSERT_GE(fields.size(), first + kNumLabels);
  double sum = 0;
  for (size_t i = first; i < first + kNumLabels; ++i) {
    double p = -1;
    ASSERT_TRUE(absl::SimpleAtod(fields[i], &p)) << fields[i];
    EXPECT_GE(p, 0.0);
    EXPECT_LE(p, 1.0);
    sum += p;
  }
  EXPECT_NEAR(sum, 1.0, 2e-3);  // four decimals each
}

class ClientE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_dir_ = std::make_unique<test_support::TempDir>("fer_client_e2e_");
    scratch_ = scratch_dir_->path();
    port_ = FreePort();
    metrics_port_ = FreePort();
    target_ = "127.0.0.1:" + std::to_string(port_);
    server_log_ = scratch_ + "/server.log";
    server_pid_ = test_support::Spawn(
        {FER_SERVER_BINARY, std::string("--model=") + FER_CLIENT_TEST_MODEL, "--address=" + target_,
         "--metrics_address=127.0.0.1:" + std::to_string(metrics_port_),
         "--http_address=127.0.0.1:0", "--device=cpu", "--threads=1", "--drain_timeout=2s"},
        scratch_ + "/server.out", server_log_);
    ASSERT_GT(server_pid_, 0) << "cannot start " << FER_SERVER_BINARY;
    // Ready when `fer-client health` says SERVING: the very check under test
    // in HealthExitsZeroWhileServing, used here only to wait.
    const auto end = std::chrono::steady_clock::now() + kServerStartTimeout;
    while (std::chrono::steady_clock::now() < end) {
      if (waitpid(server_pid_, nullptr, WNOHANG) == server_pid_) {
        server_pid_ = -1;
        FAIL() << "fer-server exited during start-up:\n" << test_support::ReadFile(server_log_);
      }
      if (Client({"health"}).exit_code == 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    FAIL() << "fer-server not SERVING after " << kServerStartTimeout.count() << " s:\n"
           << test_support::ReadFile(server_log_);
  }

  static void TearDownTestSuite() {
    if (server_pid_ > 0) {
      kill(server_pid_, SIGTERM);
      test_support::WaitFor(server_pid_, kServerStopTimeout);
    }
    scratch_dir_.reset();
  }

  void SetUp() override {
    if (server_pid_ <= 0) GTEST_SKIP() << "no fer-server (see the suite's set-up failure)";
  }

  // fer-client with args, against the suite's server unless args name a --target.
  static RunResult Client(std::vector<std::string> args) {
    args.insert(args.begin(), FER_CLIENT_BINARY);
    const bool has_target = std::any_of(args.begin(), args.end(), [](const std::string& a) {
      return a.rfind("--target=", 0) == 0;
    });
    if (!has_target) args.push_back("--target=" + target_);
    return test_support::Run(args, scratch_);
  }

  // A fresh folder under the suite's scratch folder.
  static std::string TempDir(const std::string& name) {
    const std::string dir = scratch_ + "/" + name;
    fs::create_directories(dir);
    return dir;
  }

  // FER2013 training faces, per_class of each of the seven classes.
  static std::vector<std::string> Faces(size_t per_class) {
    return test_images::FacePaths(per_class);
  }

  // Writes frames cycling through real faces, each face_side pixels square, on
  // a canvas of canvas_side; returns false when OpenCV cannot write.
  static bool WriteFaceVideo(const std::string& path, int frames, int face_side, int canvas_side) {
    const std::vector<std::string> faces = Faces(1);
    if (faces.empty()) return false;
    cv::VideoWriter writer(path, cv::VideoWriter::fourcc('m', 'p', '4', 'v'), kVideoFps,
                           cv::Size(canvas_side, canvas_side));
    if (!writer.isOpened()) return false;
    for (int i = 0; i < frames; ++i) {
      const cv::Mat grey =
          cv::imread(faces[static_cast<size_t>(i) % faces.size()], cv::IMREAD_GRAYSCALE);
      cv::Mat face;
      cv::resize(grey, face, cv::Size(face_side, face_side), 0, 0, cv::INTER_CUBIC);
      cv::cvtColor(face, face, cv::COLOR_GRAY2BGR);
      cv::Mat canvas(canvas_side, canvas_side, CV_8UC3, cv::Scalar(90, 90, 90));
      const int offset = (canvas_side - face_side) / 2;
      face.copyTo(canvas(cv::Rect(offset, offset, face_side, face_side)));
      writer.write(canvas);
    }
    return true;
  }

  static std::unique_ptr<test_support::TempDir> scratch_dir_;
  static std::string scratch_;
  static std::string target_;
  static std::string server_log_;
  static int port_;
  static int metrics_port_;
  static pid_t server_pid_;
};

std::unique_ptr<test_support::TempDir> ClientE2eTest::scratch_dir_;
std::string ClientE2eTest::scratch_;
std::string ClientE2eTest::target_;
std::string ClientE2eTest::server_log_;
int ClientE2eTest::port_ = 0;
int ClientE2eTest::metrics_port_ = 0;
pid_t ClientE2eTest::server_pid_ = -1;

#define SKIP_WITHOUT_FACES(faces) \
  if ((faces).empty()) GTEST_SKIP() << test_images::SkipMessage()

// ---- health, info, and errors

TEST_F(ClientE2eTest, HealthExitsZeroWhileServing) {
  const RunResult whole = Client({"health"});
  EXPECT_EQ(whole.exit_code, 0) << whole.err;
  EXPECT_EQ(whole.out, "status: SERVING\n");
  const RunResult service =
      Client({"health", "--service=fer.v1.ExpressionClassifier", "--deadline_ms=3000"});
  EXPECT_EQ(service.exit_code, 0) << service.err;
}

TEST_F(ClientE2eTest, HealthOfAnUnknownServiceFails) {
  const RunResult result = Client({"health", "--service=no.such.Service"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.err, "fer-client health: unknown service no.such.Service\n");
}

TEST_F(ClientE2eTest, HealthFailsWithOneLineWhenNoServerListens) {
  const std::string nowhere = "127.0.0.1:" + std::to_string(FreePort());
  const RunResult result = Client({"health", "--target=" + nowhere, "--deadline_ms=2000"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_THAT(result.err, StartsWith("fer-client health: cannot reach " + nowhere + ": "));
  EXPECT_EQ(Lines(result.err).size(), 1u) << result.err;
  EXPECT_EQ(result.out, "");
}

TEST_F(ClientE2eTest, ClassifyNamesAnUnreachableServerInOneLine) {
  const std::vector<std::string> faces = Faces(1);
  SKIP_WITHOUT_FACES(faces);
  const std::string nowhere = "127.0.0.1:" + std::to_string(FreePort());
  const RunResult result = Client({"classify", faces[0], "--target=" + nowhere});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, StartsWith("fer-client classify: cannot reach " + nowhere + ": "));
  EXPECT_EQ(Lines(result.err).size(), 1u) << result.err;
}

TEST_F(ClientE2eTest, MissingFilesAreOneClearLineBeforeAnyCall) {
  const std::string missing = scratch_ + "/no/such/face.jpg";
  const RunResult classify = Client({"classify", missing});
  EXPECT_EQ(classify.exit_code, 1);
  EXPECT_EQ(classify.err, "fer-client classify: " + missing + ": no such file or directory\n");
  const RunResult stream = Client({"stream", scratch_ + "/no/such/video.mp4", "--no_detect"});
  EXPECT_EQ(stream.exit_code, 1);
  EXPECT_EQ(stream.err,
            "fer-client stream: " + scratch_ + "/no/such/video.mp4: cannot open file\n");
  const RunResult cascade = Client({"stream", "--camera=0", "--cascade=" + missing});
  EXPECT_EQ(cascade.exit_code, 1);
  EXPECT_EQ(cascade.err, "fer-client stream: --cascade: " + missing + ": no such file\n");
}

TEST_F(ClientE2eTest, InfoShowsLabelsInputAndLimits) {
  const RunResult human = Client({"info"});
  ASSERT_EQ(human.exit_code, 0) << human.err;
  EXPECT_THAT(human.out, HasSubstr("neutral, anger, disgust, fear, happiness, sadness, surprise"));
  EXPECT_THAT(human.out, HasSubstr("32x32 gray3"));
  const RunResult json = Client({"info", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  google::protobuf::Struct info;
  std::string error;
  ASSERT_TRUE(test::ParseJsonObject(json.out, &info, &error)) << error << json.out;
  EXPECT_EQ(test::Number(info, "input_size"), 32);
  EXPECT_EQ(info.fields().at("labels").list_value().values_size(), kNumLabels);
  EXPECT_GT(test::Number(info, "max_faces_per_request"), 0);
}

// ---- classify

TEST_F(ClientE2eTest, ClassifyPrintsOneCsvRowPerFaceInBatchedRequests) {
  const std::vector<std::string> faces = Faces(2);  // 14 faces
  SKIP_WITHOUT_FACES(faces);
  const std::string metrics_before = HttpGet(metrics_port_, "/metrics");
  std::vector<std::string> args = {"classify", "--csv", "--batch=4"};
  args.insert(args.end(), faces.begin(), faces.end());
  const RunResult result = Client(args);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const std::vector<std::string> rows = Lines(result.out);
  ASSERT_EQ(rows.size(), faces.size() + 1) << result.out;
  EXPECT_EQ(rows[0], "file,label,confidence,neutral,anger,disgust,fear,happiness,sadness,surprise");
  for (size_t i = 0; i < faces.size(); ++i) {
    const std::vector<std::string> fields = SplitCsv(rows[i + 1]);
    ASSERT_EQ(fields.size(), 3u + kNumLabels) << rows[i + 1];
    EXPECT_EQ(fields[0], faces[i]);  // in the order given
    ExpectProbabilities(fields, 3);
  }
  // 14 faces at 4 per request: 4 Classify calls, not 14.
  const std::string metrics_after = HttpGet(metrics_port_, "/metrics");
  const std::vector<std::string> ok_classify = {"fer_requests_total{", "rpc=\"Classify\"",
                                                "code=\"OK\""};
  if (metrics_after.empty()) {
    GTEST_SKIP() << "no /metrics on port " << metrics_port_ << ": request count not checked";
  }
  EXPECT_EQ(MetricValue(metrics_after, ok_classify) - MetricValue(metrics_before, ok_classify), 4);
}

TEST_F(ClientE2eTest, ClassifyWalksAFolderRecursivelyAndPrintsJsonLines) {
  const std::vector<std::string> faces = Faces(1);
  SKIP_WITHOUT_FACES(faces);
  const std::string dir = TempDir("folder");
  fs::create_directories(dir + "/nested/deeper");
  fs::copy_file(faces[0], dir + "/a.jpg", fs::copy_options::overwrite_existing);
  fs::copy_file(faces[1], dir + "/nested/b.jpg", fs::copy_options::overwrite_existing);
  cv::imwrite(dir + "/nested/deeper/c.png", cv::imread(faces[2]));
  std::ofstream(dir + "/nested/readme.txt") << "not an image";
  const RunResult result = Client({"classify", "--json", dir});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const std::vector<std::string> lines = Lines(result.out);
  ASSERT_EQ(lines.size(), 3u) << result.out;
  const std::vector<std::string> expected = {dir + "/a.jpg", dir + "/nested/b.jpg",
                                             dir + "/nested/deeper/c.png"};
  for (size_t i = 0; i < lines.size(); ++i) {
    google::protobuf::Struct object;
    std::string error;
    ASSERT_TRUE(test::ParseJsonObject(lines[i], &object, &error)) << error << lines[i];
    EXPECT_EQ(test::String(object, "file"), expected[i]);
    const auto& probabilities = object.fields().at("probabilities").struct_value().fields();
    EXPECT_EQ(probabilities.size(), static_cast<size_t>(kNumLabels));
    EXPECT_NEAR(probabilities.at(test::String(object, "label")).number_value(),
                test::Number(object, "confidence"), 1e-4);
  }
}

TEST_F(ClientE2eTest, ClassifyNamesABadFileAndStillClassifiesTheRest) {
  const std::vector<std::string> faces = Faces(1);
  SKIP_WITHOUT_FACES(faces);
  const std::string bad = TempDir("bad") + "/broken.jpg";
  std::ofstream(bad) << "this is not a JPEG";
  const RunResult result = Client({"classify", faces[0], bad, faces[1]});
  EXPECT_EQ(result.exit_code, 1);
  const std::vector<std::string> lines = Lines(result.out);
  ASSERT_EQ(lines.size(), 2u) << result.out;
  EXPECT_THAT(lines[0], StartsWith(faces[0] + "  "));
  EXPECT_THAT(lines[1], StartsWith(faces[1] + "  "));
  EXPECT_THAT(result.err, HasSubstr("fer-client classify: " + bad + ": face 0: "));
  EXPECT_THAT(result.err, HasSubstr("1 of 3 files could not be classified"));
}

TEST_F(ClientE2eTest, ClassifyWithTenCrop) {
  const std::vector<std::string> faces = Faces(1);
  SKIP_WITHOUT_FACES(faces);
  const RunResult result = Client({"classify", "--ten_crop", "--csv", faces[0], faces[1]});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const std::vector<std::string> rows = Lines(result.out);
  ASSERT_EQ(rows.size(), 3u);
  ExpectProbabilities(SplitCsv(rows[1]), 3);
}

// stdout and stderr into one file show what was written when: each progress
// line (one per tenth of the files, the run being more than one call) comes
// after exactly the result lines of the files it counts, so results are
// printed as each call is answered, not at the end, and the lines are the
// usual ones.
TEST_F(ClientE2eTest, ClassifyOfAFolderPrintsResultsAsEachCallIsAnswered) {
  const std::vector<std::string> faces = Faces(2);  // 14 faces
  SKIP_WITHOUT_FACES(faces);
  const std::string dir = TempDir("streamed");
  std::vector<std::string> expected_files;
  for (size_t i = 0; i < faces.size(); ++i) {
    expected_files.push_back(dir + "/face" + std::to_string(10 + i) + ".jpg");  // sorted as listed
    fs::copy_file(faces[i], expected_files.back(), fs::copy_options::overwrite_existing);
  }
  const std::string merged = scratch_ + "/streamed.out";
  const pid_t pid = test_support::Spawn(
      {FER_CLIENT_BINARY, "classify", "--csv", "--batch=2", "--target=" + target_, dir}, merged,
      merged);
  ASSERT_GT(pid, 0);
  ASSERT_EQ(test_support::WaitFor(pid, std::chrono::seconds(300)), 0)
      << test_support::ReadFile(merged);

  const std::vector<std::string> lines = Lines(test_support::ReadFile(merged));
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines[0],
            "file,label,confidence,neutral,anger,disgust,fear,happiness,sadness,surprise");
  size_t results = 0;
  std::vector<size_t> counted;  // the done count of each progress line
  for (size_t i = 1; i < lines.size(); ++i) {
    if (lines[i].rfind("classify [", 0) == 0) {
      const size_t slash = lines[i].find("/" + std::to_string(faces.size()) + " ");
      ASSERT_NE(slash, std::string::npos) << lines[i];
      const size_t start = lines[i].rfind(' ', slash) + 1;
      counted.push_back(std::stoul(lines[i].substr(start, slash - start)));
      EXPECT_EQ(counted.back(), results)
          << "progress line after " << results << " results: " << lines[i];
      continue;
    }
    const std::vector<std::string> fields = SplitCsv(lines[i]);
    ASSERT_EQ(fields.size(), 3u + kNumLabels) << lines[i];
    ASSERT_LT(results, expected_files.size());
    EXPECT_EQ(fields[0], expected_files[results]);
    ExpectProbabilities(fields, 3);
    ++results;
  }
  EXPECT_EQ(results, faces.size());
  // 7 calls of 2: a line at each tenth crossed (2, 4, 6, 8, 10, 12) and the total.
  EXPECT_EQ(counted, (std::vector<size_t>{2, 4, 6, 8, 10, 12, 14}));
}

// ---- stream

TEST_F(ClientE2eTest, StreamAnswersEveryFrameInOrder) {
  const std::string video = TempDir("stream") + "/faces.mp4";
  if (!WriteFaceVideo(video, kVideoFrames, 64, 64)) GTEST_SKIP() << test_images::SkipMessage();
  const RunResult csv = Client({"stream", video, "--no_detect", "--window=3", "--csv"});
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  const std::vector<std::string> rows = Lines(csv.out);
  ASSERT_EQ(rows.size(), kVideoFrames + 1u) << csv.out;
  EXPECT_THAT(rows[0], StartsWith("frame,timestamp_ms,face,track,x,y,width,height,label,"));
  double last_timestamp = -1;
  for (int i = 0; i < kVideoFrames; ++i) {
    const std::vector<std::string> fields = SplitCsv(rows[static_cast<size_t>(i) + 1]);
    ASSERT_EQ(fields.size(), 10u + kNumLabels);
    EXPECT_EQ(fields[0], std::to_string(i));  // every frame, in order
    double timestamp = 0;
    ASSERT_TRUE(absl::SimpleAtod(fields[1], &timestamp));
    EXPECT_GE(timestamp, last_timestamp);
    last_timestamp = timestamp;
    EXPECT_EQ(fields[2], "0");  // face index
    EXPECT_EQ(fields[4] + "," + fields[5] + "," + fields[6] + "," + fields[7], "0,0,64,64");
    ExpectProbabilities(fields, 10);
  }
  EXPECT_NEAR(last_timestamp, (kVideoFrames - 1) * 1000.0 / kVideoFps, 1.0);
  // Progress on stderr: frames done of the total.
  EXPECT_THAT(csv.err,
              HasSubstr(std::to_string(kVideoFrames) + "/" + std::to_string(kVideoFrames)));

  const RunResult json = Client({"stream", video, "--no_detect", "--json", "--window=1",
                                 "--progress=false", "--max_frames=10"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_EQ(json.err, "");
  const std::vector<std::string> lines = Lines(json.out);
  ASSERT_EQ(lines.size(), 10u);
  for (size_t i = 0; i < lines.size(); ++i) {
    google::protobuf::Struct frame;
    std::string error;
    ASSERT_TRUE(test::ParseJsonObject(lines[i], &frame, &error)) << error << lines[i];
    EXPECT_EQ(test::Number(frame, "frame"), static_cast<double>(i));
    EXPECT_EQ(frame.fields().at("faces").list_value().values_size(), 1);
  }
}

TEST_F(ClientE2eTest, StreamAnnotateWritesEveryFrame) {
  const std::string dir = TempDir("annotate");
  const std::string video = dir + "/faces.mp4";
  if (!WriteFaceVideo(video, kVideoFrames, 96, 160)) GTEST_SKIP() << test_images::SkipMessage();
  const std::string annotated = dir + "/annotated.mp4";
  const RunResult result = Client({"stream", video, "--no_detect", "--annotate=" + annotated,
                                   "--smooth=0.5", "--progress=false"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  // Smoothing keeps the raw scores beside the smoothed ones.
  EXPECT_THAT(Lines(result.out)[0], HasSubstr(",raw_label,raw_confidence,raw_neutral,"));
  cv::VideoCapture capture(annotated);
  ASSERT_TRUE(capture.isOpened()) << annotated;
  int frames = 0;
  bool drawn = false;
  for (cv::Mat frame; capture.read(frame); ++frames) {
    EXPECT_EQ(frame.size(), cv::Size(160, 160));
    // The whole frame is the face box: its border is drawn in a label colour,
    // not the grey canvas.
    const cv::Vec3b corner = frame.at<cv::Vec3b>(1, 80);
    drawn = drawn || std::abs(corner[0] - corner[2]) > 30 || std::abs(corner[1] - corner[2]) > 30 ||
            corner[0] > 150;
  }
  EXPECT_EQ(frames, kVideoFrames);
  EXPECT_TRUE(drawn) << "no box drawn along the frame border";
}

TEST_F(ClientE2eTest, StreamFindsFacesWithTheDefaultHaarCascade) {
  const std::string video = TempDir("detect") + "/faces.mp4";
  if (!WriteFaceVideo(video, kVideoFrames, 160, 320)) GTEST_SKIP() << test_images::SkipMessage();
  const RunResult result = Client({"stream", video, "--json", "--smooth=0.3", "--progress=false"});
  if (result.exit_code != 0 && result.err.find("no face detector") != std::string::npos) {
    GTEST_SKIP() << result.err;  // opencv-data not installed
  }
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const std::vector<std::string> lines = Lines(result.out);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kVideoFrames));
  int with_faces = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    google::protobuf::Struct frame;
    std::string error;
    ASSERT_TRUE(test::ParseJsonObject(lines[i], &frame, &error)) << error << lines[i];
    EXPECT_EQ(test::Number(frame, "frame"), static_cast<double>(i));
    const auto& faces = frame.fields().at("faces").list_value();
    if (faces.values_size() > 0) {
      ++with_faces;
      const auto& face = faces.values(0).struct_value();
      EXPECT_TRUE(face.fields().count("raw")) << lines[i];
      const auto& box = face.fields().at("box").list_value();
      // Inside the frame, around the face in its middle.
      EXPECT_GE(box.values(0).number_value(), 0);
      EXPECT_LE(box.values(0).number_value() + box.values(2).number_value(), 320);
      EXPECT_GT(box.values(2).number_value(), 40);
    }
  }
  EXPECT_GT(with_faces, 0) << "Haar found no face in any frame:\n" << result.out;
}

// ---- bench

TEST_F(ClientE2eTest, BenchReportsThroughputLatencyAndCodesAsJson) {
  const std::vector<std::string> faces = Faces(1);
  SKIP_WITHOUT_FACES(faces);
  const std::string images = TempDir("bench_images");
  for (size_t i = 0; i < faces.size(); ++i) {
    fs::copy_file(faces[i], images + "/" + std::to_string(i) + ".jpg",
                  fs::copy_options::overwrite_existing);
  }
  struct Case {
    std::vector<std::string> flags;
    double expected_calls;  // 0: whatever the duration allows
  };
  const std::vector<Case> cases = {
      {{"--mode=unary", "--concurrency=4", "--requests=24", "--faces_per_request=2"}, 24},
      {{"--mode=stream", "--concurrency=3", "--requests=18"}, 18},
      {{"--mode=unary", "--rate=40", "--duration=1s"}, 0},
      {{"--mode=stream", "--rate=40", "--duration=1s", "--concurrency=2"}, 0},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"bench", "--json", "--images=" + images};
    args.insert(args.end(), c.flags.begin(), c.flags.end());
    const RunResult result = Client(args);
    const std::string what = absl::StrJoin(c.flags, " ");
    ASSERT_EQ(result.exit_code, 0) << what << "\n" << result.err;
    google::protobuf::Struct report;
    std::string error;
    ASSERT_TRUE(test::ParseJsonObject(result.out, &report, &error)) << error << result.out;
    for (const char* key :
         {"faces_per_s", "requests_per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms"}) {
      EXPECT_GT(test::Number(report, key), 0) << what << ": " << key << "\n" << result.out;
    }
    EXPECT_LE(test::Number(report, "p50_ms"), test::Number(report, "p90_ms"));
    EXPECT_LE(test::Number(report, "p90_ms"), test::Number(report, "p99_ms"));
    EXPECT_LE(test::Number(report, "p99_ms"), test::Number(report, "max_ms"));
    const auto& codes = report.fields().at("codes").struct_value().fields();
    double calls = test::Number(report, "unfinished");  // cut off at the end: under no code
    for (const auto& [code, count] : codes) calls += count.number_value();
    EXPECT_EQ(calls, test::Number(report, "requests")) << what;
    if (c.expected_calls > 0) {
      EXPECT_EQ(calls, c.expected_calls) << what << "\n" << result.out;
    } else {
      // 40/s for 1 s; a pacer woken late on a busy machine may start a few less.
      EXPECT_GE(calls, 30) << what << "\n" << result.out;
      EXPECT_LE(calls, 41) << what << "\n" << result.out;
    }
    EXPECT_GT(codes.at("OK").number_value(), 0) << what;
  }
}

TEST_F(ClientE2eTest, BenchHoldsFiveHundredTwelveCallsInFlight) {
  const RunResult result =
      Client({"bench", "--json", "--concurrency=512", "--requests=1024", "--deadline_ms=120000"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  google::protobuf::Struct report;
  std::string error;
  ASSERT_TRUE(test::ParseJsonObject(result.out, &report, &error)) << error << result.out;
  EXPECT_EQ(test::Number(report, "requests"), 1024);
  EXPECT_EQ(test::Number(report, "concurrency"), 512);
}

// A second fer-server of its own, for the tests that kill or stop it.
class OwnServer {
 public:
  OwnServer(const std::string& scratch)
      : port_(FreePort()),
        metrics_port_(FreePort()),
        target_("127.0.0.1:" + std::to_string(port_)) {
    pid_ = test_support::Spawn(
        {FER_SERVER_BINARY, std::string("--model=") + FER_CLIENT_TEST_MODEL, "--address=" + target_,
         "--metrics_address=127.0.0.1:" + std::to_string(metrics_port_),
         "--http_address=127.0.0.1:0", "--device=cpu", "--threads=1", "--drain_timeout=1s"},
        scratch + "/own_server.out", scratch + "/own_server.log");
  }
  ~OwnServer() {
    if (pid_ <= 0) return;
    kill(pid_, SIGCONT);
    kill(pid_, SIGKILL);
    test_support::WaitFor(pid_, kServerStopTimeout);
  }

  // Waits until SERVING; false if it never is.
  bool WaitServing(const std::string& scratch) const {
    const auto end = std::chrono::steady_clock::now() + kServerStartTimeout;
    while (pid_ > 0 && std::chrono::steady_clock::now() < end) {
      if (test_support::Run({FER_CLIENT_BINARY, "health", "--target=" + target_}, scratch)
              .exit_code == 0)
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    return false;
  }

  // Waits until the server has answered a Classify call: the bench is running.
  bool WaitForClassifyCalls() const {
    const auto end = std::chrono::steady_clock::now() + kServerStartTimeout;
    while (std::chrono::steady_clock::now() < end) {
      const std::string metrics = HttpGet(metrics_port_, "/metrics");
      if (MetricValue(metrics, {"fer_requests_total{", "rpc=\"Classify\"", "code=\"OK\""}) > 0)
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  void Signal(int signal) const { kill(pid_, signal); }
  const std::string& target() const { return target_; }

 private:
  int port_;
  int metrics_port_;
  std::string target_;
  pid_t pid_ = -1;
};

// Starts `fer-client bench` with args against target; returns its pid.
pid_t SpawnBench(std::vector<std::string> args, const std::string& target, const std::string& out,
                 const std::string& err) {
  args.insert(args.begin(), {FER_CLIENT_BINARY, "bench", "--json", "--target=" + target});
  return test_support::Spawn(args, out, err);
}

// The server dies mid-run: without backoff, 8 workers made about 540,000
// calls in the 7 s that followed; with it, a few per second per worker.
TEST_F(ClientE2eTest, BenchBacksOffAServerThatDiesAndReportsTheFailures) {
  OwnServer server(scratch_);
  ASSERT_TRUE(server.WaitServing(scratch_));
  const std::string out = scratch_ + "/bench_dies.out";
  const std::string err = scratch_ + "/bench_dies.err";
  const pid_t bench = SpawnBench({"--concurrency=8", "--duration=6s", "--deadline_ms=5000"},
                                 server.target(), out, err);
  ASSERT_GT(bench, 0);
  ASSERT_TRUE(server.WaitForClassifyCalls());
  server.Signal(SIGKILL);
  EXPECT_EQ(test_support::WaitFor(bench, std::chrono::seconds(60)), 0)
      << test_support::ReadFile(err);
  google::protobuf::Struct report;
  std::string error;
  ASSERT_TRUE(test::ParseJsonObject(test_support::ReadFile(out), &report, &error)) << error;
  const auto& codes = report.fields().at("codes").struct_value().fields();
  ASSERT_GT(codes.count("UNAVAILABLE"), 0u) << test_support::ReadFile(out);
  EXPECT_LT(codes.at("UNAVAILABLE").number_value(), 8 * 6 * 4) << test_support::ReadFile(out);
  EXPECT_GT(test::Number(report, "backoffs"), 0);
}

// The server hangs mid-run (SIGSTOP, connections open): the run still ends
// about 2 s after --duration, not after the 30 s default --deadline_ms, and
// the calls the server took with it are reported as unfinished.
TEST_F(ClientE2eTest, BenchEndsSoonAfterItsDurationWhenTheServerHangs) {
  OwnServer server(scratch_);
  ASSERT_TRUE(server.WaitServing(scratch_));
  const std::string out = scratch_ + "/bench_hangs.out";
  const std::string err = scratch_ + "/bench_hangs.err";
  const auto start = std::chrono::steady_clock::now();
  const pid_t bench = SpawnBench({"--concurrency=4", "--duration=4s"}, server.target(), out, err);
  ASSERT_GT(bench, 0);
  ASSERT_TRUE(server.WaitForClassifyCalls());
  server.Signal(SIGSTOP);
  EXPECT_EQ(test_support::WaitFor(bench, std::chrono::seconds(60)), 0)
      << test_support::ReadFile(err);
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took.count(), 25.0);
  google::protobuf::Struct report;
  std::string error;
  ASSERT_TRUE(test::ParseJsonObject(test_support::ReadFile(out), &report, &error)) << error;
  EXPECT_EQ(test::Number(report, "unfinished"), 4) << test_support::ReadFile(out);
}

// ---- server reflection: what grpcurl sees (docs/client.md, "grpcurl")
//
// grpcurl itself is not a Debian package; these do what its list, describe
// and JSON calls do: ask the reflection service (v1alpha, the version this
// gRPC serves), build a descriptor pool from the files it answers, and call
// methods with messages made from JSON through that pool alone. The test links
// neither fer.v1's nor grpc.health.v1's generated code, so everything it knows
// of them came from the server.
#ifdef FER_TEST_REFLECTION

namespace reflection = grpc::reflection::v1alpha;

// One request on a ServerReflectionInfo stream; its answer, or a failure.
::testing::AssertionResult Reflect(const std::string& target,
                                   const reflection::ServerReflectionRequest& request,
                                   reflection::ServerReflectionResponse* response) {
  auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  auto stub = reflection::ServerReflection::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto stream = stub->ServerReflectionInfo(&context);
  const bool exchanged = stream->Write(request) && stream->Read(response);
  stream->WritesDone();
  const grpc::Status status = stream->Finish();
  if (!exchanged || !status.ok()) {
    return ::testing::AssertionFailure() << "reflection call failed: " << status.error_message();
  }
  if (response->has_error_response()) {
    return ::testing::AssertionFailure()
           << "reflection error " << response->error_response().error_code() << ": "
           << response->error_response().error_message();
  }
  return ::testing::AssertionSuccess();
}

// Adds the files answered for file_containing_symbol=symbol to database.
::testing::AssertionResult AddFileOfSymbol(const std::string& target, const std::string& symbol,
                                           google::protobuf::SimpleDescriptorDatabase* database) {
  reflection::ServerReflectionRequest request;
  request.set_file_containing_symbol(symbol);
  reflection::ServerReflectionResponse response;
  if (::testing::AssertionResult ok = Reflect(target, request, &response); !ok) return ok;
  if (response.file_descriptor_response().file_descriptor_proto_size() == 0) {
    return ::testing::AssertionFailure() << "no file for " << symbol;
  }
  for (const std::string& bytes : response.file_descriptor_response().file_descriptor_proto()) {
    google::protobuf::FileDescriptorProto file;
    if (!file.ParseFromString(bytes)) return ::testing::AssertionFailure() << "unparsable file";
    google::protobuf::FileDescriptorProto known;
    if (!database->FindFileByName(file.name(), &known)) database->Add(file);
  }
  return ::testing::AssertionSuccess();
}

// A unary call by name with a JSON request, answered as JSON, using only the
// descriptors in pool: what `grpcurl -d JSON TARGET SERVICE/METHOD` does.
grpc::Status CallWithJson(const std::string& target, const google::protobuf::DescriptorPool& pool,
                          const std::string& full_method, const std::string& json_request,
                          std::string* json_response) {
  const size_t slash = full_method.find('/');
  const google::protobuf::ServiceDescriptor* service =
      pool.FindServiceByName(full_method.substr(0, slash));
  const google::protobuf::MethodDescriptor* method =
      service == nullptr ? nullptr : service->FindMethodByName(full_method.substr(slash + 1));
  if (method == nullptr) return grpc::Status(grpc::StatusCode::NOT_FOUND, full_method);
  google::protobuf::DynamicMessageFactory factory(&pool);
  std::unique_ptr<google::protobuf::Message> request(
      factory.GetPrototype(method->input_type())->New());
  std::unique_ptr<google::protobuf::Message> response(
      factory.GetPrototype(method->output_type())->New());
  if (!google::protobuf::util::JsonStringToMessage(json_request, request.get()).ok()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad JSON request");
  }
  const std::string bytes = request->SerializeAsString();
  grpc::Slice slice(bytes);
  const grpc::ByteBuffer request_buffer(&slice, 1);
  grpc::ByteBuffer response_buffer;
  grpc::GenericStub stub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, "/" + full_method, grpc::StubOptions(), &request_buffer,
                 &response_buffer, [&done](grpc::Status status) { done.set_value(status); });
  const grpc::Status status = done.get_future().get();
  if (!status.ok()) return status;
  std::vector<grpc::Slice> slices;
  if (!response_buffer.Dump(&slices).ok()) return grpc::Status(grpc::StatusCode::INTERNAL, "dump");
  std::string answer;
  for (const grpc::Slice& s : slices)
    answer.append(reinterpret_cast<const char*>(s.begin()), s.size());
  if (!response->ParseFromString(answer)) return grpc::Status(grpc::StatusCode::INTERNAL, "parse");
  google::protobuf::util::MessageToJsonString(*response, json_response);
  return grpc::Status::OK;
}

// grpcurl -plaintext TARGET list
TEST_F(ClientE2eTest, ReflectionListsTheClassifierAndHealthServices) {
  reflection::ServerReflectionRequest request;
  request.set_list_services("");
  reflection::ServerReflectionResponse response;
  ASSERT_TRUE(Reflect(target_, request, &response));
  std::vector<std::string> names;
  for (const auto& service : response.list_services_response().service()) {
    names.push_back(service.name());
  }
  EXPECT_THAT(names,
              ::testing::IsSupersetOf({"fer.v1.ExpressionClassifier", "grpc.health.v1.Health"}));
}

// grpcurl -plaintext TARGET describe SERVICE: both files resolve, completely
// enough to build a pool that knows every method and message type.
TEST_F(ClientE2eTest, ReflectionDescribesTheClassifierAndHealthServices) {
  google::protobuf::SimpleDescriptorDatabase database;
  ASSERT_TRUE(AddFileOfSymbol(target_, "fer.v1.ExpressionClassifier", &database));
  ASSERT_TRUE(AddFileOfSymbol(target_, "grpc.health.v1.Health", &database));
  ASSERT_TRUE(AddFileOfSymbol(target_, "grpc.health.v1.HealthCheckResponse", &database));
  const google::protobuf::DescriptorPool pool(&database);

  const google::protobuf::ServiceDescriptor* health =
      pool.FindServiceByName("grpc.health.v1.Health");
  ASSERT_NE(health, nullptr);
  EXPECT_EQ(health->file()->name(), "grpc/health/v1/health.proto");
  const google::protobuf::MethodDescriptor* check = health->FindMethodByName("Check");
  ASSERT_NE(check, nullptr);
  EXPECT_EQ(check->input_type()->full_name(), "grpc.health.v1.HealthCheckRequest");
  EXPECT_NE(check->output_type()->FindFieldByName("status"), nullptr);
  const google::protobuf::MethodDescriptor* watch = health->FindMethodByName("Watch");
  ASSERT_NE(watch, nullptr);
  EXPECT_TRUE(watch->server_streaming());

  const google::protobuf::ServiceDescriptor* classifier =
      pool.FindServiceByName("fer.v1.ExpressionClassifier");
  ASSERT_NE(classifier, nullptr);
  EXPECT_EQ(classifier->file()->name(), "fer/v1/expression.proto");
  for (const char* name : {"Classify", "ClassifyStream", "GetModelInfo"}) {
    EXPECT_NE(classifier->FindMethodByName(name), nullptr) << name;
  }
  const google::protobuf::Descriptor* image = pool.FindMessageTypeByName("fer.v1.Image");
  ASSERT_NE(image, nullptr);
  EXPECT_NE(image->FindFieldByName("encoded"), nullptr);

  // An unknown symbol is still refused, as NOT_FOUND.
  reflection::ServerReflectionRequest unknown;
  unknown.set_file_containing_symbol("no.such.Service");
  reflection::ServerReflectionResponse response;
  EXPECT_FALSE(Reflect(target_, unknown, &response));
  EXPECT_EQ(response.error_response().error_code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));
}

// grpcurl -plaintext -d '{"faces":[{"encoded":"<base64>"}]}' TARGET
//   fer.v1.ExpressionClassifier/Classify, and -d '{"service":""}' ... Health/Check.
TEST_F(ClientE2eTest, ReflectionAloneIsEnoughToCallClassifyAndHealthWithJson) {
  google::protobuf::SimpleDescriptorDatabase database;
  ASSERT_TRUE(AddFileOfSymbol(target_, "fer.v1.ExpressionClassifier", &database));
  ASSERT_TRUE(AddFileOfSymbol(target_, "grpc.health.v1.Health", &database));
  const google::protobuf::DescriptorPool pool(&database);

  std::string health;
  const grpc::Status checked =
      CallWithJson(target_, pool, "grpc.health.v1.Health/Check", R"({"service":""})", &health);
  ASSERT_TRUE(checked.ok()) << checked.error_message();
  EXPECT_EQ(health, R"({"status":"SERVING"})");

  cv::Mat face(48, 48, CV_8UC3);
  cv::randu(face, cv::Scalar::all(0), cv::Scalar::all(255));
  std::vector<uchar> png;
  ASSERT_TRUE(cv::imencode(".png", face, png));
  const std::string base64 = absl::Base64Escape(std::string(png.begin(), png.end()));
  std::string answer;
  const grpc::Status classified =
      CallWithJson(target_, pool, "fer.v1.ExpressionClassifier/Classify",
                   R"({"faces":[{"encoded":")" + base64 + R"("}]})", &answer);
  ASSERT_TRUE(classified.ok()) << classified.error_message();
  google::protobuf::Struct object;
  std::string error;
  ASSERT_TRUE(test::ParseJsonObject(answer, &object, &error)) << error << answer;
  const auto& predictions = object.fields().at("predictions").list_value().values();
  ASSERT_EQ(predictions.size(), 1) << answer;
  const auto& prediction = predictions[0].struct_value();
  EXPECT_EQ(prediction.fields().at("probabilities").list_value().values_size(), kNumLabels);
  EXPECT_FALSE(test::String(prediction, "topLabelName").empty()) << answer;
}

#endif  // FER_TEST_REFLECTION

// ---- the examples of docs/client.md

TEST_F(ClientE2eTest, CppExampleClassifiesFaces) {
  const std::vector<std::string> faces = Faces(1);
  SKIP_WITHOUT_FACES(faces);
  const RunResult result =
      test_support::Run({FER_CLASSIFY_EXAMPLE, target_, faces[0], faces[1]}, scratch_);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const std::vector<std::string> lines = Lines(result.out);
  ASSERT_EQ(lines.size(), 2u) << result.out;
  EXPECT_THAT(lines[0], StartsWith(faces[0] + " "));
  EXPECT_THAT(lines[1], StartsWith(faces[1] + " "));
}

TEST_F(ClientE2eTest, CppExampleWithAttentionPrintsEachMapsShape) {
  const std::vector<std::string> faces = Faces(1);
  SKIP_WITHOUT_FACES(faces);
  const RunResult result =
      test_support::Run({FER_CLASSIFY_EXAMPLE, "--attention", target_, faces[0]}, scratch_);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const std::vector<std::string> lines = Lines(result.out);
  ASSERT_EQ(lines.size(), 1u) << result.out;
  // The test model takes 32 x 32 faces: 2 x 2 maps.
  EXPECT_THAT(lines[0],
              AllOf(StartsWith(faces[0] + " "), HasSubstr(" attention 2x2 center_share ")));
}

TEST_F(ClientE2eTest, PythonExampleWithAttentionPrintsEachMapsShape) {
  const std::vector<std::string> faces = test_images::FacePaths(1);
  SKIP_WITHOUT_FACES(faces);
  const RunResult result =
      test_support::Run({"bash", std::string(FER_SOURCE_DIR) + "/tests/client/python_example.sh",
                         FER_SOURCE_DIR, target_, "--attention", faces[0], faces[1]},
                        scratch_, std::chrono::seconds(300));
  if (result.exit_code == 77) GTEST_SKIP() << result.out;
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  const std::vector<std::string> lines = Lines(result.out);
  ASSERT_EQ(lines.size(), 2u) << result.out;
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_THAT(lines[i],
                AllOf(StartsWith(faces[i] + "  "), HasSubstr("  attention=2x2 center_share=0.")));
  }
}

TEST_F(ClientE2eTest, ClassifyWithAttentionWritesAPngPerFace) {
  const std::vector<std::string> faces = Faces(1);
  SKIP_WITHOUT_FACES(faces);
  const std::string out = scratch_ + "/maps";
  const RunResult result = Client({"classify", "--attention=" + out, faces[0], faces[1]});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const std::vector<std::string> lines = Lines(result.out);
  ASSERT_EQ(lines.size(), 2u) << result.out;
  EXPECT_THAT(lines[0], HasSubstr("  center_share=0."));
  int pictures = 0;
  for (const auto& entry : std::filesystem::directory_iterator(out)) {
    EXPECT_EQ(entry.path().extension(), ".png");
    EXPECT_FALSE(cv::imread(entry.path().string()).empty()) << entry.path();
    ++pictures;
  }
  EXPECT_EQ(pictures, 2);
}

// python_example.sh with the stub generator `stubs` (FER_STUBS), on three faces.
void ExpectPythonExampleClassifies(const std::string& stubs, const std::string& scratch,
                                   const std::string& target) {
  const std::vector<std::string> faces = test_images::FacePaths(1);
  SKIP_WITHOUT_FACES(faces);
  const RunResult result =
      test_support::Run({"bash", std::string(FER_SOURCE_DIR) + "/tests/client/python_example.sh",
                         FER_SOURCE_DIR, target, faces[0], faces[1], faces[2]},
                        scratch, std::chrono::seconds(300), {"FER_STUBS=" + stubs});
  if (result.exit_code == 77) GTEST_SKIP() << result.out;
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  EXPECT_THAT(result.err, HasSubstr("stubs: " + stubs + ","));
  const std::vector<std::string> lines = Lines(result.out);
  ASSERT_EQ(lines.size(), 3u) << result.out;
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_THAT(lines[i],
                AllOf(StartsWith(faces[i] + "  "), HasSubstr("neutral="), HasSubstr("surprise=")));
  }
}

// Debian's protoc and grpc_python_plugin (protobuf-compiler-grpc).
TEST_F(ClientE2eTest, PythonExampleWithProtocStubsClassifiesFaces) {
  ExpectPythonExampleClassifies("protoc", scratch_, target_);
}

// python3 -m grpc_tools.protoc: Debian's python3-grpc-tools for /usr/bin/python3
// (or pip's grpcio-tools for the python3 on PATH).
TEST_F(ClientE2eTest, PythonExampleWithGrpcToolsStubsClassifiesFaces) {
  ExpectPythonExampleClassifies("grpc_tools", scratch_, target_);
}

}  // namespace
}  // namespace fer::client
