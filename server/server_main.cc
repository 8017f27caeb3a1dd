// fer-server: serves fer.v1.ExpressionClassifier over gRPC, with health,
// reflection and Prometheus metrics, and an HTTP/JSON API (--http_address).
//
// Life cycle:
//   1. flags (TLS files included); the model is loaded (a missing or corrupt
//      file ends the process here, with one line on stderr and exit status 1);
//   2. the metrics endpoint, the HTTP port and the gRPC port open (a taken port ends it the
//      same way); health says NOT_SERVING for "" and
//      fer.v1.ExpressionClassifier and calls are answered UNAVAILABLE while the
//      warm-up batch runs;
//   3. health says SERVING;
//   4. on SIGHUP: --access_log is opened again (log rotation), and --model
//      is read again and served once warmed up, without refusing a call;
//      calls in flight finish on the model they started on. If the file
//      cannot be loaded or warmed up, the old model keeps serving. One line
//      on stdout says which (fer_model_reloads_total counts both). SIGUSR1
//      only opens --access_log again. Reloads run on a thread of their own
//      (server/reloader.h), so a SIGTERM during one is taken at once;
//   5. on SIGTERM or SIGINT: health NOT_SERVING, new calls UNAVAILABLE, the
//      accepted work runs for at most --drain_timeout, then the process exits
//      with status 0.
#include <pthread.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "model/common/cli_flags.h"
#include "model/common/cpu_count.h"
#include "model/core/device.h"
#include "model/core/engine.h"
#include "model/core/torch_version.h"
#include "server/fer_server.h"
#include "server/reloader.h"

namespace {

// The defaults of the options structs are the flag defaults: one place.
const fer::BatcherOptions kBatching;
const fer::PreprocessOptions kPreprocess;
const fer::ServiceOptions kService;
const fer::EngineOptions kEngine;
const fer::FerServerOptions kServer;

// fer-server runs on the CPU unless told otherwise, where the engine library
// (EngineOptions) picks "auto": a replica's device decides its batch size,
// its capacity and which alert thresholds apply to it (deploy/), so it is
// what its deployment says, not whatever the node it lands on happens to have.
constexpr char kDefaultDevice[] = "cpu";

// The --max_batch_size help quotes the device defaults.
static_assert(fer::kCpuMaxBatchSize == 8 && fer::kGpuMaxBatchSize == 32,
              "update the --max_batch_size help");

}  // namespace

ABSL_FLAG(std::string, address, kServer.address, "gRPC listen address, host:port");
ABSL_FLAG(std::string, metrics_address, kServer.metrics_address,
          "Prometheus metrics listen address, host:port (served at /metrics)");
ABSL_FLAG(std::string, http_address, kServer.http_address,
          "HTTP/JSON API listen address, host:port (POST /v1/classify, /v2/health/live, "
          "/v2/health/ready, /v1/model; docs/http.md); empty: no HTTP API");
ABSL_FLAG(std::string, model, "", "weight file to serve (required; `fer-model init` writes one)");
ABSL_FLAG(std::string, device, kDefaultDevice,
          "auto | cpu | cuda | cuda:N (auto: cuda:0 when present)");
ABSL_FLAG(std::string, precision, kEngine.precision, "fp32 | bf16 | fp16 (fp16 on CUDA only)");
ABSL_FLAG(int, threads, kEngine.threads,
          "CPU intra-op threads of the model; 0: the CPUs this process may use (its affinity "
          "mask, limited by its cgroup CPU quota)");
ABSL_FLAG(int, max_batch_size, 0,
          "most faces in one model call; 0: the device's default, 8 on a CPU (where a batch "
          "of 32 takes over half a second) and 32 on a GPU");
ABSL_FLAG(int, max_queue_delay_us,
          static_cast<int>(absl::ToInt64Microseconds(kBatching.max_queue_delay)),
          "longest time the oldest queued face waits for a batch to fill, in microseconds");
ABSL_FLAG(int, max_queue_faces, kBatching.max_queue_faces,
          "most faces queued for the model (a ten-crop face counts ten); beyond it calls fail with "
          "RESOURCE_EXHAUSTED at once");
