// esp-hil's replacement for the ESP8266 core's host-emulation ClientContext
// (tests/host/common/include/ClientContext.h). This directory comes first on the sim-core
// include path, so `#include <include/ClientContext.h>` in the core's WiFiClient.cpp and the
// mock's WiFiServer finds this file. Same public interface as the mock's; three behaviours
// follow the real core (libraries/ESP8266WiFi/src/include/ClientContext.h) instead:
//   - read(buf, n) returns what has arrived (up to n), not 0 until n bytes are buffered;
//   - availableForWrite() is the room left in an lwIP-sized send buffer (TCP_SND_BUF),
//     not a constant 512 (writes beyond it would block the sketch);
//   - a peer's FIN is seen: state() becomes CLOSE_WAIT while received bytes remain to be
//     read, then CLOSED (the core aborts the pcb once nothing is left to read).
// Sockets are the host's (non-blocking, esp_hil_core_socket.cpp); one fixed receive buffer
// per connection.
#ifndef ESP_HIL_SIM_CORE_CLIENTCONTEXT_H
#define ESP_HIL_SIM_CORE_CLIENTCONTEXT_H

class ClientContext;
class WiFiClient;

#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "esp_hil_core_socket.h"

bool getDefaultPrivateGlobalSyncValue();

typedef void (*discard_cb_t)(void*, ClientContext*);

namespace esp_hil_core {

// lwIP as the core builds it (lwipopts.h): a send buffer of two segments and a receive window
// of four. The segment size is the lwIP variant's: 1460 for "v2 Higher Bandwidth", 536 for
// "v2 Lower Memory" (PlatformIO's default, and the mock's TCP_MSS). The build passes the one
// the firmware is written for (harness/sim/core/build.py, ESP_HIL_CORE_TCP_MSS).
#ifndef ESP_HIL_CORE_TCP_MSS
#define ESP_HIL_CORE_TCP_MSS TCP_MSS
#endif
constexpr size_t kTcpMss = ESP_HIL_CORE_TCP_MSS;
constexpr size_t kTcpSndBuf = 2 * kTcpMss;
constexpr size_t kTcpWnd = 4 * kTcpMss;

}  // namespace esp_hil_core

class ClientContext {
 public:
  ClientContext(tcp_pcb* pcb, discard_cb_t discard_cb, void* discard_cb_arg)
      : _discard_cb(discard_cb), _discard_cb_arg(discard_cb_arg), _sync(::getDefaultPrivateGlobalSyncValue()) {
    (void)pcb;
  }

  explicit ClientContext(int sock) : _sync(::getDefaultPrivateGlobalSyncValue()), _sock(sock) {}

  ~ClientContext() { abort(); }

  err_t abort() {
    esp_hil_core::sock_close(_sock);
    _sock = -1;
    return ERR_ABRT;
  }

  err_t close() {
    abort();
    return ERR_OK;
  }

  ClientContext* next() const { return _next; }
  ClientContext* next(ClientContext* new_next) {
    _next = new_next;
    return _next;
  }

  void ref() { ++_refcnt; }
  void unref() {
    if (--_refcnt == 0) {
      discard_received();
      close();
      if (_discard_cb) _discard_cb(_discard_cb_arg, this);
      delete this;
    }
  }

  // Like lwIP's tcp_connect with the core's wait: returns 1 once connected, 0 when refused,
  // unreachable or not done within the timeout.
  int connect(const ip_addr_t* addr, uint16_t port) {
    abort();
    _fin = false;
    _inlen = 0;
    _sock = esp_hil_core::sock_connect(addr->addr, port, _timeout_ms);
    return _sock >= 0 ? 1 : 0;
  }

  // lwIP's tcp_sndbuf(): room left in a send buffer of two segments. lwIP frees it as the
  // peer acknowledges; a host peer acknowledges every second full WiFi segment at once, while
  // over loopback (one 64 KiB segment) it would delay its ACK by tens of ms. So what the host
  // has not yet sent counts, not what it has not yet had acknowledged.
  size_t availableForWrite() {
    if (_sock < 0) return 0;
    const size_t queued = esp_hil_core::sock_unsent(_sock);
    return queued >= esp_hil_core::kTcpSndBuf ? 0 : esp_hil_core::kTcpSndBuf - queued;
  }

  void setNoDelay(bool nodelay) {
    _nodelay = nodelay;
    if (_sock >= 0) esp_hil_core::sock_set_nodelay(_sock, nodelay);
  }
  bool getNoDelay() const { return _nodelay; }

  void setTimeout(int timeout_ms) { _timeout_ms = timeout_ms; }
  int getTimeout() const { return _timeout_ms; }

  uint32_t getRemoteAddress() const { return endpoint(true).ip; }
  uint16_t getRemotePort() const { return endpoint(true).port; }
  uint32_t getLocalAddress() const { return endpoint(false).ip; }
  uint16_t getLocalPort() const { return endpoint(false).port; }

