// fer-model bench: raw forward throughput and latency of the inference engine,
// the ceiling the server is measured against. Each row runs one batch size,
// thread count and precision on random faces, through Runner::Classify exactly
// as the server calls it (8-bit faces in, probabilities out). --attention_maps adds,
// after each row, the same row with attention maps asked for (the cost of maps).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "model/common/cpu_count.h"
#include "model/common/json_text.h"
#include "model/core/engine.h"
#include "model/training/tools/commands.h"
#include "model/training/tools/flags_util.h"

ABSL_FLAG(std::string, batch_sizes, "1,8,32", "bench: batch sizes to measure");
ABSL_FLAG(std::string, thread_counts, "",
          "bench: CPU thread counts to measure (default --threads)");
ABSL_FLAG(std::string, precisions, "", "bench: precisions to measure (default --precision)");
ABSL_FLAG(double, seconds, 5.0, "bench: measuring time per row, after warm-up");
ABSL_FLAG(int, warmup, 2, "bench: untimed batches before each row");
ABSL_FLAG(bool, attention_maps, false,
          "bench: also measure every row with attention maps (Runner::Classify's maps)");

namespace fer {
namespace {

struct Row {
  std::string precision;
  int threads = 0;
  int batch = 0;
  bool attention = false;  // Whether the row asked for attention maps.
  int iterations = 0;
  double faces_per_s = 0, p50_ms = 0, p90_ms = 0, p99_ms = 0;
};

double Percentile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  const size_t index = std::min(values.size() - 1, static_cast<size_t>(q * values.size()));
  return values[index];
}

// What bench measures: every batch size at every thread count and precision.
struct BenchGrid {
  std::vector<int> batches;
  std::vector<int> threads;
  std::vector<std::string> precisions;
};

absl::StatusOr<BenchGrid> GridFromFlags() {
  BenchGrid grid;
  if (auto s = ParseIntList(absl::GetFlag(FLAGS_batch_sizes), "batch_sizes", &grid.batches);
      !s.ok()) {
    return s;
  }
  std::string thread_text = absl::GetFlag(FLAGS_thread_counts);
  if (thread_text.empty()) thread_text = absl::StrCat(absl::GetFlag(FLAGS_threads));
  if (thread_text == "0") {
    // What Engine::Load would use for 0, as a number in the table.
    grid.threads = {UsableCpuCount()};
  } else if (auto s = ParseIntList(thread_text, "thread_counts", &grid.threads); !s.ok()) {
    return s;
  }
  std::string precision_text = absl::GetFlag(FLAGS_precisions);
  if (precision_text.empty()) precision_text = absl::GetFlag(FLAGS_precision);
  grid.precisions = absl::StrSplit(precision_text, ',', absl::SkipEmpty());
  return grid;
}

// Classifies `batch` random faces (drawn from rng) --warmup times untimed,
// then for at least `seconds` and 3 batches timed. row has its precision,
// threads and batch set; the rest is filled in.
absl::Status MeasureRow(Engine& engine, Runner& runner, std::mt19937& rng, double seconds,
                        Row* row) {
  const int batch = row->batch;
  std::vector<uint8_t> faces(engine.face_bytes() * batch);
  for (auto& v : faces) v = static_cast<uint8_t>(rng());
  std::vector<float> probs(static_cast<size_t>(batch) * engine.num_classes());
  std::vector<float> maps(row->attention ? batch * engine.attention_size() : 0);
  float* const attention = row->attention ? maps.data() : nullptr;
  for (int i = 0; i < absl::GetFlag(FLAGS_warmup); ++i) {
    if (auto s = runner.Classify(faces.data(), batch, probs.data(), attention); !s.ok()) return s;
  }
  std::vector<double> latencies;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (elapsed < seconds || latencies.size() < 3) {
    const auto t0 = std::chrono::steady_clock::now();
    if (auto s = runner.Classify(faces.data(), batch, probs.data(), attention); !s.ok()) return s;
    const auto t1 = std::chrono::steady_clock::now();
    latencies.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    elapsed = std::chrono::duration<double>(t1 - start).count();
  }
  row->iterations = static_cast<int>(latencies.size());
  row->faces_per_s = batch * latencies.size() / elapsed;
  row->p50_ms = Percentile(latencies, 0.50);
  row->p90_ms = Percentile(latencies, 0.90);
  row->p99_ms = Percentile(latencies, 0.99);
  return absl::OkStatus();
}

// One table row on stdout as soon as it is measured, under a header before the first.
void PrintTableRow(const std::string& device, const std::string& path, bool first, const Row& row) {
  if (first) {
    std::printf("device %s, model %s\n%-9s %7s %6s %4s %12s %9s %9s %9s %6s\n", device.c_str(),
                path.c_str(), "precision", "threads", "batch", "maps", "faces/s", "p50 ms",
                "p90 ms", "p99 ms", "iters");
  }
  std::printf("%-9s %7d %6d %4s %12.1f %9.2f %9.2f %9.2f %6d\n", row.precision.c_str(), row.threads,
              row.batch, row.attention ? "yes" : "no", row.faces_per_s, row.p50_ms, row.p90_ms,
              row.p99_ms, row.iterations);
  std::fflush(stdout);
}

void PrintJson(const std::string& device, const std::vector<Row>& rows) {
  std::vector<std::string> items;
  for (const Row& r : rows) {
    items.push_back(absl::StrCat(
        "{\"device\": ", JsonString(device), ", \"precision\": ", JsonString(r.precision),
        ", \"threads\": ", r.threads, ", \"batch\": ", r.batch,
        ", \"attention\": ", r.attention ? "true" : "false", ", \"iterations\": ", r.iterations,
        ", \"faces_per_s\": ", JsonNumber(r.faces_per_s), ", \"p50_ms\": ", JsonNumber(r.p50_ms),
        ", \"p90_ms\": ", JsonNumber(r.p90_ms), ", \"p99_ms\": ", JsonNumber(r.p99_ms), "}"));
  }
  std::printf("[%s]\n", absl::StrJoin(items, ",\n ").c_str());
}

}  // namespace

