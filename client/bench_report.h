// The result of one load-generator run and its two renderings: a short
// human-readable block and a JSON object whose keys (faces_per_s,
// requests_per_s, p50_ms, p90_ms, p99_ms, max_ms, codes) scripts and
// dashboards rely on.
#ifndef FER_CLIENT_BENCH_REPORT_H_
#define FER_CLIENT_BENCH_REPORT_H_

#include <cstdint>
#include <string>

#include "client/latency_stats.h"

namespace fer::client {

struct BenchReport {
  std::string mode;     // "unary" or "stream"
  int concurrency = 0;  // closed loop: callers; open loop: 0
  double rate = 0;      // open loop: requests/s offered; closed loop: 0
  int faces_per_request = 0;
  // First send to last answer; at least to the end of --duration when calls
  // were cut off unanswered (the wait for them after it is not counted).
  double elapsed_s = 0;
  CallRecorder::Totals totals;
  // How the run reacted to refusals (UNAVAILABLE, RESOURCE_EXHAUSTED): waits
  // taken before calling again, and open-loop calls not sent because their
  // scheduled start fell inside such a wait. Neither counts as a call.
  int64_t backoffs = 0;
  int64_t skipped = 0;
  double grace_s = 0;  // how long the run waited for answers after --duration
};

// Throughput of OK calls over the elapsed time (0 when nothing elapsed).
double RequestsPerSecond(const BenchReport& report);
double FacesPerSecond(const BenchReport& report);

// Several lines ending in a newline.
std::string FormatBenchText(const BenchReport& report);
// One JSON object on one line, ending in a newline.
std::string FormatBenchJson(const BenchReport& report);

}  // namespace fer::client

#endif  // FER_CLIENT_BENCH_REPORT_H_
