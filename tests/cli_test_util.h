#ifndef SWEEP_TESTS_CLI_TEST_UTIL_H_
#define SWEEP_TESTS_CLI_TEST_UTIL_H_

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>

namespace sweep::testing {

// Returns a loopback TCP port that nothing listens on: binds a socket to port 0, reads the
// port the kernel picked and closes the socket again.
inline int ClosedLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  bool bound = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
               getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  close(fd);
  if (!bound) throw std::runtime_error("binding a loopback port failed");
  return ntohs(address.sin_port);
}

}  // namespace sweep::testing

#endif  // SWEEP_TESTS_CLI_TEST_UTIL_H_
