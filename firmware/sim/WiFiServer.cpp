#include "WiFiServer.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sim_internal.h"

using esp_hil_sim::g_listeners;

WiFiServer::WiFiServer(uint16_t port) : slot_(esp_hil_sim::listener_alloc(0, port)) {}

WiFiServer::WiFiServer(IPAddress addr, uint16_t port)
    : slot_(esp_hil_sim::listener_alloc(static_cast<uint32_t>(addr), port)) {}

WiFiServer::~WiFiServer() { esp_hil_sim::listener_free(slot_); }

void WiFiServer::begin() {
  if (slot_ < 0) return;
  if (!esp_hil_sim::listener_reserve(slot_)) {
    // The core's begin() returns when tcp_new() or tcp_listen() finds no heap: CLOSED.
    esp_hil_sim::log("WiFiServer::begin(%u): no heap for the listening PCB",
                     static_cast<unsigned>(g_listeners[slot_].port));
    return;
  }
  g_listeners[slot_].wanted = true;
  // Opens now when the station is up; otherwise when it comes up.
  if (esp_hil_sim::wifi_connected()) esp_hil_sim::listener_open(slot_);
}

void WiFiServer::begin(uint16_t port) {
  if (slot_ < 0) return;
  if (g_listeners[slot_].port != port) {
    esp_hil_sim::listener_close(slot_);
    g_listeners[slot_].port = port;
  }
  begin();
}

void WiFiServer::setNoDelay(bool on) {
  if (slot_ >= 0) g_listeners[slot_].nodelay = on;
}

bool WiFiServer::getNoDelay() const { return slot_ >= 0 && g_listeners[slot_].nodelay; }

bool WiFiServer::hasClient() {
  esp_hil_sim::wifi_tick();
  if (slot_ < 0 || g_listeners[slot_].fd < 0 || !esp_hil_sim::link_up()) return false;
  // The idle poll of this pass saw nothing pending (no system call).
  if (g_listeners[slot_].quiet_gen == esp_hil_sim::g_poll_gen) return false;
  pollfd p = {g_listeners[slot_].fd, POLLIN, 0};
  if (poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN)) return false;
  if (!esp_hil_sim::heap_fits(esp_hil_sim::kTcpPcbSize)) {
    // lwIP drops a SYN it has no PCB for: the sketch never hears of that connection.
    esp_hil_sim::listener_refuse_pending(slot_);
    return false;
  }
  return true;
}

WiFiClient WiFiServer::accept() {
  esp_hil_sim::wifi_tick();
  if (slot_ < 0 || g_listeners[slot_].fd < 0 || !esp_hil_sim::link_up()) return WiFiClient();
  // On the chip each connection got its PCB from the heap at its SYN (tcp_alloc in
  // tcp_listen_input); here the kernel completed the handshake, so the PCB is taken now.
  const int pcb = esp_hil_sim::heap_take(esp_hil_sim::kTcpPcbSize);
  if (pcb < 0) {
    esp_hil_sim::listener_refuse_pending(slot_);
    return WiFiClient();
  }
  int fd = accept4(g_listeners[slot_].fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    esp_hil_sim::heap_give(pcb, esp_hil_sim::kTcpPcbSize);
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      esp_hil_sim::log("accept(): %s", strerror(errno));
    }
    return WiFiClient();
  }
  int slot = esp_hil_sim::conn_alloc(fd, pcb);
  if (slot < 0) {
    // No room: refuse this one rather than keep it pending forever.
    esp_hil_sim::log("more than %zu open connections: refusing a client", esp_hil_sim::kMaxConns);
    esp_hil_sim::conn_refuse(fd);
    return WiFiClient();
  }
  if (g_listeners[slot_].nodelay) esp_hil_sim::set_nodelay(fd, true);
  return WiFiClient(slot);
}

void WiFiServer::stop() {
  if (slot_ < 0) return;
  g_listeners[slot_].wanted = false;
  esp_hil_sim::listener_close(slot_);
  esp_hil_sim::listener_release(slot_);
}

uint8_t WiFiServer::status() const {
  return static_cast<uint8_t>(slot_ >= 0 && g_listeners[slot_].fd >= 0 ? WiFiServerStatus::LISTEN
                                                                        : WiFiServerStatus::CLOSED);
}

uint16_t WiFiServer::port() const { return slot_ >= 0 ? g_listeners[slot_].port : 0; }
