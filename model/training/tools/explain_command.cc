// fer-model explain: the inference engine's attention maps of a few faces, as
// a picture (a grid of faces with their maps overlaid) and as CSV rows (the
// prediction, the centre share and the map of every face). --misalign and
// --patches_from give crops that are not well-aligned faces, to see whether
// the maps tell them apart (docs/model.md, "Attention as a quality signal").
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "model/core/attention_quality.h"
#include "model/core/engine.h"
#include "model/training/readers.h"
#include "model/training/tools/commands.h"
#include "model/training/tools/data_input.h"
#include "model/training/tools/flags_util.h"
#ifdef FER_WITH_OPENCV
#include "model/training/attention_grid.h"
#include "model/training/probe_crops.h"
#endif

ABSL_DECLARE_FLAG(std::string, png);
ABSL_DECLARE_FLAG(std::string, csv);
ABSL_DECLARE_FLAG(int, size);
ABSL_FLAG(int, count, 21,
          "explain: faces to explain, taken in turn from each class in a --seed order (0: every "
          "face, in the data's order)");
ABSL_FLAG(int, columns, 7, "explain: faces per row of the --png grid");
ABSL_FLAG(std::string, misalign, "none",
          "explain: none|shift|zoom_out: move each face by --misalign_fraction of its side, or "
          "widen its crop by 1 + that fraction, before classifying it");
ABSL_FLAG(double, misalign_fraction, 0.4, "explain: how far --misalign moves or widens");
ABSL_FLAG(std::string, patches_from, "",
          "explain: instead of --data, --count random square patches of the images in this "
          "folder (photos without faces)");

