#include "server/metrics_http.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace fer {
namespace {

// How long accept() stays off after the process ran out of descriptors, so
// that a readable listener does not spin the loop.
constexpr absl::Duration kAcceptPause = absl::Milliseconds(100);
constexpr size_t kReadChunk = 4096;

// A file descriptor, closed on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) Reset(std::exchange(other.fd_, -1));
    return *this;
  }
  ~Fd() { Reset(); }
  void Reset(int fd = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

std::string ErrnoText(absl::string_view call, int error) {
  return absl::StrCat(call, ": ", std::strerror(error));
}

// "host:port" into its parts; host may be bracketed IPv6, or empty.
absl::Status SplitAddress(const std::string& address, std::string* host, std::string* port) {
  const size_t colon = address.rfind(':');
  int number = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &number) ||
      number < 0 || number > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics address \"", address, "\" is not host:port (e.g. 0.0.0.0:9464)"));
  }
  *host = address.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  *port = std::to_string(number);
  return absl::OkStatus();
}

// A non-blocking socket listening on one of the addresses host:port resolves
// to (the first that works), and the port it got.
absl::StatusOr<Fd> Listen(const std::string& address, int* bound_port) {
  std::string host, port;
  if (absl::Status status = SplitAddress(address, &host, &port); !status.ok()) return status;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found);
      rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, ": ", gai_strerror(rc)));
  }
  std::string reason = "no address";
  Fd listener;
  for (addrinfo* ai = found; ai != nullptr && !listener.valid(); ai = ai->ai_next) {
    Fd fd(socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
    const int on = 1;
    if (!fd.valid()) {
      reason = ErrnoText("socket", errno);
    } else if (setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0) {
      reason = ErrnoText("setsockopt", errno);
    } else if (bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      reason = ErrnoText("bind", errno);
    } else if (listen(fd.get(), SOMAXCONN) != 0) {
      reason = ErrnoText("listen", errno);
    } else {
      listener = std::move(fd);
    }
  }
  freeaddrinfo(found);
  if (!listener.valid()) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", address, ": ", reason));
  }
  sockaddr_storage local{};
  socklen_t length = sizeof(local);
  getsockname(listener.get(), reinterpret_cast<sockaddr*>(&local), &length);
  *bound_port =
      ntohs(local.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&local)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&local)->sin_port);
  return listener;
}

std::string HttpResponse(absl::string_view status, absl::string_view extra_headers,
                         absl::string_view content_type, absl::string_view body,
                         bool include_body) {
  return absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", content_type,
                      "\r\nContent-Length: ", body.size(), "\r\n", extra_headers,
                      "Connection: close\r\n\r\n", include_body ? body : "");
}

std::string ErrorResponse(absl::string_view status, absl::string_view extra_headers = "") {
  return HttpResponse(status, extra_headers, "text/plain; charset=utf-8",
                      absl::StrCat(status, "\n"), true);
}

// The path of a request target: origin form ("/metrics?x") or absolute form
// ("http://host:9464/metrics").
absl::string_view TargetPath(absl::string_view target) {
  if (absl::StartsWithIgnoreCase(target, "http://")) {
    target.remove_prefix(7);
    const size_t slash = target.find('/');
    target = slash == absl::string_view::npos ? "/" : target.substr(slash);
  }
  return target.substr(0, target.find('?'));
}

// The whole response to a request whose head (request line and headers) has
// arrived.
std::string Respond(absl::string_view head, const MetricsHttpServer::BodyFunction& body) {
  absl::string_view line = head.substr(0, head.find('\n'));
  if (absl::EndsWith(line, "\r")) line.remove_suffix(1);
  const std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
  if (parts.size() != 3 || parts[0].empty() || parts[1].empty() ||
      !absl::StartsWith(parts[2], "HTTP/1.")) {
    return ErrorResponse("400 Bad Request");
  }
  const bool head_only = parts[0] == "HEAD";
  if (parts[0] != "GET" && !head_only) {
    return ErrorResponse("405 Method Not Allowed", "Allow: GET, HEAD\r\n");
  }
  if (TargetPath(parts[1]) != "/metrics") return ErrorResponse("404 Not Found");
  std::string text;
  try {
    text = body();
  } catch (const std::exception&) {
    return ErrorResponse("500 Internal Server Error");
  }
  return HttpResponse("200 OK", "", "text/plain; version=0.0.4; charset=utf-8", text, !head_only);
}

