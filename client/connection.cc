#include "client/connection.h"

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "client/client_flags.h"
#include "client/image_files.h"
#include "client/latency_stats.h"

namespace fer::client {
namespace {

// gRPC's own retry machinery, configured the standard way (a service config)
// rather than hand-written loops: up to 4 attempts, 0.2 s doubling to 2 s,
// only for RESOURCE_EXHAUSTED, the code the API says to retry.
constexpr char kRetryServiceConfig[] = R"json({
  "methodConfig": [{
    "name": [{"service": "fer.v1.ExpressionClassifier"}],
    "retryPolicy": {
      "maxAttempts": 4,
      "initialBackoff": "0.2s",
      "maxBackoff": "2s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["RESOURCE_EXHAUSTED"]
    }
  }]
})json";

// gRPC only retries a call whose request it still holds, 256 KiB by default:
// room for a full batch of faces (the client keeps requests under 4 MiB).
constexpr int kRetryBufferBytes = 8 << 20;

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* flag) {
  if (path.empty()) return std::string();
  absl::StatusOr<std::string> pem = ReadFileBytes(path);
  if (!pem.ok()) return absl::NotFoundError(absl::StrCat("--", flag, ": ", pem.status().message()));
  return pem;
}

}  // namespace

ConnectionOptions ConnectionOptionsFromFlags(bool retry_when_busy) {
  ConnectionOptions options;
  options.target = absl::GetFlag(FLAGS_target);
  options.deadline = DeadlineFromFlag();
  options.tls = absl::GetFlag(FLAGS_tls);
  options.tls_ca = absl::GetFlag(FLAGS_tls_ca);
  options.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  options.tls_key = absl::GetFlag(FLAGS_tls_key);
  options.retry_when_busy = retry_when_busy;
  return options;
}

absl::StatusOr<Connection> Connection::Open(const ConnectionOptions& options) {
  if (options.target.empty()) return absl::InvalidArgumentError("--target is empty");
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together");
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (options.tls || !options.tls_ca.empty() || !options.tls_cert.empty()) {
    grpc::SslCredentialsOptions ssl;
    absl::StatusOr<std::string> ca = ReadPem(options.tls_ca, "tls_ca");
    absl::StatusOr<std::string> cert = ReadPem(options.tls_cert, "tls_cert");
    absl::StatusOr<std::string> key = ReadPem(options.tls_key, "tls_key");
    for (const auto* pem : {&ca, &cert, &key}) {
      if (!pem->ok()) return pem->status();
    }
    ssl.pem_root_certs = *ca;
    ssl.pem_cert_chain = *cert;
    ssl.pem_private_key = *key;
    credentials = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments arguments;
  if (options.retry_when_busy) {
    arguments.SetServiceConfigJSON(kRetryServiceConfig);
    arguments.SetInt(GRPC_ARG_PER_RPC_RETRY_BUFFER_SIZE, kRetryBufferBytes);
  } else {
    arguments.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  }
  return Connection(options, grpc::CreateCustomChannel(options.target, credentials, arguments));
}

void Connection::Prepare(grpc::ClientContext* context) const {
  context->set_deadline(absl::ToChronoTime(absl::Now() + options_.deadline));
}

absl::Status Connection::Failure(const grpc::Status& status, const std::string& what) const {
  const auto code = static_cast<absl::StatusCode>(status.error_code());
  // A call that never had a connection says so first: that is what the user
  // has to fix (the address, the server, the network), whatever the code.
  const bool connected = channel_->GetState(/*try_to_connect=*/false) == GRPC_CHANNEL_READY;
  if (!connected && status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    return absl::Status(
        code, absl::StrCat("cannot reach ", options_.target, ": ", status.error_message()));
  }
  if (!connected && status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return absl::Status(
        code, absl::StrCat("cannot reach ", options_.target, ": no connection within ",
                           absl::ToInt64Milliseconds(options_.deadline), " ms (--deadline_ms)"));
  }
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return absl::Status(code, absl::StrCat(what, ": no answer within ",
                                           absl::ToInt64Milliseconds(options_.deadline),
                                           " ms (raise --deadline_ms)"));
  }
  return absl::Status(code, absl::StrCat(what, ": ", StatusCodeName(status.error_code()), ": ",
                                         status.error_message()));
}

absl::StatusOr<fer::v1::ModelInfo> Connection::FetchModelInfo() const {
  auto stub = fer::v1::ExpressionClassifier::NewStub(channel_);
  grpc::ClientContext context;
  Prepare(&context);
  fer::v1::ModelInfo info;
  const grpc::Status status = stub->GetModelInfo(&context, fer::v1::GetModelInfoRequest(), &info);
  if (!status.ok()) return Failure(status, "GetModelInfo");
  return info;
}

Scores ScoresFromPrediction(const fer::v1::Prediction& prediction) {
  std::vector<float> probabilities(prediction.probabilities().begin(),
                                   prediction.probabilities().end());
  if (prediction.top_label() >= probabilities.size()) {
    return Scores::FromProbabilities(std::move(probabilities));  // never index out of range
  }
  return Scores{std::move(probabilities), static_cast<int>(prediction.top_label())};
}

AttentionGrid GridFromPrediction(const fer::v1::Prediction& prediction, int input_size,
                                 bool ten_crop) {
  AttentionGrid grid;
  if (!prediction.has_attention()) return grid;
  const fer::v1::AttentionMap& map = prediction.attention();
  grid.height = static_cast<int>(map.height());
  grid.width = static_cast<int>(map.width());
  grid.values.assign(map.values().begin(), map.values().end());
  if (grid.values.size() != static_cast<size_t>(grid.height) * grid.width) return AttentionGrid();
  grid.center_share = map.center_share();
  PlaceAttentionCells(input_size, ten_crop, &grid);
  return grid;
}

}  // namespace fer::client
