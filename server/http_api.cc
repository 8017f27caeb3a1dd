#include "server/http_api.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string_view>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "server/access_log.h"
#include "server/http_json.h"
#include "server/oip_service.h"

#ifndef FER_SERVER_VERSION
#define FER_SERVER_VERSION "unknown"
#endif

namespace fer {
namespace {

using google::protobuf::RepeatedPtrField;

constexpr char kClassifyPath[] = "/v1/classify";
constexpr char kModelInfoPath[] = "/v1/model";
constexpr char kLivePath[] = "/v2/health/live";
constexpr char kReadyPath[] = "/v2/health/ready";
// The Open Inference Protocol's REST paths of the server and of the model.
constexpr char kOipServerPath[] = "/v2";
constexpr char kOipModelPath[] = "/v2/models/lla-net";
constexpr char kOipModelReadyPath[] = "/v2/models/lla-net/ready";
static_assert(std::string_view(kOipModelPath).substr(11) == std::string_view(kOipModelName),
              "the model's REST path names the model OipService serves");
constexpr char kJsonType[] = "application/json";
// What a chunked body may still send, beyond the limit, before the
// connection is closed instead of answered.
constexpr int64_t kDiscardFactor = 2;
// Connection buffer of libmicrohttpd (headers, and each read of a body).
constexpr size_t kConnectionMemoryBytes = 128 << 10;
// What a body's buffer is given up front, at most, from its Content-Length.
constexpr size_t kMaxReserveBytes = 4 << 20;

// The Content-Types of an image body. A declared type need not match the
// bytes: the decoder reads the format from them, as for gRPC. Octet-stream,
// form-urlencoded (what `curl --data-binary` sends unless told) and none at
// all are taken as an image too.
constexpr absl::string_view kImageTypes[] = {"image/jpeg",
                                             "image/jpg",
                                             "image/png",
                                             "image/webp",
                                             "image/bmp",
                                             "application/octet-stream",
                                             "application/x-www-form-urlencoded"};

bool IsGetPath(absl::string_view path) {
  return path == kModelInfoPath || path == kLivePath || path == kReadyPath ||
         path == kOipServerPath || path == kOipModelPath || path == kOipModelReadyPath;
}

// The media type of a Content-Type value: lower case, without parameters.
std::string MediaType(const char* content_type) {
  if (content_type == nullptr) return "";
  absl::string_view type = content_type;
  type = type.substr(0, type.find(';'));
  return absl::AsciiStrToLower(absl::StripAsciiWhitespace(type));
}

// A socket listening on one of the addresses host:port resolves to (the
// first that works); *port is the port it got.
absl::StatusOr<int> Listen(const std::string& address, int* port) {
  const size_t colon = address.rfind(':');
  int number = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &number) ||
      number < 0 || number > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("HTTP address \"", address, "\" is not host:port (e.g. 0.0.0.0:8080)"));
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(number);
  if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found);
      rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for HTTP on ", address, ": ", gai_strerror(rc)));
  }
  std::string reason = "no address";
  int listener = -1;
  for (addrinfo* ai = found; ai != nullptr && listener < 0; ai = ai->ai_next) {
    const int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    const int on = 1;
    if (fd < 0) {
      reason = absl::StrCat("socket: ", std::strerror(errno));
      continue;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
      reason = std::strerror(errno);
      close(fd);
      continue;
    }
    listener = fd;
  }
  freeaddrinfo(found);
  if (listener < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for HTTP on ", address, ": ", reason));
  }
  sockaddr_storage local{};
  socklen_t length = sizeof(local);
  getsockname(listener, reinterpret_cast<sockaddr*>(&local), &length);
  *port = ntohs(local.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&local)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&local)->sin_port);
  return listener;
}

absl::Status CheckOptions(const HttpApiOptions& options) {
  if (options.max_body_bytes <= 0 || options.threads < 1 || options.max_connections < 1) {
    return absl::InvalidArgumentError(
        "HTTP options: max_body_bytes, threads and max_connections must be positive");
  }
  if (options.idle_timeout < absl::Seconds(1) || options.stop_grace < absl::ZeroDuration() ||
      options.liveness_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "HTTP options: idle_timeout must be at least 1s, stop_grace and liveness_timeout not "
        "negative");
  }
  return absl::OkStatus();
}

