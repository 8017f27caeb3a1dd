// Tests of the access log (server/access_log.h). On AccessLog alone: the line
// format, read back with Python's json module (a parser that is not ours),
// escaping and cutting of odd messages, sampling, options, drops when the
// writer is stuck, and reopening after a rename. Through a FerServer on a
// fake engine (tests/support/fake_engine.h), called over loopback gRPC: the
// one line that Classify, a failing Classify, a stream and ModelInfer each
// write, the queue and model times the batcher measured, sampling, and that
// no image bytes reach the log. Nothing here asserts an upper bound on time;
// waits are for conditions, bounded only to turn a hang into a failure.
#include "server/access_log.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fer/v1/expression.grpc.pb.h"
#include "inference/v2/grpc_predict_v2.grpc.pb.h"
#include "server/fer_server.h"
#include "tests/server/server_test_util.h"
#include "tests/server/synthetic_face.h"
#include "tests/support/fake_engine.h"
#include "tests/support/files.h"
#include "tests/support/loopback_client.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace fer {
namespace {

using fer::v1::ClassifyFrame;
using fer::v1::ClassifyRequest;
using fer::v1::ClassifyResponse;
using fer::v1::FrameResult;
using test_support::FakeEngine;
using test_support::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr absl::Duration kConditionTimeout = absl::Seconds(120);
constexpr auto kCallDeadline = std::chrono::seconds(120);

// One line as Python's json module read it: its keys in the line's order;
// string values as their decoded text, others as JSON text (json.dumps).
struct Line {
  std::vector<std::string> keys;
  std::map<std::string, std::string> values;

  bool has(const std::string& key) const { return values.count(key) > 0; }
  const std::string& operator[](const std::string& key) const { return values.at(key); }
  double number(const std::string& key) const { return std::stod(values.at(key)); }
};

// Python reads every line strictly (UTF-8, then json.loads, each an object and
// newline-terminated), and prints "key s HEX" (the UTF-8 of a string, as hex)
// or "key j JSON" for each member, then "-". Exits non-zero on any fault.
constexpr char kReader[] = R"(import json, sys
for raw in open(sys.argv[1], 'rb'):
    assert raw.endswith(b'\n'), raw
    value = json.loads(raw.decode('utf-8'))
    assert isinstance(value, dict), raw
    for key, v in value.items():
        if isinstance(v, str):
            print(key, 's', v.encode('utf-8').hex() or '-')
        else:
            print(key, 'j', json.dumps(v))
    print('-')
)";

// The lines of the log at path, as Python parsed them; a test failure (and
// what Python said) if it could not.
std::vector<Line> ReadLog(const std::string& path) {
  std::vector<Line> lines;
  if (!test_support::HaveProgram("python3")) {
    ADD_FAILURE() << "these tests read the log with python3, which is not on PATH";
    return lines;
  }
  const TempDir dir("fer_access_log_reader_");
  const std::string script = dir / "read.py";
  EXPECT_TRUE(test_support::WriteFile(script, kReader));
  std::string output;
  const int status = test_support::RunShell("python3 " + script + " '" + path + "' 2>&1", &output);
  EXPECT_EQ(status, 0) << "python3 could not read " << path << ":\n"
                       << output << "\nthe log:\n"
                       << test_support::ReadFile(path);
  if (status != 0) return lines;
  std::istringstream in(output);
  std::string key, type, value;
  Line line;
  while (in >> key) {
    if (key == "-") {
      lines.push_back(std::move(line));
      line = Line();
      continue;
    }
    in >> type >> value;
    line.keys.push_back(key);
    if (type == "s") {
      line.values[key] = value == "-" ? "" : absl::HexStringToBytes(value);
    } else {
      line.values[key] = value;
    }
  }
  return lines;
}