int RunBench(int argc, char** argv) {
  if (!ParseCommandFlags(argc, argv,
                         "fer-model bench --model=FILE [--batch_sizes=1,8,32] [--device] "
                         "[--precisions=fp32,bf16] [--thread_counts=1,2] [--seconds] "
                         "[--attention_maps] [--json]")) {
    return 2;
  }
  const std::string path = absl::GetFlag(FLAGS_model);
  if (path.empty()) return Fail("bench", absl::InvalidArgumentError("--model is required"));
  auto grid = GridFromFlags();
  if (!grid.ok()) return Fail("bench", grid.status());
  const bool json = absl::GetFlag(FLAGS_json);
  const double seconds = absl::GetFlag(FLAGS_seconds);
  std::vector<Row> rows;
  std::string device;
  for (const std::string& precision : grid->precisions) {
    for (int thread_count : grid->threads) {
      EngineOptions options{absl::GetFlag(FLAGS_device), precision, thread_count};
      auto engine = Engine::Load(path, options);
      if (!engine.ok()) return Fail("bench", engine.status());
      device = (*engine)->device();
      auto runner = (*engine)->NewRunner();
      std::mt19937 rng(42);  // The same faces for every engine.
      for (int batch : grid->batches) {
        for (bool attention : {false, true}) {
          if (attention && !absl::GetFlag(FLAGS_attention_maps)) continue;
          Row row{precision, thread_count, batch, attention};
          if (auto s = MeasureRow(**engine, *runner, rng, seconds, &row); !s.ok()) {
            return Fail("bench", s);
          }
          if (!json) PrintTableRow(device, path, rows.empty(), row);
          rows.push_back(row);
        }
      }
    }
  }
  if (json) PrintJson(device, rows);
  return 0;
}

}  // namespace fer
