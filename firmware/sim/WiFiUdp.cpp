#include "WiFiUdp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "Arduino.h"
#include "sim_internal.h"

namespace {

bool on_air() { return esp_hil_sim::wifi_connected() && esp_hil_sim::link_up(); }

}  // namespace

WiFiUDP::~WiFiUDP() { stop(); }

bool WiFiUDP::open(uint16_t port) {
  fd_ = esp_hil_sim::udp_open(port, "WiFiUDP", &local_port_);
  return fd_ >= 0;
}

uint8_t WiFiUDP::begin(uint16_t port) {
  stop();
  return open(port) ? 1 : 0;
}

void WiFiUDP::stop() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  local_port_ = 0;
  tx_len_ = rx_len_ = rx_at_ = 0;
  building_ = false;
}

int WiFiUDP::beginPacket(IPAddress ip, uint16_t port) {
  // A sketch may send without begin(): the core then uses an ephemeral local port.
  if (fd_ < 0 && !open(0)) return 0;
  tx_ip_ = static_cast<uint32_t>(ip);
  tx_port_ = port;
  tx_len_ = 0;
  building_ = true;
  return 1;
}

int WiFiUDP::beginPacket(const char* host, uint16_t port) {
  uint32_t addr = 0;
  if (!esp_hil_sim::resolve_host(host, &addr)) return 0;
  return beginPacket(IPAddress(addr), port);
}

size_t WiFiUDP::write(uint8_t byte) { return write(&byte, 1); }

size_t WiFiUDP::write(const uint8_t* buffer, size_t size) {
  if (!building_) return 0;
  const size_t room = kMaxDatagram - tx_len_;
  const size_t n = size < room ? size : room;
  memcpy(tx_ + tx_len_, buffer, n);
  tx_len_ += n;
  return n;
}

int WiFiUDP::endPacket() {
  if (!building_) return 0;
  building_ = false;
  if (!on_air()) return 0;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(tx_port_);
  to.sin_addr.s_addr = tx_ip_;
  const ssize_t sent =
      sendto(fd_, tx_, tx_len_, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  tx_len_ = 0;
  return sent >= 0 ? 1 : 0;
}

int WiFiUDP::parsePacket() {
  rx_len_ = rx_at_ = 0;  // what was not read of the last datagram is gone
  if (fd_ < 0) return 0;
  for (;;) {
    sockaddr_in from{};
    socklen_t len = sizeof from;
    const ssize_t got = recvfrom(fd_, rx_, sizeof rx_, MSG_DONTWAIT,
                                 reinterpret_cast<sockaddr*>(&from), &len);
    if (got < 0) {  // nothing waiting (or an error: nothing to read either)
      optimistic_yield(100);  // as the core: a sketch polling in a loop lets the system run
      return 0;
    }
    if (!on_air()) continue;  // the radio is off: what came meanwhile never arrived
    rx_len_ = static_cast<size_t>(got);
    rx_ip_ = from.sin_addr.s_addr;
    rx_port_ = ntohs(from.sin_port);
    return static_cast<int>(rx_len_);
  }
}

int WiFiUDP::available() { return static_cast<int>(rx_len_ - rx_at_); }

int WiFiUDP::read() { return rx_at_ < rx_len_ ? rx_[rx_at_++] : -1; }

int WiFiUDP::read(unsigned char* buffer, size_t len) {
  const size_t left = rx_len_ - rx_at_;
  const size_t n = len < left ? len : left;
  memcpy(buffer, rx_ + rx_at_, n);
  rx_at_ += n;
  return static_cast<int>(n);
}

int WiFiUDP::read(char* buffer, size_t len) {
  return read(reinterpret_cast<unsigned char*>(buffer), len);
}

int WiFiUDP::peek() { return rx_at_ < rx_len_ ? rx_[rx_at_] : -1; }

void WiFiUDP::flush() { endPacket(); }

IPAddress WiFiUDP::remoteIP() { return IPAddress(rx_ip_); }
uint16_t WiFiUDP::remotePort() { return rx_port_; }
IPAddress WiFiUDP::destinationIP() const { return IPAddress(esp_hil_sim::config().ip); }
uint16_t WiFiUDP::localPort() const { return local_port_; }
