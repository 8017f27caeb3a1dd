// fer-client stream: classifies the faces of a video file or camera, frame by
// frame, over one ClassifyStream call.
//
// Pipeline: the main thread decodes a frame, finds its faces, and writes one
// ClassifyFrame (frame_id = frame index, one raw BGR crop per face); a reader
// thread takes the FrameResults, which the server sends in frame order, and
// prints, tracks, smooths and draws them. At most --window frames are in
// flight: the writer waits for answers beyond that, so client memory stays
// bounded and a slow server slows the video down instead of queueing it.
//
// Crops are sent as raw pixels (no encode on the client, no decode on the
// server), shrunk first to at most twice the model's input side: the server
// resizes every face to that side anyway, so more pixels would only cost
// bandwidth.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <deque>
#include <fstream>
#include <memory>
#include <mutex>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "client/client_flags.h"
#include "client/commands.h"
#include "client/connection.h"
#include "client/face_detector.h"
#include "client/face_tracker.h"
#include "client/frame_timestamp.h"
#include "client/latency_stats.h"
#include "client/output_format.h"
#include "client/video_annotator.h"
#include "model/common/progress.h"

ABSL_FLAG(int, camera, -1, "stream: read camera N (OpenCV index) instead of a video file");
ABSL_FLAG(std::string, cascade, "",
          "stream: Haar cascade XML of the face detector; default: haarcascade_frontalface_default"
          ".xml from the standard OpenCV data folders");
ABSL_FLAG(bool, no_detect, false, "stream: send each whole frame as one face (no detector)");
ABSL_FLAG(int, min_face, 40, "stream: smallest face the detector reports, in pixels");
ABSL_FLAG(int, window, 8, "stream: frames sent ahead of their answers");
ABSL_FLAG(double, smooth, 0.0,
          "stream: exponential moving average of each face track's probabilities, weight of the "
          "newest frame in (0, 1]; 0 = off. Raw scores stay in the output (raw_* columns)");
ABSL_FLAG(double, track_iou, 0.3, "stream: least box overlap (IoU) that continues a face track");
ABSL_FLAG(std::string, annotate, "",
          "stream: write the video with boxes, labels and probability bars to this .mp4 file");
ABSL_FLAG(bool, annotate_attention, false,
          "stream: with --annotate, ask for each face's attention map and overlay it inside the "
          "face's box");
ABSL_FLAG(int64_t, max_frames, 0, "stream: stop after this many frames; 0 = all");
ABSL_FLAG(bool, progress, true, "stream: progress line on stderr (frames, fps, ETA) for files");

namespace fer::client {
namespace {

constexpr char kUsage[] =
    "fer-client stream VIDEO | --camera=N [--window=8] [--no_detect | --cascade=XML "
    "--min_face=40] [--smooth=ALPHA] [--annotate=OUT.mp4 [--annotate_attention]] [--json|--csv] "
    "[--ten_crop] "
    "[--max_frames] [--target] [--deadline_ms]";

// The model's input side when the server does not say; LLA-Net's.
constexpr int kDefaultInputSize = 112;
// Faces are sent with their longer side at most this many times the input side.
constexpr int kSendSideFactor = 2;
// Written videos use this rate when the source does not report one (cameras).
constexpr double kDefaultFps = 25.0;
// How often waits wake up to check the per-frame deadline and Ctrl-C.
constexpr std::chrono::milliseconds kWatchInterval(100);
// Frames older than this many tracker steps cannot match a track.
constexpr int kMaxMissedFrames = 5;

std::atomic<bool> g_interrupted{false};
// The first Ctrl-C ends the video gracefully (frames in flight are still
// answered and printed); a second one kills the process as usual.
extern "C" void OnInterrupt(int) {
  g_interrupted.store(true);
  std::signal(SIGINT, SIG_DFL);
}

// Appends one face crop to frame as raw BGR pixels, shrunk to max_side.
void AddFace(const cv::Mat& image, const FaceBox& box, int max_side,
             fer::v1::ClassifyFrame* frame) {
  const cv::Mat crop = image(cv::Rect(box.x, box.y, box.width, box.height));
  cv::Mat pixels;
  const int longer = std::max(crop.cols, crop.rows);
  if (longer > max_side) {
    const double scale = static_cast<double>(max_side) / longer;
    cv::resize(crop, pixels,
               cv::Size(std::max(1, static_cast<int>(crop.cols * scale)),
                        std::max(1, static_cast<int>(crop.rows * scale))),
               0, 0, cv::INTER_AREA);
  } else {
    pixels = crop.clone();  // a crop is a view with the frame's row stride; raw needs none
  }
  fer::v1::RawImage* raw = frame->add_faces()->mutable_raw();
  raw->set_width(static_cast<uint32_t>(pixels.cols));
  raw->set_height(static_cast<uint32_t>(pixels.rows));
  raw->set_channels(static_cast<uint32_t>(pixels.channels()));
  raw->set_channel_order(fer::v1::RawImage::CHANNEL_ORDER_BGR);
  raw->set_pixels(pixels.data, pixels.total() * pixels.elemSize());
}

// A frame sent and not yet answered.
struct PendingFrame {
  uint64_t index = 0;
  double timestamp_ms = 0;
  std::vector<FaceBox> boxes;
  cv::Mat image;  // kept only when annotating
  std::chrono::steady_clock::time_point sent;
};

struct StreamSettings {
  OutputFormat format = OutputFormat::kCsv;
  std::vector<std::string> labels;
  bool smoothing = false;
  TrackerOptions tracker;
  size_t window = 1;
  std::chrono::milliseconds frame_deadline{0};
  bool attention = false;  // --annotate_attention
  bool ten_crop = false;
  int input_size = 0;  // the model's, to place the maps' cells
};

// The reader's side: everything done with an answer, in frame order.
class ResultSink {
 public:
  // annotator, when set, receives every frame.
  ResultSink(const StreamSettings& settings, std::unique_ptr<VideoAnnotator> annotator)
      : settings_(settings), tracker_(settings.tracker), annotator_(std::move(annotator)) {
    std::fputs(StreamHeader(settings.format, settings.labels, settings.smoothing).c_str(), stdout);
  }

