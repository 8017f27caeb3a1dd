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

}  // namespace fer

#endif  // FER_MODEL_JSON_TEXT_H_
