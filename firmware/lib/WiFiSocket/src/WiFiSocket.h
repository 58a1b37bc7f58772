// WiFiSocket for the ESP8266 Arduino core: whole messages (text or binary) over WiFi TCP,
// exactly once and in order across link drops. The device half of harness.wifisocket.
//
//   WiFiSocket soc;                  // max message 1024, 3200-byte window, 2128-byte resend
//   soc.begin(8080);                 // listen (or soc.connect("192.168.1.10", 8080))
//   loop(): soc.loop();
//           if (soc.available() > 0) { n = soc.receive(buf, sizeof buf, &text); }
//           char answer[64]; if (soc.receive(answer) >= 0) { ... }   // small text
//           soc.send("Hi");          // false = no room now: call loop() and try again
//   soc.setKey(key, 32);             // optional, before begin(): a keyed link (protocol v2)
//
// All memory is inside the object (sizes are template parameters); nothing is allocated
// after begin(). The protocol logic lives in wifisocket/ (portable, no Arduino).
#pragma once

#include <Arduino.h>
#include <ESP8266WiFi.h>
#include <string.h>

#include <new>

#include "wifisocket/frame.h"
#include "wifisocket/session.h"

#ifndef WIFISOCKET_READ_CHUNK
/// Bytes read from a connection per read() call: one TCP segment of the core's default
/// lwIP build (MSS 536). More per call saves no work there; the "higher bandwidth" build
/// (MSS 1460) may define it to 1460.
#define WIFISOCKET_READ_CHUNK 536
#endif

namespace wsock_arduino {
// One read buffer shared by every WiFiSocketT in the sketch (loop() runs them one at a
// time, and the bytes are fed to the session before the next read), instead of one each.
inline uint8_t readScratch[WIFISOCKET_READ_CHUNK];
static_assert(WIFISOCKET_READ_CHUNK >= 64, "WIFISOCKET_READ_CHUNK too small");

// The console lines, in WiFiSocketLog.cpp: outside the template, so that their constant text
// is F() strings in flash once (in a template, each instantiation would get a copy in DRAM).
enum LogKind : uint8_t { kLogClose, kLogPeerClose, kLogLost, kLogBusy };
enum DialEvent : uint8_t { kDialConnected, kDialFailed, kDialClosed };
// "WS CLOSE code=<n> reason=<r>", "WS PEER-CLOSE ...", "WS LOST connection dropped".
void logClose(Print& out, uint8_t kind, uint8_t code, const char* reason);
// "WS BUSY no free connection slot".
void logBusy(Print& out);
// "WS <n> more closes in the last <s> s (last: CLOSE code=<c>|PEER-CLOSE code=<c>|LOST|BUSY)".
void logSummary(Print& out, uint32_t suppressed, uint32_t windowS, uint8_t lastKind,
                uint8_t lastCode);
// "WS DIAL <host>:<port> connected|failed, retry in <ms> ms|closed, redial in <ms> ms".
void logDial(Print& out, const char* host, uint16_t port, uint8_t event, uint32_t ms);
}  // namespace wsock_arduino

template <size_t MaxMessage, size_t RxBytes, size_t TxBytes>
class WiFiSocketT {
  static_assert(MaxMessage >= 1, "MaxMessage must be at least 1");
  static_assert(RxBytes >= MaxMessage + wsock::kFrameOverhead,
                "RxBytes (the receive window) must hold one frame of MaxMessage + 20 bytes");
  static_assert(TxBytes >= wsock::kFrameOverhead + 1, "TxBytes must hold a frame");
  static_assert(RxBytes <= 0x7FFFFFFF && TxBytes <= 0x7FFFFFFF, "buffers too large");

 public:
  static constexpr int kSlots = wsock::Endpoint::kMaxSlots;
  /// The largest message: `uint8_t buf[WiFiSocket::kMaxMessage];` takes any of them.
  static constexpr size_t kMaxMessage = MaxMessage;

