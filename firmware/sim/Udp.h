#pragma once

#include "IPAddress.h"
#include "Stream.h"

// The datagram interface of the Arduino API (WiFiUDP implements it).
class UDP : public Stream {
 public:
  virtual uint8_t begin(uint16_t port) = 0;
  virtual void stop() = 0;
  virtual int beginPacket(IPAddress ip, uint16_t port) = 0;
  virtual int beginPacket(const char* host, uint16_t port) = 0;
  virtual int endPacket() = 0;
  virtual int parsePacket() = 0;
  virtual int read(unsigned char* buffer, size_t len) = 0;
  virtual int read(char* buffer, size_t len) = 0;
  virtual IPAddress remoteIP() = 0;
  virtual uint16_t remotePort() = 0;
  using Stream::read;
};
