// fer-client against a scripted in-process server: the protocol cases a real
// fer-server produces only under load or failure, on demand. Batches are cut
// at the server's face limit, a full queue is retried, oversized files are
// refused before sending, and a stream's window, per-frame deadline, frame
// errors and order checks behave as documented.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/videoio.hpp>
#include <string>
#include <thread>
#include <vector>

#include "fer/v1/expression.grpc.pb.h"
#include "tests/client/json_test_util.h"
#include "tests/support/files.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace fer::client {
namespace {

namespace fs = std::filesystem;
using test::Lines;
using test_support::RunResult;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int kNumLabels = 7;
constexpr int kVideoFrames = 10;

fer::v1::Prediction FixedPrediction() {
  fer::v1::Prediction prediction;
  for (float p : {0.1f, 0.1f, 0.1f, 0.1f, 0.4f, 0.1f, 0.1f}) prediction.add_probabilities(p);
  prediction.set_top_label(4);
  prediction.set_top_label_name("happiness");
  prediction.set_confidence(0.4f);
  return prediction;
}

// FixedPrediction with a 2 x 2 attention map (the fake's 32 x 32 model), hot
// in its bottom-right cell.
fer::v1::Prediction FixedPredictionWithMap() {
  fer::v1::Prediction prediction = FixedPrediction();
  fer::v1::AttentionMap* map = prediction.mutable_attention();
  map->set_height(2);
  map->set_width(2);
  for (float v : {0.1f, 0.1f, 0.1f, 0.9f}) map->add_values(v);
  map->set_center_share(0.25f);
  return prediction;
}

// A scripted ExpressionClassifier.
class FakeClassifier final : public fer::v1::ExpressionClassifier::Service {
 public:
  enum class StreamMode { kAnswer, kStall, kOutOfOrder, kFailOddFrames };

  // Settings; set before the client runs.
  uint32_t max_faces_per_request = 64;
  uint64_t max_image_bytes = 1 << 20;
  int busy_calls = 0;        // the first N Classify calls are RESOURCE_EXHAUSTED
  bool unavailable = false;  // every Classify call is UNAVAILABLE (a draining server)
  bool has_maps = true;      // ModelInfo says the model has 2 x 2 attention maps
  int hang_after = -1;       // Classify calls after the first N wait until cancelled
  StreamMode stream_mode = StreamMode::kAnswer;
  std::chrono::milliseconds answer_delay{0};
  // Runs before a Classify call that will succeed is answered, with the
  // call's 0-based attempt number.
  std::function<void(int)> before_answer;

  // Observations.
  std::vector<int> faces_per_call() {
    std::lock_guard<std::mutex> lock(mu_);
    return faces_per_call_;
  }
  int classify_attempts() const { return attempts_.load(); }
  // Calls and frames that asked for attention maps.
  int asked_for_maps() const { return asked_for_maps_.load(); }
  size_t max_frames_in_flight() const { return max_in_flight_.load(); }

  grpc::Status GetModelInfo(grpc::ServerContext*, const fer::v1::GetModelInfoRequest*,
                            fer::v1::ModelInfo* info) override {
    for (const char* label :
         {"neutral", "anger", "disgust", "fear", "happiness", "sadness", "surprise"}) {
      info->add_labels(label);
    }
    info->set_input_size(32);
    info->set_max_faces_per_request(max_faces_per_request);
    info->set_max_image_bytes(max_image_bytes);
    info->set_attention_height(has_maps ? 2 : 0);
    info->set_attention_width(has_maps ? 2 : 0);
    return grpc::Status::OK;
  }

  grpc::Status Classify(grpc::ServerContext* context, const fer::v1::ClassifyRequest* request,
                        fer::v1::ClassifyResponse* response) override {
    const int attempt = attempts_.fetch_add(1);
    if (attempt < busy_calls) {
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "queue full");
    }
    if (unavailable) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining");
    if (hang_after >= 0 && attempt >= hang_after) {
      while (!context->IsCancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      return grpc::Status::CANCELLED;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      faces_per_call_.push_back(request->faces_size());
    }
    if (before_answer) before_answer(attempt);
    const bool maps = request->options().attention();
    if (maps) ++asked_for_maps_;
    for (int i = 0; i < request->faces_size(); ++i)
      *response->add_predictions() = maps ? FixedPredictionWithMap() : FixedPrediction();
    return grpc::Status::OK;
  }