  absl::Status Consume(PendingFrame& frame, const fer::v1::FrameResult& result) {
    StreamFrame out;
    out.index = frame.index;
    out.timestamp_ms = frame.timestamp_ms;
    if (result.status().code() != 0) {
      out.error =
          absl::StrCat(StatusCodeName(result.status().code()), ": ", result.status().message());
      std::fprintf(stderr, "fer-client stream: frame %llu: %s\n",
                   static_cast<unsigned long long>(frame.index), out.error.c_str());
      ++failed_frames_;
      tracker_.SkipFrame();
    } else if (static_cast<size_t>(result.predictions_size()) != frame.boxes.size()) {
      return absl::InternalError(absl::StrCat("frame ", frame.index, ": ",
                                              result.predictions_size(), " predictions for ",
                                              frame.boxes.size(), " faces"));
    } else {
      std::vector<Scores> raw;
      for (const fer::v1::Prediction& prediction : result.predictions()) {
        raw.push_back(ScoresFromPrediction(prediction));
      }
      const std::vector<TrackedFace> tracked = tracker_.Update(frame.boxes, raw);
      for (size_t i = 0; i < raw.size(); ++i) {
        StreamFace face;
        face.box = frame.boxes[i];
        face.track_id = tracked[i].track_id;
        face.scores = settings_.smoothing ? tracked[i].smoothed : raw[i];
        if (settings_.smoothing) face.raw = raw[i];
        face.attention = GridFromPrediction(result.predictions(static_cast<int>(i)),
                                            settings_.input_size, settings_.ten_crop);
        out.faces.push_back(std::move(face));
      }
    }
    std::fputs(StreamLines(settings_.format, settings_.labels, out, settings_.smoothing).c_str(),
               stdout);
    std::fflush(stdout);  // each frame's lines as it is answered, also into a pipe
    if (annotator_ != nullptr) annotator_->Write(frame.image, out.faces);
    ++answered_;
    return absl::OkStatus();
  }

  void Close() {
    std::fflush(stdout);
    if (annotator_ != nullptr) annotator_->Close();
  }

  uint64_t answered() const { return answered_; }
  uint64_t failed_frames() const { return failed_frames_; }

 private:
  const StreamSettings& settings_;
  FaceTracker tracker_;
  std::unique_ptr<VideoAnnotator> annotator_;
  uint64_t answered_ = 0;
  uint64_t failed_frames_ = 0;
};

// One ClassifyStream call: writes frames with a bounded window, reads the
// answers on a reader thread, and cancels the call when a frame waits longer
// than its deadline (a watchdog thread, so that a stalled server is noticed
// even while a write is blocked by flow control).
class FrameStream {
 public:
  FrameStream(const Connection& connection, const StreamSettings& settings, ResultSink* sink,
              fer::ProgressBar* progress)
      : settings_(settings),
        sink_(sink),
        progress_(progress),
        stub_(fer::v1::ExpressionClassifier::NewStub(connection.channel())),
        stream_(stub_->ClassifyStream(&context_)),
        reader_([this] { ReadAnswers(); }),
        watchdog_([this] { Watch(); }) {}