absl::Status TooLarge(int64_t bytes, int64_t limit) {
  return WithHttpStatus(absl::ResourceExhaustedError(absl::StrCat(
                            "the body is ", bytes, " bytes; the limit is ", limit, " bytes")),
                        kHttpPayloadTooLarge);
}

// One request, from its headers to libmicrohttpd's completion callback (its
// connection's *con_cls).
struct HttpRequest {
  enum class Stage { kReading, kClassifying, kGet };

  absl::Time start;
  bool json = false;
  std::string path;  // of a GET, answered once the request is complete
  Stage stage = Stage::kReading;
  std::string body;
  int64_t received = 0;
  absl::Duration timeout = absl::InfiniteDuration();
  fer::v1::ClassifyOptions options;
  RepeatedPtrField<fer::v1::Image> faces;  // ClassifyFaces reads them
  // Never set: libmicrohttpd does not watch a suspended connection (see the
  // header).
  std::atomic<bool> cancelled{false};
  // The service's answer, written before the connection is resumed.
  absl::Status status;
  std::string answer;
  std::string model_version;  // of the model that answered, for the access log
  JobTiming timing;           // ClassifyFaces fills it in
  std::atomic<bool> answered{false};
};

// The peer as gRPC names one ("ipv4:10.0.0.7:51334", "ipv6:[::1]:51334"), so
// that the access log's lines read alike whatever the front end.
std::string PeerOf(MHD_Connection* connection) {
  const MHD_ConnectionInfo* info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (info == nullptr || info->client_addr == nullptr) return "unknown";
  char host[INET6_ADDRSTRLEN] = {};
  const sockaddr* address = info->client_addr;
  if (address->sa_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(address);
    inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
    return absl::StrCat("ipv4:", host, ":", ntohs(v4->sin_port));
  }
  if (address->sa_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(address);
    inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
    return absl::StrCat("ipv6:[", host, "]:", ntohs(v6->sin6_port));
  }
  return "unknown";
}

}  // namespace

class HttpApi::Server {
 public:
  Server(const HttpApiOptions& options, ExpressionService* service, ServerMetrics* metrics)
      : options_(options),
        service_(service),
        metrics_(metrics),
        max_faces_(static_cast<int>(service->DescribeModel().max_faces_per_request())) {}
  ~Server() { Stop(); }

  absl::Status Start();
  void Stop();
  int port() const { return port_; }

  // libmicrohttpd's callbacks.
  static MHD_Result OnAccess(void* self, MHD_Connection* connection, const char* url,
                             const char* method, const char* version, const char* upload_data,
                             size_t* upload_data_size, void** request);
  static void OnCompleted(void* self, MHD_Connection* connection, void** request,
                          MHD_RequestTerminationCode code);

 private:
  // The later calls of a request: a piece of its body, its end, or (once
  // resumed) the service's answer.
  MHD_Result Handle(MHD_Connection* connection, const char* upload_data, size_t* upload_data_size,
                    HttpRequest* request);
  // The first call of a request, once its headers are in: routes it, answers
  // all but a classify request whose body is to be read.
  MHD_Result Route(MHD_Connection* connection, absl::string_view path, absl::string_view method,
                   HttpRequest* request);
  // A GET (or HEAD) of a path IsGetPath knows.
  MHD_Result Get(MHD_Connection* connection, absl::string_view path);
  // POST /v1/classify's headers and query: refuses or prepares the body.
  MHD_Result StartClassify(MHD_Connection* connection, HttpRequest* request);
  // The whole body is in: refuses it or hands its faces to the service.
  MHD_Result Classify(MHD_Connection* connection, HttpRequest* request);
  MHD_Result AnswerClassify(MHD_Connection* connection, HttpRequest* request,
                            const absl::Status& status, const std::string& body);
  MHD_Result Reply(MHD_Connection* connection, int http_status, const std::string& body,
                   const char* allow = nullptr);
  MHD_Result ReplyError(MHD_Connection* connection, const absl::Status& status,
                        const char* allow = nullptr) {
    return Reply(connection, HttpStatusOf(status), ErrorJson(status), allow);
  }
  bool Live() const {
    return options_.liveness_timeout <= absl::ZeroDuration() ||
           !service_->Stalled(options_.liveness_timeout);
  }

  const HttpApiOptions options_;
  ExpressionService* const service_;
  ServerMetrics* const metrics_;
  const int max_faces_;
  MHD_Daemon* daemon_ = nullptr;
  int listener_ = -1;
  int port_ = 0;

