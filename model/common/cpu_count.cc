#include "model/common/cpu_count.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace fer {
namespace {

constexpr char kCgroupRoot[] = "/sys/fs/cgroup";
constexpr char kCgroupV1CpuRoot[] = "/sys/fs/cgroup/cpu";

// Debian's Abseil has its own string_view; the public interface takes std's.
absl::string_view View(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// A quota in CPUs from microseconds per period; nullopt unless both positive.
std::optional<double> Quota(int64_t quota_us, int64_t period_us) {
  if (quota_us <= 0 || period_us <= 0) return std::nullopt;
  return static_cast<double>(quota_us) / static_cast<double>(period_us);
}

// The folders from root + cgroup_path up to root itself: a cgroup's limit
// may be set on any ancestor.
std::vector<std::string> SelfAndAncestors(const std::string& root, std::string cgroup_path) {
  std::vector<std::string> dirs;
  while (!cgroup_path.empty() && cgroup_path.back() == '/') cgroup_path.pop_back();
  for (;;) {
    dirs.push_back(root + cgroup_path);
    if (cgroup_path.empty()) break;
    cgroup_path.erase(cgroup_path.rfind('/'));
  }
  return dirs;
}

std::optional<double> Min(std::optional<double> a, std::optional<double> b) {
  if (!a) return b;
  if (!b) return a;
  return std::min(*a, *b);
}

// The lowest quota along a cgroup's path in one hierarchy.
std::optional<double> QuotaAlong(const FileReader& read_file, bool v2, const std::string& path) {
  std::optional<double> lowest;
  for (const std::string& dir : SelfAndAncestors(v2 ? kCgroupRoot : kCgroupV1CpuRoot, path)) {
    if (v2) {
      if (auto text = read_file(dir + "/cpu.max")) lowest = Min(lowest, ParseCgroupV2CpuMax(*text));
      continue;
    }
    auto quota = read_file(dir + "/cpu.cfs_quota_us");
    auto period = read_file(dir + "/cpu.cfs_period_us");
    if (quota && period) lowest = Min(lowest, ParseCgroupV1Quota(*quota, *period));
  }
  return lowest;
}

std::optional<std::string> ReadRealFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return text.str();
}

int AffinityCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  // Fails only on machines with more CPUs than a cpu_set_t holds (1024).
  if (sched_getaffinity(0, sizeof(set), &set) != 0) {
    return static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  }
  return CPU_COUNT(&set);
}

}  // namespace

std::optional<double> ParseCgroupV2CpuMax(std::string_view cpu_max) {
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::StripAsciiWhitespace(View(cpu_max)), ' ', absl::SkipEmpty());
  if (fields.empty() || fields.size() > 2 || fields[0] == "max") return std::nullopt;
  int64_t quota = 0;
  int64_t period = 100000;  // the kernel's default when only the quota is written
  if (!absl::SimpleAtoi(fields[0], &quota)) return std::nullopt;
  if (fields.size() == 2 && !absl::SimpleAtoi(fields[1], &period)) return std::nullopt;
  return Quota(quota, period);
}

std::optional<double> ParseCgroupV1Quota(std::string_view quota_us, std::string_view period_us) {
  int64_t quota = 0;
  int64_t period = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(View(quota_us)), &quota) ||
      !absl::SimpleAtoi(absl::StripAsciiWhitespace(View(period_us)), &period)) {
    return std::nullopt;
  }
  return Quota(quota, period);
}

std::optional<double> CgroupCpuQuota(const FileReader& read_file) {
  const std::optional<std::string> cgroups = read_file("/proc/self/cgroup");
  if (!cgroups) return std::nullopt;
  std::optional<double> lowest;
  // Lines are "id:controllers:path": "0::/path" for cgroup v2, and
  // "4:cpu,cpuacct:/path" for the v1 hierarchy with the cpu controller.
  for (absl::string_view line : absl::StrSplit(*cgroups, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (fields.size() != 3 || fields[2].empty() || fields[2][0] != '/') continue;
    const std::string path(fields[2]);
    if (fields[0] == "0" && fields[1].empty()) {
      lowest = Min(lowest, QuotaAlong(read_file, /*v2=*/true, path));
      continue;
    }
    std::vector<absl::string_view> controllers = absl::StrSplit(fields[1], ',');
    if (std::find(controllers.begin(), controllers.end(), "cpu") != controllers.end()) {
      lowest = Min(lowest, QuotaAlong(read_file, /*v2=*/false, path));
    }
  }
  return lowest;
}

int UsableCpus(int affinity_cpus, std::optional<double> quota) {
  int cpus = affinity_cpus;
  if (quota && *quota > 0) {
    // Capped before the cast, so that an absurd quota cannot overflow int.
    const int quota_cpus = static_cast<int>(std::ceil(std::min(*quota, 1e6)));
    cpus = cpus > 0 ? std::min(cpus, quota_cpus) : quota_cpus;
  }
  return std::max(1, cpus);
}

int UsableCpuCount() { return UsableCpus(AffinityCpus(), CgroupCpuQuota(ReadRealFile)); }

}  // namespace fer
