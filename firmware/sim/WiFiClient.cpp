#include "WiFiClient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sim_internal.h"

using esp_hil_sim::g_conns;

namespace {

constexpr int kConnectTimeoutMs = 5000;

// Connects a fresh socket from the twin's address; returns the fd or -1.
int dial(uint32_t ip, uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    esp_hil_sim::log("socket(): %s", strerror(errno));
    return -1;
  }
  esp_hil_sim::set_mss(fd);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_addr.s_addr = esp_hil_sim::config().ip;
  if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
    esp_hil_sim::log("bind(%s): %s", esp_hil_sim::config().ip_text, strerror(errno));
    close(fd);
    return -1;
  }
  sockaddr_in remote{};
  remote.sin_family = AF_INET;
  remote.sin_port = htons(port);
  remote.sin_addr.s_addr = ip;
  int r = ::connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof remote);
  if (r != 0 && errno == EINPROGRESS) {
    pollfd p = {fd, POLLOUT, 0};
    uint64_t deadline = esp_hil_sim::monotonic_us() + kConnectTimeoutMs * 1000ull;
    for (;;) {
      uint64_t now = esp_hil_sim::monotonic_us();
      if (now >= deadline) {
        errno = ETIMEDOUT;
        break;
      }
      // The core's connect() waits with esp_delay(), which yields: the dogs are fed.
      // Slices of at most 1 s keep them fed through the whole wait.
      uint64_t slice_ms = (deadline - now + 999) / 1000;
      if (slice_ms > 1000) slice_ms = 1000;
      int ready = poll(&p, 1, static_cast<int>(slice_ms));
      esp_hil_sim::wdt_feed();
      if (ready < 0 && errno == EINTR) continue;
      if (ready == 0 && esp_hil_sim::monotonic_us() < deadline) continue;
      if (ready <= 0) {
        errno = ETIMEDOUT;
        break;
      }
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      errno = err;
      r = err == 0 ? 0 : -1;
      break;
    }
  }
  if (r != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

WiFiClient::WiFiClient(const WiFiClient& other) : Client(other), slot_(other.slot_) {
  esp_hil_sim::conn_ref(slot_);
}

WiFiClient& WiFiClient::operator=(const WiFiClient& other) {
  if (this != &other) {
    esp_hil_sim::conn_ref(other.slot_);
    esp_hil_sim::conn_unref(slot_);
    slot_ = other.slot_;
  }
  return *this;
}

WiFiClient::~WiFiClient() { esp_hil_sim::conn_unref(slot_); }

int WiFiClient::fd() const { return slot_ >= 0 ? g_conns[slot_].fd : -1; }

int WiFiClient::connect(IPAddress ip, uint16_t port) {
  if (slot_ >= 0) stop();
  if (!esp_hil_sim::wifi_connected() || !esp_hil_sim::link_up()) return 0;
  // The core's connect() starts with tcp_new(): no heap for the PCB, no SYN sent.
  const int pcb = esp_hil_sim::heap_take(esp_hil_sim::kTcpPcbSize);
  if (pcb < 0) {
    esp_hil_sim::log("connect(): no heap for a TCP PCB (%zu bytes)", esp_hil_sim::kTcpPcbSize);
    return 0;
  }
  int fd = dial(static_cast<uint32_t>(ip), port);
  if (fd < 0) {
    esp_hil_sim::heap_give(pcb, esp_hil_sim::kTcpPcbSize);
    return 0;
  }
  int slot = esp_hil_sim::conn_alloc(fd, pcb);
  if (slot < 0) {
    esp_hil_sim::log("more than %zu open connections: connect() fails", esp_hil_sim::kMaxConns);
    close(fd);
    return 0;
  }
  slot_ = slot;
  return 1;
}

int WiFiClient::connect(const char* host, uint16_t port) {
  uint32_t addr = 0;
  if (!esp_hil_sim::resolve_host(host, &addr)) {
    if (slot_ >= 0) stop();
    return 0;
  }
  return connect(IPAddress(addr), port);
}

size_t WiFiClient::write(const uint8_t* buf, size_t size) {
  return slot_ >= 0 ? esp_hil_sim::conn_write(slot_, buf, size) : 0;
}

int WiFiClient::availableForWrite() {
  return slot_ >= 0 ? static_cast<int>(esp_hil_sim::conn_writable(slot_)) : 0;
}

void WiFiClient::flush() {
  if (slot_ >= 0) esp_hil_sim::conn_flush_wait(slot_, esp_hil_sim::kStopFlushMs);
}

int WiFiClient::available() {
  int s = fd();
  if (s < 0) return 0;
  esp_hil_sim::Conn& c = g_conns[slot_];
  if (c.eof_seen || !esp_hil_sim::link_up()) return 0;  // no link: nothing arrives
  // What the idle poll counted, less what the sketch read since (no system call).
  if (c.avail_gen == esp_hil_sim::g_poll_gen) return c.avail;
  int pending = 0;
  if (ioctl(s, FIONREAD, &pending) != 0) return 0;
  return pending;
}

int WiFiClient::read() {
  uint8_t c;
  return read(&c, 1) == 1 ? c : -1;
}

int WiFiClient::read(uint8_t* buf, size_t size) {
  int s = fd();
  if (s < 0 || size == 0 || !esp_hil_sim::link_up()) return 0;
  esp_hil_sim::Conn& c = g_conns[slot_];
  ssize_t n = recv(s, buf, size, MSG_DONTWAIT);
  if (n > 0) {
    esp_hil_sim::note_input_taken();
    c.avail = n < c.avail ? c.avail - static_cast<int>(n) : 0;
    return static_cast<int>(n);
  }
  if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
    c.eof_seen = true;  // closed (or reset) and nothing left: final
    c.open_gen = 0;
  }
  c.avail = 0;
  return 0;
}