  std::mutex mu_;
  std::condition_variable changed_;
  int requests_ = 0;     // HttpRequests alive; guarded by mu_
  int classifying_ = 0;  // of them, handed to the service and not answered
};

absl::Status HttpApi::Server::Start() {
  absl::StatusOr<int> listener = Listen(options_.address, &port_);
  if (!listener.ok()) return listener.status();
  listener_ = *listener;
  const unsigned timeout_seconds =
      static_cast<unsigned>(std::max<int64_t>(1, absl::ToInt64Seconds(options_.idle_timeout)));
  daemon_ = MHD_start_daemon(
      MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME, 0, nullptr, nullptr, &OnAccess, this,
      MHD_OPTION_LISTEN_SOCKET, static_cast<MHD_socket>(listener_), MHD_OPTION_THREAD_POOL_SIZE,
      static_cast<unsigned>(options_.threads), MHD_OPTION_CONNECTION_LIMIT,
      static_cast<unsigned>(options_.max_connections), MHD_OPTION_CONNECTION_TIMEOUT,
      timeout_seconds, MHD_OPTION_CONNECTION_MEMORY_LIMIT, kConnectionMemoryBytes,
      MHD_OPTION_NOTIFY_COMPLETED, &OnCompleted, this, MHD_OPTION_END);
  if (daemon_ == nullptr) {
    close(listener_);
    listener_ = -1;
    return absl::UnavailableError(
        absl::StrCat("cannot serve HTTP on ", options_.address, ": libmicrohttpd did not start"));
  }
  return absl::OkStatus();
}

void HttpApi::Server::Stop() {
  if (daemon_ == nullptr) return;
  // libmicrohttpd must not stop with a connection suspended: every request
  // the service has must have its answer first (Drain answers them all).
  MHD_quiesce_daemon(daemon_);
  {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [this] { return classifying_ == 0; });
    changed_.wait_for(lock, absl::ToChronoNanoseconds(options_.stop_grace),
                      [this] { return requests_ == 0; });
  }
  MHD_stop_daemon(daemon_);
  daemon_ = nullptr;
  close(listener_);  // quiesced: ours to close, once the daemon has stopped
  listener_ = -1;
}

MHD_Result HttpApi::Server::OnAccess(void* self, MHD_Connection* connection, const char* url,
                                     const char* method, const char* /*version*/,
                                     const char* upload_data, size_t* upload_data_size,
                                     void** request) {
  auto* server = static_cast<Server*>(self);
  if (*request == nullptr) {
    auto* fresh = new HttpRequest;
    fresh->start = absl::Now();
    *request = fresh;
    {
      std::lock_guard<std::mutex> lock(server->mu_);
      ++server->requests_;
    }
    return server->Route(connection, url, method, fresh);
  }
  return server->Handle(connection, upload_data, upload_data_size,
                        static_cast<HttpRequest*>(*request));
}

void HttpApi::Server::OnCompleted(void* self, MHD_Connection* /*connection*/, void** request,
                                  MHD_RequestTerminationCode /*code*/) {
  // Never for a request with the service: its connection is suspended, and
  // Stop stops the daemon only once none is.
  delete static_cast<HttpRequest*>(*request);
  *request = nullptr;
  auto* server = static_cast<Server*>(self);
  std::lock_guard<std::mutex> lock(server->mu_);
  --server->requests_;
  server->changed_.notify_all();
}

MHD_Result HttpApi::Server::Handle(MHD_Connection* connection, const char* upload_data,
                                   size_t* upload_data_size, HttpRequest* request) {
  if (request->stage == HttpRequest::Stage::kGet) {
    // Answered on this later call, not the first: libmicrohttpd closes the
    // connection after an answer queued before the request is complete.
    if (*upload_data_size > 0) {
      *upload_data_size = 0;  // a GET's body is not read
      return MHD_YES;
    }
    return Get(connection, request->path);
  }
  if (request->stage == HttpRequest::Stage::kClassifying) {
    // Resumed: the service has answered.
    if (!request->answered.load(std::memory_order_acquire)) return MHD_YES;
    return AnswerClassify(connection, request, request->status, request->answer);
  }
  if (*upload_data_size > 0) {
    request->received += static_cast<int64_t>(*upload_data_size);
    if (request->received <= options_.max_body_bytes) {
      request->body.append(upload_data, *upload_data_size);
    } else {
      request->body = std::string();  // refused at the end; not kept meanwhile
      if (request->received > kDiscardFactor * options_.max_body_bytes) return MHD_NO;
    }
    *upload_data_size = 0;
    return MHD_YES;
  }
  return Classify(connection, request);
}

