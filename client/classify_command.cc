// fer-client classify: classifies face images (files, or folders walked
// recursively) and prints one line per face.
//
// How it uses the API: files are sent as they are (encoded bytes; the server
// checks and decodes them), many faces per Classify call, sequentially. A call
// is cut at --batch faces, at the server's max_faces_per_request, or before
// its size would pass gRPC's default 4 MiB message limit. When the server
// refuses a batch as INVALID_ARGUMENT (one bad file spoils the call), its
// faces are sent again one by one, so that every good file is still classified
// and every bad one is named with the server's reason.
//
// --attention=DIR asks for each face's attention map, prints its center_share
// after the probabilities and writes DIR/<file name>.png: the face stretched
// to a square as the server stretches it (AttentionPictureSide pixels), the
// map overlaid as a heat map (client/attention_overlay.h), and the top label,
// its confidence and the center share written above it.
//
// Output: each call's lines are printed and flushed as soon as it is
// answered, in the order the files were given, so a long run shows its first
// results at once, also through a pipe. A run of more than one call shows its
// progress on stderr (see RunProgress).
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <opencv2/imgcodecs.hpp>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/attention_overlay.h"
#include "client/client_flags.h"
#include "client/commands.h"
#include "client/connection.h"
#include "client/image_files.h"
#include "client/output_format.h"
#include "model/common/progress.h"

ABSL_FLAG(int, batch, 32, "classify: faces per request (capped by the server's limit)");
ABSL_FLAG(std::string, attention, "",
          "classify: ask for attention maps; print each face's center_share and write the face "
          "with its map overlaid to DIR/<file name>.png (DIR is created if missing)");

namespace fer::client {
namespace {

constexpr char kUsage[] =
    "fer-client classify [--batch=32] [--ten_crop] [--attention=DIR] [--json|--csv] [--target] "
    "[--deadline_ms] IMAGE...|DIR...";

// Side of the --attention pictures: twice LLA-Net's 112, so that the 7 x 7
// cells and the caption are easy to see.
constexpr int kMinPictureSide = 224;

// gRPC servers refuse messages over 4 MiB unless configured otherwise; stay
// clear of it, leaving room for the message framing.
constexpr size_t kMaxRequestBytes = (size_t{4} << 20) - (size_t{64} << 10);

// How far a run has got, on stderr: files done of all files, and the failed
// ones. On a terminal the line is redrawn in place and wiped before anything
// else is printed to that terminal, so results and error lines never run into
// it; elsewhere (a log) it is fer::ProgressBar's line mode, at most eleven
// lines. Disabled, it prints nothing.
class RunProgress {
 public:
  RunProgress(size_t total_files, bool enabled)
      : redraw_(isatty(fileno(stderr)) != 0), stdout_on_terminal_(isatty(fileno(stdout)) != 0) {
    if (enabled)
      bar_ = std::make_unique<fer::ProgressBar>("classify", total_files, stderr, redraw_);
  }

  // Call before writing to stdout (to_stdout) or to stderr.
  void MakeRoom(bool to_stdout) {
    if (bar_ == nullptr || !redraw_ || (to_stdout && !stdout_on_terminal_)) return;
    std::fputs("\r\033[K", stderr);  // back to the line start, erase to its end
  }

  void Update(size_t done, int failed) {
    if (bar_ != nullptr) bar_->Update(done, Suffix(failed));
  }

  void Finish(int failed) {
    if (bar_ != nullptr) bar_->Finish(Suffix(failed));
  }

  // Ends the line where the run stopped, for a fatal error to follow.
  void Abandon() { bar_.reset(); }

 private:
  static std::string Suffix(int failed) {
    return failed > 0 ? absl::StrCat(failed, " failed") : std::string();
  }

