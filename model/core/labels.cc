#include "model/core/labels.h"

#include <algorithm>
#include <cctype>
#include <string>

namespace fer {
namespace {

struct Alias {
  std::string_view name;
  int label;
};

constexpr Alias kAliases[] = {
    {"neutral", 0},   {"ne", 0},                    //
    {"anger", 1},     {"angry", 1},     {"an", 1},  //
    {"disgust", 2},   {"disgusted", 2}, {"di", 2},  //
    {"fear", 3},      {"fearful", 3},   {"fe", 3},  //
    {"happiness", 4}, {"happy", 4},     {"ha", 4},  //
    {"sadness", 5},   {"sad", 5},       {"sa", 5},  //
    {"surprise", 6},  {"surprised", 6}, {"su", 6},
};

}  // namespace

const std::array<std::string_view, kNumClasses>& LabelNames() {
  static constexpr std::array<std::string_view, kNumClasses> kNames = {
      "neutral", "anger", "disgust", "fear", "happiness", "sadness", "surprise"};
  return kNames;
}

std::optional<int> LabelFromAlias(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const Alias& alias : kAliases) {
    if (alias.name == lower) return alias.label;
  }
  return std::nullopt;
}

}  // namespace fer