MHD_Result HttpApi::Server::Route(MHD_Connection* connection, absl::string_view path,
                                  absl::string_view method, HttpRequest* request) {
  if (path == kClassifyPath) {
    if (method != MHD_HTTP_METHOD_POST) {
      const absl::Status refused = WithHttpStatus(
          absl::UnimplementedError(absl::StrCat(kClassifyPath, " takes POST, not ", method)),
          kHttpMethodNotAllowed);
      return AnswerClassify(connection, request, refused, ErrorJson(refused));
    }
    return StartClassify(connection, request);
  }
  if (!IsGetPath(path)) {
    return ReplyError(connection, absl::NotFoundError(absl::StrCat(
                                      "no endpoint ", path, "; see docs/http.md for the API")));
  }
  if (method != MHD_HTTP_METHOD_GET && method != MHD_HTTP_METHOD_HEAD) {
    return ReplyError(
        connection,
        WithHttpStatus(absl::UnimplementedError(absl::StrCat(path, " takes GET, not ", method)),
                       kHttpMethodNotAllowed),
        "GET, HEAD");
  }
  request->stage = HttpRequest::Stage::kGet;
  request->path = std::string(path);
  return MHD_YES;
}

MHD_Result HttpApi::Server::Get(MHD_Connection* connection, absl::string_view path) {
  if (path == kModelInfoPath)
    return Reply(connection, 200, ModelInfoJson(service_->DescribeModel()));
  if (path == kLivePath) return Reply(connection, Live() ? 200 : 503, "");
  const bool ready = service_->Serving() && Live();
  if (path == kReadyPath || path == kOipModelReadyPath) {
    return Reply(connection, ready ? 200 : 503, "");
  }
  if (path == kOipServerPath)
    return Reply(connection, 200, OipServerMetadataJson(FER_SERVER_VERSION));
  return Reply(connection, 200, OipModelMetadataJson(service_->DescribeModel()));
}

// The query parameters of a classify request, through ApplyClassifyParameter;
// the first error stops the iteration.
struct QueryReader {
  HttpRequest* request;
  absl::Status status;

  static MHD_Result Next(void* self, MHD_ValueKind /*kind*/, const char* key, const char* value) {
    auto* reader = static_cast<QueryReader*>(self);
    reader->status = ApplyClassifyParameter(key, value == nullptr ? "" : value,
                                            &reader->request->options, &reader->request->timeout);
    return reader->status.ok() ? MHD_YES : MHD_NO;
  }
};

MHD_Result HttpApi::Server::StartClassify(MHD_Connection* connection, HttpRequest* request) {
  const std::string type = MediaType(
      MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE));
  request->json = type == kJsonType;
  if (!request->json && !type.empty() &&
      std::find(std::begin(kImageTypes), std::end(kImageTypes), type) == std::end(kImageTypes)) {
    const absl::Status refused =
        WithHttpStatus(absl::InvalidArgumentError(absl::StrCat(
                           "Content-Type ", type, " is not taken; POST ", kClassifyPath,
                           " takes an image (image/jpeg, image/png, image/webp, image/bmp, "
                           "application/octet-stream) or application/json")),
                       kHttpUnsupportedMediaType);
    return AnswerClassify(connection, request, refused, ErrorJson(refused));
  }
  QueryReader query{request, absl::OkStatus()};
  MHD_get_connection_values(connection, MHD_GET_ARGUMENT_KIND, &QueryReader::Next, &query);
  if (!query.status.ok()) {
    return AnswerClassify(connection, request, query.status, ErrorJson(query.status));
  }
  const char* length =
      MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  int64_t declared = 0;
  if (length != nullptr && absl::SimpleAtoi(length, &declared)) {
    if (declared > options_.max_body_bytes) {
      const absl::Status refused = TooLarge(declared, options_.max_body_bytes);
      return AnswerClassify(connection, request, refused, ErrorJson(refused));
    }
    request->body.reserve(std::min(static_cast<size_t>(declared), kMaxReserveBytes));
  }
  return MHD_YES;
}

