// fer-client info (GetModelInfo) and fer-client health (grpc.health.v1).
#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/client_flags.h"
#include "client/commands.h"
#include "client/connection.h"
#include "grpc/health/v1/health.grpc.pb.h"

ABSL_FLAG(std::string, service, "",
          "health: service to check; \"\" is the whole server, or fer.v1.ExpressionClassifier");

namespace fer::client {
namespace {

constexpr char kInfoUsage[] = "fer-client info [--target] [--deadline_ms] [--json]";
constexpr char kHealthUsage[] =
    "fer-client health [--service=NAME] [--target] [--deadline_ms]\n"
    "exits 0 when the service is SERVING, 1 otherwise (like grpc_health_probe)";

std::string HumanInfo(const fer::v1::ModelInfo& info) {
  std::string out;
  const auto row = [&out](const char* name, const std::string& value) {
    absl::StrAppendFormat(&out, "%-22s %s\n", name, value);
  };
  row("labels", absl::StrJoin(info.labels(), ", "));
  row("input", absl::StrCat(info.input_size(), "x", info.input_size(), " ", info.color()));
  row("version", info.version());
  row("trained_on", info.trained_on());
  row("parameters", absl::StrCat(info.parameters()));
  row("device", info.device());
  row("precision", info.precision());
  row("instances", absl::StrCat(info.instances()));
  row("max_batch_size", absl::StrCat(info.max_batch_size()));
  row("max_queue_delay_us", absl::StrCat(info.max_queue_delay_us()));
  row("max_queue_faces", absl::StrCat(info.max_queue_faces()));
  row("max_faces_per_request", absl::StrCat(info.max_faces_per_request()));
  row("max_image_bytes", absl::StrCat(info.max_image_bytes()));
  row("max_image_pixels", absl::StrCat(info.max_image_pixels()));
  return out;
}

}  // namespace

int RunInfo(int argc, char** argv) {
  const std::vector<std::string> args = ParseCommandFlags(argc, argv, kInfoUsage, __FILE__);
  if (!args.empty())
    return UsageError("info", "unexpected argument \"" + args[0] + "\"", kInfoUsage);
  if (absl::Status status = CheckDeadlineFlag(); !status.ok()) return Fail("info", status);

  absl::StatusOr<Connection> connection = Connection::Open(ConnectionOptionsFromFlags(true));
  if (!connection.ok()) return Fail("info", connection.status());
  absl::StatusOr<fer::v1::ModelInfo> info = connection->FetchModelInfo();
  if (!info.ok()) return Fail("info", info.status());

  if (!absl::GetFlag(FLAGS_json)) {
    std::fputs(HumanInfo(*info).c_str(), stdout);
    return 0;
  }
  // The canonical proto3 JSON mapping, field names as in the .proto (64-bit
  // integers are therefore JSON strings).
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(*info, &json, options).ok()) {
    return Fail("info", absl::InternalError("cannot render ModelInfo as JSON"));
  }
  std::printf("%s\n", json.c_str());
  return 0;
}

int RunHealth(int argc, char** argv) {
  const std::vector<std::string> args = ParseCommandFlags(argc, argv, kHealthUsage, __FILE__);
  if (!args.empty()) {
    return UsageError("health", "unexpected argument \"" + args[0] + "\"", kHealthUsage);
  }
  if (absl::Status status = CheckDeadlineFlag(); !status.ok()) return Fail("health", status);

  // No retries: a probe reports what it sees now; its caller decides when to ask again.
  absl::StatusOr<Connection> connection = Connection::Open(ConnectionOptionsFromFlags(false));
  if (!connection.ok()) return Fail("health", connection.status());
  auto stub = grpc::health::v1::Health::NewStub(connection->channel());
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(absl::GetFlag(FLAGS_service));
  grpc::health::v1::HealthCheckResponse response;
  grpc::ClientContext context;
  connection->Prepare(&context);
  const grpc::Status status = stub->Check(&context, request, &response);
  const std::string service_name =
      request.service().empty() ? std::string("server") : "service " + request.service();
  if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
    return Fail("health", absl::NotFoundError(absl::StrCat("unknown ", service_name)));
  }
  if (!status.ok()) return Fail("health", connection->Failure(status, "health check"));
  const std::string state =
      grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
  if (response.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
    return Fail("health", absl::UnavailableError(absl::StrCat(service_name, " is ", state)));
  }
  std::printf("status: %s\n", state.c_str());
  return 0;
}

}  // namespace fer::client