  size_t getSize() {
    fill();
    return _inlen;
  }

  int read() {
    char c;
    return read(&c, 1) ? static_cast<unsigned char>(c) : -1;
  }

  size_t read(char* dst, size_t size) {
    const size_t n = peekBytes(dst, size);
    peekConsume(n);
    return n;
  }

  int peek() {
    char c;
    return peekBytes(&c, 1) ? static_cast<unsigned char>(c) : -1;
  }

  // The core's peekBytes does not wait either: it copies what has arrived.
  size_t peekBytes(char* dst, size_t size) {
    fill();
    const size_t n = size < _inlen ? size : _inlen;
    memcpy(dst, _inbuf, n);
    return n;
  }

  void discard_received() { _inlen = 0; }

  // The core waits for lwIP's send queue to empty; the host's queue is the stand-in.
  bool wait_until_acked(int max_wait_ms = WIFICLIENT_MAX_FLUSH_WAIT_MS) {
    const long deadline = esp_hil_core::monotonic_ms() + max_wait_ms;
    while (_sock >= 0) {
      const size_t queued = esp_hil_core::sock_unacked(_sock);
      if (queued == 0) return true;
      if (esp_hil_core::monotonic_ms() >= deadline) return false;
      esp_hil_core::sleep_ms(1);
    }
    return false;
  }

  uint8_t state() {
    fill();
    if (_sock < 0) return CLOSED;
    if (!_fin) return ESTABLISHED;
    if (_inlen > 0) return CLOSE_WAIT;
    abort();  // as the core does once a closed peer's data has all been read
    return CLOSED;
  }

  // Writes everything, waiting for room up to the timeout (the core's write blocks the
  // sketch the same way); returns what was sent.
  size_t write(const char* data, size_t size) {
    if (_sock < 0) return 0;
    bool broken = false;
    const size_t sent = esp_hil_core::sock_send(_sock, data, size, _timeout_ms, &broken);
    if (broken) abort();
    return sent;
  }

  void keepAlive(uint16_t idle_sec = TCP_DEFAULT_KEEPALIVE_IDLE_SEC,
                 uint16_t intv_sec = TCP_DEFAULT_KEEPALIVE_INTERVAL_SEC,
                 uint8_t count = TCP_DEFAULT_KEEPALIVE_COUNT) {
    _ka_idle = idle_sec;
    _ka_intv = intv_sec;
    _ka_count = count;
    if (_sock >= 0) esp_hil_core::sock_keepalive(_sock, idle_sec, intv_sec, count);
  }
  bool isKeepAliveEnabled() const { return _ka_idle != 0; }
  uint16_t getKeepAliveIdle() const { return _ka_idle; }
  uint16_t getKeepAliveInterval() const { return _ka_intv; }
  uint8_t getKeepAliveCount() const { return _ka_count; }

  bool getSync() const { return _sync; }
  void setSync(bool sync) { _sync = sync; }

  // The zero-copy read API (see WiFiClient::peekBuffer).
  const char* peekBuffer() { return _inbuf; }
  size_t peekAvailable() {
    fill();
    return _inlen;
  }
  void peekConsume(size_t consume) {
    assert(consume <= _inlen);
    memmove(_inbuf, _inbuf + consume, _inlen - consume);
    _inlen -= consume;
  }

 private:
  // Pull what the host has received into the buffer (lwIP holds at most a window's worth);
  // notice the peer's FIN and a reset.
  void fill() {
    while (_sock >= 0 && !_fin && _inlen < sizeof _inbuf) {
      const long n = esp_hil_core::sock_recv(_sock, _inbuf + _inlen, sizeof _inbuf - _inlen);
      if (n > 0) {
        _inlen += static_cast<size_t>(n);
      } else if (n == esp_hil_core::kRecvFin) {
        _fin = true;
      } else {
        if (n == esp_hil_core::kRecvError) {
          // A reset: lwIP drops the pcb and with it what was not yet read.
          abort();
          _inlen = 0;
        }
        return;
      }
    }
  }

  struct Endpoint {
    uint32_t ip;
    uint16_t port;
  };
  Endpoint endpoint(bool remote) const {
    Endpoint e{0, 0};
    if (_sock >= 0) esp_hil_core::sock_endpoint(_sock, remote, &e.ip, &e.port);
    return e;
  }

  discard_cb_t _discard_cb = nullptr;
  void* _discard_cb_arg = nullptr;
  int8_t _refcnt = 0;
  ClientContext* _next = nullptr;
  bool _sync;
  int _sock = -1;
  int _timeout_ms = 5000;
  bool _nodelay = false;
  bool _fin = false;
  uint16_t _ka_idle = 0;
  uint16_t _ka_intv = 0;
  uint8_t _ka_count = 0;
  char _inbuf[esp_hil_core::kTcpWnd];
  size_t _inlen = 0;
};

#endif  // ESP_HIL_SIM_CORE_CLIENTCONTEXT_H
