// JSON text helpers shared by the model tools (metric reports) and fer-client
// (JSON Lines output). Abseil only, no LibTorch: the client links it.
#ifndef FER_MODEL_JSON_TEXT_H_
#define FER_MODEL_JSON_TEXT_H_

#include <string>
#include <string_view>

namespace fer {

// s as a JSON string literal (RFC 8259), quotes included. Quotes and
// backslashes are escaped, \b \f \n \r \t as their two-character escapes and
// the other control characters U+0000..U+001F as \u00XX. Every other byte,
// UTF-8 included, passes through unchanged, so valid UTF-8 in gives valid
// JSON out; invalid UTF-8 is not repaired.
std::string JsonString(std::string_view s);

// value as a JSON number: with `decimals` digits after the point (printf's
// %.*f), or without (the shortest of %g's six significant digits, as
// absl::StrCat writes doubles). NaN and the infinities, which JSON cannot
// express, are written as null, so that the text stays valid JSON whatever the
// value; every JSON writer of fer-client and fer-model writes its numbers
// through these.
std::string JsonNumber(double value, int decimals);
std::string JsonNumber(double value);

}  // namespace fer

#endif  // FER_MODEL_JSON_TEXT_H_
