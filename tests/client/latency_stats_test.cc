// Percentiles, the thread-safe call tally and the bench report: what the
// numbers mean and the JSON keys scripts rely on.
#include "client/latency_stats.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>
#include <vector>

#include "client/bench_report.h"
#include "tests/client/json_test_util.h"
#include "tests/support/parallel_for.h"

namespace fer::client {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

TEST(PercentileTest, IsTheNearestRank) {
  std::vector<double> values;
  for (int i = 1; i <= 100; ++i) values.push_back(i);
  EXPECT_DOUBLE_EQ(Percentile(values, 0.50), 50);
  EXPECT_DOUBLE_EQ(Percentile(values, 0.90), 90);
  EXPECT_DOUBLE_EQ(Percentile(values, 0.99), 99);
  EXPECT_DOUBLE_EQ(Percentile(values, 1.0), 100);
  EXPECT_DOUBLE_EQ(Percentile(values, 0.0), 1);
  EXPECT_DOUBLE_EQ(Percentile({7}, 0.5), 7);
  EXPECT_DOUBLE_EQ(Percentile({1, 2, 3, 4}, 0.5), 2);  // half the values are <= 2
  EXPECT_DOUBLE_EQ(Percentile({}, 0.5), 0);
}

TEST(SummarizeTest, SortsAndReportsPercentilesMaxAndMean) {
  const LatencySummary s = Summarize({5, 1, 4, 2, 3});
  EXPECT_EQ(s.count, 5u);
  EXPECT_DOUBLE_EQ(s.p50_ms, 3);
  EXPECT_DOUBLE_EQ(s.p90_ms, 5);
  EXPECT_DOUBLE_EQ(s.max_ms, 5);
  EXPECT_DOUBLE_EQ(s.mean_ms, 3);
  EXPECT_EQ(Summarize({}).count, 0u);
  EXPECT_DOUBLE_EQ(Summarize({}).p99_ms, 0);
}

TEST(StatusCodeNameTest, SpellsCodesAsGrpcDoes) {
  EXPECT_EQ(StatusCodeName(0), "OK");
  EXPECT_EQ(StatusCodeName(3), "INVALID_ARGUMENT");
  EXPECT_EQ(StatusCodeName(4), "DEADLINE_EXCEEDED");
  EXPECT_EQ(StatusCodeName(8), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(StatusCodeName(14), "UNAVAILABLE");
  EXPECT_EQ(StatusCodeName(99), "CODE_99");
}

TEST(CallRecorderTest, CountsEveryCodeButOnlyOkCallsForLatencyAndFaces) {
  CallRecorder recorder;
  recorder.Record(0, 10.0, 4);
  recorder.Record(8, 0.5, 4);
  recorder.Record(0, 20.0, 4);
  const CallRecorder::Totals totals = recorder.Snapshot();
  EXPECT_EQ(totals.calls, 3);
  EXPECT_EQ(totals.ok_calls, 2);
  EXPECT_EQ(totals.ok_faces, 8);
  EXPECT_THAT(totals.codes, UnorderedElementsAre(Pair("OK", 2), Pair("RESOURCE_EXHAUSTED", 1)));
  EXPECT_EQ(totals.ok_latencies_ms, (std::vector<double>{10.0, 20.0}));
}

TEST(CallRecorderTest, IsSafeFromManyThreads) {
  CallRecorder recorder;
  constexpr int kThreads = 8;
  constexpr int kCallsEach = 1000;
  test_support::ParallelFor(kThreads, [&](int) {
    for (int i = 0; i < kCallsEach; ++i) recorder.Record(i % 2 == 0 ? 0 : 14, 1.0, 1);
  });
  const CallRecorder::Totals totals = recorder.Snapshot();
  EXPECT_EQ(totals.calls, kThreads * kCallsEach);
  EXPECT_EQ(totals.codes.at("OK"), kThreads * kCallsEach / 2);
  EXPECT_EQ(totals.codes.at("UNAVAILABLE"), kThreads * kCallsEach / 2);
  EXPECT_EQ(totals.ok_latencies_ms.size(), static_cast<size_t>(kThreads * kCallsEach / 2));
}

TEST(CallRecorderTest, UnfinishedCallsCountAsCallsUnderNoCode) {
  CallRecorder recorder;
  recorder.Record(0, 10.0, 1);
  recorder.RecordUnfinished();
  recorder.RecordUnfinished();
  const CallRecorder::Totals totals = recorder.Snapshot();
  EXPECT_EQ(totals.calls, 3);
  EXPECT_EQ(totals.unfinished, 2);
  EXPECT_EQ(totals.ok_calls, 1);
  EXPECT_THAT(totals.codes, UnorderedElementsAre(Pair("OK", 1)));
  EXPECT_EQ(totals.ok_latencies_ms.size(), 1u);
}

BenchReport SampleReport() {
  BenchReport report;
  report.mode = "unary";
  report.concurrency = 4;
  report.faces_per_request = 2;
  report.elapsed_s = 2.0;
  for (int i = 1; i <= 10; ++i) report.totals.ok_latencies_ms.push_back(i);
  report.totals.calls = 12;
  report.totals.ok_calls = 10;
  report.totals.ok_faces = 20;
  report.totals.codes = {{"OK", 10}, {"RESOURCE_EXHAUSTED", 2}};
  return report;
}

TEST(BenchReportTest, ThroughputCountsOkCallsOverTheElapsedTime) {
  const BenchReport report = SampleReport();
  EXPECT_DOUBLE_EQ(RequestsPerSecond(report), 5.0);
  EXPECT_DOUBLE_EQ(FacesPerSecond(report), 10.0);
  EXPECT_DOUBLE_EQ(FacesPerSecond(BenchReport{}), 0.0);
}

TEST(BenchReportTest, JsonHasTheKeysScriptsReadAndParses) {
  const std::string json = FormatBenchJson(SampleReport());
  ASSERT_EQ(json.back(), '\n');
  google::protobuf::Struct object;
  std::string error;
  ASSERT_TRUE(test::ParseJsonObject(json, &object, &error)) << error << "\n" << json;
  EXPECT_DOUBLE_EQ(test::Number(object, "faces_per_s"), 10.0);
  EXPECT_DOUBLE_EQ(test::Number(object, "requests_per_s"), 5.0);
  EXPECT_DOUBLE_EQ(test::Number(object, "p50_ms"), 5.0);
  EXPECT_DOUBLE_EQ(test::Number(object, "p90_ms"), 9.0);
  EXPECT_DOUBLE_EQ(test::Number(object, "p99_ms"), 10.0);
  EXPECT_DOUBLE_EQ(test::Number(object, "max_ms"), 10.0);
  EXPECT_EQ(test::String(object, "mode"), "unary");
  const auto& codes = object.fields().at("codes").struct_value();
  EXPECT_DOUBLE_EQ(codes.fields().at("OK").number_value(), 10);
  EXPECT_DOUBLE_EQ(codes.fields().at("RESOURCE_EXHAUSTED").number_value(), 2);
}

TEST(BenchReportTest, UnfinishedCallsBackoffsAndSkippedStartsAreReported) {
  BenchReport report = SampleReport();
  report.totals.calls = 15;
  report.totals.unfinished = 3;
  report.backoffs = 4;
  report.skipped = 9;
  report.grace_s = 2;
  google::protobuf::Struct object;
  std::string error;
  ASSERT_TRUE(test::ParseJsonObject(FormatBenchJson(report), &object, &error)) << error;
  EXPECT_DOUBLE_EQ(test::Number(object, "unfinished"), 3);
  EXPECT_DOUBLE_EQ(test::Number(object, "backoffs"), 4);
  EXPECT_DOUBLE_EQ(test::Number(object, "skipped"), 9);
  EXPECT_DOUBLE_EQ(test::Number(object, "requests"), 15);
  const std::string text = FormatBenchText(report);
  EXPECT_THAT(text, HasSubstr("15: OK 10, RESOURCE_EXHAUSTED 2, 3 unfinished (no answer 2.0 s "
                              "after the end)"));
  EXPECT_THAT(text, HasSubstr("backoff     4 waits after refusals, 9 scheduled calls skipped"));
  EXPECT_THAT(FormatBenchText(SampleReport()), Not(HasSubstr("backoff")));
}

TEST(BenchReportTest, JsonStaysJsonWithNonFiniteFigures) {
  BenchReport report = SampleReport();
  report.elapsed_s = std::numeric_limits<double>::quiet_NaN();
  report.rate = std::numeric_limits<double>::infinity();
  const std::string json = FormatBenchJson(report);
  google::protobuf::Struct object;
  std::string error;
  ASSERT_TRUE(test::ParseJsonObject(json, &object, &error)) << error << "\n" << json;
  EXPECT_EQ(object.fields().at("elapsed_s").kind_case(), google::protobuf::Value::kNullValue);
  EXPECT_EQ(object.fields().at("rate").kind_case(), google::protobuf::Value::kNullValue);
  EXPECT_DOUBLE_EQ(test::Number(object, "p50_ms"), 5.0);
}

TEST(BenchReportTest, TextNamesTheLoadThroughputLatencyAndCodes) {
  const std::string text = FormatBenchText(SampleReport());
  EXPECT_THAT(text, HasSubstr("closed loop, concurrency 4"));
  EXPECT_THAT(text, HasSubstr("5.0 requests/s, 10.0 faces/s"));
  EXPECT_THAT(text, HasSubstr("p50 5.00 ms  p90 9.00 ms  p99 10.00 ms  max 10.00 ms"));
  EXPECT_THAT(text, HasSubstr("12: OK 10, RESOURCE_EXHAUSTED 2"));
  BenchReport open = SampleReport();
  open.rate = 50;
  open.concurrency = 0;
  EXPECT_THAT(FormatBenchText(open), HasSubstr("open loop at 50.0 requests/s"));
}

}  // namespace
}  // namespace fer::client
