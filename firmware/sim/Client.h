#pragma once

#include "IPAddress.h"
#include "Stream.h"

// The network client interface of the Arduino API (WiFiClient implements it).
class Client : public Stream {
 public:
  virtual int connect(IPAddress ip, uint16_t port) = 0;
  virtual int connect(const char* host, uint16_t port) = 0;
  virtual int read(uint8_t* buf, size_t size) = 0;
  virtual void stop() = 0;
  virtual uint8_t connected() = 0;
  virtual operator bool() = 0;  // NOLINT: Arduino API
  using Stream::read;
};