MHD_Result HttpApi::Server::Classify(MHD_Connection* connection, HttpRequest* request) {
  absl::Status status;
  if (request->received > options_.max_body_bytes) {
    status = TooLarge(request->received, options_.max_body_bytes);
  } else if (request->json) {
    status = ParseClassifyJson(request->body, max_faces_, &request->faces, &request->options);
  } else {
    request->faces.Add()->set_encoded(std::move(request->body));
  }
  request->body = std::string();
  if (!status.ok()) return AnswerClassify(connection, request, status, ErrorJson(status));

  request->stage = HttpRequest::Stage::kClassifying;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++classifying_;
  }
  const absl::Time deadline = request->timeout == absl::InfiniteDuration()
                                  ? absl::InfiniteFuture()
                                  : request->start + request->timeout;
  // Resumed by the answer, which may come before ClassifyFaces returns: this
  // call then ends with the connection resumed and is called again at once.
  MHD_suspend_connection(connection);
  service_->ClassifyFaces(
      &request->faces, request->options, deadline, &request->cancelled,
      [this, connection, request](absl::Status done, RepeatedPtrField<fer::v1::Prediction> answer,
                                  std::string version) {
        request->answer = done.ok() ? ClassifyResponseJson(answer, version) : ErrorJson(done);
        request->model_version = std::move(version);
        request->status = std::move(done);
        request->answered.store(true, std::memory_order_release);
        MHD_resume_connection(connection);
        std::lock_guard<std::mutex> lock(mu_);
        --classifying_;
        changed_.notify_all();
      },
      &request->timing);
  return MHD_YES;
}

MHD_Result HttpApi::Server::AnswerClassify(MHD_Connection* connection, HttpRequest* request,
                                           const absl::Status& status, const std::string& body) {
  metrics_->OnRequestDone(Rpc::kHttpClassify, status.code(), absl::Now() - request->start);
  // Every request that ends here is one call, answered once: sampled here
  // rather than on arrival, which the counting sampler makes the same.
  if (AccessLog* log = service_->access_log(); log != nullptr && log->Sample()) {
    AccessLogEntry entry;
    entry.method = kAccessLogHttpClassify;
    entry.peer = PeerOf(connection);
    entry.code = status.code();
    entry.message = status.message();
    entry.faces = request->faces.size();
    entry.queue = request->timing.queue_wait;
    entry.model = request->timing.compute;
    entry.total = absl::Now() - request->start;
    entry.model_version = status.ok() ? request->model_version : "";
    log->Record(entry);
  }
  return Reply(connection, HttpStatusOf(status), body,
               HttpStatusOf(status) == kHttpMethodNotAllowed ? "POST" : nullptr);
}

MHD_Result HttpApi::Server::Reply(MHD_Connection* connection, int http_status,
                                  const std::string& body, const char* allow) {
  MHD_Response* response = MHD_create_response_from_buffer(
      body.size(), const_cast<char*>(body.data()), MHD_RESPMEM_MUST_COPY);
  if (response == nullptr) return MHD_NO;
  if (!body.empty()) MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, kJsonType);
  if (allow != nullptr) MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, allow);
  const MHD_Result result =
      MHD_queue_response(connection, static_cast<unsigned>(http_status), response);
  MHD_destroy_response(response);
  return result;
}

// ---------------------------------------------------------------------------

HttpApi::HttpApi(std::unique_ptr<Server> server) : server_(std::move(server)) {}

HttpApi::~HttpApi() { Stop(); }

absl::StatusOr<std::unique_ptr<HttpApi>> HttpApi::Start(const HttpApiOptions& options,
                                                        ExpressionService* service,
                                                        ServerMetrics* metrics) {
  if (service == nullptr || metrics == nullptr) {
    return absl::InvalidArgumentError("HttpApi needs a service and its metrics");
  }
  if (absl::Status valid = CheckOptions(options); !valid.ok()) return valid;
  auto server = std::make_unique<Server>(options, service, metrics);
  if (absl::Status status = server->Start(); !status.ok()) return status;
  return std::unique_ptr<HttpApi>(new HttpApi(std::move(server)));
}

void HttpApi::Stop() { server_->Stop(); }

int HttpApi::port() const { return server_->port(); }

}  // namespace fer
