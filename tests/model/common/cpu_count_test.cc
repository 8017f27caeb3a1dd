// The default thread count: the CPUs of the affinity mask, limited by the
// cgroup CPU quota. Parsing and the cgroup walk run on fake file contents.
#include "model/common/cpu_count.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>

namespace fer {
namespace {

TEST(CpuCountTest, ParsesCgroupV2CpuMax) {
  EXPECT_EQ(ParseCgroupV2CpuMax("200000 100000\n"), 2.0);
  EXPECT_EQ(ParseCgroupV2CpuMax("150000 100000"), 1.5);
  EXPECT_EQ(ParseCgroupV2CpuMax("50000 100000"), 0.5);
  EXPECT_EQ(ParseCgroupV2CpuMax("300000"), 3.0);  // period defaults to 100 ms
  EXPECT_EQ(ParseCgroupV2CpuMax("max 100000\n"), std::nullopt);
  EXPECT_EQ(ParseCgroupV2CpuMax("max"), std::nullopt);
  EXPECT_EQ(ParseCgroupV2CpuMax(""), std::nullopt);
  EXPECT_EQ(ParseCgroupV2CpuMax("lots 100000"), std::nullopt);
  EXPECT_EQ(ParseCgroupV2CpuMax("100000 0"), std::nullopt);
  EXPECT_EQ(ParseCgroupV2CpuMax("1 2 3"), std::nullopt);
}

TEST(CpuCountTest, ParsesCgroupV1Quota) {
  EXPECT_EQ(ParseCgroupV1Quota("150000\n", "100000\n"), 1.5);
  EXPECT_EQ(ParseCgroupV1Quota("400000", "100000"), 4.0);
  EXPECT_EQ(ParseCgroupV1Quota("-1\n", "100000\n"), std::nullopt);
  EXPECT_EQ(ParseCgroupV1Quota("x", "100000"), std::nullopt);
  EXPECT_EQ(ParseCgroupV1Quota("100000", "0"), std::nullopt);
}

TEST(CpuCountTest, UsableCpusIsTheAffinityCappedByTheQuotaRoundedUpAndAtLeastOne) {
  EXPECT_EQ(UsableCpus(8, std::nullopt), 8);
  EXPECT_EQ(UsableCpus(8, 2.0), 2);
  EXPECT_EQ(UsableCpus(8, 1.5), 2);
  EXPECT_EQ(UsableCpus(8, 0.1), 1);
  EXPECT_EQ(UsableCpus(2, 16.0), 2);
  EXPECT_EQ(UsableCpus(0, std::nullopt), 1);
  EXPECT_EQ(UsableCpus(0, 3.0), 3);
  EXPECT_EQ(UsableCpus(4, 1e300), 4);
}

// A fake file system: path -> contents.
FileReader Files(std::map<std::string, std::string> files) {
  return [files = std::move(files)](const std::string& path) -> std::optional<std::string> {
    auto it = files.find(path);
    if (it == files.end()) return std::nullopt;
    return it->second;
  };
}

TEST(CpuCountTest, CgroupV2QuotaOfTheNamespaceRoot) {
  // A container with its own cgroup namespace: the process is at "/".
  EXPECT_EQ(CgroupCpuQuota(Files(
                {{"/proc/self/cgroup", "0::/\n"}, {"/sys/fs/cgroup/cpu.max", "200000 100000\n"}})),
            2.0);
  EXPECT_EQ(CgroupCpuQuota(Files(
                {{"/proc/self/cgroup", "0::/\n"}, {"/sys/fs/cgroup/cpu.max", "max 100000\n"}})),
            std::nullopt);
}

TEST(CpuCountTest, CgroupV2TakesTheLowestQuotaOfTheCgroupAndItsAncestors) {
  const std::string cgroup = "0::/kubepods.slice/pod1.slice/cri-abc.scope\n";
  EXPECT_EQ(CgroupCpuQuota(Files({
                {"/proc/self/cgroup", cgroup},
                {"/sys/fs/cgroup/kubepods.slice/pod1.slice/cri-abc.scope/cpu.max", "max 100000"},
                {"/sys/fs/cgroup/kubepods.slice/pod1.slice/cpu.max", "150000 100000"},
                {"/sys/fs/cgroup/kubepods.slice/cpu.max", "800000 100000"},
            })),
            1.5);
  EXPECT_EQ(CgroupCpuQuota(Files({{"/proc/self/cgroup", cgroup}})), std::nullopt);
}

TEST(CpuCountTest, CgroupV1QuotaOfTheCpuController) {
  const std::string cgroups =
      "12:memory:/docker/abc\n"
      "4:cpu,cpuacct:/docker/abc\n"
      "1:name=systemd:/docker/abc\n";
  EXPECT_EQ(CgroupCpuQuota(Files({
                {"/proc/self/cgroup", cgroups},
                {"/sys/fs/cgroup/cpu/docker/abc/cpu.cfs_quota_us", "250000\n"},
                {"/sys/fs/cgroup/cpu/docker/abc/cpu.cfs_period_us", "100000\n"},
            })),
            2.5);
  // Inside the container the mount root is the container's own cgroup.
  EXPECT_EQ(CgroupCpuQuota(Files({
                {"/proc/self/cgroup", cgroups},
                {"/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "100000\n"},
                {"/sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n"},
            })),
            1.0);
  EXPECT_EQ(CgroupCpuQuota(Files({
                {"/proc/self/cgroup", cgroups},
                {"/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n"},
                {"/sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n"},
            })),
            std::nullopt);
}

TEST(CpuCountTest, NoCgroupFileMeansNoQuota) {
  EXPECT_EQ(CgroupCpuQuota(Files({})), std::nullopt);
  EXPECT_EQ(CgroupCpuQuota(Files({{"/proc/self/cgroup", "garbage\n"}})), std::nullopt);
}

TEST(CpuCountTest, ThisProcessHasAtLeastOneCpu) {
  const int cpus = UsableCpuCount();
  EXPECT_GE(cpus, 1);
  EXPECT_LE(cpus, 1 << 16);
}

}  // namespace
}  // namespace fer