// Where the request head ends (just past its blank line), or npos.
size_t HeadEnd(absl::string_view in) {
  const size_t crlf = in.find("\r\n\r\n");
  const size_t lf = in.find("\n\n");
  if (crlf != absl::string_view::npos && (lf == absl::string_view::npos || crlf < lf)) {
    return crlf + 4;
  }
  return lf == absl::string_view::npos ? lf : lf + 2;
}

}  // namespace

class MetricsHttpServer::Loop {
 public:
  Loop(Fd listener, Fd wake_read, Fd wake_write, BodyFunction body, MetricsHttpOptions options)
      : listener_(std::move(listener)),
        wake_read_(std::move(wake_read)),
        wake_write_(std::move(wake_write)),
        body_(std::move(body)),
        options_(options) {}

  // Serves until Stop.
  void Run();
  // Makes Run return; callable from any thread.
  void Stop() {
    const char byte = 0;
    while (write(wake_write_.get(), &byte, 1) < 0 && errno == EINTR) {
    }
  }

 private:
  enum class State { kReading, kWriting, kClosing };
  struct Connection {
    Fd fd;
    State state = State::kReading;
    std::string in;
    std::string out;
    size_t sent = 0;
    absl::Time deadline;
  };

  int PollTimeoutMs(absl::Time now) const;
  void AcceptAll(absl::Time now);
  void OnReady(Connection& c, absl::Time now);
  void Read(Connection& c, absl::Time now);
  void Write(Connection& c);
  void Discard(Connection& c);

  Fd listener_;
  Fd wake_read_;
  Fd wake_write_;
  const BodyFunction body_;
  const MetricsHttpOptions options_;
  // In accept order, so the front is the oldest.
  std::vector<Connection> connections_;
  absl::Time accept_paused_until_ = absl::InfinitePast();
};

void MetricsHttpServer::Loop::Run() {
  std::vector<pollfd> fds;
  while (true) {
    const absl::Time before = absl::Now();
    const bool accepting = before >= accept_paused_until_;
    fds.assign({{wake_read_.get(), POLLIN, 0}, {accepting ? listener_.get() : -1, POLLIN, 0}});
    for (const Connection& c : connections_) {
      fds.push_back(
          {c.fd.get(), static_cast<short>(c.state == State::kWriting ? POLLOUT : POLLIN), 0});
    }
    if (poll(fds.data(), fds.size(), PollTimeoutMs(before)) < 0) {
      // EINTR, or a transient ENOMEM: try again, without spinning.
      if (errno != EINTR) absl::SleepFor(kAcceptPause);
      continue;
    }
    if (fds[0].revents != 0) return;
    const absl::Time now = absl::Now();
    // Step 1: the connections that are ready; step 2: deadlines; step 3: new
    // connections, after the closed ones are gone so that the limit counts
    // only open ones.
    for (size_t i = 0; i < connections_.size(); ++i) {
      if (fds[i + 2].revents != 0) OnReady(connections_[i], now);
    }
    for (Connection& c : connections_) {
      if (c.fd.valid() && now >= c.deadline) c.fd.Reset();
    }
    connections_.erase(std::remove_if(connections_.begin(), connections_.end(),
                                      [](const Connection& c) { return !c.fd.valid(); }),
                       connections_.end());
    if (fds[1].revents != 0) AcceptAll(now);
  }
}

// Until the nearest deadline (rounded up), or the end of an accept pause.
int MetricsHttpServer::Loop::PollTimeoutMs(absl::Time now) const {
  absl::Time wake = absl::InfiniteFuture();
  for (const Connection& c : connections_) wake = std::min(wake, c.deadline);
  if (now < accept_paused_until_) wake = std::min(wake, accept_paused_until_);
  if (wake == absl::InfiniteFuture()) return -1;
  const int64_t ms = absl::ToInt64Milliseconds(wake - now + absl::Milliseconds(1));
  return static_cast<int>(std::clamp<int64_t>(ms, 0, 60000));
}

