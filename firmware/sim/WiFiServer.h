// WiFiServer: a listening socket on the twin's address. begin() before the
// station is connected is remembered; the socket opens once WiFi is up (and
// closes again on WiFi.disconnect()).
#pragma once

#include <stdint.h>

#include "IPAddress.h"
#include "WiFiClient.h"

enum class WiFiServerStatus : uint8_t { CLOSED = 0, LISTEN = 1 };

class WiFiServer {
 public:
  explicit WiFiServer(uint16_t port);
  WiFiServer(IPAddress addr, uint16_t port);
  WiFiServer(const WiFiServer&) = delete;
  WiFiServer& operator=(const WiFiServer&) = delete;
  ~WiFiServer();

  void begin();
  void begin(uint16_t port);
  void begin(uint16_t port, uint8_t backlog) {
    (void)backlog;  // the host listener's backlog is fixed (5 pending, the core's default)
    begin(port);
  }
  // Applies TCP_NODELAY to every client accepted from now on.
  void setNoDelay(bool on);
  bool getNoDelay() const;
  bool hasClient();
  // A connected client, or an empty (falsy) one when none is pending.
  WiFiClient accept();
  WiFiClient available() { return accept(); }  // the core's older name
  void stop();
  void close() { stop(); }
  uint8_t status() const;
  uint16_t port() const;

 private:
  int slot_;
};