  ~FrameStream() {
    if (reader_.joinable()) {
      context_.TryCancel();
      reader_.join();
    }
    if (watchdog_.joinable()) watchdog_.join();
  }

  // Sends one frame once the window has room. False when the stream is
  // broken; Finish says why.
  bool Send(PendingFrame pending, const fer::v1::ClassifyFrame& message) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      changed_.wait(lock, [&] { return pending_.size() < settings_.window || reader_done_; });
      if (reader_done_) return false;
      pending.sent = std::chrono::steady_clock::now();
      pending_.push_back(std::move(pending));
    }
    return stream_->Write(message);
  }

  // Half-closes the stream, waits for every answer, and returns the outcome.
  absl::Status Finish(const Connection& connection) {
    stream_->WritesDone();
    reader_.join();
    watchdog_.join();
    const grpc::Status status = stream_->Finish();
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_.ok()) return error_;
    if (!status.ok()) return connection.Failure(status, "ClassifyStream");
    if (!pending_.empty()) {
      return absl::DataLossError(
          absl::StrCat("the server ended the stream with ", pending_.size(), " frames unanswered"));
    }
    return absl::OkStatus();
  }

 private:
  void Watch() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!reader_done_) {
      changed_.wait_for(lock, kWatchInterval);
      if (reader_done_ || pending_.empty() || !error_.ok()) continue;
      const PendingFrame& oldest = pending_.front();
      if (std::chrono::steady_clock::now() - oldest.sent > settings_.frame_deadline) {
        error_ = absl::DeadlineExceededError(
            absl::StrCat("frame ", oldest.index, ": no answer within ",
                         settings_.frame_deadline.count(), " ms (raise --deadline_ms)"));
        context_.TryCancel();  // Read and Write fail; the reader ends
      }
    }
  }

  void ReadAnswers() {
    fer::v1::FrameResult result;
    while (stream_->Read(&result)) {
      PendingFrame frame;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (pending_.empty() || pending_.front().index != result.frame_id()) {
          error_ = absl::InternalError(absl::StrCat(
              "answer for frame ", result.frame_id(), " arrived out of order (expected ",
              pending_.empty() ? std::string("none") : absl::StrCat(pending_.front().index), ")"));
          break;
        }
        frame = std::move(pending_.front());
        pending_.pop_front();
      }
      changed_.notify_all();
      if (absl::Status status = sink_->Consume(frame, result); !status.ok()) {
        std::lock_guard<std::mutex> lock(mu_);
        error_ = status;
        break;
      }
      if (progress_ != nullptr) progress_->Update(sink_->answered());
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_.ok()) context_.TryCancel();
    reader_done_ = true;
    changed_.notify_all();
  }

  const StreamSettings& settings_;
  ResultSink* const sink_;
  fer::ProgressBar* const progress_;
  grpc::ClientContext context_;
  const std::unique_ptr<fer::v1::ExpressionClassifier::Stub> stub_;
  const std::unique_ptr<grpc::ClientReaderWriter<fer::v1::ClassifyFrame, fer::v1::FrameResult>>
      stream_;

  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<PendingFrame> pending_;  // sent, unanswered, in send order
  bool reader_done_ = false;
  absl::Status error_;  // the first problem the client itself found

  // Last: they start in the constructor and use everything above.
  std::thread reader_;
  std::thread watchdog_;
};

absl::Status CheckFlags(const std::vector<std::string>& args) {
  const bool camera = absl::GetFlag(FLAGS_camera) >= 0;
  if (camera == !args.empty() || args.size() > 1) {
    return absl::InvalidArgumentError("give one VIDEO file or --camera=N");
  }
  if (absl::GetFlag(FLAGS_window) < 1) return absl::InvalidArgumentError("--window must be >= 1");
  const double smooth = absl::GetFlag(FLAGS_smooth);
  if (smooth < 0 || smooth > 1) return absl::InvalidArgumentError("--smooth must be in [0, 1]");
  if (absl::GetFlag(FLAGS_min_face) < 1)
    return absl::InvalidArgumentError("--min_face must be >= 1");
  if (absl::GetFlag(FLAGS_max_frames) < 0) {
    return absl::InvalidArgumentError("--max_frames must be >= 0");
  }
  if (absl::GetFlag(FLAGS_annotate_attention) && absl::GetFlag(FLAGS_annotate).empty()) {
    return absl::InvalidArgumentError("--annotate_attention draws into --annotate; give both");
  }
  return CheckDeadlineFlag();
}

