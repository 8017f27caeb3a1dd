// `fer-model pack`: decodes a data set once into a packed file (see
// model/training/packed_dataset.h), optionally class-balanced the paper's way.
//
//   fer-model pack --data=fer2013/train --out=train.pack
//   fer-model pack --data=EXPR_Set/Train_Set --images=cropped_aligned \
//       --extra=fer2013_train.pack:anger,disgust,fear --out=affwild2_train.pack
//
// Order of operations: read (Aff-Wild2 strides apply while reading, so dropped
// frames are never decoded; other formats are strided after reading), re-crop
// the faces read, then add extra samples (already packed, with their own
// re-crop if any), then write.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "model/common/progress.h"
#include "model/core/labels.h"
#include "model/training/balance.h"
#include "model/training/packed_dataset.h"
#include "model/training/readers.h"
#include "model/training/tools/commands.h"
#include "model/training/tools/flags_util.h"

// --data, --out and --threads are shared with the other subcommands
// (flags_util.h); --color is defined with init's flags and takes init's
// "gray3" (the default: faces are packed grey) as well as gray and rgb.
ABSL_DECLARE_FLAG(std::string, color);

ABSL_FLAG(std::string, format, "auto", "pack: auto|folder|affwild2|fer2013csv");
ABSL_FLAG(std::string, images, "",
          "pack: Aff-Wild2 image root (cropped_aligned), holding <video>/00001.jpg ...");
ABSL_FLAG(int, size, 0,
          "pack: face side in pixels (0: min(112, larger side of the first image), so 48x48 "
          "FER2013 faces stay 48x48); explain: side of each face in the --png grid (0: 112)");
ABSL_FLAG(std::string, usage, "",
          "pack: FER2013 CSV rows to keep: Training|PublicTest|PrivateTest");
ABSL_FLAG(std::string, stride, "auto",
          "pack: keep every k-th frame of a run per class, e.g. neutral:12,happiness:2 (auto: "
          "that for affwild2, none otherwise; none: keep all)");
ABSL_FLAG(std::vector<std::string>, extra, {},
          "pack: extra samples from packed sets, path.pack:class,class,... (repeatable; a path "
          "without classes gives all)");
ABSL_FLAG(double, recrop, 0.0,
          "pack: keep this central fraction of each face read, resized back (0: off)");

