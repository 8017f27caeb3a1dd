// Parses JSON in tests with protobuf's JSON reader into google.protobuf.Struct,
// so that the client's JSON output is checked by a real parser, not by regular
// expressions.
#ifndef FER_TESTS_CLIENT_JSON_TEST_UTIL_H_
#define FER_TESTS_CLIENT_JSON_TEST_UTIL_H_

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <sstream>
#include <string>
#include <vector>

namespace fer::client::test {

// Parses one JSON object; false (with *error set) when text is not one.
inline bool ParseJsonObject(const std::string& text, google::protobuf::Struct* out,
                            std::string* error) {
  const auto status = google::protobuf::util::JsonStringToMessage(text, out);
  if (!status.ok()) *error = std::string(status.message());
  return status.ok();
}

// The non-empty lines of text.
inline std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

inline double Number(const google::protobuf::Struct& object, const std::string& key) {
  auto it = object.fields().find(key);
  return it == object.fields().end() ? -1.0 : it->second.number_value();
}

inline std::string String(const google::protobuf::Struct& object, const std::string& key) {
  auto it = object.fields().find(key);
  return it == object.fields().end() ? std::string() : it->second.string_value();
}

}  // namespace fer::client::test

#endif  // FER_TESTS_CLIENT_JSON_TEST_UTIL_H_