size_t CountLines(const std::string& path) {
  const std::string text = test_support::ReadFile(path);
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

AccessLogEntry OkEntry() {
  AccessLogEntry entry;
  entry.method = kAccessLogClassify;
  entry.peer = "ipv4:10.0.0.7:51334";
  entry.faces = 2;
  entry.queue = absl::Microseconds(412);
  entry.model = absl::Microseconds(12301);
  entry.total = absl::Microseconds(14087);
  entry.model_version = "lla-net-2";
  entry.time = absl::FromUnixMillis(1764603600123);  // 2025-12-01T15:40:00.123Z
  return entry;
}

std::unique_ptr<AccessLog> OpenLog(const std::string& path, double sample = 1.0,
                                   size_t max_queued_lines = AccessLog::kMaxQueuedLines) {
  AccessLogOptions options;
  options.path = path;
  options.sample = sample;
  absl::StatusOr<std::unique_ptr<AccessLog>> log = AccessLog::Open(options, max_queued_lines);
  EXPECT_TRUE(log.ok()) << log.status();
  return log.ok() ? *std::move(log) : nullptr;
}

// ------------------------------------------------------------ line format

TEST(AccessLogTest, ACallIsOneJsonLineWithItsFieldsInOrder) {
  TempDir dir;
  std::unique_ptr<AccessLog> log = OpenLog(dir / "access.log");
  ASSERT_NE(log, nullptr);
  log->Record(OkEntry());
  log->Flush();
  const std::vector<Line> lines = ReadLog(dir / "access.log");
  ASSERT_EQ(lines.size(), 1u);
  const Line& line = lines[0];
  EXPECT_THAT(line.keys, ElementsAre("time", "method", "peer", "status", "faces", "queue_ms",
                                     "model_ms", "total_ms", "model_version", "sampled"));
  EXPECT_EQ(line["time"], "2025-12-01T15:40:00.123Z");
  EXPECT_EQ(line["method"], "Classify");
  EXPECT_EQ(line["peer"], "ipv4:10.0.0.7:51334");
  EXPECT_EQ(line["status"], "OK");
  EXPECT_EQ(line["faces"], "2");
  EXPECT_EQ(line["queue_ms"], "0.412");
  EXPECT_EQ(line["model_ms"], "12.301");
  EXPECT_EQ(line["total_ms"], "14.087");
  EXPECT_EQ(line["model_version"], "lla-net-2");
  EXPECT_EQ(line["sampled"], "1");
}

TEST(AccessLogTest, AStreamAddsFramesAndFrameErrorsAndAnErrorItsMessage) {
  AccessLogEntry entry = OkEntry();
  entry.method = kAccessLogClassifyStream;
  entry.frames = 5;
  entry.frame_errors = 1;
  entry.code = absl::StatusCode::kUnavailable;
  entry.message = "the server is shutting down";
  TempDir dir;
  std::unique_ptr<AccessLog> log = OpenLog(dir / "access.log", 0.5);
  ASSERT_NE(log, nullptr);
  log->Record(entry);
  log->Flush();
  const std::vector<Line> lines = ReadLog(dir / "access.log");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0].keys, ElementsAre("time", "method", "peer", "status", "message", "faces",
                                         "frames", "frame_errors", "queue_ms", "model_ms",
                                         "total_ms", "model_version", "sampled"));
  EXPECT_EQ(lines[0]["method"], "ClassifyStream");
  EXPECT_EQ(lines[0]["status"], "UNAVAILABLE");
  EXPECT_EQ(lines[0]["message"], "the server is shutting down");
  EXPECT_EQ(lines[0]["frames"], "5");
  EXPECT_EQ(lines[0]["frame_errors"], "1");
  EXPECT_EQ(lines[0]["sampled"], "0.5");
}