namespace fer {
namespace {

// absl keeps only the last value of a repeated flag; --extra is documented as
// repeatable, so its occurrences are gathered from argv before parsing.
std::vector<std::string> RepeatedFlag(int argc, char** argv, absl::string_view name) {
  std::vector<std::string> values;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (!absl::ConsumePrefix(&arg, "--")) {
      if (!absl::ConsumePrefix(&arg, "-")) continue;
    }
    if (!absl::ConsumePrefix(&arg, name)) continue;
    if (absl::ConsumePrefix(&arg, "=")) {
      values.emplace_back(arg);
    } else if (arg.empty() && i + 1 < argc) {
      values.emplace_back(argv[++i]);
    }
  }
  return values;
}

struct Extra {
  std::string path;
  std::vector<int> classes;
  size_t added = 0;
};

struct Plan {
  std::string data;
  std::string out;
  DataFormat format = DataFormat::kAuto;
  std::string images;
  std::string usage;
  ReaderOptions reader;
  ClassStrides strides = NoStrides();
  double recrop = 0;
  std::vector<Extra> extras;
};

absl::StatusOr<Plan> MakePlan(int argc, char** argv) {
  Plan plan;
  plan.data = absl::GetFlag(FLAGS_data);
  plan.out = absl::GetFlag(FLAGS_out);
  if (plan.data.empty()) return absl::InvalidArgumentError("--data is required");
  if (plan.out.empty()) return absl::InvalidArgumentError("--out is required");

  absl::StatusOr<DataFormat> format = ParseDataFormat(absl::GetFlag(FLAGS_format));
  if (!format.ok()) return format.status();
  if (*format == DataFormat::kAuto) {
    format = absl::GetFlag(FLAGS_images).empty()
                 ? DetectDataFormat(plan.data)
                 : absl::StatusOr<DataFormat>(DataFormat::kAffWild2);
    if (!format.ok()) return format.status();
  }
  plan.format = *format;
  plan.images = absl::GetFlag(FLAGS_images);
  if (plan.format == DataFormat::kAffWild2 && plan.images.empty()) {
    return absl::InvalidArgumentError(
        "--images is required for Aff-Wild2 (the cropped_aligned folder with <video>/00001.jpg)");
  }
  plan.usage = absl::GetFlag(FLAGS_usage);
  if (!plan.usage.empty() && plan.format != DataFormat::kFer2013Csv) {
    return absl::InvalidArgumentError("--usage applies to FER2013's CSV only");
  }

  const std::string color = absl::GetFlag(FLAGS_color);
  if (color != "gray" && color != "grey" && color != "gray3" && color != "rgb") {
    return absl::InvalidArgumentError(
        absl::StrCat("--color must be gray (or gray3) or rgb, not '", color, "'"));
  }
  plan.reader.channels = color == "rgb" ? 3 : 1;
  plan.reader.face_size = absl::GetFlag(FLAGS_size);
  if (plan.reader.face_size < 0) return absl::InvalidArgumentError("--size must be >= 0");
  plan.reader.threads = ThreadsFlag();
  if (plan.reader.threads < 0) return absl::InvalidArgumentError("--threads must be >= 0");
  plan.reader.max_pixels = absl::GetFlag(FLAGS_max_image_pixels);
  if (plan.reader.max_pixels < 1) {
    return absl::InvalidArgumentError("--max_image_pixels must be positive");
  }

  const std::string stride = absl::GetFlag(FLAGS_stride);
  if (stride == "auto") {
    plan.strides = plan.format == DataFormat::kAffWild2 ? DefaultAffWild2Strides() : NoStrides();
  } else {
    absl::StatusOr<ClassStrides> strides = ParseClassStrides(stride);
    if (!strides.ok()) return strides.status();
    plan.strides = *strides;
  }
  if (plan.format == DataFormat::kAffWild2) plan.reader.strides = plan.strides;

  plan.recrop = absl::GetFlag(FLAGS_recrop);
  if (!(plan.recrop >= 0.0 && plan.recrop <= 1.0)) {
    return absl::InvalidArgumentError("--recrop must lie in [0, 1] (0: off)");
  }

  std::vector<std::string> extra_specs = RepeatedFlag(argc, argv, "extra");
  if (extra_specs.empty()) extra_specs = absl::GetFlag(FLAGS_extra);
  absl::StatusOr<std::vector<ExtraSource>> extras = ParseExtraSources(extra_specs);
  if (!extras.ok()) return extras.status();
  for (ExtraSource& source : *extras) {
    std::error_code error;
    if (!std::filesystem::exists(source.path, error)) {
      return absl::NotFoundError(absl::StrCat("extra packed set ", source.path, " does not exist"));
    }
    plan.extras.push_back(Extra{std::move(source.path), std::move(source.classes)});
  }
  return plan;
}

// The provenance kept in the file: how it was packed, without local paths.
std::string Describe(const Plan& plan, const std::vector<Extra>& extras,
                     const PackedDataset& data) {
  std::vector<std::string> parts = {
      absl::StrCat("fer-model pack format=", std::string(DataFormatName(plan.format))),
      absl::StrCat("data=", std::filesystem::path(plan.data).filename().string()),
      absl::StrFormat("size=%d color=%s", data.face_size(), data.channels() == 3 ? "rgb" : "gray"),
      absl::StrCat("stride=", FormatClassStrides(plan.strides))};
  if (!plan.usage.empty()) parts.push_back(absl::StrCat("usage=", plan.usage));
  if (plan.recrop > 0) parts.push_back(absl::StrCat("recrop=", plan.recrop));
  for (const Extra& extra : extras) {
    std::vector<std::string> names;
    for (int c : extra.classes) names.emplace_back(LabelNames()[c]);
    parts.push_back(absl::StrCat("extra=", std::filesystem::path(extra.path).filename().string(),
                                 ":", absl::StrJoin(names, ",")));
  }
  return absl::StrJoin(parts, " ");
}

absl::Status Pack(const Plan& plan) {
  const auto start = std::chrono::steady_clock::now();
  std::optional<ProgressBar> bar;
  ReaderOptions reader = plan.reader;
  reader.progress = [&bar, &plan](size_t done, size_t total) {
    if (total == 0) return;  // nothing to read: no bar
    if (!bar) {
      bar.emplace(plan.format == DataFormat::kFer2013Csv ? "parse (bytes)" : "decode", total);
    }
    bar->Update(done);
  };

  absl::StatusOr<ReadResult> read = [&]() -> absl::StatusOr<ReadResult> {
    switch (plan.format) {
      case DataFormat::kAffWild2:
        return ReadAffWild2(plan.data, plan.images, reader);
      case DataFormat::kFer2013Csv:
        return ReadFer2013Csv(plan.data, plan.usage, reader);
      default:
        return ReadImageFolder(plan.data, reader);
    }
  }();
  if (bar) bar->Finish();
  bar.reset();
  if (!read.ok()) return read.status();
  PackedDataset& data = read->data;
  const ReadReport& report = read->report;
  if (data.size() == 0) {
    std::string why = absl::StrReplaceAll(report.Summary(), {{"\n", "; "}});
    return absl::InvalidArgumentError(absl::StrCat(
        "no faces found in ", plan.data, why.empty() ? "" : " (", why, why.empty() ? "" : ")"));
  }

  size_t strided = report.dropped_by_stride;
  if (plan.format != DataFormat::kAffWild2) strided += ApplyStrides(data, plan.strides);
  if (plan.recrop > 0) {
    if (absl::Status s = Recrop(data, plan.recrop); !s.ok()) return s;
  }
  std::vector<Extra> extras = plan.extras;
  for (Extra& extra : extras) {
    absl::StatusOr<PackedDataset> source = PackedDataset::Read(extra.path);
    if (!source.ok()) return source.status();
    absl::StatusOr<size_t> added = AddExtraSamples(*source, extra.classes, data);
    if (!added.ok()) return added.status();
    extra.added = *added;
  }
  data.source() = Describe(plan, extras, data);

  PackedDataset::WriteOptions write;
  write.threads = plan.reader.threads;
  if (absl::Status s = data.Write(plan.out, write); !s.ok()) return s;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::error_code error;
  const uintmax_t bytes = std::filesystem::file_size(plan.out, error);

  std::vector<size_t> found(report.found.begin(), report.found.end());
  std::printf("%s", ClassDistributionTable(found, data.ClassCounts()).c_str());
  std::printf("(before: labelled samples found; after: faces packed)\n");
  if (const std::string summary = report.Summary(); !summary.empty()) {
    std::printf("%s\n", summary.c_str());
  }
  if (plan.format != DataFormat::kAffWild2 && strided > 0) {
    std::printf("dropped by stride sampling: %zu faces\n", strided);
  }
  for (const Extra& extra : extras) {
    std::printf("extra samples from %s: %zu\n", extra.path.c_str(), extra.added);
  }
  std::printf("wrote %s: %zu faces of %dx%d %s, %.1f MB (%.2f bytes/face), %.1f s\n",
              plan.out.c_str(), data.size(), data.face_size(), data.face_size(),
              data.channels() == 3 ? "rgb" : "gray", static_cast<double>(bytes) / 1e6,
              static_cast<double>(bytes) / static_cast<double>(data.size()), seconds);
  return absl::OkStatus();
}

}  // namespace

int RunPack(int argc, char** argv) {
  if (!ParseCommandFlags(argc, argv,
                         "fer-model pack --data=PATH --out=FILE [--format --images --size --color "
                         "--usage --stride --extra --recrop --max_image_pixels --threads]")) {
    return 2;
  }
  absl::StatusOr<Plan> plan = MakePlan(argc, argv);
  if (!plan.ok()) return Fail("pack", plan.status());
  if (absl::Status s = Pack(*plan); !s.ok()) return Fail("pack", s);
  return 0;
}

}  // namespace fer
