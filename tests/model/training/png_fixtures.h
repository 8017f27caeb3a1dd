// PNG files written byte by byte, for headers no encoder would write: a
// decompression bomb's, declaring far more pixels than its data holds.
#ifndef FER_TESTS_MODEL_PNG_FIXTURES_H_
#define FER_TESTS_MODEL_PNG_FIXTURES_H_

#include <zlib.h>

#include <cstdint>
#include <string>

namespace fer::test {

inline std::string BigEndian32(uint32_t v) {
  return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
}

// A PNG chunk with its length and CRC.
inline std::string PngChunk(const std::string& type, const std::string& data) {
  const std::string body = type + data;
  const uint32_t crc = static_cast<uint32_t>(
      crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size())));
  return BigEndian32(static_cast<uint32_t>(data.size())) + body + BigEndian32(crc);
}

// A small, well-formed PNG whose header declares width x height 8-bit grey
// pixels while its pixel data holds eight bytes.
inline std::string DeclaringPng(uint32_t width, uint32_t height) {
  const std::string ihdr =
      BigEndian32(width) + BigEndian32(height) + std::string("\x08\x00\x00\x00\x00", 5);
  const std::string pixels(8, '\0');
  std::string idat(compressBound(pixels.size()), '\0');
  uLongf size = idat.size();
  compress(reinterpret_cast<Bytef*>(idat.data()), &size,
           reinterpret_cast<const Bytef*>(pixels.data()), pixels.size());
  idat.resize(size);
  return std::string("\x89PNG\r\n\x1A\n", 8) + PngChunk("IHDR", ihdr) + PngChunk("IDAT", idat) +
         PngChunk("IEND", "");
}

}  // namespace fer::test

#endif  // FER_TESTS_MODEL_PNG_FIXTURES_H_
