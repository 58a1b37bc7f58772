// WiFiClient over a non-blocking POSIX TCP socket bound to the twin's address.
// Copies share one connection (a refcounted slot in a fixed table, like the
// core's refcounted ClientContext); the socket closes on stop() or when the
// last copy goes away.
#pragma once

#include "Client.h"
#include "IPAddress.h"

class WiFiClient : public Client {
 public:
  WiFiClient() = default;
  WiFiClient(const WiFiClient& other);
  WiFiClient& operator=(const WiFiClient& other);
  ~WiFiClient() override;

  // Blocking, at most 5 s. Returns 1 on success, 0 on failure (no WiFi, refused,
  // timeout, unknown host, no free connection slot).
  int connect(IPAddress ip, uint16_t port) override;
  int connect(const char* host, uint16_t port) override;
  int connect(const String& host, uint16_t port) { return connect(host.c_str(), port); }

  // Non-blocking: returns the bytes taken (possibly fewer than size, or 0). Bytes the
  // kernel cannot take at once wait in the connection's 8 KiB send buffer and go out
  // from the idle loop, like lwIP's send queue.
  size_t write(uint8_t c) override { return write(&c, 1); }
  size_t write(const uint8_t* buf, size_t size) override;
  using Print::write;
  // Exactly what write() takes now: the free part of the send buffer (0 when closed).
  int availableForWrite() override;

  int available() override;  // bytes readable now
  int read() override;  // one byte, or -1 when none is readable now
  int read(uint8_t* buf, size_t size) override;  // never blocks; 0 when nothing is there
  int read(char* buf, size_t size) { return read(reinterpret_cast<uint8_t*>(buf), size); }
  int peek() override;
  void flush() override;  // waits (at most 300 ms) until the send buffer is in the kernel
  // Closes the connection (for every copy) and detaches this copy; buffered bytes
  // are flushed first (waiting at most 300 ms).
  void stop() override;
  // True while the peer has not closed, or while unread data remains.
  uint8_t connected() override;
  operator bool() override { return connected(); }  // NOLINT: Arduino API

  IPAddress remoteIP();
  uint16_t remotePort();
  IPAddress localIP();
  uint16_t localPort();

  void setNoDelay(bool on);
  bool getNoDelay();

 private:
  friend class WiFiServer;
  explicit WiFiClient(int slot) : slot_(slot) {}  // adopts one reference
  int fd() const;

  int slot_ = -1;
};