  grpc::Status ClassifyStream(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<fer::v1::FrameResult, fer::v1::ClassifyFrame>* stream) override {
    if (stream_mode == StreamMode::kStall) {
      fer::v1::ClassifyFrame frame;
      while (stream->Read(&frame)) {
      }
      while (!context->IsCancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      return grpc::Status::CANCELLED;
    }
    // Reads ahead on its own thread, as the real server does, so that the
    // frames in flight are what the client allows, not what this loop reads.
    std::mutex mu;
    std::condition_variable ready;
    std::deque<fer::v1::ClassifyFrame> received;
    bool done = false;
    std::thread reader([&] {
      fer::v1::ClassifyFrame frame;
      while (stream->Read(&frame)) {
        std::lock_guard<std::mutex> lock(mu);
        received.push_back(frame);
        max_in_flight_.store(std::max(max_in_flight_.load(), received.size()));
        ready.notify_all();
      }
      std::lock_guard<std::mutex> lock(mu);
      done = true;
      ready.notify_all();
    });
    while (true) {
      fer::v1::ClassifyFrame frame;
      {
        std::unique_lock<std::mutex> lock(mu);
        ready.wait(lock, [&] { return !received.empty() || done; });
        if (received.empty()) break;
        frame = received.front();
      }
      std::this_thread::sleep_for(answer_delay);
      fer::v1::FrameResult result;
      result.set_frame_id(frame.frame_id() + (stream_mode == StreamMode::kOutOfOrder ? 1 : 0));
      if (stream_mode == StreamMode::kFailOddFrames && frame.frame_id() % 2 == 1) {
        result.mutable_status()->set_code(static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
        result.mutable_status()->set_message("face 0: scripted failure");
      } else {
        const bool maps = frame.options().attention();
        if (maps) ++asked_for_maps_;
        for (int i = 0; i < frame.faces_size(); ++i)
          *result.add_predictions() = maps ? FixedPredictionWithMap() : FixedPrediction();
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        received.pop_front();  // answered: no longer in flight
      }
      if (!stream->Write(result)) break;
    }
    reader.join();
    return grpc::Status::OK;
  }

 private:
  std::mutex mu_;
  std::vector<int> faces_per_call_;
  std::atomic<int> attempts_{0};
  std::atomic<int> asked_for_maps_{0};
  std::atomic<size_t> max_in_flight_{0};
};

class FakeServerTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
  }

  void StartServer() {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&fake_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    target_ = "127.0.0.1:" + std::to_string(port);
  }

  RunResult Client(std::vector<std::string> args) {
    args.insert(args.begin(), FER_CLIENT_BINARY);
    args.push_back("--target=" + target_);
    return test_support::Run(args, dir_, std::chrono::seconds(60));
  }

  // Stops the server for good: what a client sees of a server that is gone.
  void StopServer() {
    server_->Shutdown(std::chrono::system_clock::now());
    server_->Wait();
    server_.reset();
  }

  // count small files; they are never decoded by the fake.
  std::vector<std::string> Files(int count, size_t bytes = 16) {
    std::vector<std::string> paths;
    for (int i = 0; i < count; ++i) {
      paths.push_back(dir_ + "/face" + std::to_string(i) + ".jpg");
      std::ofstream(paths.back()) << std::string(bytes, 'x');
    }
    return paths;
  }

  // A short synthetic video (no faces needed: streams use --no_detect).
  std::string Video() {
    const std::string path = dir_ + "/frames.mp4";
    cv::VideoWriter writer(path, cv::VideoWriter::fourcc('m', 'p', '4', 'v'), 10, cv::Size(64, 64));
    for (int i = 0; i < kVideoFrames; ++i) {
      writer.write(cv::Mat(64, 64, CV_8UC3, cv::Scalar(i * 20, 100, 200 - i * 10)));
    }
    return path;
  }

