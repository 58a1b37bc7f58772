// The mock's WiFiServer::begin() sets SO_REUSEPORT but not SO_REUSEADDR, so a rebooted or
// reset instance cannot listen again on its 127.0.0.N port while connections the firmware
// closed sit in TIME_WAIT (a minute on Linux), where a board's lwIP listens at once. This
// bind(), linked into the executable ahead of the C library's, adds SO_REUSEADDR to TCP
// sockets and binds with the system call itself.
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

extern "C" int bind(int fd, const struct sockaddr* addr, socklen_t len) {
  int type = 0;
  socklen_t type_len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) == 0 && type == SOCK_STREAM) {
    const int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  }
  return static_cast<int>(syscall(SYS_bind, fd, addr, len));
}