  const bool redraw_;
  const bool stdout_on_terminal_;
  std::unique_ptr<fer::ProgressBar> bar_;
};

// Where --attention pictures go, named after their files: "a.jpg" becomes
// "a.png", and a second "a.*" (from another folder, or "a.png" itself after
// "a.jpg") "a-2.png".
class AttentionPictures {
 public:
  AttentionPictures(std::string dir, int side) : dir_(std::move(dir)), side_(side) {}

  bool enabled() const { return !dir_.empty(); }

  // Writes the picture of one face; a file OpenCV cannot decode (the server
  // could) gets none, with a line on stderr. Errors are fatal (an unwritable
  // folder).
  absl::Status Write(const std::string& path, const std::string& bytes, const std::string& caption,
                     const AttentionGrid& map) {
    const cv::Mat face = cv::imdecode(
        cv::Mat(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data())),
        cv::IMREAD_COLOR);
    if (face.empty()) {
      std::fprintf(stderr, "fer-client classify: %s: no picture (OpenCV cannot decode it)\n",
                   path.c_str());
      return absl::OkStatus();
    }
    const cv::Mat picture = AttentionPicture(
        face, map, {caption, absl::StrFormat("center_share %.3f", map.center_share)}, side_);
    const std::string out = (std::filesystem::path(dir_) / NameFor(path)).string();
    if (!cv::imwrite(out, picture)) {
      return absl::PermissionDeniedError(absl::StrCat("--attention: cannot write ", out));
    }
    return absl::OkStatus();
  }

 private:
  std::string NameFor(const std::string& path) {
    const std::string stem = std::filesystem::path(path).stem().string();
    std::string name = stem + ".png";
    for (int n = 2; !used_.insert(name).second; ++n) name = absl::StrCat(stem, "-", n, ".png");
    return name;
  }

  const std::string dir_;
  const int side_;
  std::set<std::string> used_;
};

struct ClassifySettings {
  std::vector<std::string> labels;
  OutputFormat format = OutputFormat::kText;
  bool ten_crop = false;
  int input_size = 0;  // the model's, to place the maps' cells
};

class Classifier {
 public:
  Classifier(const Connection& connection, ClassifySettings settings, AttentionPictures* pictures,
             RunProgress* progress)
      : connection_(connection),
        stub_(fer::v1::ExpressionClassifier::NewStub(connection.channel())),
        settings_(std::move(settings)),
        pictures_(pictures),
        progress_(progress) {}

  // Queues one file's bytes; sends the batch first when the file would not fit.
  absl::Status Add(const std::string& path, std::string bytes, size_t max_faces) {
    if (!paths_.empty() &&
        (paths_.size() >= max_faces || request_bytes_ + bytes.size() > kMaxRequestBytes)) {
      if (absl::Status status = Flush(); !status.ok()) return status;
    }
    request_bytes_ += bytes.size();
    paths_.push_back(path);
    request_.add_faces()->set_encoded(std::move(bytes));
    return absl::OkStatus();
  }

