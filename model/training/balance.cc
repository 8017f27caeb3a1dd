#include "model/training/balance.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "model/core/image_ops.h"
#include "model/training/readers.h"

namespace fer {
namespace {

// The paper's Aff-Wild2 strides (section IV): neutral and happiness dominate
// the training videos.
constexpr int kAffWild2NeutralStride = 12;
constexpr int kAffWild2HappinessStride = 2;

// Debian's Abseil has its own string_view type; these bridge it and std's.
absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }
std::string_view StdView(absl::string_view s) { return std::string_view(s.data(), s.size()); }

}  // namespace

ClassStrides NoStrides() {
  ClassStrides strides;
  strides.fill(1);
  return strides;
}

ClassStrides DefaultAffWild2Strides() {
  ClassStrides strides = NoStrides();
  strides[0] = kAffWild2NeutralStride;
  strides[4] = kAffWild2HappinessStride;
  return strides;
}

absl::StatusOr<ClassStrides> ParseClassStrides(std::string_view std_spec) {
  ClassStrides strides = NoStrides();
  const absl::string_view spec = absl::StripAsciiWhitespace(AbslView(std_spec));
  if (spec.empty() || absl::AsciiStrToLower(spec) == "none") return strides;
  for (absl::string_view item : absl::StrSplit(spec, ',')) {
    item = absl::StripAsciiWhitespace(item);
    const std::vector<absl::string_view> parts = absl::StrSplit(item, ':');
    const std::optional<int> label =
        parts.size() == 2 ? LabelFromAlias(StdView(absl::StripAsciiWhitespace(parts[0])))
                          : std::nullopt;
    int k = 0;
    const absl::string_view number =
        parts.size() == 2 ? absl::StripAsciiWhitespace(parts[1]) : absl::string_view();
    const auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), k);
    if (parts.size() != 2 || !label || number.empty() || error != std::errc() ||
        end != number.data() + number.size() || k < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bad stride '", item, "': expected class:k with a label name and k >= 1, e.g. ",
          "neutral:12,happiness:2"));
    }
    strides[*label] = k;
  }
  return strides;
}

std::string FormatClassStrides(const ClassStrides& strides) {
  std::vector<std::string> items;
  for (int c = 0; c < kNumClasses; ++c) {
    if (strides[c] != 1) items.push_back(absl::StrCat(AbslView(LabelNames()[c]), ":", strides[c]));
  }
  return items.empty() ? "none" : absl::StrJoin(items, ",");
}

std::vector<size_t> StrideIndices(absl::Span<const int8_t> labels, absl::Span<const int32_t> videos,
                                  absl::Span<const int32_t> frames, const ClassStrides& strides) {
  std::vector<size_t> kept;
  size_t position = 0;  // index of the current entry within its run
  for (size_t i = 0; i < labels.size(); ++i) {
    const bool continues = i > 0 && labels[i] == labels[i - 1] && videos[i] == videos[i - 1] &&
                           (videos[i] < 0 || frames[i] == frames[i - 1] + 1);
    position = continues ? position + 1 : 0;
    const int k = std::max(1, strides[labels[i]]);
    if (position % k == 0) kept.push_back(i);
  }
  return kept;
}

size_t ApplyStrides(PackedDataset& data, const ClassStrides& strides) {
  std::vector<int32_t> videos(data.size());
  std::vector<int32_t> frames(data.size());
  for (size_t i = 0; i < data.size(); ++i) {
    videos[i] = data.video(i);
    frames[i] = data.frame(i);
  }
  const std::vector<size_t> kept = StrideIndices(data.labels(), videos, frames, strides);
  const size_t removed = data.size() - kept.size();
  if (removed > 0) data.Select(kept);
  return removed;
}

