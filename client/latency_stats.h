// Latency percentiles and a thread-safe tally of finished calls, for the load
// generator (fer-client bench). No gRPC here: a call is described by its
// status code (gRPC and Abseil share the numbering), its latency and its
// number of faces.
#ifndef FER_CLIENT_LATENCY_STATS_H_
#define FER_CLIENT_LATENCY_STATS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace fer::client {

// The nearest-rank percentile of sorted (ascending) values: the smallest value
// with at least q of all values at or below it. q in [0, 1]; q = 0 gives the
// minimum, q = 1 the maximum. Returns 0 for no values.
double Percentile(const std::vector<double>& sorted, double q);

struct LatencySummary {
  size_t count = 0;
  double mean_ms = 0;
  double p50_ms = 0;
  double p90_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
};

// Summarises latencies in milliseconds (any order); all zero for none.
LatencySummary Summarize(std::vector<double> latencies_ms);

// The name of a gRPC status code, as grpc and Prometheus labels spell it:
// "OK", "INVALID_ARGUMENT", ...; "CODE_<n>" for a number outside the enum.
std::string StatusCodeName(int code);

// Collects finished calls from any number of threads. Every call counts under
// its status code; only OK calls contribute latency and faces, so that fast
// rejections (a full queue) cannot flatter the throughput or latency figures.
class CallRecorder {
 public:
  struct Totals {
    int64_t calls = 0;                     // every finished call
    int64_t unfinished = 0;                // calls cut off unanswered at the end of the run
    int64_t ok_calls = 0;                  // calls with status OK
    int64_t ok_faces = 0;                  // faces of the OK calls
    std::map<std::string, int64_t> codes;  // calls per status code name
    std::vector<double> ok_latencies_ms;   // one per OK call, in finishing order
  };

  // Thread-safe.
  void Record(int code, double latency_ms, int faces);
  // A call still unanswered when the run stopped waiting for it: counted in
  // calls and unfinished, under no status code. Thread-safe.
  void RecordUnfinished();
  // A copy of everything recorded so far. Thread-safe.
  Totals Snapshot() const;

 private:
  mutable std::mutex mu_;
  Totals totals_;
};

}  // namespace fer::client

#endif  // FER_CLIENT_LATENCY_STATS_H_
