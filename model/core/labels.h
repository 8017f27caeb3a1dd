// The seven expression labels in the one order used everywhere: tensors, the
// proto, weight files, packed data sets and metrics (Aff-Wild2's EXPR order).
#ifndef FER_MODEL_LABELS_H_
#define FER_MODEL_LABELS_H_

#include <array>
#include <optional>
#include <string_view>

namespace fer {

inline constexpr int kNumClasses = 7;

// Canonical names by index: neutral, anger, disgust, fear, happiness, sadness, surprise.
const std::array<std::string_view, kNumClasses>& LabelNames();

// Maps a folder or file name to a label index through the aliases of the
// model specification ("angry", "happy", "ha", ...), ignoring case. Returns
// nullopt for anything else (contempt, unknown, ...): callers skip and count
// such classes, they never guess.
std::optional<int> LabelFromAlias(std::string_view name);

}  // namespace fer

#endif  // FER_MODEL_LABELS_H_
