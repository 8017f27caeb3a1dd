#include "client/latency_stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace fer::client {
namespace {

// gRPC's codes run from OK (0) to UNAUTHENTICATED (16).
constexpr int kLastStatusCode = 16;

}  // namespace

double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double rank = std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(sorted.size()));
  const size_t index = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  return sorted[std::min(index, sorted.size() - 1)];
}

LatencySummary Summarize(std::vector<double> latencies_ms) {
  LatencySummary summary;
  if (latencies_ms.empty()) return summary;
  std::sort(latencies_ms.begin(), latencies_ms.end());
  summary.count = latencies_ms.size();
  summary.mean_ms = std::accumulate(latencies_ms.begin(), latencies_ms.end(), 0.0) /
                    static_cast<double>(latencies_ms.size());
  summary.p50_ms = Percentile(latencies_ms, 0.50);
  summary.p90_ms = Percentile(latencies_ms, 0.90);
  summary.p99_ms = Percentile(latencies_ms, 0.99);
  summary.max_ms = latencies_ms.back();
  return summary;
}

std::string StatusCodeName(int code) {
  if (code < 0 || code > kLastStatusCode) return absl::StrCat("CODE_", code);
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

void CallRecorder::Record(int code, double latency_ms, int faces) {
  const std::string name = StatusCodeName(code);
  std::lock_guard<std::mutex> lock(mu_);
  ++totals_.calls;
  ++totals_.codes[name];
  if (code == 0) {
    ++totals_.ok_calls;
    totals_.ok_faces += faces;
    totals_.ok_latencies_ms.push_back(latency_ms);
  }
}

void CallRecorder::RecordUnfinished() {
  std::lock_guard<std::mutex> lock(mu_);
  ++totals_.calls;
  ++totals_.unfinished;
}

CallRecorder::Totals CallRecorder::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return totals_;
}

}  // namespace fer::client