TEST(AccessLogTest, OddMessagesAreEscapedRepairedAndCutIntoValidJson) {
  const std::string odd = std::string("quote \" backslash \\ newline \n tab \t bell \x07 nul ") +
                          std::string(1, '\0') + " caf\xC3\xA9 bad \xFF\xC3 end";
  const std::string repaired =
      std::string("quote \" backslash \\ newline \n tab \t bell \x07 nul ") + std::string(1, '\0') +
      " caf\xC3\xA9 bad \xEF\xBF\xBD\xEF\xBF\xBD end";
  // Two-byte characters across the cut (after one ASCII byte): the last one
  // that fits whole stays.
  std::string long_message = "x";
  while (long_message.size() < 3 * kMaxMessageBytes) long_message += "\xC3\xA9";
  TempDir dir;
  std::unique_ptr<AccessLog> log = OpenLog(dir / "access.log");
  ASSERT_NE(log, nullptr);
  for (const std::string* message : {&odd, static_cast<const std::string*>(&long_message)}) {
    AccessLogEntry entry = OkEntry();
    entry.code = absl::StatusCode::kInvalidArgument;
    entry.message = *message;
    entry.peer = "ipv6:[::1]:1\"\n";
    log->Record(entry);
  }
  log->Flush();
  const std::vector<Line> lines = ReadLog(dir / "access.log");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["message"], repaired);
  EXPECT_EQ(lines[0]["peer"], "ipv6:[::1]:1\"\n");
  EXPECT_EQ(lines[0]["status"], "INVALID_ARGUMENT");
  const std::string& cut = lines[1]["message"];
  EXPECT_EQ(cut, long_message.substr(0, kMaxMessageBytes - 1) + "...");
  // One line each, however odd the text: no raw newline inside a line.
  EXPECT_EQ(CountLines(dir / "access.log"), 2u);
}

// ---------------------------------------------------------------- sampling

TEST(AccessLogTest, SamplingLogsExactlyEveryKthCall) {
  TempDir dir;
  for (const auto& [sample, calls, every] : std::vector<std::tuple<double, int, int>>{
           {0.25, 400, 4}, {1.0 / 3, 300, 3}, {0.1, 1000, 10}, {0.5, 10, 2}, {1.0, 50, 1}}) {
    SCOPED_TRACE(sample);
    std::unique_ptr<AccessLog> log = OpenLog(dir / "access.log", sample);
    ASSERT_NE(log, nullptr);
    std::vector<int> logged;
    for (int n = 0; n < calls; ++n) {
      if (log->Sample()) logged.push_back(n);
    }
    ASSERT_EQ(logged.size(), static_cast<size_t>(calls / every));
    for (size_t i = 0; i < logged.size(); ++i) EXPECT_EQ(logged[i], every * (i + 1) - 1);
  }
}

TEST(AccessLogTest, SamplingFromManyThreadsLogsExactlyTheFractionAndEachLineSaysIt) {
  TempDir dir;
  std::unique_ptr<AccessLog> log = OpenLog(dir / "access.log", 0.25);
  ASSERT_NE(log, nullptr);
  constexpr int kThreads = 4;
  constexpr int kCallsEach = 100;
  std::atomic<int> sampled{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int n = 0; n < kCallsEach; ++n) {
        if (!log->Sample()) continue;
        ++sampled;
        log->Record(OkEntry());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  log->Flush();
  EXPECT_EQ(sampled.load(), kThreads * kCallsEach / 4);
  const std::vector<Line> lines = ReadLog(dir / "access.log");
  ASSERT_EQ(lines.size(), static_cast<size_t>(kThreads * kCallsEach / 4));
  for (const Line& line : lines) EXPECT_EQ(line["sampled"], "0.25");
}

// ------------------------------------------------------- options and files

TEST(AccessLogTest, OptionsAreValidatedWithMessagesNamingTheFlag) {
  TempDir dir;
  for (const double sample : {0.0, -0.5, 1.5, std::nan("")}) {
    AccessLogOptions options;
    options.path = dir / "access.log";
    options.sample = sample;
    const absl::Status status = AccessLog::ValidateOptions(options);
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << sample;
    EXPECT_THAT(status.message(), HasSubstr("--access_log_sample must be in (0, 1]"));
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "access.log"));
  for (const std::string& path : {dir / "missing/access.log", dir.path()}) {
    AccessLogOptions options;
    options.path = path;
    const absl::Status status = AccessLog::ValidateOptions(options);
    EXPECT_FALSE(status.ok()) << path;
    EXPECT_THAT(status.message(), HasSubstr("--access_log: cannot open " + path));
  }
  AccessLogOptions off;
  EXPECT_TRUE(AccessLog::ValidateOptions(off).ok());
  EXPECT_FALSE(AccessLog::Open(off).ok());
  AccessLogOptions to_stderr;
  to_stderr.path = "-";
  EXPECT_TRUE(AccessLog::ValidateOptions(to_stderr).ok());
}

