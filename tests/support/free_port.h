// A free loopback TCP port, for servers started as subprocesses (which cannot
// report a port 0 choice back as easily as an in-process server).
#ifndef FER_TESTS_SUPPORT_FREE_PORT_H_
#define FER_TESTS_SUPPORT_FREE_PORT_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace fer {
namespace test_support {

// A loopback port that was free a moment ago (the kernel's choice for port
// 0); 0 when no socket could be bound.
inline int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  close(fd);
  return port;
}

}  // namespace test_support
}  // namespace fer

#endif  // FER_TESTS_SUPPORT_FREE_PORT_H_
