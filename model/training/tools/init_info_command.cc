// fer-model init and fer-model info.
#include <array>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/common/json_text.h"
#include "model/core/labels.h"
#include "model/core/lla_net.h"
#include "model/core/weights.h"
#include "model/training/tools/commands.h"
#include "model/training/tools/flags_util.h"

ABSL_FLAG(int, num_classes, 7, "init: number of output classes");
ABSL_FLAG(int, attention_kernel, 3, "init: LLAM convolution kernel size, 3 or 1");
ABSL_FLAG(bool, attention, true, "init: false builds plain ResNet-18 (same names) for ablations");
ABSL_FLAG(int, input_size, 112, "init: side of the square input face");
ABSL_FLAG(std::string, color, "gray3",
          "init, train (image folders): gray3 (grey on three channels) or rgb; pack: gray, gray3 "
          "or rgb");
ABSL_FLAG(bool, half, false, "convert: store floating tensors at half precision (fp16)");

namespace fer {

int RunInit(int argc, char** argv) {
  if (!ParseCommandFlags(argc, argv,
                         "fer-model init --out=FILE [--num_classes --attention_kernel "
                         "--attention --input_size --color --seed]")) {
    return 2;
  }
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) return Fail("init", absl::InvalidArgumentError("--out is required"));
  ArchOptions arch{absl::GetFlag(FLAGS_num_classes), absl::GetFlag(FLAGS_attention_kernel),
                   absl::GetFlag(FLAGS_attention)};
  if (arch.attention_kernel != 1 && arch.attention_kernel != 3) {
    return Fail("init", absl::InvalidArgumentError("--attention_kernel must be 1 or 3"));
  }
  if (arch.num_classes < 2) return Fail("init", absl::InvalidArgumentError("--num_classes < 2"));
  ModelMeta meta = DefaultMeta(arch);
  meta.input_size = absl::GetFlag(FLAGS_input_size);
  meta.color = absl::GetFlag(FLAGS_color);
  if (meta.color != "gray3" && meta.color != "rgb") {
    return Fail("init", absl::InvalidArgumentError("--color must be gray3 or rgb"));
  }
  if (arch.num_classes != kNumClasses) {
    meta.labels.clear();
    for (int i = 0; i < arch.num_classes; ++i) meta.labels.push_back(absl::StrCat("class", i));
  }
  meta.version = "untrained";
  torch::manual_seed(absl::GetFlag(FLAGS_seed));
  LlaNet net(arch);
  if (auto status = SaveWeightFile(out, net, meta); !status.ok()) return Fail("init", status);
  std::printf("wrote %s: untrained LLA-Net, %lld parameters\n", out.c_str(),
              static_cast<long long>(net->ParameterCount()));
  return 0;
}

int RunConvert(int argc, char** argv) {
  if (!ParseCommandFlags(argc, argv, "fer-model convert --model=IN --out=OUT [--half]")) return 2;
  const std::string in = absl::GetFlag(FLAGS_model);
  const std::string out = absl::GetFlag(FLAGS_out);
  if (in.empty() || out.empty()) {
    return Fail("convert", absl::InvalidArgumentError("--model and --out are required"));
  }
  auto loaded = LoadWeightFile(in);
  if (!loaded.ok()) return Fail("convert", loaded.status());
  const bool half = absl::GetFlag(FLAGS_half);
  if (auto s = SaveWeightFile(out, loaded->net, loaded->meta,
                              half ? StoredPrecision::kFloat16 : StoredPrecision::kFloat32);
      !s.ok()) {
    return Fail("convert", s);
  }
  std::printf("wrote %s (%s)\n", out.c_str(), half ? "fp16" : "fp32");
  return 0;
}

namespace {

// fer-model info --json: strings escaped and numbers through JsonNumber, so
// that any meta a weight file holds (quotes in a label, a NaN metric) prints
// as valid JSON.
std::string InfoJson(const ModelMeta& m, long long params) {
  std::vector<std::string> labels;
  for (const auto& label : m.labels) labels.push_back(JsonString(label));
  std::vector<std::string> metrics;
  for (const auto& [name, value] : m.metrics) {
    metrics.push_back(absl::StrCat(JsonString(name), ": ", JsonNumber(value)));
  }
  auto triple = [](const std::array<float, 3>& v) {
    return absl::StrCat("[", JsonNumber(v[0]), ", ", JsonNumber(v[1]), ", ", JsonNumber(v[2]), "]");
  };
  return absl::StrCat(
      "{\"parameters\": ", params, ", \"num_classes\": ", m.arch.num_classes,
      ", \"attention\": ", m.arch.attention ? "true" : "false",
      ", \"attention_kernel\": ", m.arch.attention_kernel, ", \"input_size\": ", m.input_size,
      ", \"color\": ", JsonString(m.color), ", \"mean\": ", triple(m.mean),
      ", \"std\": ", triple(m.std), ", \"labels\": [", absl::StrJoin(labels, ", "),
      "], \"trained_on\": ", JsonString(m.trained_on), ", \"version\": ", JsonString(m.version),
      ", \"created\": ", JsonString(m.created), ", \"metrics\": {", absl::StrJoin(metrics, ", "),
      "}}");
}

}  // namespace

int RunInfo(int argc, char** argv) {
  if (!ParseCommandFlags(argc, argv, "fer-model info --model=FILE [--json]")) return 2;
  const std::string path = absl::GetFlag(FLAGS_model);
  if (path.empty()) return Fail("info", absl::InvalidArgumentError("--model is required"));
  auto loaded = LoadWeightFile(path);
  if (!loaded.ok()) return Fail("info", loaded.status());
  const ModelMeta& m = loaded->meta;
  const long long params = static_cast<long long>(loaded->net->ParameterCount());
  std::vector<std::string> metrics;
  for (const auto& [name, value] : m.metrics) metrics.push_back(absl::StrCat(name, "=", value));
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("%s\n", InfoJson(m, params).c_str());
    return 0;
  }
  std::printf("file        %s\n", path.c_str());
  std::printf("parameters  %lld\n", params);
  std::printf("arch        LLA-Net, %d classes, attention %s (kernel %d)\n", m.arch.num_classes,
              m.arch.attention ? "on" : "off", m.arch.attention_kernel);
  std::printf("input       %dx%d %s, mean [%g %g %g], std [%g %g %g]\n", m.input_size, m.input_size,
              m.color.c_str(), m.mean[0], m.mean[1], m.mean[2], m.std[0], m.std[1], m.std[2]);
  if (m.input_blur > 0) std::printf("input_blur  %g of the face side\n", m.input_blur);
  std::printf("labels      %s\n", absl::StrJoin(m.labels, ", ").c_str());
  std::printf("trained_on  %s%s\n", m.trained_on.c_str(),
              m.untrained() ? "  (UNTRAINED: predictions are meaningless)" : "");
  std::printf("version     %s\n", m.version.c_str());
  std::printf("created     %s\n", m.created.c_str());
  std::printf("metrics     %s\n", absl::StrJoin(metrics, " ").c_str());
  return 0;
}

}  // namespace fer