void MetricsHttpServer::Loop::AcceptAll(absl::Time now) {
  while (true) {
    Fd fd(accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        accept_paused_until_ = now + kAcceptPause;
      }
      return;  // EAGAIN: all taken; ECONNABORTED and the like: the next poll retries
    }
    if (static_cast<int>(connections_.size()) >= options_.max_connections) {
      connections_.erase(connections_.begin());
    }
    Connection c;
    c.fd = std::move(fd);
    c.deadline = now + options_.request_timeout;
    connections_.push_back(std::move(c));
  }
}

void MetricsHttpServer::Loop::OnReady(Connection& c, absl::Time now) {
  switch (c.state) {
    case State::kReading:
      Read(c, now);
      break;
    case State::kWriting:
      Write(c);
      break;
    case State::kClosing:
      Discard(c);
      break;
  }
}

// Reads what has arrived; once the head is complete (or too large), the
// response is made and writing starts at once.
void MetricsHttpServer::Loop::Read(Connection& c, absl::Time now) {
  char buffer[kReadChunk];
  size_t head_end = absl::string_view::npos;
  while (head_end == absl::string_view::npos && c.in.size() <= options_.max_request_bytes) {
    const ssize_t n = recv(c.fd.get(), buffer, sizeof(buffer), 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {  // the client closed before finishing its request, or failed
      c.fd.Reset();
      return;
    }
    // Search from just before the new bytes: the blank line may straddle.
    const size_t from = c.in.size() < 3 ? 0 : c.in.size() - 3;
    c.in.append(buffer, static_cast<size_t>(n));
    const size_t end = HeadEnd(absl::string_view(c.in).substr(from));
    if (end != absl::string_view::npos) head_end = from + end;
  }
  if (head_end != absl::string_view::npos && head_end <= options_.max_request_bytes) {
    c.out = Respond(absl::string_view(c.in).substr(0, head_end), body_);
  } else {
    c.out = ErrorResponse("431 Request Header Fields Too Large");
  }
  c.in.clear();
  c.in.shrink_to_fit();
  c.state = State::kWriting;
  c.deadline = now + options_.response_timeout;
  Write(c);
}

// Sends what the kernel takes; when all is sent, closes the sending side and
// waits (within the same deadline) for the client to close.
void MetricsHttpServer::Loop::Write(Connection& c) {
  while (c.sent < c.out.size()) {
    const ssize_t n = send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      c.fd.Reset();
      return;
    }
    c.sent += static_cast<size_t>(n);
  }
  c.out.clear();
  c.out.shrink_to_fit();
  shutdown(c.fd.get(), SHUT_WR);
  c.state = State::kClosing;
}

// Drops what the client still sends; closes on its end-of-stream or error.
void MetricsHttpServer::Loop::Discard(Connection& c) {
  char buffer[kReadChunk];
  while (true) {
    const ssize_t n = recv(c.fd.get(), buffer, sizeof(buffer), 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      c.fd.Reset();
      return;
    }
  }
}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& address, BodyFunction body, const MetricsHttpOptions& options) {
  int port = 0;
  absl::StatusOr<Fd> listener = Listen(address, &port);
  if (!listener.ok()) return listener.status();
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, ": ", ErrnoText("pipe2", errno)));
  }
  auto loop = std::make_unique<Loop>(std::move(*listener), Fd(pipe_fds[0]), Fd(pipe_fds[1]),
                                     std::move(body), options);
  return std::unique_ptr<MetricsHttpServer>(new MetricsHttpServer(std::move(loop), port));
}

MetricsHttpServer::MetricsHttpServer(std::unique_ptr<Loop> loop, int port)
    : loop_(std::move(loop)), port_(port), thread_([this] { loop_->Run(); }) {}

MetricsHttpServer::~MetricsHttpServer() {
  loop_->Stop();
  thread_.join();
}

}  // namespace fer
