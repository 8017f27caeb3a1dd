// How fer-client prints predictions: plain text for people, CSV for
// spreadsheets and JSON Lines (one object per line) for programs. Pure
// string formatting, no I/O, so every format is unit-tested.
//
// Probabilities are printed with four decimals, in the model's label order;
// column and key names are the label names the server reports
// (ModelInfo.labels), so a model with other labels prints its own.
#ifndef FER_CLIENT_OUTPUT_FORMAT_H_
#define FER_CLIENT_OUTPUT_FORMAT_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/face_result.h"

namespace fer::client {

enum class OutputFormat { kText, kCsv, kJson };

// The format chosen by the --json and --csv flags, or fallback when neither is
// set. Both set is INVALID_ARGUMENT.
absl::StatusOr<OutputFormat> ChooseOutputFormat(bool json, bool csv, OutputFormat fallback);

// A CSV field (RFC 4180): quoted only when it holds a comma, quote or line break.
std::string CsvField(absl::string_view text);

// The name of label index i, or "label<i>" when labels has no such entry.
std::string LabelName(const std::vector<std::string>& labels, int i);

// fer-client classify: one line per face, ending in a newline.
//   text: "PATH  LABEL CONFIDENCE  neutral=0.0100 anger=0.0030 ..."
//   csv:  "file,label,confidence,<label 0>,...,<label N-1>" then one row per face
//   json: {"file":...,"label":...,"confidence":...,"probabilities":{"neutral":...,...}}
// The header is empty for text and JSON. With a center_share (classify
// --attention, AttentionMap.center_share), text ends in "  center_share=0.3300",
// CSV has a last column center_share (give the header with_center_share) and
// JSON a last key "center_share".
std::string ClassifyHeader(OutputFormat format, const std::vector<std::string>& labels,
                           bool with_center_share = false);
std::string ClassifyLine(OutputFormat format, const std::vector<std::string>& labels,
                         absl::string_view source, const Scores& scores,
                         std::optional<float> center_share = std::nullopt);

// fer-client stream: one video frame's answer.
// CSV (kText prints CSV too): one row per face, so a frame without faces or
// with an error prints no row (errors go to stderr):
//   frame,timestamp_ms,face,track,x,y,width,height,label,confidence,<labels...>
//   with_raw adds raw_label,raw_confidence,raw_<labels...>
// JSON: exactly one line per frame, faces as an array (empty for none):
//   {"frame":0,"timestamp_ms":0.0,"faces":[{"box":[x,y,w,h],"track":0,"label":...,
//    "confidence":...,"probabilities":{...},"raw":{...}}]} and "error" on failure.
std::string StreamHeader(OutputFormat format, const std::vector<std::string>& labels,
                         bool with_raw);
std::string StreamLines(OutputFormat format, const std::vector<std::string>& labels,
                        const StreamFrame& frame, bool with_raw);

}  // namespace fer::client

#endif  // FER_CLIENT_OUTPUT_FORMAT_H_
