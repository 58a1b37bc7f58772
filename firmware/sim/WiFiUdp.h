// WiFiUDP of the twin: real UDP sockets bound to the twin's address, so a test's own UDP
// peer (an NTP server, a syslog sink, a discovery client) exchanges datagrams with the
// sketch. As on the core: one received datagram at a time (parsePacket() moves to the
// next, dropping what is unread), datagrams of up to kMaxDatagram bytes each way, nothing
// sent or received while the station is not connected or its access point is off the air.
// Multicast is not simulated; a WiFiUDP cannot be copied (the core's can).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "IPAddress.h"
#include "Udp.h"

class WiFiUDP : public UDP {
 public:
  // The payload of one Ethernet-sized datagram (1500 - 20 - 8), lwIP's usual limit.
  static constexpr size_t kMaxDatagram = 1472;

  WiFiUDP() = default;
  WiFiUDP(const WiFiUDP&) = delete;
  WiFiUDP& operator=(const WiFiUDP&) = delete;
  ~WiFiUDP() override;
  operator bool() const { return fd_ >= 0; }  // NOLINT: Arduino API

  uint8_t begin(uint16_t port) override;
  void stop() override;
  int beginPacket(IPAddress ip, uint16_t port) override;
  int beginPacket(const char* host, uint16_t port) override;
  int endPacket() override;
  size_t write(uint8_t byte) override;
  size_t write(const uint8_t* buffer, size_t size) override;
  using Print::write;

  int parsePacket() override;
  int available() override;
  int read() override;
  int read(unsigned char* buffer, size_t len) override;
  int read(char* buffer, size_t len) override;
  int peek() override;
  void flush() override;  // as the core: finishes (sends) the packet being built

  IPAddress remoteIP() override;
  uint16_t remotePort() override;
  IPAddress destinationIP() const;
  uint16_t localPort() const;

 private:
  bool open(uint16_t port);

  int fd_ = -1;
  uint16_t local_port_ = 0;
  uint8_t tx_[kMaxDatagram] = {};
  size_t tx_len_ = 0;
  bool building_ = false;
  uint32_t tx_ip_ = 0;  // network byte order
  uint16_t tx_port_ = 0;
  uint8_t rx_[kMaxDatagram] = {};
  size_t rx_len_ = 0;
  size_t rx_at_ = 0;
  uint32_t rx_ip_ = 0;
  uint16_t rx_port_ = 0;
};