  FakeClassifier fake_;
  std::unique_ptr<grpc::Server> server_;
  std::string target_;
  const test_support::TempDir scratch_{"fer_client_fake_"};
  const std::string dir_ = scratch_.path();
};

TEST_F(FakeServerTest, ClassifyCutsBatchesAtTheServersFaceLimit) {
  fake_.max_faces_per_request = 5;
  StartServer();
  std::vector<std::string> args = {"classify", "--batch=32"};
  const std::vector<std::string> files = Files(12);
  args.insert(args.end(), files.begin(), files.end());
  const RunResult result = Client(args);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(Lines(result.out).size(), 12u);
  EXPECT_THAT(fake_.faces_per_call(), ElementsAre(5, 5, 2));

  const RunResult small =
      Client({"classify", "--batch=4", files[0], files[1], files[2], files[3], files[4]});
  ASSERT_EQ(small.exit_code, 0) << small.err;
  EXPECT_THAT(fake_.faces_per_call(), ElementsAre(5, 5, 2, 4, 1));
}

TEST_F(FakeServerTest, ClassifyRetriesAFullQueueWithBackoff) {
  fake_.busy_calls = 2;
  StartServer();
  const std::vector<std::string> files = Files(3);
  const RunResult result = Client({"classify", files[0], files[1], files[2]});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(Lines(result.out).size(), 3u);
  EXPECT_EQ(fake_.classify_attempts(), 3);
}

TEST_F(FakeServerTest, ClassifyGivesUpOnAQueueThatStaysFull) {
  fake_.busy_calls = 1000;
  StartServer();
  const std::vector<std::string> files = Files(1);
  const RunResult result = Client({"classify", files[0]});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.err, "fer-client classify: Classify: RESOURCE_EXHAUSTED: queue full\n");
  EXPECT_EQ(fake_.classify_attempts(), 4);  // the retry policy's maxAttempts
}

TEST_F(FakeServerTest, ClassifyRefusesFilesOverTheServersByteLimitWithoutSendingThem) {
  fake_.max_image_bytes = 100;
  StartServer();
  const std::vector<std::string> small = Files(2, 50);
  const std::string big = dir_ + "/big.jpg";
  std::ofstream(big) << std::string(200, 'x');
  const RunResult result = Client({"classify", small[0], big, small[1]});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(Lines(result.out).size(), 2u);
  EXPECT_THAT(result.err, HasSubstr(big + ": 200 bytes, over the server's limit of 100"));
  EXPECT_THAT(fake_.faces_per_call(), ElementsAre(2));
}

// The text line of FixedPrediction for path: the format of one classify line.
std::string FixedTextLine(const std::string& path) {
  return path +
         "  happiness 0.4000  neutral=0.1000 anger=0.1000 disgust=0.1000 fear=0.1000 "
         "happiness=0.4000 sadness=0.1000 surprise=0.1000";
}

