// Tests of the metrics endpoint (server/metrics_http.h) over real loopback
// sockets, of the process_* figures, and of the duration buckets. Nothing here
// waits on the clock: each "the endpoint is not blocked" test holds hostile
// connections open for the whole test while a scrape is answered, and every
// blocking read has a generous receive timeout
// (LoopbackClient::kReadTimeoutSeconds) that only turns a hang into a failure.
#include "server/server_metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/metrics_http.h"
#include "server/process_metrics.h"
#include "tests/server/server_test_util.h"
#include "tests/support/loopback_client.h"

namespace fer {
namespace {

using test_util::MetricValue;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::StartsWith;

using Client = test_support::LoopbackClient;
using test_support::HttpBody;

std::string Fetch(int port, const std::string& request) {
  return test_support::HttpExchange(port, request);
}

std::string Get(int port, const std::string& path) {
  return Fetch(port, "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n\r\n");
}

std::unique_ptr<MetricsHttpServer> StartServer(MetricsHttpServer::BodyFunction body,
                                               const MetricsHttpOptions& options = {}) {
  auto server = MetricsHttpServer::Start("127.0.0.1:0", std::move(body), options);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? std::move(*server) : nullptr;
}

// The defect this replaces: two idle connections held civetweb's two worker
// threads and blocked /metrics for 30 s. Here 64 idle connections and 4 that
// send their request a byte at a time stay open (their timeout is an hour)
// while scrapes are answered in full.
TEST(MetricsHttpTest, IdleAndSlowConnectionsDoNotBlockAScrape) {
  MetricsHttpOptions options;
  options.request_timeout = absl::Hours(1);
  auto server = StartServer([] { return std::string("up 1\n"); }, options);
  ASSERT_NE(server, nullptr);
  std::vector<std::unique_ptr<Client>> idle, slow;
  for (int i = 0; i < 64; ++i) {
    idle.push_back(std::make_unique<Client>(server->port()));
    ASSERT_TRUE(idle.back()->connected());
  }
  const std::string slow_request = "GET /metrics HTTP/1.1\r\nX-Slow: aaaa\r\n\r\n";
  for (int i = 0; i < 4; ++i) {
    slow.push_back(std::make_unique<Client>(server->port()));
    ASSERT_TRUE(slow.back()->Send(slow_request.substr(0, 5)));
  }
  for (size_t sent = 5; sent < 12; ++sent) {
    const std::string response = Get(server->port(), "/metrics");
    EXPECT_THAT(response, StartsWith("HTTP/1.1 200 OK\r\n"));
    EXPECT_EQ(HttpBody(response), "up 1\n");
    for (auto& client : slow) ASSERT_TRUE(client->Send(slow_request.substr(sent, 1)));
  }
  for (auto& client : idle) EXPECT_TRUE(client->OpenAndSilent());
  for (auto& client : slow) EXPECT_TRUE(client->OpenAndSilent());
  // A slow client that finally completes its request is answered too.
  ASSERT_TRUE(slow[0]->Send(slow_request.substr(12)));
  EXPECT_EQ(HttpBody(slow[0]->ReadAll()), "up 1\n");
}

// The same through ServerMetrics::StartExposer with its defaults, as
// fer-server runs it: the scrape is answered while every hostile connection
// is still within its request timeout.
TEST(MetricsHttpTest, StartExposerServesWhileIdleAndSlowConnectionsAreOpen) {
  ServerMetrics metrics(MetricsOptions{});
  ASSERT_TRUE(metrics.StartExposer("127.0.0.1:0").ok());
  ASSERT_GT(metrics.exposer_port(), 0);
  std::vector<std::unique_ptr<Client>> hostile;
  for (int i = 0; i < 68; ++i) {
    hostile.push_back(std::make_unique<Client>(metrics.exposer_port()));
    ASSERT_TRUE(hostile.back()->connected());
    if (i >= 64) ASSERT_TRUE(hostile.back()->Send("GET /met"));
  }
  const std::string response = Get(metrics.exposer_port(), "/metrics?x=1");
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(response, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  EXPECT_EQ(MetricValue(HttpBody(response), "fer_faces_total"), 0);
}

TEST(MetricsHttpTest, IdleAndSlowConnectionsAreClosedAtTheirTimeout) {
  MetricsHttpOptions options;
  options.request_timeout = absl::Milliseconds(100);
  auto server = StartServer([] { return std::string("up 1\n"); }, options);
  ASSERT_NE(server, nullptr);
  Client idle(server->port());
  Client slow(server->port());
  ASSERT_TRUE(slow.Send("GET /metrics HTTP/1.1\r\n"));
  EXPECT_TRUE(idle.ClosedByServer());
  EXPECT_TRUE(slow.ClosedByServer());
}

TEST(MetricsHttpTest, ANewConnectionBeyondTheLimitClosesTheOldest) {
  MetricsHttpOptions options;
  options.max_connections = 4;
  options.request_timeout = absl::Hours(1);
  auto server = StartServer([] { return std::string("up 1\n"); }, options);
  ASSERT_NE(server, nullptr);
  std::vector<std::unique_ptr<Client>> idle;
  for (int i = 0; i < 4; ++i) idle.push_back(std::make_unique<Client>(server->port()));
  EXPECT_EQ(HttpBody(Get(server->port(), "/metrics")), "up 1\n");
  EXPECT_TRUE(idle[0]->ClosedByServer());
  for (int i = 1; i < 4; ++i) EXPECT_TRUE(idle[i]->OpenAndSilent()) << i;
}

TEST(MetricsHttpTest, AnswersOnlyGetAndHeadOfMetrics) {
  auto server = StartServer([] { return std::string("up 1\n"); });
  ASSERT_NE(server, nullptr);
  const int port = server->port();
  EXPECT_THAT(Get(port, "/"), StartsWith("HTTP/1.1 404 Not Found\r\n"));
  EXPECT_THAT(Get(port, "/metricsx"), StartsWith("HTTP/1.1 404 Not Found\r\n"));
  EXPECT_THAT(Fetch(port, "GET http://localhost/metrics HTTP/1.1\r\n\r\n"),
              StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(Fetch(port, "GET /metrics HTTP/1.0\n\n"), EndsWith("\r\n\r\nup 1\n"));

  const std::string head = Fetch(port, "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_THAT(head, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(head, HasSubstr("Content-Length: 5\r\n"));
  EXPECT_THAT(head, EndsWith("\r\n\r\n"));

  const std::string post = Fetch(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  EXPECT_THAT(post, StartsWith("HTTP/1.1 405 Method Not Allowed\r\n"));
  EXPECT_THAT(post, HasSubstr("Allow: GET, HEAD\r\n"));
  EXPECT_THAT(Fetch(port, "hello\r\n\r\n"), StartsWith("HTTP/1.1 400 Bad Request\r\n"));
  EXPECT_THAT(Fetch(port, "GET /metrics SPDY/3\r\n\r\n"),
              StartsWith("HTTP/1.1 400 Bad Request\r\n"));
}

TEST(MetricsHttpTest, OversizedHeadersAre431AndTheServerGoesOn) {
  auto server = StartServer([] { return std::string("up 1\n"); });
  ASSERT_NE(server, nullptr);
  const std::string huge =
      "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n";
  EXPECT_THAT(Fetch(server->port(), huge),
              StartsWith("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
  EXPECT_EQ(HttpBody(Get(server->port(), "/metrics")), "up 1\n");
}

// A body far larger than the socket buffers arrives whole: the server keeps
// writing across many poll rounds.
TEST(MetricsHttpTest, ALargeBodyArrivesWhole) {
  std::string big;
  for (int i = 0; big.size() < (8u << 20); ++i) absl::StrAppend(&big, "series_", i, " ", i, "\n");
  auto server = StartServer([&big] { return big; });
  ASSERT_NE(server, nullptr);
  const std::string response = Get(server->port(), "/metrics");
  EXPECT_THAT(response, HasSubstr(absl::StrCat("Content-Length: ", big.size(), "\r\n")));
  EXPECT_TRUE(HttpBody(response) == big) << "got " << response.size() << " bytes";
}

TEST(MetricsHttpTest, ATakenPortOrABadAddressIsAClearError) {
  auto first = StartServer([] { return std::string(); });
  ASSERT_NE(first, nullptr);
  const std::string taken = absl::StrCat("127.0.0.1:", first->port());
  auto second = MetricsHttpServer::Start(taken, [] { return std::string(); });
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr("cannot serve metrics on " + taken));
  EXPECT_THAT(second.status().message(), HasSubstr("Address already in use"));

  ServerMetrics metrics(MetricsOptions{});
  const absl::Status status = metrics.StartExposer(taken);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("cannot serve metrics on " + taken));
  EXPECT_EQ(metrics.exposer_port(), 0);

  for (const char* bad : {"9464", "localhost:http", "127.0.0.1:70000", ""}) {
    auto server = MetricsHttpServer::Start(bad, [] { return std::string(); });
    ASSERT_FALSE(server.ok()) << bad;
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(
      MetricsHttpServer::Start("no.such.host.invalid:0", [] { return std::string(); }).ok());
}

TEST(MetricsHttpTest, ListensOnIpv6Loopback) {
  auto server = MetricsHttpServer::Start("[::1]:0", [] { return std::string(); });
  if (!server.ok()) GTEST_SKIP() << "no IPv6 loopback: " << server.status();
  EXPECT_GT((*server)->port(), 0);
}

TEST(ProcessMetricsTest, FiguresFollowWhatTheProcessDoes) {
  const absl::StatusOr<ProcessStats> before = ReadProcessStats();
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_GT(before->resident_memory_bytes, 0);
  EXPECT_GE(before->virtual_memory_bytes, before->resident_memory_bytes);
  EXPECT_GE(before->open_fds, 3);  // stdin, stdout, stderr
  EXPECT_GE(before->max_fds, before->open_fds);
  EXPECT_LE(before->start_time_seconds, absl::ToUnixSeconds(absl::Now()) + 1);
  EXPECT_GT(before->start_time_seconds, absl::ToUnixSeconds(absl::Now()) - 7 * 86400);

  // 10 pipes (20 descriptors) and 64 MiB touched.
  std::vector<int> fds(20);
  for (int i = 0; i < 10; ++i) ASSERT_EQ(pipe(&fds[2 * i]), 0);
  std::vector<char> memory(64u << 20, 1);
  double spin = 0;
  for (size_t i = 0; i < memory.size(); i += 4096) spin += memory[i] * std::sqrt(i + 1.0);
  const absl::StatusOr<ProcessStats> after = ReadProcessStats();
  for (int fd : fds) close(fd);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_GE(after->open_fds - before->open_fds, 20);
  EXPECT_GE(after->resident_memory_bytes - before->resident_memory_bytes, 60u << 20);
  EXPECT_GE(after->cpu_seconds, before->cpu_seconds);
  EXPECT_EQ(after->start_time_seconds, before->start_time_seconds);
  EXPECT_GT(spin, 0);
}

TEST(ProcessMetricsTest, TheExpositionHasTheStandardProcessSeriesAndPassesPromtool) {
  ServerMetrics metrics(MetricsOptions{});
  const std::string text = metrics.Serialize();
  EXPECT_THAT(text, HasSubstr("# TYPE process_cpu_seconds_total counter"));
  EXPECT_GE(MetricValue(text, "process_cpu_seconds_total"), 0);
  EXPECT_GT(MetricValue(text, "process_resident_memory_bytes"), 0);
  EXPECT_GT(MetricValue(text, "process_virtual_memory_bytes"), 0);
  EXPECT_GT(MetricValue(text, "process_open_fds"), 0);
  EXPECT_GT(MetricValue(text, "process_max_fds"), 0);
  EXPECT_GT(MetricValue(text, "process_start_time_seconds"), 1.6e9);  // after 2020
  if (system("command -v promtool > /dev/null 2>&1") != 0) {
    GTEST_SKIP() << "promtool not on PATH (Debian: prometheus)";
  }
  std::string promtool;
  EXPECT_EQ(test_util::PromtoolCheckMetrics(text, &promtool), 0) << promtool;
}

// Bucket bound le=`le` of a histogram's series (labels: `labels` then le).
double Bucket(const std::string& text, const std::string& name, const std::string& labels,
              const std::string& le) {
  return MetricValue(
      text, absl::StrCat(name, "_bucket{", labels, labels.empty() ? "" : ",", "le=\"", le, "\"}"));
}

// Every duration histogram resolves 1 ms to 60 s, and a 300 ms request lands
// between 0.2 and 0.3 (the old bounds put it anywhere in 0.25-0.5).
TEST(ServerMetricsTest, DurationBucketsResolveOneMillisecondToSixtySeconds) {
  ServerMetrics metrics(MetricsOptions{});
  metrics.OnRequestDone(Rpc::kClassify, absl::StatusCode::kOk, absl::Milliseconds(300));
  BatchStats batch;
  batch.size = 1;
  batch.compute_duration = absl::Milliseconds(40);
  const absl::Duration waits[] = {absl::Seconds(45)};
  batch.queue_waits = waits;
  metrics.OnBatch(batch);
  const std::string text = metrics.Serialize();

  const std::string classify = "rpc=\"Classify\"";
  for (const std::string& series :
       {std::string("fer_request_duration_seconds"), std::string("fer_queue_duration_seconds"),
        std::string("fer_inference_duration_seconds")}) {
    SCOPED_TRACE(series);
    const std::string labels = series == "fer_request_duration_seconds" ? classify : "";
    EXPECT_GE(Bucket(text, series, labels, "0.001"), 0);
    EXPECT_GE(Bucket(text, series, labels, "60"), 0);
  }
  const std::string request = "fer_request_duration_seconds";
  EXPECT_EQ(Bucket(text, request, classify, "0.2"), 0);
  EXPECT_EQ(Bucket(text, request, classify, "0.3"), 1);
  EXPECT_EQ(Bucket(text, "fer_inference_duration_seconds", "", "0.03"), 0);
  EXPECT_EQ(Bucket(text, "fer_inference_duration_seconds", "", "0.05"), 1);
  EXPECT_EQ(Bucket(text, "fer_queue_duration_seconds", "", "30"), 0);
  EXPECT_EQ(Bucket(text, "fer_queue_duration_seconds", "", "45"), 1);

  // No step between neighbouring bounds wider than x2 over the whole range.
  std::vector<double> bounds;
  const std::string prefix = request + "_bucket{" + classify + ",le=\"";
  for (size_t at = text.find(prefix); at != std::string::npos; at = text.find(prefix, at + 1)) {
    const std::string le =
        text.substr(at + prefix.size(), text.find('"', at + prefix.size()) - at - prefix.size());
    if (le != "+Inf") bounds.push_back(std::stod(le));
  }
  ASSERT_GE(bounds.size(), 2u);
  EXPECT_EQ(bounds.front(), 0.001);
  EXPECT_EQ(bounds.back(), 60);
  for (size_t i = 1; i < bounds.size(); ++i) EXPECT_LE(bounds[i] / bounds[i - 1], 2.0) << bounds[i];
}

}  // namespace
}  // namespace fer