  WiFiSocketT()
      : ep_(config(), wsock::EndpointBuffers{decoderBuf_, sizeof decoderBuf_, rxBuf_,
                                             sizeof rxBuf_, txBuf_, sizeof txBuf_}) {
    ep_.setCloseHook(&WiFiSocketT::onClose, this);
    ep_.setRandom(&WiFiSocketT::fillRandom, nullptr);
  }
  ~WiFiSocketT() { close(); }
  WiFiSocketT(const WiFiSocketT&) = delete;
  WiFiSocketT& operator=(const WiFiSocketT&) = delete;

  /// Listens on `port` (the device is the server); up to 4 connections, one session.
  bool begin(uint16_t port) {
    close();
    ep_.start(newSessionId());
    server_ = new (serverMem_) WiFiServer(port);  // placement: no heap
    server_->begin();
    server_->setNoDelay(true);
    mode_ = kServer;
    return true;
  }

  /// Dials a host's WiFiSocket.serve; redials by itself (backoff 0.5 s doubling up to 5 s)
  /// whenever the connection is lost or refused, and the session resumes on the new one.
  /// A new session (like begin()); false for an empty, too long (> 63) host or port 0.
  bool connect(const char* host, uint16_t port) {
    if (host == nullptr || host[0] == 0 || strlen(host) >= sizeof host_ || port == 0) {
      return false;
    }
    close();
    strncpy(host_, host, sizeof host_ - 1);
    host_[sizeof host_ - 1] = 0;
    port_ = port;
    ep_.start(newSessionId());
    mode_ = kClient;
    dialSlot_ = -1;
    nextDialAt_ = millis();
    backoffMs_ = kDialMinMs;
    return true;
  }

  /// Call from loop(): accepts, reads, writes, keepalive, resend and timeouts. Never blocks
  /// (except a redial in client mode, which the core's connect() makes blocking).
  void loop() {
    if (mode_ == kIdle) return;
    uint32_t now = millis();
    if (mode_ == kServer) acceptPending(now);
    if (mode_ == kClient) dial(now);
    for (int i = 0; i < kSlots; ++i) readSlot(i, now);
    if (mode_ == kClient && dialSlot_ >= 0 && ep_.activeSlot() == dialSlot_) {
      backoffMs_ = kDialMinMs;  // a session is up: the next loss redials quickly again
    }
    now = millis();
    ep_.tick(now);
    for (int i = 0; i < kSlots; ++i) writeSlot(i, now);
    if (now - logWindowStart_ >= kLogWindowMs) logSummary(now);
  }

