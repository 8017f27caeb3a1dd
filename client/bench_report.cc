#include "client/bench_report.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "model/common/json_text.h"

namespace fer::client {

double RequestsPerSecond(const BenchReport& report) {
  return report.elapsed_s > 0 ? static_cast<double>(report.totals.ok_calls) / report.elapsed_s
                              : 0.0;
}

double FacesPerSecond(const BenchReport& report) {
  return report.elapsed_s > 0 ? static_cast<double>(report.totals.ok_faces) / report.elapsed_s
                              : 0.0;
}

std::string FormatBenchText(const BenchReport& report) {
  const LatencySummary latency = Summarize(report.totals.ok_latencies_ms);
  const std::string load = report.rate > 0
                               ? absl::StrFormat("open loop at %.1f requests/s", report.rate)
                               : absl::StrFormat("closed loop, concurrency %d", report.concurrency);
  std::vector<std::string> codes;
  for (const auto& [name, count] : report.totals.codes)
    codes.push_back(absl::StrCat(name, " ", count));
  if (report.totals.unfinished > 0) {
    codes.push_back(absl::StrFormat("%d unfinished (no answer %.1f s after the end)",
                                    report.totals.unfinished, report.grace_s));
  }
  std::string text = absl::StrFormat(
      "mode        %s, %s, %d faces per request, %.2f s\n"
      "throughput  %.1f requests/s, %.1f faces/s (OK calls)\n"
      "latency     p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms  mean %.2f ms\n"
      "calls       %d: %s\n",
      report.mode, load, report.faces_per_request, report.elapsed_s, RequestsPerSecond(report),
      FacesPerSecond(report), latency.p50_ms, latency.p90_ms, latency.p99_ms, latency.max_ms,
      latency.mean_ms, report.totals.calls,
      codes.empty() ? std::string("none") : absl::StrJoin(codes, ", "));
  if (report.backoffs > 0 || report.skipped > 0) {
    absl::StrAppendFormat(&text,
                          "backoff     %d waits after refusals, %d scheduled calls skipped\n",
                          report.backoffs, report.skipped);
  }
  return text;
}

std::string FormatBenchJson(const BenchReport& report) {
  const LatencySummary latency = Summarize(report.totals.ok_latencies_ms);
  std::vector<std::string> codes;
  for (const auto& [name, count] : report.totals.codes) {
    codes.push_back(absl::StrCat(JsonString(name), ":", count));
  }
  // Every figure through JsonNumber, so that a NaN (no calls, a zero
  // elapsed time) is null and the line stays JSON.
  auto figure = [](double value) { return JsonNumber(value, 3); };
  return absl::StrCat(
      "{\"mode\":", JsonString(report.mode), ",\"concurrency\":", report.concurrency,
      ",\"rate\":", figure(report.rate), ",\"faces_per_request\":", report.faces_per_request,
      ",\"elapsed_s\":", figure(report.elapsed_s), ",\"requests\":", report.totals.calls,
      ",\"ok_requests\":", report.totals.ok_calls, ",\"faces\":", report.totals.ok_faces,
      ",\"requests_per_s\":", figure(RequestsPerSecond(report)),
      ",\"faces_per_s\":", figure(FacesPerSecond(report)), ",\"p50_ms\":", figure(latency.p50_ms),
      ",\"p90_ms\":", figure(latency.p90_ms), ",\"p99_ms\":", figure(latency.p99_ms),
      ",\"max_ms\":", figure(latency.max_ms), ",\"mean_ms\":", figure(latency.mean_ms),
      ",\"codes\":{", absl::StrJoin(codes, ","), "},\"unfinished\":", report.totals.unfinished,
      ",\"backoffs\":", report.backoffs, ",\"skipped\":", report.skipped, "}\n");
}

}  // namespace fer::client
