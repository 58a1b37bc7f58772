// The tables behind WiFiClient and WiFiServer: fixed arrays, so accepting and connecting
// never show up as the sketch's allocations. What lwIP mallocs on the chip for each
// connection and listener (its PCBs) is taken from the simulated heap (heap_take), so a
// sketch short of heap refuses connections as a board does.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <linux/net_tstamp.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sim_internal.h"

namespace esp_hil_sim {

namespace {

uint8_t g_tx[kMaxConns][kTxBuffer];

void fill_endpoints(Conn& c) {
  sockaddr_in addr;
  socklen_t len = sizeof addr;
  if (getpeername(c.fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0 && addr.sin_family == AF_INET) {
    c.remote_ip = addr.sin_addr.s_addr;
    c.remote_port = ntohs(addr.sin_port);
  }
  len = sizeof addr;
  if (getsockname(c.fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0 && addr.sin_family == AF_INET) {
    c.local_port = ntohs(addr.sin_port);
  }
}

// lwIP frees send-buffer room in its sent callback, the moment an ACK arrives; the kernel has
// no poll event for that. A TX_ACK timestamp is one: queued on the socket's error queue once
// a send's last byte is acknowledged, it raises POLLERR (no payload: OPT_TSONLY). Only a
// send that leaves the buffer without a segment of room asks for one (send_data): a notice
// for every send would wake the twin once more per message.
bool watch_acks(int fd) {
  const int flags = SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_OPT_TSONLY;
  return setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, &flags, sizeof flags) == 0;
}

// send(), with an ACK notice asked for when `notice` (and the connection can give one).
ssize_t send_data(const Conn& c, const uint8_t* data, size_t len, bool notice) {
  if (!notice || !c.ack_events) return send(c.fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  iovec iov = {const_cast<uint8_t*>(data), len};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(uint32_t))] = {};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = control;
  m.msg_controllen = sizeof control;
  cmsghdr* cm = CMSG_FIRSTHDR(&m);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SO_TIMESTAMPING;
  cm->cmsg_len = CMSG_LEN(sizeof(uint32_t));
  const uint32_t record = SOF_TIMESTAMPING_TX_ACK;
  memcpy(CMSG_DATA(cm), &record, sizeof record);
  return sendmsg(c.fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
}

// Reads every ACK notice queued; true if there was one.
bool drain_acks(int fd) {
  bool any = false;
  alignas(cmsghdr) char control[256];
  for (;;) {
    msghdr m{};
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    if (recvmsg(fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) return any;
    any = true;
  }
}

}  // namespace

short conn_revents(int fd, short events, short revents) {
  // Polled again without the notices; one may come in between, so drain until none is left
  // (bounded: a real error is POLLERR with nothing to drain).
  for (int round = 0; round < 8 && (revents & POLLERR) && drain_acks(fd); round++) {
    pollfd p = {fd, events, 0};
    revents = poll(&p, 1, 0) > 0 ? p.revents : 0;
  }
  return revents;
}

int conn_alloc(int fd, int pcb) {
  for (size_t i = 0; i < kMaxConns; i++) {
    Conn& c = g_conns[i];
    if (c.refs > 0) continue;
    c = Conn{};
    c.fd = fd;
    c.refs = 1;
    c.pcb = pcb;
    c.ack_events = watch_acks(fd);
    fill_endpoints(c);
    return static_cast<int>(i);
  }
  heap_give(pcb, kTcpPcbSize);
  return -1;
}

void conn_refuse(int fd) {
  const linger reset = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  close(fd);
}

void conn_ref(int slot) {
  if (slot >= 0) g_conns[slot].refs++;
}

void conn_unref(int slot) {
  if (slot < 0) return;
  Conn& c = g_conns[slot];
  if (--c.refs > 0) return;
  conn_close(slot);
  c.refs = 0;
}

void conn_close(int slot) {
  if (slot < 0) return;
  Conn& c = g_conns[slot];
  if (c.fd >= 0) {
    // lwIP sends what was queued before the FIN; so do we, within a bound.
    if (!conn_flush_wait(slot, kStopFlushMs)) log("stop(): %u unsent bytes dropped", c.tx_len);
    close(c.fd);
  }
  // lwIP frees the PCB once the close handshake is done; the twin does at once (no
  // FIN-WAIT or TIME-WAIT lingering, docs/twin.md).
  heap_give(c.pcb, kTcpPcbSize);
  c.pcb = -1;
  c.fd = -1;
  c.want_out = false;
  c.tx_len = 0;
}

bool conn_flush(int slot) {
  Conn& c = g_conns[slot];
  if (c.fd < 0 || c.broken) c.tx_len = 0;
  if (!link_up()) {  // no link: the bytes wait in the buffer, as in lwIP's queue
    c.want_out = c.tx_len > 0;
    return c.tx_len == 0;
  }
  while (c.tx_len > 0) {
    // Bytes the kernel would not take before: the sketch may be waiting for room.
    ssize_t n = send_data(c, g_tx[slot], c.tx_len, true);
    if (n > 0) {
      c.tx_len = static_cast<uint16_t>(c.tx_len - n);
      memmove(g_tx[slot], g_tx[slot] + n, c.tx_len);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    c.broken = true;  // reset or closed for writing: what is buffered can never go out
    c.tx_len = 0;
  }
  c.want_out = c.tx_len > 0;
  return c.tx_len == 0;
}

bool conn_flush_wait(int slot, int timeout_ms) {
  const uint64_t deadline = monotonic_us() + static_cast<uint64_t>(timeout_ms) * 1000u;
  while (!conn_flush(slot)) {
    uint64_t now = monotonic_us();
    if (now >= deadline || !link_up()) return false;
    pollfd p = {g_conns[slot].fd, POLLOUT, 0};
    if (poll(&p, 1, static_cast<int>((deadline - now + 999) / 1000)) > 0) {
      conn_revents(p.fd, p.events, p.revents);  // drains ACK notices, or it would spin
    }
    wdt_feed();  // the core's flush waits with esp_delay(), which yields
  }
  return true;
}

void conns_flush_all() {
  for (size_t i = 0; i < kMaxConns; i++) {
    if (g_conns[i].refs > 0 && g_conns[i].tx_len > 0) conn_flush(static_cast<int>(i));
  }
}

size_t conn_write(int slot, const uint8_t* data, size_t len) {
  Conn& c = g_conns[slot];
  if (c.fd < 0 || c.broken || len == 0) return 0;
  // Never more than lwIP's send buffer has room for (a short write, as on the core).
  const size_t room_now = conn_writable(slot);
  if (len > room_now) len = room_now;
  if (len == 0) return 0;
  size_t taken = 0;
  // Nothing queued ahead of these bytes: hand them to the kernel directly.
  if (link_up() && conn_flush(slot)) {
    ssize_t n = send_data(c, data, len, room_now - len < config().tcp_mss);
    if (n > 0) {
      taken = static_cast<size_t>(n);
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      c.broken = true;
      return 0;
    }
  }
  size_t room = kTxBuffer - c.tx_len;
  size_t rest = len - taken;
  size_t queued = rest < room ? rest : room;
  memcpy(g_tx[slot] + c.tx_len, data + taken, queued);
  c.tx_len = static_cast<uint16_t>(c.tx_len + queued);
  c.want_out = c.tx_len > 0;
  return taken + queued;
}

size_t conn_writable(int slot) {
  Conn& c = g_conns[slot];
  if (c.fd < 0 || c.broken) return 0;
  conn_flush(slot);
  if (c.broken) return 0;
  // lwIP's tcp_sndbuf(): TCP_SND_BUF (2 x MSS) less what is queued and not yet acknowledged
  // by the peer: the kernel's unacked + unsent bytes (SIOCOUTQ) and the shim's buffer.
  int outq = 0;
  if (ioctl(c.fd, SIOCOUTQ, &outq) != 0 || outq < 0) outq = 0;
  const size_t in_flight = static_cast<size_t>(outq) + c.tx_len;
  const size_t sndbuf = 2u * config().tcp_mss;
  // Less than a segment of room: a sketch that writes whole segments waits for an ACK.
  c.awaiting_ack = outq > 0 && in_flight + config().tcp_mss > sndbuf;
  return in_flight >= sndbuf ? 0 : sndbuf - in_flight;
}

int listener_alloc(uint32_t bind_ip, uint16_t port) {
  for (size_t i = 0; i < kMaxListeners; i++) {
    Listener& l = g_listeners[i];
    if (l.used) continue;
    l = Listener{};
    l.used = true;
    l.bind_ip = bind_ip;
    l.port = port;
    l.fd = -1;
    return static_cast<int>(i);
  }
  log("more than %zu WiFiServer objects: this one will never listen", kMaxListeners);
  return -1;
}

void listener_free(int slot) {
  if (slot < 0) return;
  listener_close(slot);
  listener_release(slot);
  g_listeners[slot].used = false;
}

bool listener_reserve(int slot) {
  if (slot < 0) return false;
  Listener& l = g_listeners[slot];
  if (l.lpcb >= 0) return true;
  // Both live at once inside tcp_listen(), which copies the PCB into the smaller one.
  const int pcb = heap_take(kTcpPcbSize);
  if (pcb < 0) return false;
  l.lpcb = heap_take(kTcpPcbListenSize);
  heap_give(pcb, kTcpPcbSize);
  return l.lpcb >= 0;
}

void listener_release(int slot) {
  if (slot < 0) return;
  heap_give(g_listeners[slot].lpcb, kTcpPcbListenSize);
  g_listeners[slot].lpcb = -1;
}

void listener_refuse_pending(int slot) {
  // Bounded: the kernel's backlog holds 5; a peer redialling in a loop must not keep the
  // sketch here.
  for (int i = 0; i < 8; i++) {
    const int fd = accept4(g_listeners[slot].fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    log("no heap for a TCP PCB (%zu bytes; largest free block %u): connection reset", kTcpPcbSize,
        heap_max_block());
    conn_refuse(fd);
  }
}

bool listener_open(int slot) {
  if (slot < 0) return false;
  Listener& l = g_listeners[slot];
  if (l.fd >= 0) return true;
  l.quiet_gen = 0;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    log("socket(): %s", strerror(errno));
    return false;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  set_mss(fd);  // inherited by the connections it accepts
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(l.port);
  // Every socket of the twin lives on its own address, never on 0.0.0.0.
  addr.sin_addr.s_addr = l.bind_ip ? l.bind_ip : config().ip;
  // 5 pending connections, as the core's WiFiServer (MAX_PENDING_CLIENTS_PER_PORT); Linux queues backlog + 1.
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 4) != 0) {
    char text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &addr.sin_addr, text, sizeof text);
    int err = errno;
    log("cannot listen on %s:%u: %s", text, static_cast<unsigned>(l.port), strerror(err));
    if (err == EADDRINUSE) {
      // Another process owns this twin's address: serving nothing while printing READY would
      // send the harness's connections to that other process.
      log("another process serves on this twin's address; refusing to run");
      _exit(kExitConfig);
    }
    close(fd);
    return false;
  }
  l.fd = fd;
  return true;
}

void listener_close(int slot) {
  if (slot < 0) return;
  Listener& l = g_listeners[slot];
  if (l.fd >= 0) close(l.fd);
  l.fd = -1;
}

void listeners_station_up() {
  for (size_t i = 0; i < kMaxListeners; i++) {
    if (g_listeners[i].used && g_listeners[i].wanted) listener_open(static_cast<int>(i));
  }
}

void listeners_station_down() {
  for (size_t i = 0; i < kMaxListeners; i++) {
    if (g_listeners[i].used) listener_close(static_cast<int>(i));
  }
}

void set_mss(int fd) {
  const int mss = static_cast<int>(config().tcp_mss);
  setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof mss);
}

bool set_nodelay(int fd, bool on) {
  int v = on ? 1 : 0;
  return fd >= 0 && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) == 0;
}

bool resolve_host(const char* host, uint32_t* addr) {
  if (!host || !*host) return false;
  in_addr quad{};
  if (inet_pton(AF_INET, host, &quad) == 1) {
    *addr = quad.s_addr;
    return true;
  }
  addrinfo hints{};
  hints.ai_family = AF_INET;
  addrinfo* found = nullptr;
  if (getaddrinfo(host, nullptr, &hints, &found) != 0 || !found) return false;
  *addr = reinterpret_cast<sockaddr_in*>(found->ai_addr)->sin_addr.s_addr;
  freeaddrinfo(found);
  return true;
}

int udp_open(uint16_t port, const char* who, uint16_t* bound) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    log("%s: socket(): %s", who, strerror(errno));
    return -1;
  }
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_port = htons(port);
  local.sin_addr.s_addr = config().ip;
  socklen_t len = sizeof local;
  if (bind(fd, reinterpret_cast<sockaddr*>(&local), len) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) {
    log("%s: bind(%s:%u): %s", who, config().ip_text, port, strerror(errno));
    close(fd);
    return -1;
  }
  if (bound) *bound = ntohs(local.sin_port);
  return fd;
}

}  // namespace esp_hil_sim