  bool connected() const { return ep_.connected(); }
  /// True after connect(): this side dials (and redials) instead of listening.
  bool dialing() const { return mode_ == kClient; }
  /// Whole messages waiting to be received: 0 when none (a message may be empty).
  int available() const { return static_cast<int>(ep_.waiting()); }
  /// Length of the next message, -1 if none.
  int nextLength() const { return ep_.available(); }
  /// The next message is TEXT (false if none waits).
  bool nextIsText() const { return ep_.nextIsText(); }
  /// Copies the next message out: its length, -1 if none, -2 if `cap` is too small (the
  /// message stays: take it with a larger buffer).
  int receive(uint8_t* buf, size_t cap, bool* isText = nullptr) {
    return ep_.receive(buf, cap, isText);
  }
  /// The next message into a char array, terminated: its length, -1 if none, -2 if it does
  /// not fit with the terminator (the message stays). `char answer[64]; soc.receive(answer);`
  template <size_t N>
  int receive(char (&text)[N]) {
    static_assert(N >= 1, "room for the terminator");
    const int n = receive(reinterpret_cast<uint8_t*>(text), N - 1, nullptr);
    text[n >= 0 ? n : 0] = 0;
    return n;
  }
  /// The next message as a String (allocates it: for small messages where the heap is
  /// fine). Empty when none waits (available() tells an empty message from none), when it
  /// is over WIFISOCKET_READ_CHUNK bytes or when the heap is short: then the message stays
  /// for the buffer form.
  String receive() {
    String s;
    const int len = ep_.available();
    if (len <= 0 || static_cast<size_t>(len) > sizeof wsock_arduino::readScratch ||
        !s.reserve(static_cast<unsigned>(len))) {
      if (len == 0) ep_.receive(wsock_arduino::readScratch, 0, nullptr);  // take the empty one
      return s;
    }
    // The shared read buffer is free outside loop(), and the reserve above means the
    // concat below cannot fail: the message is never taken and then lost.
    const int n = ep_.receive(wsock_arduino::readScratch, sizeof wsock_arduino::readScratch, nullptr);
    s.concat(reinterpret_cast<const char*>(wsock_arduino::readScratch), static_cast<unsigned>(n));
    return s;
  }
  /// Queues a message. False: no room now (retry after loop()), too large, or no peer yet.
  bool send(const uint8_t* data, size_t len, bool isText = false) {
    return ep_.send(data, len, isText) == wsock::Endpoint::kSent;
  }
  /// Queues a TEXT message (`soc.send("Hi")`); false as above.
  bool send(const char* text) {
    return send(reinterpret_cast<const uint8_t*>(text), strlen(text), true);
  }
  bool send(const String& text) {
    return send(reinterpret_cast<const uint8_t*>(text.c_str()), text.length(), true);
  }
  /// Closes every connection (CLOSE NORMAL) and ends the session; begin()/connect() again.
  void close() {
    if (mode_ == kIdle) return;
    ep_.close();
    const uint32_t now = millis();
    for (int i = 0; i < kSlots; ++i) writeSlot(i, now);
    if (server_ != nullptr) {
      server_->stop();
      server_->~WiFiServer();
      server_ = nullptr;
    }
    mode_ = kIdle;
  }
  /// Arduino's name for close().
  void stop() { close(); }
  /// Where "WS CLOSE code=<n> reason=<text>" and friends are printed. Lines about
  /// connections that never completed the handshake are rate-limited (a flood must not
  /// stall loop() on a 115200-baud console): each distinct line once per 10 s window, then
  /// one summary line "WS <n> more closes in the last 10 s (last: ...)" per window.
  void setLog(Print& out) { log_ = &out; }

  /// The pre-shared key of a keyed link (docs/protocol.md §6, protocol version 2): 16 to 32
  /// random bytes, the same as the host's. len 0 clears it (unkeyed, version 1); any other
  /// length returns false and keeps the old key. Takes effect for the next connection (the
  /// live one keeps its own). The key is copied, never printed.
  bool setKey(const uint8_t* key, size_t len) { return ep_.setKey(key, len); }
  bool keyed() const { return ep_.keyed(); }

  uint32_t maxMessage() const { return ep_.maxMessage(); }
  uint32_t messagesIn() const { return ep_.messagesIn(); }
  uint32_t messagesOut() const { return ep_.messagesOut(); }
  uint32_t bytesIn() const { return ep_.bytesIn(); }
  uint32_t bytesOut() const { return ep_.bytesOut(); }
  /// Messages the peer never confirmed before it restarted with a new session.
  uint32_t lostMessages() const { return ep_.lostMessages(); }
  uint32_t lastRttMs() const { return ep_.lastRttMs(); }
  /// Connections closed without HELLO to make room for a newer one (all slots were busy).
  uint32_t evictions() const { return ep_.evictions(); }
  /// Keyed handshakes that failed: a wrong proof, a peer with no key or with a key when this
  /// side has none, a reflected HELLO, no AUTH within the handshake bound.
  uint32_t authFailures() const { return ep_.authFailures(); }
  /// Frames of a keyed link with a right CRC and a wrong tag (tampering), each closed BAD_TAG.
  uint32_t tagFailures() const { return ep_.tagFailures(); }
  /// The peer's session id (changes when a new host WiFiSocket connects); 0 if none.
  uint64_t peerSession() const { return ep_.peerSession(); }
  /// The largest message the peer accepts (0 before its HELLO): a longer one never fits.
  uint32_t peerMaxMessage() const { return ep_.peerMaxMessage(); }
  /// Closes the current connection with a close code and reason (the peer gets CLOSE).
  void drop(uint8_t code, const char* reason) { ep_.drop(code, reason); }