// The last call is held until the client's stdout (a plain file, where stdio
// buffers fully) shows the earlier calls' lines: a client that printed only at
// the end would leave it empty, and the snapshot would say so.
TEST_F(FakeServerTest, ClassifyPrintsEachCallsLinesBeforeTheLastCallIsAnswered) {
  fake_.max_faces_per_request = 2;
  const std::string out = dir_ + "/classify.out";
  const std::string err = dir_ + "/classify.err";
  std::string seen_during_last_call;
  fake_.before_answer = [&](int attempt) {
    if (attempt != 2) return;
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (Lines(test_support::ReadFile(out)).size() < 4 &&
           std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    seen_during_last_call = test_support::ReadFile(out);
  };
  StartServer();
  const std::vector<std::string> files = Files(6);
  std::vector<std::string> args = {FER_CLIENT_BINARY, "classify", "--target=" + target_};
  args.insert(args.end(), files.begin(), files.end());
  const pid_t pid = test_support::Spawn(args, out, err);
  ASSERT_GT(pid, 0);
  ASSERT_EQ(test_support::WaitFor(pid, std::chrono::seconds(60)), 0) << test_support::ReadFile(err);
  EXPECT_THAT(fake_.faces_per_call(), ElementsAre(2, 2, 2));

  const std::vector<std::string> lines = Lines(test_support::ReadFile(out));
  ASSERT_EQ(lines.size(), 6u);
  for (size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(lines[i], FixedTextLine(files[i]));
  EXPECT_THAT(Lines(seen_during_last_call), ElementsAre(lines[0], lines[1], lines[2], lines[3]));
}

// Progress lines on stderr (not a terminal: fer::ProgressBar's line mode).
std::vector<std::string> ProgressLines(const std::string& err) {
  std::vector<std::string> progress;
  for (const std::string& line : Lines(err)) {
    if (line.rfind("classify [", 0) == 0) progress.push_back(line);
  }
  return progress;
}

TEST_F(FakeServerTest, ClassifyOfManyFilesShowsABoundedProgressOnStderr) {
  fake_.max_faces_per_request = 1;
  fake_.max_image_bytes = 100;
  StartServer();
  std::vector<std::string> args = {"classify"};
  const std::vector<std::string> files = Files(60);
  args.insert(args.end(), files.begin(), files.end());
  const std::string big = dir_ + "/big.jpg";
  std::ofstream(big) << std::string(200, 'x');
  args.push_back(big);
  const RunResult result = Client(args);
  EXPECT_EQ(result.exit_code, 1);  // the big file
  EXPECT_EQ(Lines(result.out).size(), 60u);
  EXPECT_EQ(fake_.faces_per_call().size(), 60u);  // one call per file

  const std::vector<std::string> progress = ProgressLines(result.err);
  ASSERT_GE(progress.size(), 2u) << result.err;
  EXPECT_LE(progress.size(), 11u) << result.err;  // a line per tenth, then the total
  EXPECT_THAT(progress.back(), HasSubstr("100%  61/61"));
  EXPECT_THAT(progress.back(), HasSubstr("1 failed"));
  // Everything else on stderr: the big file, then the summary, in one line each.
  EXPECT_EQ(Lines(result.err).size(), progress.size() + 2) << result.err;
  EXPECT_THAT(result.err, HasSubstr(big + ": 200 bytes, over the server's limit of 100\n"));
  EXPECT_THAT(Lines(result.err).back(), HasSubstr("1 of 61 files could not be classified"));
}

TEST_F(FakeServerTest, ClassifyInOneCallShowsNoProgress) {
  StartServer();
  const std::vector<std::string> files = Files(5);
  const RunResult result =
      Client({"classify", "--json", files[0], files[1], files[2], files[3], files[4]});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(Lines(result.out).size(), 5u);
  EXPECT_EQ(result.err, "");
}

// OpenCV reads a still image as a one-frame video whose position is undefined
// (about -3.7e20 ms with the FFmpeg backend): reported as 0.
TEST_F(FakeServerTest, StreamOfAStillImageReportsTimestampZero) {
  StartServer();
  for (const char* extension : {".png", ".jpg"}) {
    const std::string image = dir_ + "/still" + extension;
    ASSERT_TRUE(cv::imwrite(image, cv::Mat(48, 48, CV_8UC3, cv::Scalar(30, 120, 210))));
    const RunResult json = Client({"stream", image, "--no_detect", "--json", "--progress=false"});
    ASSERT_EQ(json.exit_code, 0) << json.err;
    const std::vector<std::string> lines = Lines(json.out);
    ASSERT_EQ(lines.size(), 1u) << json.out;
    google::protobuf::Struct frame;
    std::string error;
    ASSERT_TRUE(test::ParseJsonObject(lines[0], &frame, &error)) << error << lines[0];
    EXPECT_EQ(test::Number(frame, "frame"), 0);
    EXPECT_EQ(test::Number(frame, "timestamp_ms"), 0.0) << lines[0];

    const RunResult csv = Client({"stream", image, "--no_detect", "--progress=false"});
    ASSERT_EQ(csv.exit_code, 0) << csv.err;
    const std::vector<std::string> rows = Lines(csv.out);
    ASSERT_EQ(rows.size(), 2u) << csv.out;
    EXPECT_THAT(rows[1], ::testing::StartsWith("0,0.0,0,")) << rows[1];
  }
}

// A video file keeps its container's clock: frame i of a 10 fps file at i * 100 ms.
TEST_F(FakeServerTest, StreamOfAVideoReportsTheContainersTimestamps) {
  StartServer();
  const RunResult result = Client({"stream", Video(), "--no_detect", "--json", "--progress=false"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const std::vector<std::string> lines = Lines(result.out);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kVideoFrames));
  for (size_t i = 0; i < lines.size(); ++i) {
    google::protobuf::Struct frame;
    std::string error;
    ASSERT_TRUE(test::ParseJsonObject(lines[i], &frame, &error)) << error;
    EXPECT_NEAR(test::Number(frame, "timestamp_ms"), 100.0 * static_cast<double>(i), 1.0)
        << lines[i];
  }
}

TEST_F(FakeServerTest, StreamKeepsAtMostWindowFramesInFlight) {
  fake_.answer_delay = std::chrono::milliseconds(30);
  StartServer();
  const RunResult result =
      Client({"stream", Video(), "--no_detect", "--window=2", "--progress=false"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(Lines(result.out).size(), kVideoFrames + 1u);
  // The window is used (frames overlap) and never exceeded.
  EXPECT_EQ(fake_.max_frames_in_flight(), 2u);
}

TEST_F(FakeServerTest, StreamReportsFrameErrorsAndGoesOn) {
  fake_.stream_mode = FakeClassifier::StreamMode::kFailOddFrames;
  StartServer();
  const RunResult result = Client({"stream", Video(), "--no_detect", "--json", "--progress=false"});
  EXPECT_EQ(result.exit_code, 1);
  const std::vector<std::string> lines = Lines(result.out);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kVideoFrames));  // every frame still answered
  for (size_t i = 0; i < lines.size(); ++i) {
    google::protobuf::Struct frame;
    std::string error;
    ASSERT_TRUE(test::ParseJsonObject(lines[i], &frame, &error)) << error;
    EXPECT_EQ(frame.fields().count("error"), i % 2) << lines[i];
  }
  EXPECT_THAT(
      result.err,
      HasSubstr("fer-client stream: frame 1: INVALID_ARGUMENT: face 0: scripted failure\n"));
  EXPECT_THAT(result.err, HasSubstr("fer-client stream: 5 of 10 frames could not be classified\n"));
}

TEST_F(FakeServerTest, StreamGivesUpOnAFrameNotAnsweredInTime) {
  fake_.stream_mode = FakeClassifier::StreamMode::kStall;
  StartServer();
  const auto start = std::chrono::steady_clock::now();
  const RunResult result =
      Client({"stream", Video(), "--no_detect", "--deadline_ms=300", "--progress=false"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, HasSubstr("fer-client stream: frame 0: no answer within 300 ms (raise "
                                    "--deadline_ms)\n"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

TEST_F(FakeServerTest, StreamRefusesAnswersOutOfOrder) {
  fake_.stream_mode = FakeClassifier::StreamMode::kOutOfOrder;
  StartServer();
  const RunResult result = Client({"stream", Video(), "--no_detect", "--progress=false"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, HasSubstr("answer for frame 1 arrived out of order (expected 0)"));
}

TEST_F(FakeServerTest, StreamRefusesAnUnwritableAnnotatePathBeforeSending) {
  StartServer();
  const std::string out = dir_ + "/no/such/folder/out.mp4";
  const RunResult result = Client({"stream", Video(), "--no_detect", "--annotate=" + out});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.out, "");
  EXPECT_THAT(result.err,
              ::testing::StartsWith("fer-client stream: --annotate: cannot write " + out));
  EXPECT_EQ(Lines(result.err).size(), 1u) << result.err;
}

TEST_F(FakeServerTest, BenchCountsEveryRefusalWithoutRetrying) {
  fake_.busy_calls = 5;
  StartServer();
  const RunResult result = Client({"bench", "--json", "--requests=20", "--concurrency=1"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  google::protobuf::Struct report;
  std::string error;
  ASSERT_TRUE(test::ParseJsonObject(result.out, &report, &error)) << error << result.out;
  const auto& codes = report.fields().at("codes").struct_value().fields();
  EXPECT_EQ(codes.at("RESOURCE_EXHAUSTED").number_value(), 5);
  EXPECT_EQ(codes.at("OK").number_value(), 15);
  EXPECT_EQ(fake_.classify_attempts(), 20);
}

// The bench report (--json) of a run, parsed; fails the test if it is not JSON.
google::protobuf::Struct BenchJson(const RunResult& result) {
  google::protobuf::Struct report;
  std::string error;
  EXPECT_TRUE(test::ParseJsonObject(result.out, &report, &error))
      << error << "\nstdout: " << result.out << "\nstderr: " << result.err;
  return report;
}

double Field(const google::protobuf::Struct& report, const std::string& name) {
  const auto found = report.fields().find(name);
  return found == report.fields().end() ? -1 : found->second.number_value();
}

double Code(const google::protobuf::Struct& report, const std::string& code) {
  const auto codes = report.fields().find("codes");
  if (codes == report.fields().end()) return -1;
  const auto found = codes->second.struct_value().fields().find(code);
  return found == codes->second.struct_value().fields().end() ? 0 : found->second.number_value();
}

using Seconds = std::chrono::duration<double>;

// Without backoff each worker calls again the moment it is refused: tens of
// thousands of calls in 3 s. With it, about nine per worker.
TEST_F(FakeServerTest, BenchBacksOffAServerThatAnswersUnavailable) {
  fake_.unavailable = true;
  StartServer();
  const RunResult result = Client({"bench", "--json", "--concurrency=4", "--duration=3s"});
  EXPECT_EQ(result.exit_code, 1);  // no call succeeded
  EXPECT_THAT(result.err, HasSubstr("fer-client bench: no call succeeded (UNAVAILABLE "));
  const google::protobuf::Struct report = BenchJson(result);
  EXPECT_EQ(Code(report, "UNAVAILABLE"), fake_.classify_attempts());  // every refusal reported
  EXPECT_GE(fake_.classify_attempts(), 4);
  EXPECT_LT(fake_.classify_attempts(), 100);
  EXPECT_GE(Field(report, "backoffs"), fake_.classify_attempts() - 4);
}

TEST_F(FakeServerTest, BenchOpenLoopPausesOnUnavailableAndCountsWhatItSkips) {
  fake_.unavailable = true;
  StartServer();
  const RunResult result = Client({"bench", "--json", "--rate=500", "--duration=3s"});
  EXPECT_EQ(result.exit_code, 1);
  const google::protobuf::Struct report = BenchJson(result);
  EXPECT_LT(fake_.classify_attempts(), 100);  // 1,500 were scheduled
  EXPECT_EQ(Code(report, "UNAVAILABLE"), fake_.classify_attempts());
  EXPECT_GT(Field(report, "skipped"), 1000);
}

TEST_F(FakeServerTest, BenchBacksOffWhenTheServerIsGoneAndReportsIt) {
  StartServer();
  RunResult result;
  std::thread bench([&] {
    result = Client({"bench", "--json", "--concurrency=4", "--duration=4s", "--deadline_ms=2000"});
  });
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (fake_.classify_attempts() < 100 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  StopServer();
  bench.join();
  ASSERT_EQ(result.exit_code, 0) << result.err;  // calls succeeded before the server went
  const google::protobuf::Struct report = BenchJson(result);
  EXPECT_GE(Code(report, "OK"), 100);
  const double failed = Field(report, "requests") - Code(report, "OK");
  EXPECT_GT(failed, 0);  // the failures are reported, not hidden
  EXPECT_LT(failed, 200) << result.out;
}

// A server that stops answering cannot stretch a run: it ends within the
// duration plus the grace (2 s), not the 30 s of --deadline_ms, and the calls
// it cut off are reported as unfinished.
TEST_F(FakeServerTest, BenchEndsSoonAfterItsDurationAgainstAServerThatHangs) {
  fake_.hang_after = 20;
  StartServer();
  const auto start = std::chrono::steady_clock::now();
  const RunResult result = Client({"bench", "--json", "--concurrency=3", "--duration=2s"});
  const Seconds took = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_LT(took.count(), 15.0);
  const google::protobuf::Struct report = BenchJson(result);
  EXPECT_EQ(Code(report, "OK"), 20);
  EXPECT_EQ(Field(report, "unfinished"), 3);  // one per worker, stuck in the hung server
  EXPECT_EQ(Code(report, "DEADLINE_EXCEEDED"), 0);
  EXPECT_EQ(Field(report, "requests"), 23);
}

TEST_F(FakeServerTest, BenchOpenLoopEndsSoonAfterItsDurationAgainstAServerThatHangs) {
  fake_.hang_after = 0;
  StartServer();
  const auto start = std::chrono::steady_clock::now();
  const RunResult result = Client({"bench", "--json", "--rate=10", "--duration=2s"});
  const Seconds took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, HasSubstr("no call succeeded (unfinished "));
  EXPECT_LT(took.count(), 15.0);
  const google::protobuf::Struct report = BenchJson(result);
  EXPECT_EQ(Field(report, "unfinished"), fake_.classify_attempts());
  EXPECT_GT(fake_.classify_attempts(), 5);
}

TEST_F(FakeServerTest, BenchStreamEndsSoonAfterItsDurationAgainstAServerThatHangs) {
  fake_.stream_mode = FakeClassifier::StreamMode::kStall;
  StartServer();
  const auto start = std::chrono::steady_clock::now();
  const RunResult result =
      Client({"bench", "--json", "--mode=stream", "--concurrency=2", "--duration=2s"});
  const Seconds took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_LT(took.count(), 15.0);
  const google::protobuf::Struct report = BenchJson(result);
  EXPECT_EQ(Field(report, "unfinished"), 2);  // one frame in flight per stream
}

// ---- flags that belong to another command

TEST_F(FakeServerTest, AFlagOfAnotherCommandIsAnErrorNamingIt) {
  StartServer();
  const RunResult info = Client({"info", "--concurrency=7"});
  EXPECT_EQ(info.exit_code, 1);
  EXPECT_EQ(info.out, "");
  EXPECT_EQ(info.err,
            "fer-client info: --concurrency is not a flag of info (it is for bench); see "
            "fer-client info --help\n");
  // Named as foreign even when its value would not parse.
  const RunResult bench = Client({"bench", "--csv=x"});
  EXPECT_EQ(bench.exit_code, 1);
  EXPECT_THAT(bench.err, HasSubstr("fer-client bench: --csv is not a flag of bench"));
  EXPECT_EQ(Lines(bench.err).size(), 1u) << bench.err;
  const RunResult health = Client({"health", "--nojson"});
  EXPECT_EQ(health.exit_code, 1);
  EXPECT_THAT(health.err, HasSubstr("--json is not a flag of health"));
  EXPECT_EQ(fake_.classify_attempts(), 0);
}

TEST_F(FakeServerTest, AFlagOfAnotherCommandFromAFlagfileIsAnErrorToo) {
  StartServer();
  const std::string flagfile = dir_ + "/flags";
  std::ofstream(flagfile) << "--batch=3\n";
  const RunResult result = Client({"info", "--flagfile=" + flagfile});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, HasSubstr("--batch is not a flag of info (it is for classify)"));
}

TEST_F(FakeServerTest, FlagsOfTheCommandAndCommonFlagsAreAccepted) {
  StartServer();
  const RunResult info = Client({"info", "--json", "--deadline_ms=5000", "--tls=false"});
  EXPECT_EQ(info.exit_code, 0) << info.err;
  const RunResult bench = Client(
      {"bench", "--requests=3", "--concurrency=1", "--ten_crop", "--mode", "unary", "--json"});
  EXPECT_EQ(bench.exit_code, 0) << bench.err;
  // --help is Abseil's (which exits 1 after printing); it lists the bench flags.
  const RunResult help = Client({"bench", "--help"});
  EXPECT_THAT(help.out, HasSubstr("--concurrency"));
  EXPECT_THAT(help.out, HasSubstr("--target"));
}

// A decodable PNG face of 40 x 48 at path.
void WriteFacePng(const std::string& path) {
  fs::create_directories(fs::path(path).parent_path());
  ASSERT_TRUE(cv::imwrite(path, cv::Mat(48, 40, CV_8UC3, cv::Scalar(90, 120, 150))));
}

TEST_F(FakeServerTest, ClassifyWithAttentionWritesAPictureOfEachFaceNamedAfterItsFile) {
  StartServer();
  const std::string one = dir_ + "/in/one.png", two = dir_ + "/in/two.png";
  const std::string again = dir_ + "/in/sub/one.png";  // the same name from another folder
  WriteFacePng(one);
  WriteFacePng(two);
  WriteFacePng(again);
  const std::vector<std::string> bad = Files(1);  // not an image: the fake answers, OpenCV cannot
  const std::string out = dir_ + "/maps";
  const RunResult result = Client({"classify", "--attention=" + out, one, two, again, bad[0]});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(fake_.asked_for_maps(), 1);  // one call, asking for maps
  const std::vector<std::string> lines = Lines(result.out);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0], FixedTextLine(one) + "  center_share=0.2500");
  EXPECT_THAT(result.err, HasSubstr(bad[0] + ": no picture"));
  for (const char* name : {"one.png", "two.png", "one-2.png"}) {
    SCOPED_TRACE(name);
    const cv::Mat picture = cv::imread(out + "/" + name, cv::IMREAD_COLOR);
    ASSERT_FALSE(picture.empty());
    EXPECT_EQ(picture.cols, 224);
    EXPECT_GT(picture.rows, 224);  // the caption band
    // The map's hot cell (1, 1) is the picture's bottom-right: red there, and
    // bluer at the top-left, over the same grey-blue face.
    const int band = picture.rows - 224;
    const cv::Vec3b hot = picture.at<cv::Vec3b>(picture.rows - 4, 220);
    const cv::Vec3b cold = picture.at<cv::Vec3b>(band + 4, 4);
    EXPECT_GT(hot[2] - hot[0], cold[2] - cold[0]);
  }
  EXPECT_EQ(std::distance(fs::directory_iterator(out), fs::directory_iterator()), 3);

  const RunResult csv = Client({"classify", "--csv", "--attention=" + out, one});
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  EXPECT_THAT(Lines(csv.out)[0], ::testing::EndsWith(",center_share"));
  EXPECT_THAT(Lines(csv.out)[1], ::testing::EndsWith(",0.2500"));
}

TEST_F(FakeServerTest, ClassifyWithAttentionRefusesAModelWithoutMapsBeforeSending) {
  fake_.has_maps = false;
  StartServer();
  const std::vector<std::string> files = Files(1);
  const RunResult result = Client({"classify", "--attention=" + dir_ + "/maps", files[0]});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, HasSubstr("no attention maps"));
  EXPECT_EQ(fake_.classify_attempts(), 0);
}

TEST_F(FakeServerTest, StreamAnnotatesAttentionOnlyIntoAnAnnotatedVideo) {
  StartServer();
  const std::string video = Video();
  const RunResult alone = Client({"stream", "--no_detect", "--annotate_attention", video});
  EXPECT_EQ(alone.exit_code, 2);
  EXPECT_THAT(alone.err, HasSubstr("give both"));
  const std::string annotated = dir_ + "/annotated.mp4";
  const RunResult result =
      Client({"stream", "--no_detect", "--annotate=" + annotated, "--annotate_attention", video});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(fake_.asked_for_maps(), kVideoFrames);
  cv::VideoCapture written(annotated);
  ASSERT_TRUE(written.isOpened());
  cv::Mat frame;
  ASSERT_TRUE(written.read(frame));
  // The whole frame is the face: its map's hot bottom-right cell shows red
  // there, the top-right is cold (the left holds the probability bars).
  const cv::Scalar hot = cv::mean(frame(cv::Rect(55, 55, 6, 6)));
  const cv::Scalar cold = cv::mean(frame(cv::Rect(55, 4, 6, 6)));
  EXPECT_GT(hot[2] - hot[0], cold[2] - cold[0]);
}

}  // namespace
}  // namespace fer::client