TEST(AccessLogTest, AStuckWriterMakesRecordDropAndCountLinesInsteadOfWaiting) {
  TempDir dir;
  const std::string fifo = dir / "fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  // A reader that reads nothing yet: the writer blocks once the pipe is full.
  const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  ASSERT_GE(reader, 0);
  AccessLogOptions options;
  options.path = fifo;
  std::atomic<int> counted{0};
  options.on_dropped = [&] { ++counted; };
  absl::StatusOr<std::unique_ptr<AccessLog>> log = AccessLog::Open(options, 8);
  ASSERT_TRUE(log.ok()) << log.status();
  // More lines than any pipe holds (64 KiB by default, 1 MiB at most unless
  // raised): Record must come back each time, dropping what does not fit.
  uint64_t recorded = 0;
  while ((*log)->dropped() == 0 && recorded < 100000) {
    (*log)->Record(OkEntry());
    ++recorded;
  }
  EXPECT_GT((*log)->dropped(), 0u);
  EXPECT_EQ(static_cast<uint64_t>(counted.load()), (*log)->dropped());
  // Now read: every line not dropped arrives, whole.
  ASSERT_EQ(fcntl(reader, F_SETFL, 0), 0);
  std::string received;
  std::thread drain([&] {
    char buffer[4096];
    ssize_t n = 0;
    while ((n = ::read(reader, buffer, sizeof(buffer))) > 0) received.append(buffer, n);
  });
  const uint64_t dropped = (*log)->dropped();
  log->reset();  // writes what is queued, closes the pipe: the reader sees EOF
  drain.join();
  ::close(reader);
  EXPECT_EQ(static_cast<uint64_t>(std::count(received.begin(), received.end(), '\n')),
            recorded - dropped);
  EXPECT_EQ(received.find("\n\n"), std::string::npos);
}

TEST(AccessLogTest, ReopenWritesToANewFileAfterTheOldOneWasRenamed) {
  TempDir dir;
  std::unique_ptr<AccessLog> log = OpenLog(dir / "access.log");
  ASSERT_NE(log, nullptr);
  AccessLogEntry first = OkEntry();
  first.faces = 1;
  log->Record(first);
  log->Flush();
  std::filesystem::rename(dir / "access.log", dir / "access.log.1");
  ASSERT_TRUE(log->Reopen().ok());
  AccessLogEntry second = OkEntry();
  second.faces = 2;
  log->Record(second);
  log->Flush();
  const std::vector<Line> old_lines = ReadLog(dir / "access.log.1");
  const std::vector<Line> new_lines = ReadLog(dir / "access.log");
  ASSERT_EQ(old_lines.size(), 1u);
  ASSERT_EQ(new_lines.size(), 1u);
  EXPECT_EQ(old_lines[0]["faces"], "1");
  EXPECT_EQ(new_lines[0]["faces"], "2");
  // A path that cannot be opened any more keeps the log in the old file.
  std::filesystem::remove(dir / "access.log");
  ASSERT_EQ(::chmod(dir.path().c_str(), 0500), 0);
  const bool can_still_create = ::access(dir.path().c_str(), W_OK) == 0;  // root
  if (!can_still_create) {
    EXPECT_FALSE(log->Reopen().ok());
    log->Record(first);
    log->Flush();
    EXPECT_EQ(log->dropped(), 0u);
  }
  ::chmod(dir.path().c_str(), 0700);
}

// ----------------------------------------------------------- the service

using test_util::FacePng;

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + kCallDeadline);
  return context;
}

ClassifyRequest RequestOf(const std::vector<std::string>& images) {
  ClassifyRequest request;
  for (const std::string& image : images) request.add_faces()->set_encoded(image);
  return request;
}