namespace fer {
namespace {

// The largest grid --png draws: beyond it faces are too small to read.
constexpr int kMaxGridFaces = 400;
constexpr int kBatch = 32;

// The crops to classify, at the model's input size and channels.
struct Crops {
  int size = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;
  std::vector<std::string> sources;
  std::vector<int> labels;  // -1: no true label.
  size_t count() const { return labels.size(); }
  const uint8_t* face(size_t i) const {
    return pixels.data() + i * static_cast<size_t>(size) * size * channels;
  }
  uint8_t* mutable_face(size_t i) {
    return pixels.data() + i * static_cast<size_t>(size) * size * channels;
  }
};

// count faces taken in turn from each class, each class in a seeded order; all
// faces in their order for count 0 or count >= size.
std::vector<size_t> SelectFaces(const PackedDataset& data, int count, uint64_t seed) {
  std::vector<size_t> all(data.size());
  std::iota(all.begin(), all.end(), 0);
  if (count <= 0 || static_cast<size_t>(count) >= data.size()) return all;
  std::vector<std::vector<size_t>> by_class(kNumClasses);
  for (size_t i : all) by_class[data.label(i)].push_back(i);
  std::mt19937_64 rng(seed);
  for (auto& faces : by_class) std::shuffle(faces.begin(), faces.end(), rng);
  std::vector<size_t> chosen;
  for (size_t round = 0; chosen.size() < static_cast<size_t>(count); ++round) {
    for (const auto& faces : by_class) {
      if (round < faces.size() && chosen.size() < static_cast<size_t>(count)) {
        chosen.push_back(faces[round]);
      }
    }
  }
  return chosen;
}

absl::StatusOr<Crops> ReadFaces(const ModelMeta& meta) {
  Crops crops{meta.input_size, meta.input_channels()};
  std::vector<std::string> sources;
  auto data = ReadDataSet(absl::GetFlag(FLAGS_data), crops.channels, "explain", &sources);
  if (!data.ok()) return data.status();
  const size_t bytes = static_cast<size_t>(crops.size) * crops.size * crops.channels;
  for (size_t i : SelectFaces(*data, absl::GetFlag(FLAGS_count), absl::GetFlag(FLAGS_seed))) {
    crops.pixels.resize(crops.pixels.size() + bytes);
    ConvertFace(data->face(i), data->face_size(), data->channels(),
                crops.pixels.data() + crops.pixels.size() - bytes, crops.size, crops.channels);
    crops.labels.push_back(data->label(i));
    crops.sources.push_back(sources.empty() ? absl::StrCat("#", i) : sources[i]);
  }
  return crops;
}

// The crops of --data or --patches_from, misaligned as --misalign asks.
absl::StatusOr<Crops> ReadCrops(const ModelMeta& meta) {
#ifndef FER_WITH_OPENCV
  return absl::UnimplementedError("explain needs fer-model built with OpenCV");
#else
  auto misalign = ParseMisalignment(absl::GetFlag(FLAGS_misalign));
  if (!misalign.ok()) return misalign.status();
  const std::string patches_from = absl::GetFlag(FLAGS_patches_from);
  if (patches_from.empty() == absl::GetFlag(FLAGS_data).empty()) {
    return absl::InvalidArgumentError("give one of --data and --patches_from");
  }
  Crops crops{meta.input_size, meta.input_channels()};
  if (patches_from.empty()) {
    auto faces = ReadFaces(meta);
    if (!faces.ok()) return faces.status();
    crops = std::move(*faces);
  } else {
    const int count = absl::GetFlag(FLAGS_count);
    if (count < 1) return absl::InvalidArgumentError("--patches_from needs --count of at least 1");
    auto patches = CutPatches(patches_from, count, crops.size, crops.channels,
                              absl::GetFlag(FLAGS_max_image_pixels), absl::GetFlag(FLAGS_seed));
    if (!patches.ok()) return patches.status();
    for (Patch& patch : *patches) {
      crops.pixels.insert(crops.pixels.end(), patch.pixels.begin(), patch.pixels.end());
      crops.sources.push_back(std::move(patch.source));
      crops.labels.push_back(-1);
    }
  }
  std::mt19937_64 rng(absl::GetFlag(FLAGS_seed));
  for (size_t i = 0; i < crops.count(); ++i) {
    MisalignFace(crops.mutable_face(i), crops.size, crops.channels, *misalign,
                 absl::GetFlag(FLAGS_misalign_fraction), rng);
  }
  return crops;
#endif
}

struct Results {
  std::vector<float> probabilities;
  std::vector<float> maps;
};

absl::StatusOr<Results> ClassifyCrops(Engine& engine, const Crops& crops) {
  const size_t classes = engine.num_classes(), cells = engine.attention_size();
  Results results;
  results.probabilities.resize(crops.count() * classes);
  results.maps.resize(crops.count() * cells);
  std::unique_ptr<Runner> runner = engine.NewRunner();
  for (size_t begin = 0; begin < crops.count(); begin += kBatch) {
    const int n = static_cast<int>(std::min<size_t>(kBatch, crops.count() - begin));
    if (auto s = runner->Classify(crops.face(begin), n, &results.probabilities[begin * classes],
                                  &results.maps[begin * cells]);
        !s.ok()) {
      return s;
    }
  }
  return results;
}

// A CSV field, quoted when it holds a comma, a quote or a line break.
std::string CsvField(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

size_t Predicted(const Results& results, size_t face, size_t classes) {
  const float* p = &results.probabilities[face * classes];
  return static_cast<size_t>(std::max_element(p, p + classes) - p);
}

float CenterShare(const Engine& engine, const Results& results, size_t face) {
  const size_t cells = engine.attention_size();
  return AttentionCenterShare(absl::MakeConstSpan(&results.maps[face * cells], cells),
                              engine.attention_height(), engine.attention_width());
}

std::string LabelName(const ModelMeta& meta, int label) {
  if (label < 0) return "";
  return label < static_cast<int>(meta.labels.size()) ? meta.labels[label]
                                                      : absl::StrCat("class", label);
}

absl::Status WriteCsv(const std::string& path, const Engine& engine, const Crops& crops,
                      const Results& results) {
  std::ofstream out(path);
  out << "file,true,predicted,confidence,center_share";
  for (int r = 0; r < engine.attention_height(); ++r) {
    for (int c = 0; c < engine.attention_width(); ++c) out << ",a_" << r << "_" << c;
  }
  out << "\n";
  const size_t classes = engine.num_classes(), cells = engine.attention_size();
  for (size_t i = 0; i < crops.count(); ++i) {
    const size_t p = Predicted(results, i, classes);
    out << CsvField(crops.sources[i]) << "," << LabelName(engine.meta(), crops.labels[i]) << ","
        << LabelName(engine.meta(), static_cast<int>(p))
        << absl::StrFormat(",%.6f,%.6f", results.probabilities[i * classes + p],
                           CenterShare(engine, results, i));
    for (size_t k = 0; k < cells; ++k) out << absl::StrFormat(",%.8g", results.maps[i * cells + k]);
    out << "\n";
  }
  out.close();
  if (!out) return absl::UnavailableError("cannot write " + path);
  return absl::OkStatus();
}

absl::Status WriteGrid(const std::string& path, const Engine& engine, const Crops& crops,
                       const Results& results) {
#ifndef FER_WITH_OPENCV
  return absl::UnimplementedError("--png needs fer-model built with OpenCV");
#else
  if (crops.count() > static_cast<size_t>(kMaxGridFaces)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--png draws at most %d faces (--count)", kMaxGridFaces));
  }
  const size_t classes = engine.num_classes(), cells = engine.attention_size();
  const size_t bytes = static_cast<size_t>(crops.size) * crops.size * crops.channels;
  std::vector<ExplainedFace> faces(crops.count());
  for (size_t i = 0; i < crops.count(); ++i) {
    const size_t p = Predicted(results, i, classes);
    faces[i].pixels.assign(crops.face(i), crops.face(i) + bytes);
    faces[i].map.assign(&results.maps[i * cells], &results.maps[i * cells] + cells);
    faces[i].predicted = LabelName(engine.meta(), static_cast<int>(p));
    faces[i].confidence = results.probabilities[i * classes + p];
    faces[i].truth = LabelName(engine.meta(), crops.labels[i]);
    faces[i].center_share = CenterShare(engine, results, i);
  }
  AttentionGridOptions options;
  options.columns = absl::GetFlag(FLAGS_columns);
  options.cell_size = absl::GetFlag(FLAGS_size) > 0 ? absl::GetFlag(FLAGS_size) : 112;
  const ModelMeta& meta = engine.meta();
  const std::string model =
      !meta.version.empty() ? meta.version
                            : std::filesystem::path(absl::GetFlag(FLAGS_model)).filename().string();
  const std::string data = absl::GetFlag(FLAGS_patches_from).empty()
                               ? absl::GetFlag(FLAGS_data)
                               : absl::GetFlag(FLAGS_patches_from);
  const std::string misalign = absl::GetFlag(FLAGS_misalign);
  options.title = absl::StrFormat(
      "LLA-Net attention: model %s%s on %s%s (%s, %s)", model,
      meta.untrained() ? " (untrained)" : "", std::filesystem::path(data).filename().string(),
      misalign == "none" ? "" : ", misaligned: " + misalign, engine.precision(), engine.device());
  return WriteAttentionGrid(faces, crops.size, crops.channels, engine.attention_height(),
                            engine.attention_width(), path, options);
#endif
}

}  // namespace

int RunExplain(int argc, char** argv) {
  if (!ParseCommandFlags(argc, argv,
                         "fer-model explain --model=FILE --data=DIR|SET.pack|--patches_from=DIR "
                         "[--png=FILE] [--csv=FILE] [--count=N] [--columns=K] [--size=PX] "
                         "[--misalign=shift|zoom_out] [--device] [--precision] [--seed]")) {
    return 2;
  }
  const std::string png = absl::GetFlag(FLAGS_png), csv = absl::GetFlag(FLAGS_csv);
  if (absl::GetFlag(FLAGS_model).empty() || (png.empty() && csv.empty())) {
    return Fail("explain", absl::InvalidArgumentError("--model and --png or --csv are required"));
  }
  EngineOptions options;
  options.device = absl::GetFlag(FLAGS_device);
  options.precision = absl::GetFlag(FLAGS_precision);
  options.threads = absl::GetFlag(FLAGS_threads);
  auto engine = Engine::Load(absl::GetFlag(FLAGS_model), options);
  if (!engine.ok()) return Fail("explain", engine.status());
  if ((*engine)->attention_size() == 0) {
    return Fail("explain", absl::InvalidArgumentError("the model has no attention modules"));
  }
  auto crops = ReadCrops((*engine)->meta());
  if (!crops.ok()) return Fail("explain", crops.status());
  auto results = ClassifyCrops(**engine, *crops);
  if (!results.ok()) return Fail("explain", results.status());
  if (!csv.empty()) {
    if (auto s = WriteCsv(csv, **engine, *crops, *results); !s.ok()) return Fail("explain", s);
  }
  if (!png.empty()) {
    if (auto s = WriteGrid(png, **engine, *crops, *results); !s.ok()) return Fail("explain", s);
  }
  std::printf("explained %zu crops (%s on %s)\n", crops->count(), (*engine)->precision().c_str(),
              (*engine)->device().c_str());
  return 0;
}

}  // namespace fer