 private:
  enum Mode : uint8_t { kIdle, kServer, kClient };
  // A largest frame and, on a keyed link, its tag.
  static constexpr size_t kDecoderCap =
      (MaxMessage > wsock::kCloseMaxPayload ? MaxMessage : wsock::kCloseMaxPayload) +
      wsock::kFrameOverhead + wsock::kTagSize;
  static constexpr uint32_t kDialMinMs = 500;
  static constexpr uint32_t kDialMaxMs = 5000;
  static constexpr size_t kReadBudget = 8192;  // per connection per loop(): stay responsive

  static wsock::EndpointConfig config() {
    wsock::EndpointConfig c;
    c.maxMessage = MaxMessage;
    return c;
  }

  static uint64_t newSessionId() {
    uint64_t id = (static_cast<uint64_t>(ESP.random()) << 32) | ESP.random();
    return id != 0 ? id : 1;
  }

  // HELLO nonces, from the same hardware RNG as the session ids.
  static void fillRandom(void*, uint8_t* out, size_t len) {
    while (len > 0) {
      const uint32_t r = ESP.random();
      const size_t n = len < sizeof r ? len : sizeof r;
      memcpy(out, &r, n);
      out += n;
      len -= n;
    }
  }

  void acceptPending(uint32_t now) {
    while (server_->hasClient()) {
      WiFiClient c = server_->accept();
      if (!c) return;
      int slot = ep_.open(now, wsock::Endpoint::kAccepted);
      if (slot < 0) {
        // Every slot looks busy. First notice connections that are already over (a peer's
        // FIN or RST, an error found in bytes not yet read): they free slots for nothing.
        for (int i = 0; i < kSlots; ++i) {
          readSlot(i, now);
          if (ep_.closing(i)) writeSlot(i, now);
        }
        slot = ep_.open(now, wsock::Endpoint::kAccepted);
      }
      if (slot < 0) {
        // Still busy: make room by evicting the oldest connection that has not
        // completed HELLO (idle, half-open or trickling), so a legitimate newcomer is
        // served at once however many of those are open. The victim gets CLOSE TIMEOUT.
        const int victim = ep_.evict();
        if (victim >= 0) {
          writeSlot(victim, now);  // best-effort CLOSE, stop, release
          slot = ep_.open(now, wsock::Endpoint::kAccepted);
        }
      }
      if (slot < 0) {
        // Only when every slot is past HELLO or closing (cannot last: one is active at a
        // time). Refuse rather than leave it pending, which would keep loop() spinning.
        c.stop();
        if (logAllowed(static_cast<uintptr_t>(wsock_arduino::kLogBusy) << 8,
                       wsock_arduino::kLogBusy, 0)) {
          wsock_arduino::logBusy(*log_);
        }
        continue;
      }
      c.setNoDelay(true);
      clients_[slot] = c;
    }
  }

  void dial(uint32_t now) {
    if (dialSlot_ >= 0 || static_cast<int32_t>(now - nextDialAt_) < 0) return;
    if (WiFi.status() != WL_CONNECTED) return;
    WiFiClient c;
    if (c.connect(host_, port_) != 1) {
      logDial(wsock_arduino::kDialFailed, backoffMs_);
      backOff();
      return;
    }
    const int slot = ep_.open(millis());
    if (slot < 0) {
      c.stop();
      return;
    }
    c.setNoDelay(true);
    clients_[slot] = c;
    dialSlot_ = slot;
    logDial(wsock_arduino::kDialConnected, 0);
  }

  void logDial(uint8_t event, uint32_t ms) {
    if (log_ != nullptr) wsock_arduino::logDial(*log_, host_, port_, event, ms);
  }

