// esp-hil test firmware: the sketch the harness flashes and talks to (docs/console.md).
//
// The console (BOOT, WiFi provisioning, `info`, `reboot`, `forget`, READY) is the EspHil
// agent's; this sketch adds its services: echo on 8080 (every message comes back with its
// type; the control service can switch it to sink or source for throughput runs), control
// on 8081 (`info`, `echo`, `sink`, `source`, `stats`, `raw ...` -> JSON) and a raw TCP port
// on 8082 with the same modes and no framing, the baseline the benchmarks compare against,
// plus the console's `dial`. loop() never blocks; nothing is allocated after setup().
#include <Arduino.h>
#include <ESP8266WiFi.h>
#include <EspHil.h>
#include <WiFiSocket.h>
#include <string.h>

#ifndef ESP_HIL_FW_VERSION
#define ESP_HIL_FW_VERSION "esp-hil-testfw/0.1.0"
#endif

namespace {

constexpr uint16_t kEchoPort = 8080;
constexpr uint16_t kCtrlPort = 8081;
constexpr uint16_t kRawPort = 8082;
// The raw port's buffer: one TCP segment of the core's default lwIP build (MSS 536).
constexpr size_t kRawBuf = 536;
// Bytes the raw service moves per loop() and direction: the same bound as WiFiSocket's
// per-connection read budget, so neither service can starve the others.
constexpr size_t kRawBudget = 8192;

// The echo service uses WiFiSocket's defaults (max message 1024, sized for lwIP on a board:
// docs/real-target.md). Control: requests and replies up to 512 bytes, one at a time;
// resend = one frame (532) + lwIP's TCP_SND_BUF (1072).
using ControlSocket = WiFiSocketT<512, 1024, 1604>;
using EchoSocket = WiFiSocket;
EchoSocket echo;
ControlSocket control;
bool servicesStarted = false;
// Echo keeps one message that could not be sent yet (no room): retried every loop().
uint8_t echoBuf[EchoSocket::kMaxMessage];
int echoLen = -1;
bool echoText = false;
uint64_t echoPeer = 0;

char ctrlIn[512];
char ctrlOut[512];
bool ctrlPending = false;
uint64_t ctrlPeer = 0;

// What a service does with its traffic; the control service switches it (docs/console.md).
enum class Mode : uint8_t { kEcho, kSink, kSource };

// The counters `stats` reports: the mode's messages (WiFiSocket) or chunks (raw) and bytes,
// and the time from the first to the last of them. Reset by every mode command.
struct Counters {
  uint32_t messages;
  uint64_t bytes;
  uint32_t firstUs, lastUs;  // micros() of the first and the last message
  uint32_t firstMs, lastMs;  // millis() of the same: the elapsed time past micros()' wrap
  bool started;