// A FerServer on a FakeEngine (one instance, so that batches run one at a
// time) that logs every call to a file in a fresh folder.
class AccessLogServiceTest : public ::testing::Test {
 protected:
  void TearDown() override {
    fake_.Open();
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(60));
  }

  void StartServer(double sample = 1.0, int max_concurrent_streams = 256) {
    FerServerOptions options;
    options.service = test_util::TestServiceOptions(4);
    options.service.max_concurrent_streams = max_concurrent_streams;
    options.address = "127.0.0.1:0";
    options.metrics_address = "";
    options.http_address = http_address_;
    options.access_log.path = log_path_;
    options.access_log.sample = sample;
    auto server = FerServer::Create(options, &fake_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    ASSERT_TRUE(server_->Start().ok());
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = fer::v1::ExpressionClassifier::NewStub(channel_);
  }

  // The log once it has at least `count` lines. A stream's line is written
  // when gRPC is done with the stream, which may be just after its client has
  // the final status, so this waits (bounded) rather than reads at once.
  std::vector<Line> LinesOnce(size_t count) {
    const absl::Time give_up = absl::Now() + kConditionTimeout;
    while (true) {
      server_->access_log()->Flush();
      if (CountLines(log_path_) >= count || absl::Now() > give_up) break;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return ReadLog(log_path_);
  }

  static void ExpectPeerAndTimes(const Line& line) {
    EXPECT_THAT(line["peer"], StartsWith("ipv4:127.0.0.1:"));
    EXPECT_TRUE(
        std::regex_match(line["time"], std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
        << line["time"];
    EXPECT_GE(line.number("queue_ms"), 0);
    EXPECT_GE(line.number("model_ms"), 0);
    // Both happen within the call (to the rounding of three decimals each).
    EXPECT_LE(line.number("queue_ms") + line.number("model_ms"), line.number("total_ms") + 0.002);
  }

  FakeEngine fake_;
  std::string http_address_;  // none unless a test asks
  TempDir dir_;
  const std::string log_path_ = dir_ / "access.log";
  std::unique_ptr<FerServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<fer::v1::ExpressionClassifier::Stub> stub_;
};

TEST_F(AccessLogServiceTest, ClassifyAnErrorAStreamAndModelInferWriteOneLineEach) {
  StartServer();
  const std::vector<std::string> images = {FacePng(0), FacePng(1), FacePng(2)};

  ClassifyResponse response;
  ASSERT_TRUE(stub_->Classify(Context().get(), RequestOf({images[0], images[1]}), &response).ok());
  ASSERT_EQ(LinesOnce(1).size(), 1u);

  const grpc::Status refused =
      stub_->Classify(Context().get(), RequestOf({"not an image"}), &response);
  ASSERT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_EQ(LinesOnce(2).size(), 2u);

  {
    auto context = Context();
    auto stream = stub_->ClassifyStream(context.get());
    std::vector<ClassifyFrame> frames(3);
    frames[0].add_faces()->set_encoded(images[0]);
    frames[0].add_faces()->set_encoded(images[1]);
    frames[1].add_faces()->set_encoded(images[2]);
    frames[2].add_faces()->set_encoded("not an image either");
    for (const ClassifyFrame& frame : frames) ASSERT_TRUE(stream->Write(frame));
    stream->WritesDone();
    FrameResult result;
    int results = 0;
    while (stream->Read(&result)) ++results;
    EXPECT_EQ(results, 3);
    ASSERT_TRUE(stream->Finish().ok());
  }
  ASSERT_EQ(LinesOnce(3).size(), 3u);

  auto oip = inference::GRPCInferenceService::NewStub(channel_);
  inference::ModelInferRequest infer;
  infer.set_model_name(kOipModelName);
  auto* input = infer.add_inputs();
  input->set_name(kOipInputName);
  input->set_datatype("BYTES");
  input->add_shape(3);
  for (const std::string& image : images) input->mutable_contents()->add_bytes_contents(image);
  inference::ModelInferResponse inferred;
  ASSERT_TRUE(oip->ModelInfer(Context().get(), infer, &inferred).ok());

  const std::vector<Line> lines = LinesOnce(4);
  ASSERT_EQ(lines.size(), 4u);
  for (const Line& line : lines) ExpectPeerAndTimes(line);
  EXPECT_EQ(lines[0]["method"], "Classify");
  EXPECT_EQ(lines[0]["status"], "OK");
  EXPECT_EQ(lines[0]["faces"], "2");
  EXPECT_EQ(lines[0]["model_version"], "fake");
  EXPECT_FALSE(lines[0].has("message"));

  EXPECT_EQ(lines[1]["method"], "Classify");
  EXPECT_EQ(lines[1]["status"], "INVALID_ARGUMENT");
  EXPECT_THAT(lines[1]["message"], StartsWith("face 0: "));
  EXPECT_EQ(lines[1]["faces"], "1");
  EXPECT_EQ(lines[1]["model_version"], "");
  EXPECT_EQ(lines[1].number("model_ms"), 0);  // it never reached the model

  EXPECT_EQ(lines[2]["method"], "ClassifyStream");
  EXPECT_EQ(lines[2]["status"], "OK");
  EXPECT_EQ(lines[2]["faces"], "4");
  EXPECT_EQ(lines[2]["frames"], "3");
  EXPECT_EQ(lines[2]["frame_errors"], "1");
  EXPECT_EQ(lines[2]["model_version"], "fake");

  EXPECT_EQ(lines[3]["method"], "ModelInfer");
  EXPECT_EQ(lines[3]["status"], "OK");
  EXPECT_EQ(lines[3]["faces"], "3");
  EXPECT_EQ(lines[3]["model_version"], "fake");
  for (const Line& line : lines) EXPECT_EQ(line["sampled"], "1");

  // Never an image: no PNG chunk name, no image's first bytes in base64, and
  // none of any image's 16-byte pieces is in the log.
  const std::string text = test_support::ReadFile(log_path_);
  EXPECT_EQ(text.find("IHDR"), std::string::npos);
  EXPECT_EQ(text.find("IDAT"), std::string::npos);
  EXPECT_EQ(text.find("iVBORw0KGgo"), std::string::npos);
  for (const std::string& image : images) {
    for (size_t at = 0; at + 16 <= image.size(); at += 16) {
      ASSERT_EQ(text.find(image.substr(at, 16)), std::string::npos) << "bytes at " << at;
    }
  }
}

// The HTTP API's classify requests are calls too: one line each, answered or
// refused, with the HTTP peer named as gRPC names its peers.
TEST_F(AccessLogServiceTest, HttpClassifyRequestsWriteOneLineEach) {
  http_address_ = "127.0.0.1:0";
  StartServer();
  const std::string face = FacePng(0);
  const auto post = [&](const std::string& body) {
    return test_support::HttpExchange(
        server_->http_port(),
        absl::StrCat("POST /v1/classify HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n",
                     "Connection: close\r\nContent-Length: ", body.size(), "\r\n\r\n", body));
  };
  EXPECT_THAT(post(face), StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(post("not an image"), StartsWith("HTTP/1.1 400"));

  const std::vector<Line> lines = LinesOnce(2);
  ASSERT_EQ(lines.size(), 2u);
  for (const Line& line : lines) {
    ExpectPeerAndTimes(line);
    EXPECT_EQ(line["method"], "HttpClassify");
    EXPECT_EQ(line["faces"], "1");
  }
  EXPECT_EQ(lines[0]["status"], "OK");
  EXPECT_EQ(lines[0]["model_version"], "fake");
  EXPECT_EQ(lines[1]["status"], "INVALID_ARGUMENT");
  EXPECT_THAT(lines[1]["message"], StartsWith("face 0: "));
  EXPECT_EQ(lines[1]["model_version"], "");
}

// The times are the batcher's: a call whose batch is held in the model for a
// while has at least that model time; one queued behind it, at least that
// queue time.
TEST_F(AccessLogServiceTest, QueueAndModelTimesAreWhatTheBatcherMeasured) {
  StartServer();
  constexpr absl::Duration kHeld = absl::Milliseconds(50);
  const int64_t warmed_up = fake_.faces_received();  // the warm-up batch's
  fake_.Hold();
  ClassifyResponse first_response, second_response;
  grpc::Status first_status, second_status;
  std::thread first([&] {
    first_status = stub_->Classify(Context().get(), RequestOf({FacePng(0)}), &first_response);
  });
  ASSERT_TRUE(fake_.WaitForFacesReceived(warmed_up + 1, kConditionTimeout));
  std::thread second([&] {
    second_status =
        stub_->Classify(Context().get(), RequestOf({FacePng(1), FacePng(2)}), &second_response);
  });
  // The second call's faces are queued once the batcher's gauge says so.
  const absl::Time give_up = absl::Now() + kConditionTimeout;
  while (test_util::MetricValue(server_->metrics()->Serialize(), "fer_queue_faces") < 2 &&
         absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  absl::SleepFor(kHeld);
  fake_.Open();
  first.join();
  second.join();
  ASSERT_TRUE(first_status.ok()) << first_status.error_message();
  ASSERT_TRUE(second_status.ok()) << second_status.error_message();

  const std::vector<Line> lines = LinesOnce(2);
  ASSERT_EQ(lines.size(), 2u);
  const Line& held = lines[0]["faces"] == "1" ? lines[0] : lines[1];
  const Line& queued = lines[0]["faces"] == "1" ? lines[1] : lines[0];
  EXPECT_EQ(queued["faces"], "2");
  const double held_ms = absl::ToDoubleMilliseconds(kHeld);
  EXPECT_GE(held.number("model_ms"), held_ms);
  EXPECT_GE(queued.number("queue_ms"), held_ms);
  EXPECT_GE(queued.number("total_ms"), held_ms);
  ExpectPeerAndTimes(held);
  ExpectPeerAndTimes(queued);
}

// A stream's line carries the stream's own status: here a second stream
// refused at once beyond --max_concurrent_streams, then the first, ended by
// its client.
TEST_F(AccessLogServiceTest, AStreamsLineCarriesTheStreamsStatus) {
  StartServer(1.0, /*max_concurrent_streams=*/1);
  auto first_context = Context();
  auto first = stub_->ClassifyStream(first_context.get());
  ClassifyFrame frame;
  frame.add_faces()->set_encoded(FacePng(0));
  ASSERT_TRUE(first->Write(frame));
  FrameResult result;
  ASSERT_TRUE(first->Read(&result));  // registered and serving

  auto second_context = Context();
  auto second = stub_->ClassifyStream(second_context.get());
  EXPECT_EQ(second->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  const std::vector<Line> refused = LinesOnce(1);
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0]["method"], "ClassifyStream");
  EXPECT_EQ(refused[0]["status"], "RESOURCE_EXHAUSTED");
  EXPECT_THAT(refused[0]["message"], HasSubstr("too many open streams"));
  EXPECT_EQ(refused[0]["frames"], "0");
  EXPECT_EQ(refused[0]["faces"], "0");

  first->WritesDone();
  while (first->Read(&result)) {
  }
  ASSERT_TRUE(first->Finish().ok());
  const std::vector<Line> lines = LinesOnce(2);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1]["status"], "OK");
  EXPECT_FALSE(lines[1].has("message"));
  EXPECT_EQ(lines[1]["frames"], "1");
  EXPECT_EQ(lines[1]["faces"], "1");
  EXPECT_EQ(lines[1]["frame_errors"], "0");
  ExpectPeerAndTimes(lines[1]);
}

TEST_F(AccessLogServiceTest, ASampledLogWritesEveryKthCall) {
  StartServer(0.25);
  for (int i = 0; i < 8; ++i) {
    ClassifyResponse response;
    ASSERT_TRUE(stub_->Classify(Context().get(), RequestOf({FacePng(i)}), &response).ok());
  }
  server_->access_log()->Flush();
  const std::vector<Line> lines = ReadLog(log_path_);
  ASSERT_EQ(lines.size(), 2u);
  for (const Line& line : lines) EXPECT_EQ(line["sampled"], "0.25");
}

TEST(AccessLogOffTest, WithoutAPathThereIsNoLog) {
  FakeEngine fake;
  FerServerOptions options;
  options.address = "127.0.0.1:0";
  options.metrics_address = "";
  options.http_address = "";
  ASSERT_TRUE(FerServer::ValidateOptions(options).ok());
  auto server = FerServer::Create(options, &fake);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->access_log(), nullptr);
  EXPECT_TRUE((*server)->ReopenAccessLog().ok());
}

}  // namespace
}  // namespace fer
