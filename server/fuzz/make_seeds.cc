// Writes the seed corpora of the fuzzers. For preprocess_fuzzer (IMAGE_DIR):
// each face given (or, with none, a synthetic one) re-encoded in every
// accepted format and variant the parser distinguishes, plus a refused format,
// each also cut short and corrupted. For request_fuzzer (REQUEST_DIR):
// serialized ClassifyRequest and ClassifyFrame messages carrying those images,
// raw pixels, TenCrop, several faces, and more faces than the limit.
//   preprocess_fuzz_seeds IMAGE_DIR REQUEST_DIR [FACE_IMAGE ...]
#include <algorithm>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <iterator>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <utility>
#include <vector>

#include "fer/v1/expression.pb.h"

namespace {

constexpr int kSyntheticSize = 48;
// Header bytes are corrupted more often than pixel data: that is where the
// parser's decisions are.
constexpr size_t kHeaderBytes = 64;

std::string Encode(const cv::Mat& image, const std::string& extension,
                   const std::vector<int>& params = {}) {
  std::vector<uint8_t> bytes;
  if (!cv::imencode(extension, image, bytes, params)) return std::string();
  return std::string(bytes.begin(), bytes.end());
}

// The same bytes with the row order reversed and the height negated: a
// top-down BMP.
std::string TopDownBmp(const std::string& bmp, const cv::Mat& image) {
  constexpr size_t kPixelOffsetAt = 10;
  constexpr size_t kHeightAt = 22;
  if (bmp.size() < 54) return std::string();
  const size_t offset = static_cast<uint8_t>(bmp[kPixelOffsetAt]) |
                        static_cast<size_t>(static_cast<uint8_t>(bmp[kPixelOffsetAt + 1])) << 8;
  const size_t row_bytes = (static_cast<size_t>(image.cols) * image.elemSize() + 3) / 4 * 4;
  if (offset + row_bytes * image.rows > bmp.size()) return std::string();
  std::string out = bmp.substr(0, offset);
  const uint32_t height = static_cast<uint32_t>(-image.rows);
  for (int i = 0; i < 4; ++i) out[kHeightAt + i] = static_cast<char>(height >> (8 * i));
  for (int row = image.rows - 1; row >= 0; --row) {
    out += bmp.substr(offset + row * row_bytes, row_bytes);
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> Encodings(const cv::Mat& grey) {
  std::vector<cv::Mat> planes(3);
  grey.convertTo(planes[0], CV_8U, 0.45, 20);
  grey.convertTo(planes[1], CV_8U, 0.8, 10);
  planes[2] = grey.clone();
  cv::Mat colour;
  cv::merge(planes, colour);
  cv::Mat alpha;
  grey.convertTo(alpha, CV_8U, -0.5, 255);
  cv::Mat colour_alpha;
  cv::cvtColor(colour, colour_alpha, cv::COLOR_BGR2BGRA);
  cv::insertChannel(alpha, colour_alpha, 3);
  cv::Mat grey16;
  grey.convertTo(grey16, CV_16U, 257);
  cv::Mat small;
  cv::resize(colour, small, cv::Size(13, 7), 0, 0, cv::INTER_AREA);
  const std::string colour_bmp = Encode(colour, ".bmp");
  return {
      {"grey.jpg", Encode(grey, ".jpg")},
      {"colour.jpg", Encode(colour, ".jpg", {cv::IMWRITE_JPEG_QUALITY, 60})},
      {"progressive.jpg", Encode(colour, ".jpg", {cv::IMWRITE_JPEG_PROGRESSIVE, 1})},
      {"small.jpg", Encode(small, ".jpg")},
      {"grey.png", Encode(grey, ".png")},
      {"colour.png", Encode(colour, ".png")},
      {"alpha.png", Encode(colour_alpha, ".png")},
      {"grey16.png", Encode(grey16, ".png")},
      {"small.png", Encode(small, ".png")},
      {"lossy.webp", Encode(colour, ".webp", {cv::IMWRITE_WEBP_QUALITY, 60})},
      {"lossless.webp", Encode(colour, ".webp", {cv::IMWRITE_WEBP_QUALITY, 101})},
      {"alpha.webp", Encode(colour_alpha, ".webp", {cv::IMWRITE_WEBP_QUALITY, 60})},
      {"small.webp", Encode(small, ".webp", {cv::IMWRITE_WEBP_QUALITY, 101})},
      {"grey.bmp", Encode(grey, ".bmp")},
      {"colour.bmp", colour_bmp},
      {"topdown.bmp", TopDownBmp(colour_bmp, colour)},
      {"small.bmp", Encode(small, ".bmp")},
      {"refused.tiff", Encode(grey, ".tiff")},
  };
}

// More faces than request_fuzzer's limit.
constexpr int kOverLimitFaces = 9;

bool Write(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

// Request and frame seeds around the encoded images (valid and corrupt) of one
// face and its grey pixels.
std::vector<std::pair<std::string, std::string>> Messages(
    const std::vector<std::pair<std::string, std::string>>& images, const cv::Mat& face) {
  std::vector<std::pair<std::string, std::string>> messages;
  for (const auto& [name, bytes] : images) {
    fer::v1::ClassifyRequest request;
    request.add_faces()->set_encoded(bytes);
    messages.emplace_back("request-" + name, request.SerializeAsString());
    request.mutable_options()->set_ten_crop(true);
    request.add_faces()->set_encoded(bytes);
    messages.emplace_back("request-tencrop-" + name, request.SerializeAsString());
    fer::v1::ClassifyFrame frame;
    frame.set_frame_id(7);
    frame.add_faces()->set_encoded(bytes);
    messages.emplace_back("frame-" + name, frame.SerializeAsString());
  }
  fer::v1::ClassifyRequest raw;
  fer::v1::RawImage* pixels = raw.add_faces()->mutable_raw();
  pixels->set_width(face.cols);
  pixels->set_height(face.rows);
  pixels->set_channels(1);
  pixels->set_pixels(std::string(face.datastart, face.dataend));
  messages.emplace_back("request-raw", raw.SerializeAsString());
  pixels->set_channel_order(fer::v1::RawImage::CHANNEL_ORDER_BGR);
  pixels->set_channels(3);
  messages.emplace_back("request-raw-wrong-size", raw.SerializeAsString());
  fer::v1::ClassifyRequest many;
  for (int i = 0; i < kOverLimitFaces; ++i) many.add_faces()->set_encoded(images[0].second);
  messages.emplace_back("request-over-limit", many.SerializeAsString());
  messages.emplace_back("frame-empty", fer::v1::ClassifyFrame().SerializeAsString());
  // For the wire scan: fields this server does not know (a varint, and a
  // group holding a fixed32 and an empty group) beside a face, and a frame
  // cut short in its second face after its frame_id.
  const std::string unknown = std::string("\x98\x06\x01", 3) +
                              std::string("\xfb\x07\x0d\x01\x02\x03\x04\x13\x14\xfc\x07", 11);
  messages.emplace_back("request-unknown-fields", messages.front().second + unknown);
  fer::v1::ClassifyFrame cut;
  cut.set_frame_id(9);
  cut.add_faces()->set_encoded(images[0].second);
  cut.add_faces()->set_encoded(images[0].second);
  const std::string cut_bytes = cut.SerializeAsString();
  messages.emplace_back("frame-cut-short", cut_bytes.substr(0, cut_bytes.size() - 5));
  return messages;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: " << argv[0] << " IMAGE_DIR REQUEST_DIR [FACE_IMAGE ...]\n";
    return 2;
  }
  const std::string out_dir = argv[1];
  const std::string request_dir = argv[2];
  constexpr int kFirstFace = 3;
  std::vector<std::pair<std::string, cv::Mat>> faces;
  for (int i = kFirstFace; i < argc; ++i) {
    cv::Mat face = cv::imread(argv[i], cv::IMREAD_GRAYSCALE);
    if (face.empty()) {
      std::cerr << "cannot read face image " << argv[i] << "\n";
      return 1;
    }
    std::ifstream in(argv[i], std::ios::binary);
    const std::string original((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
    const std::string name = "face" + std::to_string(i - kFirstFace);
    Write(out_dir + "/" + name + "-original", original);
    faces.emplace_back(name, face);
  }
  if (faces.empty()) {
    // No data set: a smooth synthetic face-sized image still covers every path.
    cv::Mat synthetic(kSyntheticSize, kSyntheticSize, CV_8UC1);
    for (int y = 0; y < synthetic.rows; ++y) {
      for (int x = 0; x < synthetic.cols; ++x) synthetic.at<uint8_t>(y, x) = (x * 5 + y * 3) % 256;
    }
    faces.emplace_back("synthetic", synthetic);
  }

  uint32_t state = 12345;
  const auto next = [&state] {
    state = state * 1664525u + 1013904223u;
    return state >> 8;
  };
  size_t written = 0;
  size_t requests = 0;
  for (const auto& [face_name, face] : faces) {
    std::vector<std::pair<std::string, std::string>> for_requests;
    for (const auto& [name, bytes] : Encodings(face)) {
      if (bytes.empty()) continue;  // encoder missing from this OpenCV build
      const std::string base = out_dir + "/" + face_name + "-" + name;
      std::vector<std::pair<std::string, std::string>> variants = {
          {"", bytes},
          {".cut-third", bytes.substr(0, bytes.size() / 3)},
          {".cut-two-thirds", bytes.substr(0, bytes.size() * 2 / 3)},
          {".cut-last-byte", bytes.substr(0, bytes.size() - 1)},
      };
      for (int round = 0; round < 3; ++round) {
        std::string corrupt = bytes;
        const size_t range = round == 2 ? corrupt.size() : std::min(corrupt.size(), kHeaderBytes);
        for (int flip = 0; flip <= round; ++flip) {
          corrupt[next() % range] = static_cast<char>(next());
        }
        variants.emplace_back(".corrupt" + std::to_string(round), corrupt);
      }
      for_requests.emplace_back(name, bytes);
      for_requests.emplace_back(name + ".corrupt0", variants[4].second);
      for (const auto& [suffix, variant] : variants) {
        if (!Write(base + suffix, variant)) {
          std::cerr << "cannot write " << base + suffix << "\n";
          return 1;
        }
        ++written;
      }
    }
    for (const auto& [name, message] : Messages(for_requests, face)) {
      const std::string path = request_dir + "/" + face_name + "-" + name;
      if (!Write(path, message)) {
        std::cerr << "cannot write " << path << "\n";
        return 1;
      }
      ++requests;
    }
  }
  std::cout << "wrote " << written << " seeds to " << out_dir << " and " << requests << " to "
            << request_dir << "\n";
  return 0;
}
