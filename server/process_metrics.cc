#include "server/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace fer {
namespace {

std::string ReadWhole(const char* path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Fills start time, virtual and resident memory from /proc/self/stat, whose
// second field (the command name, in parentheses) may itself hold spaces, so
// fields are counted from the last ')'.
absl::Status ReadStat(ProcessStats* stats) {
  const std::string stat = ReadWhole("/proc/self/stat");
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return absl::UnavailableError("cannot read /proc/self/stat");
  const std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(stat).substr(paren + 1), ' ', absl::SkipEmpty());
  // fields[0] is field 3 (state) of proc(5): starttime is field 22, vsize 23,
  // rss 24.
  uint64_t start_ticks = 0, vsize = 0, rss_pages = 0;
  if (fields.size() < 22 || !absl::SimpleAtoi(fields[19], &start_ticks) ||
      !absl::SimpleAtoi(fields[20], &vsize) || !absl::SimpleAtoi(fields[21], &rss_pages)) {
    return absl::UnavailableError("cannot parse /proc/self/stat");
  }
  // starttime counts clock ticks since boot; /proc/stat's btime is the boot.
  uint64_t boot_time = 0;
  std::istringstream lines(ReadWhole("/proc/stat"));
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("btime ", 0) == 0 && absl::SimpleAtoi(line.substr(6), &boot_time)) break;
  }
  if (boot_time == 0) return absl::UnavailableError("cannot read btime from /proc/stat");
  stats->start_time_seconds =
      static_cast<double>(boot_time) +
      static_cast<double>(start_ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
  stats->virtual_memory_bytes = static_cast<double>(vsize);
  stats->resident_memory_bytes =
      static_cast<double>(rss_pages) * static_cast<double>(sysconf(_SC_PAGESIZE));
  return absl::OkStatus();
}

// Entries of /proc/self/fd, less the one opendir itself holds.
absl::Status CountOpenFds(ProcessStats* stats) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return absl::UnavailableError("cannot read /proc/self/fd");
  int count = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  stats->open_fds = count - 1;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ProcessStats> ReadProcessStats() {
  ProcessStats stats;
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  stats.cpu_seconds = seconds(usage.ru_utime) + seconds(usage.ru_stime);
  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  stats.max_fds = static_cast<double>(files.rlim_cur);
  if (absl::Status status = ReadStat(&stats); !status.ok()) return status;
  if (absl::Status status = CountOpenFds(&stats); !status.ok()) return status;
  return stats;
}

}  // namespace fer
