// fer-client: the reference client of fer-server. Each command is also an
// example of calling the API well: batched unary calls (classify), a
// bidirectional stream with a bounded window (stream), the callback API under
// load (bench), and the standard health service (health).
#include <grpc/support/log.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <opencv2/core/utils/logger.hpp>

#include "client/commands.h"

namespace {

constexpr char kUsage[] =
    "usage: fer-client COMMAND [--flags] [ARGS]\n"
    "  classify IMAGE...|DIR   classify face images, batched (--batch, --ten_crop, --json, --csv)\n"
    "  stream VIDEO            classify the faces of a video file, frame by frame\n"
    "  stream --camera=N       ... or of a camera (--window, --smooth, --annotate=OUT.mp4)\n"
    "  bench                   load test: --concurrency or --rate, --duration or --requests,\n"
    "                          --faces_per_request, --mode=unary|stream, --images=DIR, --json\n"
    "  info                    the served model, labels and limits (--json)\n"
    "  health                  grpc.health.v1 Check; exit 0 when SERVING (--service)\n"
    "Common flags: --target (localhost:50051), --deadline_ms, --tls, --tls_ca, --tls_cert,\n"
    "--tls_key. Run `fer-client COMMAND --help` for a command's flags.\n";

struct Command {
  const char* name;
  int (*run)(int, char**);
};

constexpr Command kCommands[] = {
    {"classify", fer::client::RunClassify}, {"stream", fer::client::RunStream},
    {"bench", fer::client::RunBench},       {"info", fer::client::RunInfo},
    {"health", fer::client::RunHealth},
};

// gRPC's and OpenCV's own log lines (a failed TLS handshake, a video backend
// that declined a file) repeat, less clearly, what the command's one error
// line says. They stay available for debugging through the libraries' usual
// variables: GRPC_VERBOSITY=DEBUG, OPENCV_LOG_LEVEL=INFO.
void QuietLibraryLogs() {
  if (std::getenv("GRPC_VERBOSITY") == nullptr) gpr_set_log_function([](gpr_log_func_args*) {});
  if (std::getenv("OPENCV_LOG_LEVEL") == nullptr) {
    cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
  }
}

}  // namespace

int main(int argc, char** argv) {
  QuietLibraryLogs();
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "help") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  for (const Command& command : kCommands) {
    if (std::strcmp(argv[1], command.name) == 0) return command.run(argc - 1, argv + 1);
  }
  std::fprintf(stderr, "fer-client: unknown command \"%s\"\n%s", argv[1], kUsage);
  return 2;
}
