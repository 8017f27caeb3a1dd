// JsonString: the exact escapes it writes, and the bytes it leaves alone;
// JsonNumber: null for what JSON cannot express.
#include "model/common/json_text.h"

#include <cmath>
#include <limits>
#include <string>
#include <string_view>

#include "gtest/gtest.h"

namespace fer {
namespace {

TEST(JsonStringTest, QuotesPlainTextUnchanged) {
  EXPECT_EQ(JsonString("neutral"), "\"neutral\"");
  EXPECT_EQ(JsonString("faces/a b.jpg"), "\"faces/a b.jpg\"");
  EXPECT_EQ(JsonString(""), "\"\"");
}

TEST(JsonStringTest, EscapesQuotesAndBackslashes) {
  EXPECT_EQ(JsonString("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(JsonString("\\\""), R"("\\\"")");
  EXPECT_EQ(JsonString("C:\\faces\\"), R"("C:\\faces\\")");
}

TEST(JsonStringTest, WritesTheShortEscapesOfRfc8259) {
  EXPECT_EQ(JsonString("\n\t\r\b\f"), R"("\n\t\r\b\f")");
  EXPECT_EQ(JsonString("two\nlines"), R"("two\nlines")");
}

TEST(JsonStringTest, WritesOtherControlCharactersAsUnicodeEscapes) {
  EXPECT_EQ(JsonString(std::string_view("\x01\x1f\0", 3)), R"("\u0001\u001f\u0000")");
  EXPECT_EQ(JsonString("a\"b\\c\nd\x01"), R"("a\"b\\c\nd\u0001")");
  EXPECT_EQ(JsonString("\x0b\x1b"), R"("\u000b\u001b")");
  // DEL (0x7f) and space are not control characters in JSON strings.
  EXPECT_EQ(JsonString("\x7f "), "\"\x7f \"");
}

TEST(JsonStringTest, PassesUtf8Through) {
  EXPECT_EQ(JsonString("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
  EXPECT_EQ(JsonString("gesichter/über.jpg"), "\"gesichter/über.jpg\"");
  EXPECT_EQ(JsonString("\xe2\x80\xa8\xf0\x9f\x98\x80"), "\"\xe2\x80\xa8\xf0\x9f\x98\x80\"")
      << "U+2028 and 4-byte sequences are valid JSON as they are";
}

TEST(JsonStringTest, KeepsEveryByteOfAStringWithEmbeddedNul) {
  const std::string s("a\0b", 3);
  EXPECT_EQ(JsonString(s), R"("a\u0000b")");
}

TEST(JsonNumberTest, WritesFiniteNumbersAsPrintfWould) {
  EXPECT_EQ(JsonNumber(0.85, 4), "0.8500");
  EXPECT_EQ(JsonNumber(-1.5, 1), "-1.5");
  EXPECT_EQ(JsonNumber(12.0, 0), "12");
  EXPECT_EQ(JsonNumber(0.25), "0.25");
  EXPECT_EQ(JsonNumber(1e-7), "1e-07");
  EXPECT_EQ(JsonNumber(123456789.0), "1.23457e+08");
}

TEST(JsonNumberTest, WritesNanAndInfinitiesAsNull) {
  for (double value : {std::nan(""), -std::nan(""), HUGE_VAL, -HUGE_VAL}) {
    SCOPED_TRACE(value);
    EXPECT_EQ(JsonNumber(value), "null");
    EXPECT_EQ(JsonNumber(value, 4), "null");
  }
  EXPECT_EQ(JsonNumber(std::numeric_limits<float>::quiet_NaN(), 4), "null");
}

}  // namespace
}  // namespace fer