int WiFiClient::peek() {
  int s = fd();
  uint8_t c;
  if (s < 0 || !esp_hil_sim::link_up()) return -1;
  return recv(s, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 1 ? c : -1;
}

void WiFiClient::stop() {
  if (slot_ < 0) return;
  esp_hil_sim::conn_close(slot_);
  esp_hil_sim::conn_unref(slot_);
  slot_ = -1;
}

uint8_t WiFiClient::connected() {
  int s = fd();
  if (s < 0) return 0;
  const esp_hil_sim::Conn& conn = g_conns[slot_];
  if (conn.eof_seen) return 0;
  if (!esp_hil_sim::link_up()) return conn.broken ? 0 : 1;  // lwIP hears nothing either way
  // The idle poll of this pass saw the peer still sending (no system call).
  if (conn.open_gen == esp_hil_sim::g_poll_gen && !conn.broken) return 1;
  if (available() > 0) return 1;
  uint8_t c;
  ssize_t n = recv(s, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return 1;
  if (n == 0) return 0;  // orderly close by the peer, nothing left to read
  return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 1 : 0;
}

IPAddress WiFiClient::remoteIP() { return slot_ >= 0 ? IPAddress(g_conns[slot_].remote_ip) : IPAddress(); }

uint16_t WiFiClient::remotePort() { return slot_ >= 0 ? g_conns[slot_].remote_port : 0; }

IPAddress WiFiClient::localIP() { return slot_ >= 0 ? IPAddress(esp_hil_sim::config().ip) : IPAddress(); }

uint16_t WiFiClient::localPort() { return slot_ >= 0 ? g_conns[slot_].local_port : 0; }

void WiFiClient::setNoDelay(bool on) { esp_hil_sim::set_nodelay(fd(), on); }

bool WiFiClient::getNoDelay() {
  int s = fd();
  int v = 0;
  socklen_t len = sizeof v;
  return s >= 0 && getsockopt(s, IPPROTO_TCP, TCP_NODELAY, &v, &len) == 0 && v != 0;
}
