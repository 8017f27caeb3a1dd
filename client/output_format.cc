#include "client/output_format.h"

#include <cstdio>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "model/common/json_text.h"

namespace fer::client {
namespace {

constexpr int kProbabilityDecimals = 4;

std::string Probability(float p) { return absl::StrFormat("%.*f", kProbabilityDecimals, p); }
// In JSON a probability that is not a number (a broken model) is null: the
// line stays valid JSON.
std::string JsonProbability(float p) { return JsonNumber(p, kProbabilityDecimals); }

// {"neutral":0.0100,...}
std::string JsonProbabilities(const std::vector<std::string>& labels, const Scores& scores) {
  std::string out = "{";
  for (size_t i = 0; i < scores.probabilities.size(); ++i) {
    absl::StrAppend(&out, i ? "," : "", JsonString(LabelName(labels, static_cast<int>(i))), ":",
                    JsonProbability(scores.probabilities[i]));
  }
  return out + "}";
}

// "label":...,"confidence":...,"probabilities":{...}
std::string JsonScores(const std::vector<std::string>& labels, const Scores& scores) {
  return absl::StrCat("\"label\":", JsonString(LabelName(labels, scores.top)),
                      ",\"confidence\":", JsonProbability(scores.confidence()),
                      ",\"probabilities\":", JsonProbabilities(labels, scores));
}

// label,confidence,p0,...,pN-1
std::string CsvScores(const std::vector<std::string>& labels, const Scores& scores) {
  std::string out =
      absl::StrCat(CsvField(LabelName(labels, scores.top)), ",", Probability(scores.confidence()));
  for (float p : scores.probabilities) absl::StrAppend(&out, ",", Probability(p));
  return out;
}

// label,confidence,<labels...> with an optional prefix on each name.
std::string CsvScoreColumns(const std::vector<std::string>& labels, absl::string_view prefix) {
  std::string out = absl::StrCat(prefix, "label,", prefix, "confidence");
  for (const std::string& label : labels)
    absl::StrAppend(&out, ",", CsvField(absl::StrCat(prefix, label)));
  return out;
}

}  // namespace

absl::StatusOr<OutputFormat> ChooseOutputFormat(bool json, bool csv, OutputFormat fallback) {
  if (json && csv) return absl::InvalidArgumentError("--json and --csv exclude each other");
  if (json) return OutputFormat::kJson;
  if (csv) return OutputFormat::kCsv;
  return fallback;
}

std::string CsvField(absl::string_view text) {
  if (text.find_first_of(",\"\r\n") == absl::string_view::npos) return std::string(text);
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string LabelName(const std::vector<std::string>& labels, int i) {
  if (i >= 0 && static_cast<size_t>(i) < labels.size()) return labels[static_cast<size_t>(i)];
  return absl::StrCat("label", i);
}

std::string ClassifyHeader(OutputFormat format, const std::vector<std::string>& labels,
                           bool with_center_share) {
  if (format != OutputFormat::kCsv) return "";
  return absl::StrCat("file,", CsvScoreColumns(labels, ""),
                      with_center_share ? ",center_share" : "", "\n");
}

std::string ClassifyLine(OutputFormat format, const std::vector<std::string>& labels,
                         absl::string_view source, const Scores& scores,
                         std::optional<float> center_share) {
  switch (format) {
    case OutputFormat::kCsv:
      return absl::StrCat(CsvField(source), ",", CsvScores(labels, scores),
                          center_share ? absl::StrCat(",", Probability(*center_share)) : "", "\n");
    case OutputFormat::kJson: {
      // Debian's Abseil keeps its own absl::string_view, which does not
      // convert to std::string_view by itself.
      const std::string_view path(source.data(), source.size());
      return absl::StrCat(
          "{\"file\":", JsonString(path), ",", JsonScores(labels, scores),
          center_share ? absl::StrCat(",\"center_share\":", JsonProbability(*center_share)) : "",
          "}\n");
    }
    case OutputFormat::kText:
      break;
  }
  std::vector<std::string> parts;
  for (size_t i = 0; i < scores.probabilities.size(); ++i) {
    parts.push_back(absl::StrCat(LabelName(labels, static_cast<int>(i)), "=",
                                 Probability(scores.probabilities[i])));
  }
  return absl::StrCat(
      source, "  ", LabelName(labels, scores.top), " ", Probability(scores.confidence()), "  ",
      absl::StrJoin(parts, " "),
      center_share ? absl::StrCat("  center_share=", Probability(*center_share)) : "", "\n");
}

std::string StreamHeader(OutputFormat format, const std::vector<std::string>& labels,
                         bool with_raw) {
  if (format == OutputFormat::kJson) return "";
  std::string out =
      absl::StrCat("frame,timestamp_ms,face,track,x,y,width,height,", CsvScoreColumns(labels, ""));
  if (with_raw) absl::StrAppend(&out, ",", CsvScoreColumns(labels, "raw_"));
  return out + "\n";
}

std::string StreamLines(OutputFormat format, const std::vector<std::string>& labels,
                        const StreamFrame& frame, bool with_raw) {
  const std::string timestamp = absl::StrFormat("%.1f", frame.timestamp_ms);
  if (format == OutputFormat::kJson) {
    std::vector<std::string> faces;
    for (const StreamFace& face : frame.faces) {
      std::string item =
          absl::StrFormat("{\"box\":[%d,%d,%d,%d],\"track\":%d,", face.box.x, face.box.y,
                          face.box.width, face.box.height, face.track_id);
      absl::StrAppend(&item, JsonScores(labels, face.scores));
      if (with_raw && face.raw)
        absl::StrAppend(&item, ",\"raw\":{", JsonScores(labels, *face.raw), "}");
      faces.push_back(item + "}");
    }
    std::string line = absl::StrCat("{\"frame\":", frame.index,
                                    ",\"timestamp_ms\":", JsonNumber(frame.timestamp_ms, 1),
                                    ",\"faces\":[", absl::StrJoin(faces, ","), "]");
    if (!frame.error.empty()) absl::StrAppend(&line, ",\"error\":", JsonString(frame.error));
    return line + "}\n";
  }
  std::string out;
  for (size_t i = 0; i < frame.faces.size(); ++i) {
    const StreamFace& face = frame.faces[i];
    absl::StrAppend(&out, frame.index, ",", timestamp, ",", i, ",", face.track_id, ",", face.box.x,
                    ",", face.box.y, ",", face.box.width, ",", face.box.height, ",",
                    CsvScores(labels, face.scores));
    if (with_raw) absl::StrAppend(&out, ",", CsvScores(labels, face.raw ? *face.raw : face.scores));
    out += "\n";
  }
  return out;
}

}  // namespace fer::client