  // Sends whatever is queued. Errors returned are fatal for the run (no
  // server, a deadline); a bad file is reported and counted instead.
  absl::Status Flush() {
    if (paths_.empty()) return absl::OkStatus();
    request_.mutable_options()->set_ten_crop(settings_.ten_crop);
    request_.mutable_options()->set_attention(pictures_->enabled());
    fer::v1::ClassifyResponse response;
    grpc::Status status = Call(request_, &response);
    absl::Status result;
    if (status.ok()) {
      result = Print(paths_, request_, response);
    } else if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT && paths_.size() > 1) {
      result = RetryOneByOne();
    } else if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
      ReportBadFile(paths_[0], status.error_message());
    } else {
      result = connection_.Failure(status, "Classify");
    }
    paths_.clear();
    request_.Clear();
    request_bytes_ = 0;
    progress_->Update(done_files_, failed_files_);
    return result;
  }

  // Names a file that cannot be classified; it counts as done.
  void ReportBadFile(const std::string& path, const std::string& reason) {
    progress_->MakeRoom(false);
    std::fprintf(stderr, "fer-client classify: %s: %s\n", path.c_str(), reason.c_str());
    ++failed_files_;
    ++done_files_;
  }

  int failed_files() const { return failed_files_; }

 private:
  grpc::Status Call(const fer::v1::ClassifyRequest& request, fer::v1::ClassifyResponse* response) {
    grpc::ClientContext context;
    connection_.Prepare(&context);
    return stub_->Classify(&context, request, response);
  }

  // Prints the lines of request's faces (and writes their pictures).
  absl::Status Print(const std::vector<std::string>& paths, const fer::v1::ClassifyRequest& request,
                     const fer::v1::ClassifyResponse& response) {
    if (static_cast<size_t>(response.predictions_size()) != paths.size()) {
      return absl::InternalError(absl::StrCat("Classify answered ", response.predictions_size(),
                                              " predictions for ", paths.size(), " faces"));
    }
    progress_->MakeRoom(true);
    for (size_t i = 0; i < paths.size(); ++i) {
      const fer::v1::Prediction& prediction = response.predictions(static_cast<int>(i));
      const Scores scores = ScoresFromPrediction(prediction);
      if (!pictures_->enabled()) {
        std::fputs(ClassifyLine(settings_.format, settings_.labels, paths[i], scores).c_str(),
                   stdout);
        continue;
      }
      const AttentionGrid map =
          GridFromPrediction(prediction, settings_.input_size, settings_.ten_crop);
      if (map.empty()) return absl::InternalError("Classify answered a face without its map");
      std::fputs(
          ClassifyLine(settings_.format, settings_.labels, paths[i], scores, map.center_share)
              .c_str(),
          stdout);
      const std::string caption =
          absl::StrFormat("%s %.2f", LabelName(settings_.labels, scores.top), scores.confidence());
      if (absl::Status written = pictures_->Write(
              paths[i], request.faces(static_cast<int>(i)).encoded(), caption, map);
          !written.ok()) {
        return written;
      }
    }
    std::fflush(stdout);  // this call's lines now, not when the buffer fills
    done_files_ += paths.size();
    return absl::OkStatus();
  }

  absl::Status RetryOneByOne() {
    for (int i = 0; i < request_.faces_size(); ++i) {
      fer::v1::ClassifyRequest single;
      *single.add_faces() = request_.faces(i);
      *single.mutable_options() = request_.options();
      fer::v1::ClassifyResponse response;
      const grpc::Status status = Call(single, &response);
      const std::string& path = paths_[static_cast<size_t>(i)];
      if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
        ReportBadFile(path, status.error_message());
      } else if (!status.ok()) {
        return connection_.Failure(status, "Classify");
      } else if (absl::Status printed = Print({path}, single, response); !printed.ok()) {
        return printed;
      }
    }
    return absl::OkStatus();
  }

  const Connection& connection_;
  std::unique_ptr<fer::v1::ExpressionClassifier::Stub> stub_;
  const ClassifySettings settings_;
  AttentionPictures* const pictures_;
  RunProgress* const progress_;

  fer::v1::ClassifyRequest request_;  // the batch being filled
  std::vector<std::string> paths_;    // its files, in request order
  size_t request_bytes_ = 0;
  int failed_files_ = 0;
  size_t done_files_ = 0;  // printed or failed
};

// Sends every file, in order, and the last partial batch. A file that cannot
// be read or is over the server's byte limit is named and counted; the error
// returned is fatal for the run.
absl::Status SendAll(const std::vector<std::string>& files, const fer::v1::ModelInfo& info,
                     size_t max_faces, Classifier* classifier) {
  for (const std::string& path : files) {
    absl::StatusOr<std::string> bytes = ReadFileBytes(path);
    if (!bytes.ok()) {
      classifier->ReportBadFile(path, "cannot read file");
      continue;
    }
    // Refused here rather than by the server: it would spoil the whole batch.
    if (info.max_image_bytes() > 0 && bytes->size() > info.max_image_bytes()) {
      classifier->ReportBadFile(path,
                                absl::StrCat(bytes->size(), " bytes, over the server's limit of ",
                                             info.max_image_bytes()));
      continue;
    }
    if (absl::Status status = classifier->Add(path, *std::move(bytes), max_faces); !status.ok()) {
      return status;
    }
  }
  return classifier->Flush();
}

