#include "model/core/model_meta.h"

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "model/core/labels.h"

namespace fer {

ModelMeta DefaultMeta(const ArchOptions& arch) {
  ModelMeta meta;
  meta.arch = arch;
  for (std::string_view name : LabelNames()) meta.labels.emplace_back(name);
  meta.created = absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone());
  return meta;
}

}  // namespace fer