absl::StatusOr<std::vector<ExtraSource>> ParseExtraSources(const std::vector<std::string>& specs) {
  std::vector<ExtraSource> sources;
  for (const std::string& spec : specs) {
    for (absl::string_view item : absl::StrSplit(spec, ',', absl::SkipWhitespace())) {
      item = absl::StripAsciiWhitespace(item);
      const size_t colon = item.rfind(':');
      if (colon != absl::string_view::npos) {
        const absl::string_view path = absl::StripAsciiWhitespace(item.substr(0, colon));
        const absl::string_view name = absl::StripAsciiWhitespace(item.substr(colon + 1));
        const std::optional<int> label = LabelFromAlias(StdView(name));
        if (path.empty() || !label) {
          return absl::InvalidArgumentError(absl::StrCat(
              "bad extra source '", item, "': expected path.pack:class[,class...], e.g. ",
              "fer2013.pack:anger,disgust,fear"));
        }
        sources.push_back(ExtraSource{std::string(path), {*label}});
      } else if (std::optional<int> label = LabelFromAlias(StdView(item));
                 label && !sources.empty()) {
        sources.back().classes.push_back(*label);
      } else {
        sources.push_back(ExtraSource{std::string(item), {}});
      }
    }
  }
  for (ExtraSource& source : sources) {
    if (source.classes.empty()) {
      for (int c = 0; c < kNumClasses; ++c) source.classes.push_back(c);
    }
    std::sort(source.classes.begin(), source.classes.end());
    source.classes.erase(std::unique(source.classes.begin(), source.classes.end()),
                         source.classes.end());
  }
  return sources;
}

absl::StatusOr<size_t> AddExtraSamples(const PackedDataset& extra, absl::Span<const int> classes,
                                       PackedDataset& target) {
  std::array<bool, kNumClasses> wanted{};
  for (int c : classes) {
    if (c < 0 || c >= kNumClasses) {
      return absl::InvalidArgumentError(absl::StrCat("no class ", c, " to take extra samples of"));
    }
    wanted[c] = true;
  }
  std::vector<uint8_t> face(target.face_bytes());
  size_t added = 0;
  for (size_t i = 0; i < extra.size(); ++i) {
    if (!wanted[extra.label(i)]) continue;
    ConvertFace(extra.face(i), extra.face_size(), extra.channels(), face.data(), target.face_size(),
                target.channels());
    target.Add(face.data(), extra.label(i));
    ++added;
  }
  return added;
}

absl::Status Recrop(PackedDataset& data, double fraction) {
  if (!(fraction > 0.0 && fraction <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("re-crop fraction must lie in (0, 1], not ", fraction));
  }
  const int size = data.face_size();
  const int side = std::clamp(static_cast<int>(std::lround(fraction * size)), 1, size);
  if (side == size) return absl::OkStatus();
  const CropBox box{(size - side) / 2, (size - side) / 2, side, false};
  std::vector<uint8_t> crop(static_cast<size_t>(side) * side * data.channels());
  for (size_t i = 0; i < data.size(); ++i) {
    uint8_t* face = data.mutable_face(i);
    Crop(face, size, data.channels(), box, crop.data());
    ResizeFace(crop.data(), side, side, data.channels(), face, size);
  }
  return absl::OkStatus();
}

std::string ClassDistributionTable(absl::Span<const size_t> before,
                                   absl::Span<const size_t> after) {
  const bool two = !after.empty();
  auto total = [](absl::Span<const size_t> counts) {
    size_t sum = 0;
    for (size_t c : counts) sum += c;
    return sum;
  };
  auto percent = [](size_t count, size_t sum) {
    return sum == 0 ? 0.0 : 100.0 * static_cast<double>(count) / static_cast<double>(sum);
  };
  const size_t before_total = total(before);
  const size_t after_total = two ? total(after) : 0;
  std::string out;
  if (two) {
    absl::StrAppendFormat(&out, "%-10s %10s %7s %10s %7s\n", "class", "before", "%", "after", "%");
  } else {
    absl::StrAppendFormat(&out, "%-10s %10s %7s\n", "class", "count", "%");
  }
  for (int c = 0; c < kNumClasses; ++c) {
    const size_t b = c < static_cast<int>(before.size()) ? before[c] : 0;
    absl::StrAppendFormat(&out, "%-10s %10d %6.2f%%", AbslView(LabelNames()[c]), b,
                          percent(b, before_total));
    if (two) {
      const size_t a = c < static_cast<int>(after.size()) ? after[c] : 0;
      absl::StrAppendFormat(&out, " %10d %6.2f%%", a, percent(a, after_total));
    }
    out += '\n';
  }
  absl::StrAppendFormat(&out, "%-10s %10d %6.2f%%", "total", before_total,
                        before_total == 0 ? 0.0 : 100.0);
  if (two) {
    absl::StrAppendFormat(&out, " %10d %6.2f%%", after_total, after_total == 0 ? 0.0 : 100.0);
  }
  out += '\n';
  return out;
}

}  // namespace fer
