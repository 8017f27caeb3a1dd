// What the Prometheus client libraries call the standard process metrics,
// read from the kernel at scrape time: CPU time, memory, descriptors and the
// start time of this process. Linux only (/proc/self); no Prometheus types
// here, so that the figures can be tested on their own.
#ifndef FER_SERVER_PROCESS_METRICS_H_
#define FER_SERVER_PROCESS_METRICS_H_

#include "absl/status/statusor.h"

namespace fer {

struct ProcessStats {
  double cpu_seconds = 0;            // user + system CPU time, all threads
  double resident_memory_bytes = 0;  // RSS
  double virtual_memory_bytes = 0;   // address-space size
  double open_fds = 0;               // descriptors open now
  double max_fds = 0;                // the soft RLIMIT_NOFILE
  double start_time_seconds = 0;     // process start, seconds since the Unix epoch
};

// The figures now. An error (naming the file) when /proc cannot be read;
// a scrape then goes without them rather than failing.
absl::StatusOr<ProcessStats> ReadProcessStats();

}  // namespace fer

#endif  // FER_SERVER_PROCESS_METRICS_H_