ABSL_FLAG(absl::Duration, max_queue_time, kBatching.max_queue_time,
          "most work queued for the model, in time as measured on the batches that ran (e.g. "
          "10s); beyond it calls fail with RESOURCE_EXHAUSTED at once. Calls with a deadline are "
          "also refused at once when the work ahead would make them late");
ABSL_FLAG(int, instances, kBatching.num_instances,
          "model instances: batches that run at the same time, one worker thread each");
ABSL_FLAG(int, max_faces_per_request, kService.max_faces_per_request,
          "most faces in one Classify request or stream frame");
ABSL_FLAG(int64_t, max_image_bytes, static_cast<int64_t>(kPreprocess.max_encoded_bytes),
          "largest encoded image accepted, in bytes");
ABSL_FLAG(int64_t, max_image_pixels, kPreprocess.max_pixels,
          "largest width x height accepted, checked before decoding");
ABSL_FLAG(int, max_concurrent_streams, kService.max_concurrent_streams,
          "most ClassifyStream streams open at once; more are refused with RESOURCE_EXHAUSTED");
ABSL_FLAG(int, stream_window, kService.stream_window,
          "frames a stream may have in flight (read and not yet answered)");
ABSL_FLAG(int, preprocess_threads, kService.preprocess_threads,
          "threads that decode and resize images; 0: the CPUs this process may use (as "
          "--threads)");
ABSL_FLAG(
    absl::Duration, drain_timeout, fer::kDefaultDrainTimeout,
    "on SIGTERM/SIGINT, how long accepted work may still run before it fails with UNAVAILABLE");
ABSL_FLAG(std::string, tls_cert, kServer.tls.cert_file,
          "PEM certificate chain of the server; with --tls_key the gRPC port speaks TLS only");
ABSL_FLAG(std::string, tls_key, kServer.tls.key_file, "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, kServer.tls.client_ca_file,
          "PEM CA bundle; set: mutual TLS, clients must present a certificate it signed");
ABSL_FLAG(absl::Duration, max_connection_age, kServer.max_connection_age,
          "close client connections this old (after their calls end, waiting at most "
          "--drain_timeout) so that clients behind a load balancer re-balance; 0: never");
ABSL_FLAG(absl::Duration, liveness_timeout, kServer.liveness_timeout,
          "health for \"\" (the liveness probe) turns NOT_SERVING while work is queued and no "
          "batch has finished for this long (or three batch times, if longer); 0: off");
ABSL_FLAG(bool, warmup, kService.warmup,
          "run one batch on every instance before reporting SERVING");
ABSL_FLAG(std::string, access_log, kServer.access_log.path,
          "access log: one JSON line per Classify, ClassifyStream, ModelInfer or HTTP classify "
          "call (method, peer, status, faces, queue and model time; never images), appended to "
          "this file, or '-' for stderr; opened again on SIGUSR1 (and SIGHUP) for log rotation. "
          "Empty: off");
ABSL_FLAG(double, access_log_sample, kServer.access_log.sample,
          "fraction of calls the access log writes, in (0, 1]: every K-th call for 1/K (each "
          "line says the fraction, to scale counts back)");