  void readSlot(int i, uint32_t now) {
    if (!ep_.inUse(i) || ep_.closing(i)) return;
    WiFiClient& c = clients_[i];
    uint8_t* const buf = wsock_arduino::readScratch;
    constexpr size_t kChunk = sizeof wsock_arduino::readScratch;
    // Whole segments, without asking available() first: a read that returns less than
    // asked for has drained what the connection holds now (one call fewer per chunk).
    size_t budget = kReadBudget;
    while (budget > 0 && ep_.inUse(i) && !ep_.closing(i)) {
      const size_t want = kChunk < budget ? kChunk : budget;
      const int n = c.read(buf, want);
      if (n <= 0) break;
      const size_t got = static_cast<size_t>(n) < want ? static_cast<size_t>(n) : want;
      ep_.feed(i, buf, got, now);
      budget -= got;
      if (got < want) break;
    }
    if (ep_.inUse(i) && !ep_.closing(i) && !c.connected()) {
      ep_.transportLost(i);
      c.stop();
      slotGone(i);
    }
  }

  // What the endpoint offers comes in pieces: a frame, then its tag on a keyed link, then
  // the next frame. The socket has Nagle off, so each write() is a TCP segment of its own
  // (and a wake-up of the peer): small pieces are gathered into the shared scratch buffer
  // and written together; a piece that fills the buffer by itself is written in place.
  void writeSlot(int i, uint32_t now) {
    if (!ep_.inUse(i)) return;
    WiFiClient& c = clients_[i];
    uint8_t* const buf = wsock_arduino::readScratch;
    constexpr size_t kGather = sizeof wsock_arduino::readScratch;
    for (;;) {
      const uint8_t* p = nullptr;
      size_t n = ep_.peekOutput(i, &p, now);
      if (n == 0) break;
      const int room = c.availableForWrite();
      if (room <= 0) break;
      const size_t cap = static_cast<size_t>(room);
      if (n >= kGather) {
        const size_t want = n < cap ? n : cap;
        const size_t wrote = c.write(p, want);
        if (wrote == 0) break;
        ep_.consumeOutput(i, wrote, now);
        if (wrote < want) break;
        continue;
      }
      // The first piece as far as the room allows, then only pieces that fit whole: a
      // large frame is not cut into buffer-sized writes (it goes in place next round).
      const size_t limit = cap < kGather ? cap : kGather;
      size_t used = 0;
      for (;;) {
        const size_t take = n < limit - used ? n : limit - used;
        memcpy(buf + used, p, take);
        ep_.consumeOutput(i, take, now);
        used += take;
        if (used == limit) break;
        n = ep_.peekOutput(i, &p, now);
        if (n == 0 || n > limit - used) break;
      }
      // Taken from the endpoint already: a short write loses bytes from the stream, which
      // only a connection that is failing does (the room was there). The frames stay in
      // the resend ring; the session resumes on the next connection.
      if (c.write(buf, used) < used) {
        ep_.transportLost(i);
        c.stop();
        slotGone(i);
        return;
      }
    }
    if (ep_.closing(i)) {
      // Read what is left first: closing with unread data makes TCP send a reset, which
      // can destroy the CLOSE frame before the peer reads it.
      for (int k = 0; k < 8 && c.available() > 0; ++k) {
        if (c.read(wsock_arduino::readScratch, sizeof wsock_arduino::readScratch) <= 0) break;
      }
      c.stop();
      ep_.release(i);
      slotGone(i);
    }
  }

  void slotGone(int i) {
    if (mode_ == kClient && i == dialSlot_) {
      dialSlot_ = -1;
      logDial(wsock_arduino::kDialClosed, backoffMs_);
      backOff();
    }
  }

  // The next dial waits backoffMs_, which doubles up to kDialMaxMs. It starts over only
  // once a connection completed HELLO, so a host that accepts and then drops or refuses
  // the session is not hammered every kDialMinMs.
  void backOff() {
    nextDialAt_ = millis() + backoffMs_;
    backoffMs_ = backoffMs_ * 2 > kDialMaxMs ? kDialMaxMs : backoffMs_ * 2;
  }

