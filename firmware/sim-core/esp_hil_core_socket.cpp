// Host side of esp-hil's ClientContext: plain non-blocking POSIX TCP sockets.
#include "esp_hil_core_socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

namespace esp_hil_core {

namespace {

// Wait until fd is ready for events, at most timeout_ms; true when it is (or has failed).
bool wait_fd(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  int n;
  do {
    n = poll(&p, 1, timeout_ms < 0 ? 0 : timeout_ms);
  } while (n < 0 && errno == EINTR);
  return n == 1;
}

}  // namespace

int sock_connect(uint32_t ip, uint16_t port, int timeout_ms) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = ip;
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) return fd;
  if (errno == EINPROGRESS && wait_fd(fd, POLLOUT, timeout_ms)) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) return fd;
  }
  close(fd);
  return -1;
}

long sock_recv(int fd, char* buf, size_t size) {
  for (;;) {
    const ssize_t n = recv(fd, buf, size, MSG_DONTWAIT);
    if (n >= 0) return static_cast<long>(n);
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK ? kRecvNone : kRecvError;
  }
}

size_t sock_send(int fd, const char* data, size_t size, int timeout_ms, bool* broken) {
  size_t sent = 0;
  *broken = false;
  while (sent < size) {
    const ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_fd(fd, POLLOUT, timeout_ms)) break;  // timed out: the caller sees a short write
    } else {
      *broken = true;
      break;
    }
  }
  return sent;
}

namespace {

size_t out_queue(int fd, unsigned long request) {
  int queued = 0;
  if (ioctl(fd, request, &queued) < 0 || queued < 0) return 0;
  return static_cast<size_t>(queued);
}

}  // namespace

size_t sock_unacked(int fd) { return out_queue(fd, SIOCOUTQ); }

size_t sock_unsent(int fd) { return wait_fd(fd, POLLOUT, 0) ? out_queue(fd, SIOCOUTQNSD) : SIZE_MAX; }

void sock_set_nodelay(int fd, bool nodelay) {
  const int on = nodelay ? 1 : 0;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

void sock_keepalive(int fd, uint16_t idle_sec, uint16_t intv_sec, uint8_t count) {
  const int on = idle_sec != 0 ? 1 : 0;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  if (!on) return;
  const int idle = idle_sec, intv = intv_sec, cnt = count;
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intv, sizeof intv);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
}

void sock_endpoint(int fd, bool remote, uint32_t* ip, uint16_t* port) {
  sockaddr_in sa{};
  socklen_t len = sizeof sa;
  const int rc = remote ? getpeername(fd, reinterpret_cast<sockaddr*>(&sa), &len)
                        : getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  const bool ok = fd >= 0 && rc == 0 && sa.sin_family == AF_INET;
  *ip = ok ? sa.sin_addr.s_addr : 0;
  *port = ok ? ntohs(sa.sin_port) : 0;
}

void sock_close(int fd) {
  if (fd >= 0) close(fd);
}

long monotonic_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

void sleep_ms(int ms) { usleep(static_cast<useconds_t>(ms) * 1000); }

}  // namespace esp_hil_core
