// How many CPUs this process may use: the default of every thread count
// (LibTorch's intra-op threads, the server's preprocessing threads, fer-model's
// tools). Abseil only, no LibTorch.
//
// The count is the CPUs of the process's affinity mask (sched_getaffinity,
// which taskset and cpusets narrow), further limited by the CPU quota of its
// cgroup and of every ancestor cgroup (cgroup v2 cpu.max, cgroup v1
// cpu.cfs_quota_us / cpu.cfs_period_us), which is what a container's
// "cpus: 2" or a Kubernetes CPU limit sets. A fractional quota is rounded up
// (1.5 CPUs: 2 threads); the result is at least 1.
#ifndef FER_MODEL_CPU_COUNT_H_
#define FER_MODEL_CPU_COUNT_H_

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace fer {

// The quota of a cgroup v2 cpu.max file ("200000 100000": 2.0 CPUs); nullopt
// for "max ..." (no limit) or text that is not a quota.
std::optional<double> ParseCgroupV2CpuMax(std::string_view cpu_max);

// The quota of cgroup v1 cpu.cfs_quota_us and cpu.cfs_period_us ("150000",
// "100000": 1.5 CPUs); nullopt for a quota of -1 (no limit) or bad text.
std::optional<double> ParseCgroupV1Quota(std::string_view quota_us, std::string_view period_us);

// Returns the contents of a file, or nullopt when it cannot be read.
using FileReader = std::function<std::optional<std::string>(const std::string& path)>;

// The smallest CPU quota that applies to the process, found through
// read_file alone: /proc/self/cgroup names the process's cgroups; for cgroup
// v2 the cpu.max of that cgroup and of each ancestor under /sys/fs/cgroup, for
// cgroup v1 the cfs files of each level under /sys/fs/cgroup/cpu. nullopt:
// no quota.
std::optional<double> CgroupCpuQuota(const FileReader& read_file);

// min(affinity_cpus, ceil(quota)), at least 1; affinity_cpus <= 0 means
// unknown (then the quota alone, or 1).
int UsableCpus(int affinity_cpus, std::optional<double> quota);

// UsableCpus of this process, from sched_getaffinity and the real cgroup
// files. Computed on every call (cheap: a few small files).
int UsableCpuCount();

}  // namespace fer

#endif  // FER_MODEL_CPU_COUNT_H_