namespace fer {
namespace {

int Fail(absl::string_view message) {
  std::fprintf(stderr, "fer-server: %s\n", std::string(message).c_str());
  return 1;
}

// Parses the command line. --help lists every flag of this file (all of
// fer-server's), --version the project's and LibTorch's versions; both exit.
// Returns INVALID_ARGUMENT for a positional argument.
absl::Status ParseFlags(int argc, char** argv) {
  cli::ConfigureUsage({"server_main.cc"}, absl::StrCat("fer-server ", cli::ProjectVersion(),
                                                       " (LibTorch ", TorchVersion(), ")"));
  absl::SetProgramUsageMessage(absl::StrCat(
      "serves facial expression recognition over gRPC and HTTP.\nSignals: SIGTERM or SIGINT "
      "drain and exit; SIGHUP reloads --model (and reopens --access_log); SIGUSR1 reopens "
      "--access_log.\nUsage: fer-server --model=FILE "
      "[--address=",
      kServer.address, "] [--metrics_address=", kServer.metrics_address,
      "] [--http_address=", kServer.http_address, "] [--device=", kDefaultDevice,
      "] [--precision=", kEngine.precision, "] ..."));
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument '", positional[1], "' (flags are --name=value)"));
  }
  return absl::OkStatus();
}

// Signals are taken by sigwait (AwaitSignalAndDrain), in the calling thread
// only: block them before any other thread (LibTorch's, gRPC's) exists, so
// that all inherit the mask. Returns the blocked set.
sigset_t BlockServerSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  sigaddset(&signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

// What the flags ask for, checked as far as it can be without the model.
struct ServerConfig {
  std::string model_path;
  EngineOptions engine;
  FerServerOptions server;  // server.service: the service's options
  absl::Duration drain_timeout;
};

// The service's options from the flags, on `device` (resolved): batching,
// limits, threads. preprocess_threads 0 is resolved here as the service would,
// so that the start-up line says the number used. Refuses a non-positive
// --max_image_bytes; the rest is for ValidateServiceOptions to judge.
absl::StatusOr<ServiceOptions> ServiceOptionsFromFlags(const std::string& device) {
  ServiceOptions options;
  options.batching.max_batch_size = absl::GetFlag(FLAGS_max_batch_size);
  if (options.batching.max_batch_size == 0) {
    options.batching.max_batch_size = DefaultMaxBatchSize(device);
  }
  options.batching.max_queue_time = absl::GetFlag(FLAGS_max_queue_time);
  options.batching.max_queue_delay = absl::Microseconds(absl::GetFlag(FLAGS_max_queue_delay_us));
  options.batching.max_queue_faces = absl::GetFlag(FLAGS_max_queue_faces);
  options.batching.num_instances = absl::GetFlag(FLAGS_instances);
  options.max_faces_per_request = absl::GetFlag(FLAGS_max_faces_per_request);
  options.max_concurrent_streams = absl::GetFlag(FLAGS_max_concurrent_streams);
  options.stream_window = absl::GetFlag(FLAGS_stream_window);
  options.preprocess_threads = absl::GetFlag(FLAGS_preprocess_threads);
  if (options.preprocess_threads == 0) options.preprocess_threads = UsableCpuCount();
  options.warmup = absl::GetFlag(FLAGS_warmup);
  const int64_t max_image_bytes = absl::GetFlag(FLAGS_max_image_bytes);
  if (max_image_bytes <= 0) return absl::InvalidArgumentError("--max_image_bytes must be positive");
  options.preprocess.max_encoded_bytes = static_cast<size_t>(max_image_bytes);
  options.preprocess.max_pixels = absl::GetFlag(FLAGS_max_image_pixels);
  return options;
}

// The server's options but the service's from the flags; connections aged
// out get drain_timeout to finish their calls.
FerServerOptions ServerOptionsFromFlags(absl::Duration drain_timeout) {
  FerServerOptions options;
  options.address = absl::GetFlag(FLAGS_address);
  options.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  options.http_address = absl::GetFlag(FLAGS_http_address);
  options.tls.cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.tls.key_file = absl::GetFlag(FLAGS_tls_key);
  options.tls.client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  options.max_connection_age = absl::GetFlag(FLAGS_max_connection_age);
  options.max_connection_age_grace = drain_timeout;
  options.liveness_timeout = absl::GetFlag(FLAGS_liveness_timeout);
  options.access_log.path = absl::GetFlag(FLAGS_access_log);
  options.access_log.sample = absl::GetFlag(FLAGS_access_log_sample);
  return options;
}

// The engine's options from the flags on `device` (resolved). Refuses a
// negative --threads; 0 is resolved as Engine::Load would, so that the
// start-up line says the number.
absl::StatusOr<EngineOptions> EngineOptionsFromFlags(const std::string& device) {
  EngineOptions options;
  options.device = device;
  options.precision = absl::GetFlag(FLAGS_precision);
  options.threads = absl::GetFlag(FLAGS_threads);
  if (options.threads < 0) return absl::InvalidArgumentError("--threads must not be negative");
  if (options.threads == 0) options.threads = UsableCpuCount();
  return options;
}

// Every flag, checked before the model is loaded (which may take a while), in
// the order a user fixes them: the model, the device, the service's options,
// the server's (TLS files included). A certificate that expires soon is warned
// about on stderr here. Errors are the messages fer-server exits with.
absl::StatusOr<ServerConfig> ConfigFromFlags() {
  ServerConfig config;
  config.model_path = absl::GetFlag(FLAGS_model);
  if (config.model_path.empty()) {
    return absl::InvalidArgumentError(
        "--model is required (a weight file; `fer-model init --out=FILE` writes an untrained one "
        "for tests)");
  }
  const absl::StatusOr<std::string> device = ResolveDevice(absl::GetFlag(FLAGS_device));
  if (!device.ok()) return device.status();
  absl::StatusOr<ServiceOptions> service = ServiceOptionsFromFlags(*device);
  if (!service.ok()) return service.status();
  config.drain_timeout = absl::GetFlag(FLAGS_drain_timeout);
  if (config.drain_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--drain_timeout must not be negative");
  }
  if (absl::GetFlag(FLAGS_max_queue_delay_us) < 0) {
    return absl::InvalidArgumentError("--max_queue_delay_us must not be negative");
  }
  if (absl::Status status = ValidateServiceOptions(*service); !status.ok()) return status;

  config.server = ServerOptionsFromFlags(config.drain_timeout);
  std::string tls_warning;
  if (absl::Status status = FerServer::ValidateOptions(config.server, &tls_warning); !status.ok()) {
    return status;
  }
  if (!tls_warning.empty()) std::fprintf(stderr, "fer-server: WARNING: %s\n", tls_warning.c_str());
  config.server.service = *std::move(service);

  absl::StatusOr<EngineOptions> engine = EngineOptionsFromFlags(*device);
  if (!engine.ok()) return engine.status();
  config.engine = *std::move(engine);
  return config;
}

// The start-up line's part on the HTTP API.
std::string HttpLine(const ServerConfig& config, const FerServer& server) {
  if (config.server.http_address.empty()) return "HTTP API off";
  return absl::StrCat("HTTP API on http://", config.server.http_address, " (port ",
                      server.http_port(), ")");
}

// The start-up line (model, device, every limit in force, ports) on stdout,
// and a warning on stderr when the model is untrained.
void PrintStartupLine(const ServerConfig& config, const Engine& engine, const FerServer& server) {
  const ModelMeta& meta = engine.meta();
  const ServiceOptions& options = config.server.service;
  const FerServerOptions& server_options = config.server;
  std::printf(
      "fer-server: model %s (version \"%s\", trained on %s, input %dx%d %s, %zu labels) on %s %s; "
      "batching max_batch_size=%d max_queue_delay_us=%d max_queue_faces=%d instances=%d "
      "threads=%d preprocess_threads=%d; limits max_faces_per_request=%d max_image_bytes=%lld "
      "max_image_pixels=%lld "
      "max_concurrent_streams=%d stream_window=%d; gRPC on %s (port %d, %s), metrics on "
      "http://%s/metrics (port %d), %s\n",
      config.model_path.c_str(), meta.version.c_str(), meta.trained_on.c_str(), meta.input_size,
      meta.input_size, meta.color.c_str(), meta.labels.size(), engine.device().c_str(),
      engine.precision().c_str(), options.batching.max_batch_size,
      absl::GetFlag(FLAGS_max_queue_delay_us), options.batching.max_queue_faces,
      options.batching.num_instances, config.engine.threads, options.preprocess_threads,
      options.max_faces_per_request, static_cast<long long>(options.preprocess.max_encoded_bytes),
      static_cast<long long>(options.preprocess.max_pixels), options.max_concurrent_streams,
      options.stream_window, server_options.address.c_str(), server.port(),
      !server_options.tls.enabled()               ? "plaintext"
      : server_options.tls.client_ca_file.empty() ? "TLS"
                                                  : "mutual TLS",
      server_options.metrics_address.c_str(), server.metrics_port(),
      HttpLine(config, server).c_str());
  if (meta.untrained()) {
    std::fprintf(stderr,
                 "WARNING: %s is an UNTRAINED model (trained_on=\"%s\"): its predictions are "
                 "random and meaningless. Serve trained weights for any real use.\n",
                 config.model_path.c_str(), meta.trained_on.c_str());
  }
  std::fflush(stdout);
}

// SIGUSR1 and SIGHUP: opens --access_log again, so that lines go to a new
// file once log rotation has renamed the old one. Says so only if it failed
// (the log then goes on in the old file).
void ReopenAccessLog(FerServer* server) {
  if (absl::Status reopened = server->ReopenAccessLog(); !reopened.ok()) {
    std::printf("fer-server: the access log goes on in the old file: %s\n",
                std::string(reopened.message()).c_str());
    std::fflush(stdout);
  }
}

// A reload asked for by SIGHUP: reloads config.model_path and says on one
// line how it went. Runs on the BackgroundReloader's thread, so that a
// SIGTERM during a reload starts the drain at once (the reload then fails, or
// swaps in a model that serves only the calls still draining).
void ReloadOnSignal(const ServerConfig& config, FerServer* server) {
  std::printf("fer-server: SIGHUP received; reloading %s\n", config.model_path.c_str());
  std::fflush(stdout);
  const absl::Status status = server->ReloadModel(Engine::Load(config.model_path, config.engine));
  if (status.ok()) {
    std::printf("fer-server: reloaded %s: serving version \"%s\"\n", config.model_path.c_str(),
                server->model_version().c_str());
  } else {
    std::printf("fer-server: reload of %s failed, still serving version \"%s\": %s\n",
                config.model_path.c_str(), server->model_version().c_str(),
                std::string(status.message()).c_str());
  }
  std::fflush(stdout);
}

// Waits for one of `signals` (blocked by BlockServerSignals), reopening the
// access log on each SIGUSR1 or SIGHUP and asking for a model reload on each
// SIGHUP (SIGHUPs during a reload ask for one more); on SIGTERM or SIGINT
// drains the server for at most
// config.drain_timeout and says what was answered, so that logs (and tests)
// can check that nothing accepted was left unanswered: "in flight 0".
void AwaitSignalAndDrain(const sigset_t& signals, const ServerConfig& config, FerServer* server) {
  const absl::Duration drain_timeout = config.drain_timeout;
  BackgroundReloader reloader([&config, server] { ReloadOnSignal(config, server); });
  int signal = 0;
  for (;;) {
    signal = 0;
    sigwait(&signals, &signal);
    if (signal != SIGHUP && signal != SIGUSR1) break;
    ReopenAccessLog(server);
    if (signal == SIGHUP) reloader.Request();
  }
  std::printf("fer-server: %s received; draining for at most %s\n",
              signal == SIGTERM ? "SIGTERM" : "SIGINT",
              absl::FormatDuration(drain_timeout).c_str());
  std::fflush(stdout);
  reloader.Cancel();  // a reload under way goes on beside the drain
  server->Shutdown(drain_timeout);
  std::printf("fer-server: stopped; requests answered: %s\n",
              server->metrics()->RequestSummary().c_str());
  std::fflush(stdout);
}

int Run(int argc, char** argv) {
  if (absl::Status status = ParseFlags(argc, argv); !status.ok()) return Fail(status.message());
  const sigset_t signals = BlockServerSignals();
  const absl::StatusOr<ServerConfig> config = ConfigFromFlags();
  if (!config.ok()) return Fail(config.status().message());

  auto engine = Engine::Load(config->model_path, config->engine);
  if (!engine.ok()) return Fail(engine.status().message());
  auto server = FerServer::Create(config->server, engine->get());
  if (!server.ok()) return Fail(server.status().message());
  if (const AccessLogOptions& log = config->server.access_log; log.enabled()) {
    std::printf("fer-server: access log to %s, %s\n", log.path == "-" ? "stderr" : log.path.c_str(),
                log.sample >= 1 ? "every call"
                                : absl::StrFormat("sampling %g of calls", log.sample).c_str());
  }
  PrintStartupLine(*config, **engine, **server);

  if (absl::Status status = (*server)->Start(); !status.ok()) return Fail(status.message());
  std::printf("fer-server: SERVING\n");
  std::fflush(stdout);
  AwaitSignalAndDrain(signals, *config, server->get());
  return 0;
}

}  // namespace
}  // namespace fer

int main(int argc, char** argv) { return fer::Run(argc, argv); }