  // Lines about connections that completed the handshake always print (on a keyed link only
  // a peer with the key gets there). The others -- what a flood of strangers causes -- print
  // once per distinct line per window (kLogKinds at most), and one summary line at the end
  // of the window counts the repeats: a flood costs a few lines per window, not one per
  // connection, while each different event still shows at once.
  static constexpr uint32_t kLogWindowMs = 10000;
  static constexpr uint8_t kLogKinds = 6;

  // `key` says which line it is: the reason's address for our own closes (the core's reasons
  // are string literals), else the kind and code.
  bool logAllowed(uintptr_t key, uint8_t kind, uint8_t code) {
    if (log_ == nullptr) return false;
    const uint32_t now = millis();
    if (now - logWindowStart_ >= kLogWindowMs) logSummary(now);
    bool seen = false;
    for (uint8_t i = 0; i < logKeyCount_; ++i) seen = seen || logKeys_[i] == key;
    if (!seen && logKeyCount_ < kLogKinds) {
      logKeys_[logKeyCount_++] = key;
      return true;
    }
    ++logSuppressed_;
    logLastKind_ = kind;
    logLastCode_ = code;
    return false;
  }

  // Ends the window, with its summary line if lines were left out.
  void logSummary(uint32_t now) {
    if (logSuppressed_ > 0 && log_ != nullptr) {
      wsock_arduino::logSummary(*log_, logSuppressed_, kLogWindowMs / 1000, logLastKind_,
                                logLastCode_);
    }
    logWindowStart_ = now;
    logKeyCount_ = 0;
    logSuppressed_ = 0;
  }

  static void onClose(void* ctx, int slot, uint8_t kind, uint8_t code, const char* reason) {
    WiFiSocketT* self = static_cast<WiFiSocketT*>(ctx);
    if (self->log_ == nullptr) return;
    if (!self->ep_.established(slot)) {
      using namespace wsock_arduino;
      const uint8_t what = kind == wsock::kConnectionLost ? kLogLost
                           : kind == wsock::kClosedByPeer ? kLogPeerClose
                                                          : kLogClose;
      const uintptr_t key = what == kLogClose ? reinterpret_cast<uintptr_t>(reason)
                                              : (static_cast<uintptr_t>(what) << 8) | code;
      if (!self->logAllowed(key, what, code)) return;
    }
    wsock_arduino::logClose(*self->log_, kind, code, reason);
  }

  uint8_t decoderBuf_[kDecoderCap];
  uint8_t rxBuf_[RxBytes];
  uint8_t txBuf_[TxBytes];
  wsock::Endpoint ep_;
  WiFiClient clients_[kSlots];
  alignas(WiFiServer) unsigned char serverMem_[sizeof(WiFiServer)];
  WiFiServer* server_ = nullptr;
  Print* log_ = nullptr;
  uintptr_t logKeys_[kLogKinds] = {};
  uint32_t logWindowStart_ = 0;
  uint32_t logSuppressed_ = 0;
  uint8_t logKeyCount_ = 0;
  uint8_t logLastKind_ = 0;
  uint8_t logLastCode_ = 0;
  Mode mode_ = kIdle;
  char host_[64] = {};
  uint16_t port_ = 0;
  int dialSlot_ = -1;
  uint32_t nextDialAt_ = 0;
  uint32_t backoffMs_ = kDialMinMs;
};

/// The defaults, sized for what lwIP can have in flight on a board (docs/protocol.md §5,
/// docs/real-target.md): with MSS 536 a peer has at most TCP_WND = 2144 bytes unacknowledged
/// towards us and lwIP takes TCP_SND_BUF = 1072 of ours. Receive window 3200 = the message
/// the sketch holds + two more frames of 1044 in flight (3 x 1044 = 3132); resend 2128 =
/// one frame + TCP_SND_BUF (1044 + 1072 = 2116), rounded up to 16. 8408 bytes of RAM.
using WiFiSocket = WiFiSocketT<1024, 3200, 2128>;