// The --attention folder, created if missing; disabled without the flag.
// FAILED_PRECONDITION when the server's model has no maps to give.
absl::StatusOr<AttentionPictures> OpenPictures(const fer::v1::ModelInfo& info) {
  const std::string dir = absl::GetFlag(FLAGS_attention);
  const int side = std::max(kMinPictureSide, 2 * static_cast<int>(info.input_size()));
  if (dir.empty()) return AttentionPictures("", side);
  if (info.attention_height() == 0) {
    return absl::FailedPreconditionError(
        "--attention: the server's model has no attention maps (ModelInfo.attention_height 0)");
  }
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error || !std::filesystem::is_directory(dir)) {
    return absl::PermissionDeniedError(absl::StrCat("--attention: cannot create folder ", dir));
  }
  return AttentionPictures(dir, side);
}

}  // namespace

int RunClassify(int argc, char** argv) {
  const std::vector<std::string> args = ParseCommandFlags(argc, argv, kUsage, __FILE__);
  if (args.empty()) return UsageError("classify", "no image files or folders given", kUsage);
  absl::StatusOr<OutputFormat> format =
      ChooseOutputFormat(absl::GetFlag(FLAGS_json), absl::GetFlag(FLAGS_csv), OutputFormat::kText);
  if (!format.ok()) return UsageError("classify", std::string(format.status().message()), kUsage);
  const int batch = absl::GetFlag(FLAGS_batch);
  if (batch < 1) return UsageError("classify", "--batch must be at least 1", kUsage);
  if (absl::Status status = CheckDeadlineFlag(); !status.ok()) return Fail("classify", status);

  absl::StatusOr<std::vector<std::string>> files = ListImageFiles(args);
  if (!files.ok()) return Fail("classify", files.status());
  absl::StatusOr<Connection> connection = Connection::Open(ConnectionOptionsFromFlags(true));
  if (!connection.ok()) return Fail("classify", connection.status());
  absl::StatusOr<fer::v1::ModelInfo> info = connection->FetchModelInfo();
  if (!info.ok()) return Fail("classify", info.status());

  size_t max_faces = static_cast<size_t>(batch);
  if (info->max_faces_per_request() > 0) {
    max_faces = std::min<size_t>(max_faces, info->max_faces_per_request());
  }
  ClassifySettings settings;
  settings.labels.assign(info->labels().begin(), info->labels().end());
  settings.format = *format;
  settings.ten_crop = absl::GetFlag(FLAGS_ten_crop);
  settings.input_size = static_cast<int>(info->input_size());
  absl::StatusOr<AttentionPictures> pictures = OpenPictures(*info);
  if (!pictures.ok()) return Fail("classify", pictures.status());
  std::fputs(ClassifyHeader(*format, settings.labels, pictures->enabled()).c_str(), stdout);
  // One call's wait shows nothing worth a progress line; more calls do.
  RunProgress progress(files->size(), files->size() > max_faces);
  Classifier classifier(*connection, std::move(settings), &*pictures, &progress);
  if (absl::Status status = SendAll(*files, *info, max_faces, &classifier); !status.ok()) {
    progress.Abandon();
    return Fail("classify", status);
  }
  progress.Finish(classifier.failed_files());
  if (classifier.failed_files() > 0) {
    return Fail("classify", absl::InvalidArgumentError(
                                absl::StrCat(classifier.failed_files(), " of ", files->size(),
                                             " files could not be classified")));
  }
  return 0;
}

}  // namespace fer::client