// The face detector the flags ask for; null with --no_detect (each whole
// frame is then one face).
absl::StatusOr<std::unique_ptr<FaceDetector>> LoadDetector() {
  if (absl::GetFlag(FLAGS_no_detect)) return std::unique_ptr<FaceDetector>();
  absl::StatusOr<std::string> cascade = FindCascade(absl::GetFlag(FLAGS_cascade));
  if (!cascade.ok()) return cascade.status();
  return FaceDetector::Load(*cascade, DetectorOptions{absl::GetFlag(FLAGS_min_face)});
}

// Opens --camera, or else the video file args[0], into capture.
absl::Status OpenSource(const std::vector<std::string>& args, bool camera,
                        cv::VideoCapture* capture) {
  if (!camera && !std::ifstream(args[0]).good()) {
    return absl::NotFoundError(absl::StrCat(args[0], ": cannot open file"));
  }
  const bool opened = camera ? capture->open(absl::GetFlag(FLAGS_camera)) : capture->open(args[0]);
  if (!opened || !capture->isOpened()) {
    return absl::InvalidArgumentError(
        camera ? absl::StrCat("cannot open camera ", absl::GetFlag(FLAGS_camera))
               : absl::StrCat(args[0], ": not a video OpenCV can read"));
  }
  return absl::OkStatus();
}

// Fills in what the flags and the server's model say about the stream.
void SetFromFlagsAndModel(const fer::v1::ModelInfo& info, StreamSettings* settings) {
  settings->labels.assign(info.labels().begin(), info.labels().end());
  const double smooth = absl::GetFlag(FLAGS_smooth);
  settings->smoothing = smooth > 0;
  settings->tracker = TrackerOptions{settings->smoothing ? smooth : 1.0,
                                     absl::GetFlag(FLAGS_track_iou), kMaxMissedFrames};
  settings->window = static_cast<size_t>(absl::GetFlag(FLAGS_window));
  settings->frame_deadline = std::chrono::milliseconds(absl::GetFlag(FLAGS_deadline_ms));
  settings->attention = absl::GetFlag(FLAGS_annotate_attention);
  settings->ten_crop = absl::GetFlag(FLAGS_ten_crop);
  settings->input_size =
      info.input_size() > 0 ? static_cast<int>(info.input_size()) : kDefaultInputSize;
}

// The --annotate video writer, null when the flag is empty. Opened before the
// first frame is sent, so that a path that cannot be written fails the run at
// once rather than after the server's work.
absl::StatusOr<std::unique_ptr<VideoAnnotator>> OpenAnnotator(
    cv::VideoCapture& capture, const std::vector<std::string>& labels) {
  const std::string annotate_path = absl::GetFlag(FLAGS_annotate);
  if (annotate_path.empty()) return std::unique_ptr<VideoAnnotator>();
  const double source_fps = capture.get(cv::CAP_PROP_FPS);
  const cv::Size size(static_cast<int>(capture.get(cv::CAP_PROP_FRAME_WIDTH)),
                      static_cast<int>(capture.get(cv::CAP_PROP_FRAME_HEIGHT)));
  return VideoAnnotator::Open(
      annotate_path, source_fps > 0 && source_fps < 1000 ? source_fps : kDefaultFps, size, labels);
}

// The progress line for files (null for cameras or with --noprogress), sized
// by the file's frame count capped at --max_frames.
std::unique_ptr<fer::ProgressBar> MakeProgress(cv::VideoCapture& capture, bool camera) {
  const int64_t max_frames = absl::GetFlag(FLAGS_max_frames);
  int64_t total = camera ? 0 : static_cast<int64_t>(capture.get(cv::CAP_PROP_FRAME_COUNT));
  if (total < 0) total = 0;
  if (max_frames > 0 && (total == 0 || total > max_frames)) total = max_frames;
  if (camera || !absl::GetFlag(FLAGS_progress)) return nullptr;
  return std::make_unique<fer::ProgressBar>("stream", static_cast<size_t>(total));
}

