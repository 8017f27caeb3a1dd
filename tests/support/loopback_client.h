// A plain TCP client of a server on 127.0.0.1, for the tests that speak HTTP
// to the metrics endpoint byte by byte (hostile requests included) rather
// than through a client library.
#ifndef FER_TESTS_SUPPORT_LOOPBACK_CLIENT_H_
#define FER_TESTS_SUPPORT_LOOPBACK_CLIENT_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

namespace fer {
namespace test_support {

// A connected TCP socket to 127.0.0.1:port whose reads give up after
// kReadTimeoutSeconds (which only turns a hang into a failure); closed on
// destruction.
class LoopbackClient {
 public:
  static constexpr int kReadTimeoutSeconds = 10;

  explicit LoopbackClient(int port) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    timeval timeout{kReadTimeoutSeconds, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<uint16_t>(port));
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  }
  ~LoopbackClient() { close(fd_); }
  LoopbackClient(const LoopbackClient&) = delete;
  LoopbackClient& operator=(const LoopbackClient&) = delete;

  bool connected() const { return connected_; }
  // Sends all of bytes; false when the connection refuses them.
  bool Send(const std::string& bytes) {
    return send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }
  // Everything until the server closes (or the read timeout).
  std::string ReadAll() {
    std::string all;
    char buffer[65536];
    ssize_t n;
    while ((n = recv(fd_, buffer, sizeof(buffer), 0)) > 0) all.append(buffer, n);
    return all;
  }
  // True when the server has closed this connection (recv sees the end of
  // the stream) within the read timeout.
  bool ClosedByServer() {
    char byte;
    return recv(fd_, &byte, 1, 0) == 0;
  }
  // True when the connection is open and nothing has arrived on it.
  bool OpenAndSilent() {
    char byte;
    return recv(fd_, &byte, 1, MSG_DONTWAIT) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

 private:
  int fd_;
  bool connected_ = false;
};

// Sends request (raw bytes) to 127.0.0.1:port and returns everything the
// server answered until it closed; "" when it could not be sent.
inline std::string HttpExchange(int port, const std::string& request) {
  LoopbackClient client(port);
  if (!client.connected() || !client.Send(request)) return "";
  return client.ReadAll();
}

// The body of an HTTP response (what follows the blank line); "" without one.
inline std::string HttpBody(const std::string& response) {
  const size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

}  // namespace test_support
}  // namespace fer

#endif  // FER_TESTS_SUPPORT_LOOPBACK_CLIENT_H_