  void reset() { memset(this, 0, sizeof *this); }
  void count(size_t n) {
    const uint32_t us = micros();
    const uint32_t ms = millis();
    if (!started) {
      firstUs = us;
      firstMs = ms;
      started = true;
    }
    lastUs = us;
    lastMs = ms;
    ++messages;
    bytes += n;
  }
};

// The echo service's mode. Sink and source reuse echoBuf: no second WiFiSocket instance.
Mode linkMode = Mode::kEcho;
Counters linkCount;
uint32_t sourceLeft = 0;   // messages the source has still to queue
uint32_t sourceSize = 0;   // their size
uint32_t sourceIndex = 0;  // the next message's index (its first 4 bytes, big-endian)
uint32_t linkIgnored = 0;  // messages that arrived while sourcing (read and dropped)

// The raw TCP port: one connection at a time (a newer one replaces it).
WiFiServer rawServer(kRawPort);
WiFiClient rawClient;
uint8_t rawBuf[kRawBuf];
Mode rawMode = Mode::kEcho;
Counters rawCount;
uint64_t rawSourceLeft = 0;  // bytes the raw source has still to write
size_t rawChunk = kRawBuf;   // bytes per write() of the raw source (one "message")
uint32_t rawConnections = 0;

// The console's and the control service's `dial` (docs/console.md): the echo service dials
// host:port (and redials when cut) instead of listening; host nullptr: it listens again.
// Either starts a new session. nullptr when done, else why not.
const char* dialEcho(const char* host, uint16_t port) {
  if (!servicesStarted) return "wifi is not up";
  if (host == nullptr) {
    if (echo.dialing()) echo.begin(kEchoPort);
    return nullptr;
  }
  return echo.connect(host, port) ? nullptr : "host name too long";
}

void infoFields(esphil::Text& j) {
  j.add(F(", \"echo_port\": ")).num(static_cast<unsigned>(kEchoPort));
  j.add(F(", \"raw_port\": ")).num(static_cast<unsigned>(kRawPort));
  // Keyed links (docs/protocol.md §6), both services together.
  j.add(F(", \"auth_failures\": "))
      .num(static_cast<unsigned long>(echo.authFailures() + control.authFailures()));
  j.add(F(", \"tag_failures\": "))
      .num(static_cast<unsigned long>(echo.tagFailures() + control.tagFailures()));
}

// The console's `key` command (stored in flash like the WiFi credentials): both services
// speak the keyed protocol from their next connection on; len 0 = back to unkeyed.
void applyKey(const uint8_t* key, size_t len) {
  echo.setKey(key, len);
  control.setKey(key, len);
}

// An echo the host cannot take (it announced a smaller max_message): close its connection
// with the reason instead of keeping, or silently dropping, what can never be sent.
bool dropOversizeEcho() {
  if (echoLen < 0 || static_cast<uint32_t>(echoLen) <= echo.peerMaxMessage()) return false;
  echo.drop(wsock::kTooLarge, "echo larger than the host's max_message");
  echoLen = -1;
  return true;
}

// A reply taken from the link before a mode switch still goes out, first. False: not yet.
bool flushPendingEcho() {
  if (echoLen >= 0 && echoPeer != echo.peerSession()) echoLen = -1;  // that host is gone
  dropOversizeEcho();
  if (echoLen < 0) return true;
  if (!echo.send(echoBuf, static_cast<size_t>(echoLen), echoText)) return false;
  echoLen = -1;
  return true;
}

void echoLoop() {
  for (int i = 0; i < 8; ++i) {
    if (echoLen >= 0 && echoPeer != echo.peerSession()) echoLen = -1;  // that host is gone
    if (echoLen < 0) {
      echoLen = echo.receive(echoBuf, sizeof echoBuf, &echoText);
      if (echoLen < 0) return;
      echoPeer = echo.peerSession();
    }
    if (dropOversizeEcho()) return;
    if (!echo.send(echoBuf, static_cast<size_t>(echoLen), echoText)) return;  // retry later
    linkCount.count(static_cast<size_t>(echoLen));
    echoLen = -1;
  }
}

void sinkLoop() {
  if (!flushPendingEcho()) return;
  // Everything the receive ring holds: bounded by the window, and taking it all lets the
  // next echo.loop() acknowledge it all in one ACK.
  for (;;) {
    const int n = echo.receive(echoBuf, sizeof echoBuf, nullptr);
    if (n < 0) return;  // none (-2, too large for echoBuf, cannot happen: max is its size)
    linkCount.count(static_cast<size_t>(n));
  }
}

bool sourcePatternOk = false;  // echoBuf holds the source's pattern (not an echo reply)

void putU32BE(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

void sourceLoop() {
  if (!flushPendingEcho()) return;
  // What the host sends meanwhile is read and dropped, so its sends never wedge.
  while (echo.receive(echoBuf, sizeof echoBuf, nullptr) >= 0) {
    ++linkIgnored;
    sourcePatternOk = false;
  }
  if (sourceLeft == 0) return;
  if (!sourcePatternOk) {
    // Byte i of every message is i & 0xFF, except bytes 0..3: the message's index.
    for (uint32_t i = 0; i < sourceSize; ++i) echoBuf[i] = static_cast<uint8_t>(i);
    sourcePatternOk = true;
  }
  while (sourceLeft > 0) {
    if (sourceSize >= 4) putU32BE(echoBuf, sourceIndex);
    if (!echo.send(echoBuf, sourceSize, false)) return;  // no room until acks free some
    linkCount.count(sourceSize);
    ++sourceIndex;
    --sourceLeft;
  }
}

void linkLoop() {
  switch (linkMode) {
    case Mode::kEcho:
      echoLoop();
      break;
    case Mode::kSink:
      sinkLoop();
      break;
    case Mode::kSource:
      sourceLoop();
      break;
  }
}

// ------------------------------------------------------------------------- raw TCP port

bool rawPatternOk = false;  // rawBuf holds the raw source's pattern

size_t smaller(size_t a, size_t b) { return a < b ? a : b; }

void rawAccept() {
  while (rawServer.hasClient()) {
    WiFiClient c = rawServer.accept();
    if (!c) return;
    rawClient.stop();  // a newer connection replaces the one before (no-op if none)
    rawClient = c;
    rawClient.setNoDelay(true);
    ++rawConnections;
  }
}

void rawLoop() {
  rawAccept();
  if (!rawClient.connected()) {
    rawClient.stop();  // gone (or never there): frees the shared connection slot
    return;
  }
  size_t budget = kRawBudget;
  if (rawMode != Mode::kSource) {
    while (budget > 0) {
      const int avail = rawClient.available();
      if (avail <= 0) break;
      size_t n = smaller(smaller(static_cast<size_t>(avail), sizeof rawBuf), budget);
      if (rawMode == Mode::kEcho) {
        // Read no more than can be written back at once: nothing is held over.
        const int room = rawClient.availableForWrite();
        if (room <= 0) break;
        n = smaller(n, static_cast<size_t>(room));
      }
      const int got = rawClient.read(rawBuf, n);
      if (got <= 0) break;
      if (rawMode == Mode::kEcho) rawClient.write(rawBuf, static_cast<size_t>(got));
      rawCount.count(static_cast<size_t>(got));
      budget -= static_cast<size_t>(got);
    }
    return;
  }
  // Source: bytes arriving meanwhile are read and dropped.
  for (int k = 0; k < 8 && rawClient.available() > 0; ++k) {
    if (rawClient.read(rawBuf, sizeof rawBuf) <= 0) break;
    rawPatternOk = false;
  }
  if (!rawPatternOk) {
    for (size_t i = 0; i < sizeof rawBuf; ++i) rawBuf[i] = static_cast<uint8_t>(i);
    rawPatternOk = true;
  }
  // Until the connection takes no more (no byte budget): a full send buffer is what wakes
  // the twin's idle poll again (POLLOUT), as an ack does for the WiFiSocket source. Stopping
  // at a budget instead would leave the twin asleep for its idle period with work to do.
  while (rawSourceLeft > 0) {
    const int room = rawClient.availableForWrite();
    if (room <= 0) break;
    // One write per chunk, as a sketch writes one message at a time; never a partial one
    // while the connection could take the whole chunk later.
    size_t n = rawChunk;
    if (rawSourceLeft < n) n = static_cast<size_t>(rawSourceLeft);
    if (static_cast<size_t>(room) < n) break;
    const size_t wrote = rawClient.write(rawBuf, n);
    if (wrote == 0) break;
    rawCount.count(wrote);
    rawSourceLeft -= wrote;
  }
}

// ----------------------------------------------------------------------- control service

const __FlashStringHelper* modeName(Mode m) {
  switch (m) {
    case Mode::kSink:
      return F("sink");
    case Mode::kSource:
      return F("source");
    default:
      return F("echo");
  }
}

// A word of a control request: a view into ctrlIn (which stays whole for error replies).
// The words it is compared with are F() strings: on the chip, literals not in flash take RAM.
struct Word {
  const char* p = nullptr;
  size_t n = 0;
  bool is(const __FlashStringHelper* f) const {
    const char* s = reinterpret_cast<const char*>(f);
    return p != nullptr && strlen_P(s) == n && memcmp_P(p, s, n) == 0;
  }
};

// Splits `text` at spaces into at most `max` words; returns how many there are (up to
// max + 1, so "one too many" shows).
size_t splitWords(const char* text, size_t len, Word* words, size_t max) {
  size_t count = 0;
  size_t i = 0;
  while (i < len) {
    while (i < len && text[i] == ' ') ++i;
    if (i == len) break;
    const size_t start = i;
    while (i < len && text[i] != ' ') ++i;
    if (count == max) return max + 1;
    words[count].p = text + start;
    words[count].n = i - start;
    ++count;
  }
  return count;
}

// Decimal digits only, no sign, no overflow past `max`.
bool parseUnsigned(const Word& w, uint64_t max, uint64_t* out) {
  if (w.p == nullptr || w.n == 0) return false;
  uint64_t v = 0;
  for (size_t i = 0; i < w.n; ++i) {
    const char c = w.p[i];
    if (c < '0' || c > '9') return false;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (max - digit) / 10) return false;
    v = v * 10 + digit;
  }
  *out = v;
  return true;
}

void appendCounters(esphil::Text& j, const Counters& c, const __FlashStringHelper* unit) {
  j.add('"').add(unit).add(F("\": ")).num(static_cast<unsigned long>(c.messages));
  j.add(F(", \"bytes\": ")).num(static_cast<unsigned long long>(c.bytes));
  j.add(F(", \"elapsed_us\": "))
      .num(c.started ? static_cast<unsigned long>(c.lastUs - c.firstUs) : 0UL);
  j.add(F(", \"elapsed_ms\": "))
      .num(c.started ? static_cast<unsigned long>(c.lastMs - c.firstMs) : 0UL);
}

void buildStats(char* buf, size_t cap) {
  esphil::Text j(buf, cap);
  j.add(F("{\"mode\": \"")).add(modeName(linkMode)).add(F("\", "));
  appendCounters(j, linkCount, F("messages"));
  j.add(F(", \"source_left\": ")).num(static_cast<unsigned long>(sourceLeft));
  j.add(F(", \"ignored\": ")).num(static_cast<unsigned long>(linkIgnored));
  j.add(F(", \"raw\": {\"mode\": \"")).add(modeName(rawMode)).add(F("\", "));
  appendCounters(j, rawCount, F("chunks"));
  j.add(F(", \"source_left\": ")).num(static_cast<unsigned long long>(rawSourceLeft));
  j.add(F(", \"connected\": ")).add(rawClient.connected() ? F("true") : F("false"));
  j.add(F(", \"connections\": ")).num(static_cast<unsigned long>(rawConnections));
  j.add(F(", \"buffer\": ")).num(static_cast<unsigned long>(kRawBuf));
  j.add(F("}}"));
}

// Named PROGMEM, not F(): a PSTR inside a template is not placed in flash.
const char kErrorHead[] PROGMEM = "{\"error\": ";
const char kErrorCommand[] PROGMEM = ", \"command\": ";

// `why`: a reason from the console core or dialEcho() (RAM), or an F() string (flash).
template <typename Reason>
void replyError(Reason why, const char* command, int len) {
  // Bytes that are not valid UTF-8 would make the reply invalid: show them as '?'.
  char shown[200];
  int i = 0;
  for (; i < len && i < static_cast<int>(sizeof shown) - 1; ++i) {
    const unsigned char c = static_cast<unsigned char>(command[i]);
    shown[i] = c >= 0x80 ? '?' : static_cast<char>(c);
  }
  shown[i] = 0;
  esphil::Text j(ctrlOut, sizeof ctrlOut);
  j.add(FPSTR(kErrorHead)).json(why).add(FPSTR(kErrorCommand)).json(shown).add('}');
}

void replyMode(const __FlashStringHelper* service, Mode m) {
  esphil::Text j(ctrlOut, sizeof ctrlOut);
  j.add(F("{\"ok\": true, \"service\": \"")).add(service);
  j.add(F("\", \"mode\": \"")).add(modeName(m)).add(F("\"}"));
}

void setLinkMode(Mode m) {
  linkMode = m;
  linkCount.reset();
  linkIgnored = 0;
  sourceLeft = 0;
  sourceSize = 0;
  sourceIndex = 0;
  sourcePatternOk = false;
}

void setRawMode(Mode m) {
  rawMode = m;
  rawCount.reset();
  rawSourceLeft = 0;
  rawChunk = kRawBuf;
  rawPatternOk = false;
}

constexpr uint64_t kBlockMaxMs = 60000;
uint32_t blockMs = 0;  // a `block` request waiting for its reply to go out
bool blockHw = false;
#ifndef HOST_MOCK
// `sleep` and `crash` wait for their reply to go out, as `block` does (faultLoop()).
constexpr uint64_t kSleepMaxMs = 3600000;
uint32_t sleepMs = 0;
bool crashPending = false;
#endif

// sleep <ms>: deep sleep (the chip wakes through RST: GPIO16 wired to it on a board).
// rtc [<u32>]: RTC user memory word 0, written first when a value is given.
// crash: a store through a null pointer (Exception 29 on the chip).
// The core's host emulation (sim-core) has no deep sleep, RTC memory or exception report.
void handleChipControl(const Word& verb, const Word* arg, size_t words, int len) {
#ifdef HOST_MOCK
  (void)verb;
  (void)arg;
  (void)words;
  replyError(F("not available on the core's host emulation"), ctrlIn, len);
#else
  esphil::Text j(ctrlOut, sizeof ctrlOut);
  if (verb.is(F("sleep"))) {
    uint64_t ms = 0;
    if (words != 2 || !parseUnsigned(arg[1], kSleepMaxMs, &ms) || ms == 0) {
      replyError(F("usage: sleep <ms 1..3600000>"), ctrlIn, len);
      return;
    }
    sleepMs = static_cast<uint32_t>(ms);
    j.add(F("{\"ok\": true, \"sleep_ms\": ")).num(static_cast<unsigned long>(ms)).add('}');
  } else if (verb.is(F("rtc"))) {
    uint64_t v = 0;
    if (words > 2 || (words == 2 && !parseUnsigned(arg[1], 0xFFFFFFFFULL, &v))) {
      replyError(F("usage: rtc [<u32>]"), ctrlIn, len);
      return;
    }
    uint32_t word = static_cast<uint32_t>(v);
    if (words == 2) ESP.rtcUserMemoryWrite(0, &word, sizeof word);
    ESP.rtcUserMemoryRead(0, &word, sizeof word);
    j.add(F("{\"ok\": true, \"rtc\": ")).num(static_cast<unsigned long>(word)).add('}');
  } else if (words == 1) {
    crashPending = true;
    j.add(F("{\"ok\": true, \"crash\": \"null store\"}"));
  } else {
    replyError(F("usage: crash"), ctrlIn, len);
  }
#endif
}

// Runs one control request (`len` bytes in ctrlIn, terminated) and leaves the reply in ctrlOut.
void handleControl(int len) {
  Word w[4];
  const size_t count = splitWords(ctrlIn, static_cast<size_t>(len), w, 4);
  const bool raw = count > 0 && w[0].is(F("raw"));
  // The verb and its arguments, after an optional "raw"; `words` counts them.
  const Word* arg = raw ? w + 1 : w;
  const size_t words = raw ? count - 1 : count;
  const Word& verb = arg[0];
  if (count == 0 || count > 4 || words == 0) {
    replyError(F("unknown command"), ctrlIn, len);
  } else if (!raw && verb.is(F("info")) && words == 1) {
    EspHil.info(ctrlOut, sizeof ctrlOut);
  } else if (!raw && verb.is(F("stats")) && words == 1) {
    buildStats(ctrlOut, sizeof ctrlOut);
  } else if (!raw && verb.is(F("dial"))) {
    // The console's `dial` (docs/console.md), parsed the same way.
    char args[esphil::kHostMax + 16];
    esphil::Text a(args, sizeof args);
    for (size_t k = 1; k < words; ++k) {
      char word[esphil::kHostMax + 2];
      const size_t n = arg[k].n < sizeof word - 1 ? arg[k].n : sizeof word - 1;
      memcpy(word, arg[k].p, n);
      word[n] = 0;
      a.add(word).add(' ');
    }
    char host[esphil::kHostMax + 1];
    uint16_t port = 0;
    bool off = false;
    // Only an overlong port overflows `args` (a host is cut at kHostMax + 1: still too long).
    const char* why = a.truncated() ? esphil::kDialUsage : esphil::parseDial(args, host, &port, &off);
    if (why == nullptr) why = dialEcho(off ? nullptr : host, port);
    if (why != nullptr) {
      replyError(why, ctrlIn, len);
      return;
    }
    esphil::Text j(ctrlOut, sizeof ctrlOut);
    j.add(F("{\"ok\": true, \"service\": \"link\", \"dial\": \""));
    if (off) {
      j.add(F("off"));
    } else {
      j.add(host).add(':').num(static_cast<unsigned>(port));  // checked: no JSON escapes
    }
    j.add(F("\"}"));
  } else if ((verb.is(F("echo")) || verb.is(F("sink"))) && words == 1) {
    const Mode m = verb.is(F("echo")) ? Mode::kEcho : Mode::kSink;
    if (raw) {
      setRawMode(m);
    } else {
      setLinkMode(m);
    }
    replyMode(raw ? F("raw") : F("link"), m);
  } else if (raw && verb.is(F("source"))) {
    // Up to 2^48 bytes (days at any speed), written `chunk` (1..kRawBuf) bytes at a time.
    uint64_t bytes = 0;
    uint64_t chunk = kRawBuf;
    if (words < 2 || words > 3 || !parseUnsigned(arg[1], 1ULL << 48, &bytes) ||
        (words == 3 && (!parseUnsigned(arg[2], kRawBuf, &chunk) || chunk == 0))) {
      replyError(F("usage: raw source <bytes> [<chunk 1..536>]"), ctrlIn, len);
      return;
    }
    setRawMode(Mode::kSource);
    rawSourceLeft = bytes;
    rawChunk = static_cast<size_t>(chunk);
    replyMode(F("raw"), Mode::kSource);
  } else if (!raw && verb.is(F("source"))) {
    uint64_t n = 0;
    uint64_t size = 0;
    if (words != 3 || !parseUnsigned(arg[1], 0xFFFFFFFFULL, &n) ||
        !parseUnsigned(arg[2], 0xFFFFFFFFULL, &size)) {
      replyError(F("usage: source <count> <size>"), ctrlIn, len);
    } else if (size > echo.maxMessage() || size > sizeof echoBuf) {
      replyError(F("size exceeds the echo service's max_message"), ctrlIn, len);
    } else if (!echo.connected()) {
      replyError(F("no host on the echo service: connect to it first"), ctrlIn, len);
    } else {
      setLinkMode(Mode::kSource);
      sourceLeft = static_cast<uint32_t>(n);
      sourceSize = static_cast<uint32_t>(size);
      replyMode(F("link"), Mode::kSource);
    }
  } else if (!raw && verb.is(F("block"))) {
    // block <ms> [hw]: see blockLoop(). "hw" disables the soft watchdog first.
    uint64_t ms = 0;
    if (words < 2 || words > 3 || !parseUnsigned(arg[1], kBlockMaxMs, &ms) || ms == 0 ||
        (words == 3 && !arg[2].is(F("hw")))) {
      replyError(F("usage: block <ms 1..60000> [hw]"), ctrlIn, len);
      return;
    }
    blockMs = static_cast<uint32_t>(ms);
    blockHw = words == 3;
    esphil::Text j(ctrlOut, sizeof ctrlOut);
    j.add(F("{\"ok\": true, \"block_ms\": ")).num(static_cast<unsigned long>(ms));
    j.add(F(", \"watchdog\": \"")).add(blockHw ? F("hardware") : F("software")).add(F("\"}"));
  } else if (!raw && (verb.is(F("sleep")) || verb.is(F("rtc")) || verb.is(F("crash")))) {
    handleChipControl(verb, arg, words, len);
  } else {
    replyError(F("unknown command"), ctrlIn, len);
  }
}

// `block`: once its reply went out (a pass later, after the system ran), the sketch stops for
// blockMs without yielding, as code stuck in a loop does: busy in delayMicroseconds, which
// never yields on the core. Longer than the watchdog allows, the chip resets (docs/twin.md).
void blockLoop() {
  if (blockMs == 0 || ctrlPending) return;
  const uint32_t ms = blockMs;
  blockMs = 0;
#ifndef HOST_MOCK  // the core's host emulation (sim-core) has no watchdog to switch
  if (blockHw) ESP.wdtDisable();
#endif
  const uint32_t t0 = millis();
  while (millis() - t0 < ms) delayMicroseconds(1000);
#ifndef HOST_MOCK
  if (blockHw) ESP.wdtEnable(0);
#endif
}

// `sleep` and `crash`, once their reply went out.
void faultLoop() {
#ifndef HOST_MOCK
  if (ctrlPending) return;
  if (sleepMs != 0) ESP.deepSleep(static_cast<uint64_t>(sleepMs) * 1000);
  // Read through a volatile pointer: GCC would turn a literal null store into a trap (cause 0).
  volatile uint32_t* volatile target = nullptr;
  if (crashPending) *target = 0;
#endif
}

void controlLoop() {
  blockLoop();
  faultLoop();
  if (ctrlPending && ctrlPeer != control.peerSession()) ctrlPending = false;
  if (!ctrlPending) {
    bool isText = false;
    const int n = control.receive(reinterpret_cast<uint8_t*>(ctrlIn), sizeof ctrlIn - 1, &isText);
    if (n == -2) {
      // Larger than our buffer cannot happen (max_message 512 > buffer - 1 by one byte at
      // most); drop it rather than wedge the service.
      uint8_t scratch[512];
      control.receive(scratch, sizeof scratch, nullptr);
      return;
    }
    if (n < 0) return;
    ctrlIn[n] = 0;
    ctrlPeer = control.peerSession();
    handleControl(n);
    ctrlPending = true;
  }
  if (control.send(ctrlOut)) ctrlPending = false;
}


}  // namespace

void setup() {
  EspHil.begin(ESP_HIL_FW_VERSION);
  EspHil.onDial(dialEcho);
  EspHil.onInfo(infoFields);
  EspHil.onKey(applyKey);
  echo.setLog(Serial);
  control.setLog(Serial);
}

void loop() {
  EspHil.loop();
  if (!servicesStarted && EspHil.wifiUp()) {
    echo.begin(kEchoPort);
    control.begin(kCtrlPort);
    rawServer.begin();
    rawServer.setNoDelay(true);
    servicesStarted = true;
    EspHil.ready(kEchoPort, echo.maxMessage(), "ctrl=8081 raw=8082");
  }
  if (servicesStarted) {
    echo.loop();
    linkLoop();
    control.loop();
    controlLoop();
    echo.loop();  // push replies out in the same pass
    rawLoop();
  }
}
