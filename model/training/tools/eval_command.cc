// fer-model eval: the paper's metrics of a weight file on a packed data set or
// an image folder.
#include <cstdio>
#include <fstream>

#include "absl/flags/flag.h"
#include "model/core/weights.h"
#include "model/training/packed_dataset.h"
#include "model/training/tools/commands.h"
#include "model/training/tools/data_input.h"
#include "model/training/tools/flags_util.h"
#include "model/training/train.h"
#ifdef FER_WITH_OPENCV
#include "model/training/heatmap.h"
#endif

ABSL_FLAG(bool, ten_crop, false, "eval: average the probabilities of ten crops per face");
ABSL_FLAG(std::string, csv, "",
          "eval: write the confusion matrix as CSV to this file; explain: each crop's prediction, "
          "centre share and map");
ABSL_FLAG(std::string, png, "",
          "eval: write the confusion matrix as a PNG heat map; explain: the grid of faces with "
          "their maps");
ABSL_FLAG(std::string, probabilities, "",
          "eval: write each face's label and probabilities as CSV to this file");
ABSL_FLAG(int, eval_batch_size, 256, "eval: faces per forward pass");

namespace fer {

int RunEval(int argc, char** argv) {
  if (!ParseCommandFlags(argc, argv,
                         "fer-model eval --model=FILE --data=SET.pack|DIR [--ten_crop] [--json] "
                         "[--csv=FILE] [--png=FILE] [--device] [--precision]")) {
    return 2;
  }
  if (absl::GetFlag(FLAGS_model).empty() || absl::GetFlag(FLAGS_data).empty()) {
    return Fail("eval", absl::InvalidArgumentError("--model and --data are required"));
  }
  auto loaded = LoadWeightFile(absl::GetFlag(FLAGS_model));
  if (!loaded.ok()) return Fail("eval", loaded.status());
  auto data = ReadDataSet(absl::GetFlag(FLAGS_data), loaded->meta.input_channels(), "eval");
  if (!data.ok()) return Fail("eval", data.status());
  if (ThreadsFlag() < 1) {
    return Fail("eval", absl::InvalidArgumentError("--threads must not be negative"));
  }
  torch::set_num_threads(ThreadsFlag());

  EvalOptions options;
  options.device = absl::GetFlag(FLAGS_device);
  options.precision = absl::GetFlag(FLAGS_precision);
  options.ten_crop = absl::GetFlag(FLAGS_ten_crop);
  options.batch_size = absl::GetFlag(FLAGS_eval_batch_size);
  options.progress = !absl::GetFlag(FLAGS_json);
  std::vector<float> probabilities;
  auto confusion = Evaluate(loaded->net, loaded->meta, *data, options, &probabilities);
  if (!confusion.ok()) return Fail("eval", confusion.status());
  if (const std::string path = absl::GetFlag(FLAGS_probabilities); !path.empty()) {
    std::ofstream out(path);
    const int classes = loaded->meta.arch.num_classes;
    out << "label";
    for (const auto& name : loaded->meta.labels) out << "," << name;
    out << "\n";
    for (size_t i = 0; i < data->size(); ++i) {
      out << data->label(i);
      for (int c = 0; c < classes; ++c) out << "," << probabilities[i * classes + c];
      out << "\n";
    }
    if (!out) return Fail("eval", absl::UnavailableError("cannot write " + path));
  }
  const ClassificationReport report = ComputeReport(*confusion);

  if (const std::string csv = absl::GetFlag(FLAGS_csv); !csv.empty()) {
    std::ofstream out(csv);
    out << ConfusionCsv(*confusion);
    if (!out) return Fail("eval", absl::UnavailableError("cannot write " + csv));
  }
  if (const std::string png = absl::GetFlag(FLAGS_png); !png.empty()) {
#ifdef FER_WITH_OPENCV
    if (auto s = WriteConfusionHeatmap(*confusion, png); !s.ok()) return Fail("eval", s);
#else
    return Fail("eval", absl::UnimplementedError("--png needs fer-model built with OpenCV"));
#endif
  }
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("%s\n", ReportJson(report).c_str());
    return 0;
  }
  std::printf("%s: %zu faces, %s\n", absl::GetFlag(FLAGS_data).c_str(), data->size(),
              options.ten_crop ? "TenCrop" : "single crop");
  std::printf("%s\n%s\n", FormatClassTable(report).c_str(),
              FormatConfusionTable(*confusion).c_str());
  std::printf("accuracy %.4f  mean F1 %.4f  score %.4f\n", report.accuracy, report.f1,
              report.score);
  return 0;
}

}  // namespace fer