// The writer's side: decodes frames until the source ends, --max_frames is
// reached, Ctrl-C is pressed or the stream breaks, and sends each with the
// crops of its faces (shrunk to max_side). detector may be null.
void SendFrames(cv::VideoCapture& capture, bool camera, FaceDetector* detector, int max_side,
                FrameStream& stream) {
  const int64_t max_frames = absl::GetFlag(FLAGS_max_frames);
  const bool keep_images = !absl::GetFlag(FLAGS_annotate).empty();
  const auto start = std::chrono::steady_clock::now();
  const double fps = capture.get(cv::CAP_PROP_FPS);
  double previous_ms = 0;
  cv::Mat image;
  for (uint64_t index = 0; max_frames == 0 || static_cast<int64_t>(index) < max_frames; ++index) {
    if (g_interrupted.load() || !capture.read(image) || image.empty()) break;
    PendingFrame pending;
    pending.index = index;
    // Files: the container's clock where it has one (still images have
    // none), else the frame index; cameras: time since the first frame.
    pending.timestamp_ms =
        camera ? std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count()
               : FrameTimestampMs(capture.get(cv::CAP_PROP_POS_MSEC), index, fps, previous_ms);
    previous_ms = pending.timestamp_ms;
    pending.boxes = detector != nullptr ? detector->Detect(image)
                                        : std::vector<FaceBox>{{0, 0, image.cols, image.rows}};
    fer::v1::ClassifyFrame message;
    message.set_frame_id(index);
    message.mutable_options()->set_ten_crop(absl::GetFlag(FLAGS_ten_crop));
    message.mutable_options()->set_attention(absl::GetFlag(FLAGS_annotate_attention));
    for (const FaceBox& box : pending.boxes) AddFace(image, box, max_side, &message);
    if (keep_images) pending.image = image.clone();
    if (!stream.Send(std::move(pending), message)) break;
  }
}

// The exit code of the run: the stream's failure, else a failure when some
// frames could not be classified, else 0.
int Summarize(const absl::Status& outcome, const ResultSink& sink) {
  if (!outcome.ok()) return Fail("stream", outcome);
  if (sink.failed_frames() > 0) {
    return Fail("stream", absl::InvalidArgumentError(
                              absl::StrCat(sink.failed_frames(), " of ", sink.answered(),
                                           " frames could not be classified")));
  }
  return 0;
}

}  // namespace

int RunStream(int argc, char** argv) {
  const std::vector<std::string> args = ParseCommandFlags(argc, argv, kUsage, __FILE__);
  if (absl::Status status = CheckFlags(args); !status.ok()) {
    return UsageError("stream", std::string(status.message()), kUsage);
  }
  StreamSettings settings;
  absl::StatusOr<OutputFormat> format =
      ChooseOutputFormat(absl::GetFlag(FLAGS_json), absl::GetFlag(FLAGS_csv), OutputFormat::kCsv);
  if (!format.ok()) return UsageError("stream", std::string(format.status().message()), kUsage);
  settings.format = *format;

  // Everything local is checked before the first frame is sent.
  const bool camera = absl::GetFlag(FLAGS_camera) >= 0;
  absl::StatusOr<std::unique_ptr<FaceDetector>> detector = LoadDetector();
  if (!detector.ok()) return Fail("stream", detector.status());
  cv::VideoCapture capture;
  if (absl::Status s = OpenSource(args, camera, &capture); !s.ok()) return Fail("stream", s);

  absl::StatusOr<Connection> connection = Connection::Open(ConnectionOptionsFromFlags(true));
  if (!connection.ok()) return Fail("stream", connection.status());
  absl::StatusOr<fer::v1::ModelInfo> info = connection->FetchModelInfo();
  if (!info.ok()) return Fail("stream", info.status());
  SetFromFlagsAndModel(*info, &settings);
  if (settings.attention && info->attention_height() == 0) {
    return Fail("stream", absl::FailedPreconditionError(
                              "--annotate_attention: the server's model has no attention maps"));
  }
  const int input_size =
      info->input_size() > 0 ? static_cast<int>(info->input_size()) : kDefaultInputSize;
  const int max_side = kSendSideFactor * input_size;
  absl::StatusOr<std::unique_ptr<VideoAnnotator>> annotator =
      OpenAnnotator(capture, settings.labels);
  if (!annotator.ok()) return Fail("stream", annotator.status());
  std::unique_ptr<fer::ProgressBar> progress = MakeProgress(capture, camera);

  std::signal(SIGINT, OnInterrupt);
  ResultSink sink(settings, *std::move(annotator));
  absl::Status outcome;
  {
    FrameStream stream(*connection, settings, &sink, progress.get());
    SendFrames(capture, camera, detector->get(), max_side, stream);
    outcome = stream.Finish(*connection);
  }
  sink.Close();
  if (progress != nullptr) progress->Finish(absl::StrCat(sink.answered(), " frames"));
  return Summarize(outcome, sink);
}

}  // namespace fer::client
