// esp-hil test firmware: the sketch the harness flashes and talks to (docs/console.md).
//
// Console on Serial at 115200: BOOT line, WiFi provisioning (`wifi`, `forget`, `info`,
// `reboot`), READY line once the services listen. Services: echo on 8080 (every message
// comes back with its type; the control service can switch it to sink or source for
// throughput runs), control on 8081 (`info`, `echo`, `sink`, `source`, `stats`, `raw ...`
// -> JSON) and a raw TCP port on 8082 with the same modes and no framing, the baseline the
// benchmarks compare against. Credentials live in EEPROM behind a magic/version/CRC header,
// so erased flash (0xFF) reads as "none". loop() never blocks; nothing is allocated after
// setup().
#include <Arduino.h>
#include <EEPROM.h>
#include <ESP8266WiFi.h>
#include <WiFiSocket.h>
#include <string.h>
#ifdef ESP_HIL_SIM
#include <esp_hil_sim.h>  // the twin's allocation counter
#endif

#ifndef ESP_HIL_FW_VERSION
#define ESP_HIL_FW_VERSION "esp-hil-testfw/0.1.0"
#endif

namespace {

#ifdef ESP_HIL_BUILD_ID
const char kIdentity[] = ESP_HIL_FW_VERSION "+" ESP_HIL_BUILD_ID;
#else
const char kIdentity[] = ESP_HIL_FW_VERSION;
#endif

constexpr uint16_t kEchoPort = 8080;
constexpr uint16_t kCtrlPort = 8081;
constexpr uint16_t kRawPort = 8082;
// The raw port's buffer: one TCP segment of lwIP2's "higher bandwidth" build (MSS 1460).
constexpr size_t kRawBuf = 1460;
// Bytes the raw service moves per loop() and direction: the same bound as WiFiSocket's
// per-connection read budget, so neither service can starve the others.
constexpr size_t kRawBudget = 8192;
constexpr uint32_t kJoinTimeoutMs = 10000;
constexpr size_t kSsidMax = 32;
constexpr size_t kPassMax = 64;
constexpr size_t kLineMax = 256;  // a `wifi` line with both fields fully percent-encoded fits
constexpr uint32_t kCredMagic = 0x45484957;  // "EHIW"
constexpr uint8_t kCredVersion = 1;
constexpr size_t kEepromSize = 256;

struct Credentials {
  uint32_t magic;
  uint8_t version;
  uint8_t reserved[3];
  char ssid[kSsidMax + 1];
  char pass[kPassMax + 1];
  uint8_t pad[2];
  uint32_t crc;  // CRC-32 of every byte before it
};
static_assert(sizeof(Credentials) <= kEepromSize, "credentials must fit the EEPROM area");

using ControlSocket = WiFiSocketT<512, 1024, 2048>;
WiFiSocket echo;
ControlSocket control;

enum class WifiState : uint8_t { kNone, kJoining, kUp, kFailed };
WifiState wifiState = WifiState::kNone;
uint32_t joinStartedAt = 0;
bool servicesStarted = false;
Credentials creds;

char resetReason[48];
char macLower[18];

char line[kLineMax + 1];
size_t lineLen = 0;
bool lineOverflow = false;

// Echo keeps one message that could not be sent yet (no room): retried every loop().
uint8_t echoBuf[4096];
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

uint32_t credCrc(const Credentials& c) {
  return wsock::crc32(reinterpret_cast<const uint8_t*>(&c), offsetof(Credentials, crc));
}

bool loadCredentials() {
  EEPROM.get(0, creds);
  if (creds.magic != kCredMagic || creds.version != kCredVersion || creds.crc != credCrc(creds)) {
    return false;
  }
  // Defensive: a matching CRC over unterminated strings must not be read past the arrays.
  creds.ssid[kSsidMax] = 0;
  creds.pass[kPassMax] = 0;
  return creds.ssid[0] != 0;
}

bool storeCredentials(const char* ssid, const char* pass) {
  memset(&creds, 0, sizeof creds);
  creds.magic = kCredMagic;
  creds.version = kCredVersion;
  // The caller checked the lengths; memset above leaves the terminators in place.
  memcpy(creds.ssid, ssid, strnlen(ssid, kSsidMax));
  memcpy(creds.pass, pass, strnlen(pass, kPassMax));
  creds.crc = credCrc(creds);
  EEPROM.put(0, creds);
  return EEPROM.commit();
}

bool eraseCredentials() {
  for (size_t i = 0; i < sizeof(Credentials); ++i) EEPROM.write(static_cast<int>(i), 0xFF);
  memset(&creds, 0, sizeof creds);
  return EEPROM.commit();
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes %XX escapes of `in` into `out` (cap includes the terminator). False if malformed
// or too long.
bool percentDecode(const char* in, char* out, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; in[i] != 0; ++i) {
    char c = in[i];
    if (c == '%') {
      const int hi = in[i + 1] ? hexValue(in[i + 1]) : -1;
      const int lo = hi >= 0 && in[i + 2] ? hexValue(in[i + 2]) : -1;
      if (hi < 0 || lo < 0) return false;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (n + 1 >= cap) return false;
    out[n++] = c;
  }
  out[n] = 0;
  return true;
}

// Prints `s` percent-encoded (RFC 3986 unreserved characters stay), so it has no spaces.
void printPercent(const char* s) {
  static const char kHex[] = "0123456789ABCDEF";
  for (const unsigned char* p = reinterpret_cast<const unsigned char*>(s); *p; ++p) {
    const unsigned char c = *p;
    const bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
    if (plain) {
      Serial.write(c);
    } else {
      Serial.write('%');
      Serial.write(kHex[c >> 4]);
      Serial.write(kHex[c & 0x0F]);
    }
  }
}

// Appends to a fixed buffer, truncating; tracks the length in *len.
void append(char* buf, size_t cap, size_t* len, const char* s) {
  while (*s && *len + 1 < cap) buf[(*len)++] = *s++;
  buf[*len] = 0;
}

void appendJsonString(char* buf, size_t cap, size_t* len, const char* s) {
  append(buf, cap, len, "\"");
  for (const unsigned char* p = reinterpret_cast<const unsigned char*>(s); *p; ++p) {
    char esc[8];
    if (*p == '"' || *p == '\\') {
      esc[0] = '\\';
      esc[1] = static_cast<char>(*p);
      esc[2] = 0;
    } else if (*p < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", *p);
    } else {
      esc[0] = static_cast<char>(*p);
      esc[1] = 0;
    }
    // Never cut an escape in half: leave room for it and the closing quote.
    if (*len + strlen(esc) + 2 >= cap) break;
    append(buf, cap, len, esc);
  }
  append(buf, cap, len, "\"");
}

void appendUnsigned(char* buf, size_t cap, size_t* len, unsigned long v) {
  char num[16];
  snprintf(num, sizeof num, "%lu", v);
  append(buf, cap, len, num);
}

void appendSigned(char* buf, size_t cap, size_t* len, long v) {
  char num[16];
  snprintf(num, sizeof num, "%ld", v);
  append(buf, cap, len, num);
}

// The info JSON of docs/console.md, shared by the console and the control service.
size_t buildInfo(char* buf, size_t cap) {
  size_t n = 0;
  buf[0] = 0;
  append(buf, cap, &n, "{\"fw\": ");
  appendJsonString(buf, cap, &n, kIdentity);
  append(buf, cap, &n, ", \"heap\": ");
  appendUnsigned(buf, cap, &n, ESP.getFreeHeap());
  append(buf, cap, &n, ", \"uptime_ms\": ");
  appendUnsigned(buf, cap, &n, millis());
  append(buf, cap, &n, ", \"reset_reason\": ");
  appendJsonString(buf, cap, &n, resetReason);
  append(buf, cap, &n, ", \"rssi\": ");
  appendSigned(buf, cap, &n, WiFi.status() == WL_CONNECTED ? static_cast<long>(WiFi.RSSI()) : 0L);
  append(buf, cap, &n, ", \"chip_id\": ");
  appendUnsigned(buf, cap, &n, ESP.getChipId());
  append(buf, cap, &n, ", \"mac\": ");
  appendJsonString(buf, cap, &n, macLower);
  append(buf, cap, &n, ", \"max_message\": ");
  appendUnsigned(buf, cap, &n, echo.maxMessage());
  append(buf, cap, &n, ", \"echo_port\": ");
  appendUnsigned(buf, cap, &n, kEchoPort);
  append(buf, cap, &n, ", \"raw_port\": ");
  appendUnsigned(buf, cap, &n, kRawPort);
#ifdef ESP_HIL_SIM
  // Only the twin can count operator new calls: proves "no allocation after setup".
  append(buf, cap, &n, ", \"allocs\": ");
  appendUnsigned(buf, cap, &n, esp_hil_sim_alloc_count());
#endif
  append(buf, cap, &n, "}");
  return n;
}

const char* failReason(int status) {
  switch (status) {
    case WL_NO_SSID_AVAIL:
      return "no_ssid";
    case WL_WRONG_PASSWORD:
      return "wrong_password";
    case WL_CONNECT_FAILED:
      return "connect_failed";
    default:
      return "timeout";
  }
}

void startJoin() {
  WiFi.mode(WIFI_STA);
  WiFi.persistent(false);  // our EEPROM record is the one copy of the credentials
  WiFi.setAutoReconnect(true);
  WiFi.begin(creds.ssid, creds.pass);
  Serial.print("ESP-HIL WIFI connecting ssid=");
  printPercent(creds.ssid);
  Serial.println();
  wifiState = WifiState::kJoining;
  joinStartedAt = millis();
}

void printReady() {
  const IPAddress ip = WiFi.localIP();
  Serial.print("ESP-HIL READY fw=");
  Serial.print(kIdentity);
  Serial.printf(" ip=%u.%u.%u.%u", ip[0], ip[1], ip[2], ip[3]);
  Serial.printf(" port=%u ctrl=%u raw=%u mac=", kEchoPort, kCtrlPort, kRawPort);
  Serial.print(macLower);
  Serial.print(" max=");
  Serial.println(static_cast<unsigned long>(echo.maxMessage()));
}

void wifiLoop() {
  const int status = WiFi.status();
  if (wifiState == WifiState::kJoining) {
    if (status == WL_CONNECTED) {
      if (!servicesStarted) {
        echo.begin(kEchoPort);
        control.begin(kCtrlPort);
        rawServer.begin();
        rawServer.setNoDelay(true);
        servicesStarted = true;
      }
      wifiState = WifiState::kUp;
      printReady();
      return;
    }
    const bool final = status == WL_NO_SSID_AVAIL || status == WL_WRONG_PASSWORD ||
                       status == WL_CONNECT_FAILED;
    if (final || millis() - joinStartedAt >= kJoinTimeoutMs) {
      Serial.printf("ESP-HIL WIFI fail status=%d reason=%s ssid=", status,
                    final ? failReason(status) : "timeout");
      printPercent(creds.ssid);
      Serial.println();
      WiFi.disconnect();  // stop retrying: a new `wifi` command starts over
      wifiState = WifiState::kFailed;
    }
  } else if (wifiState == WifiState::kUp && status != WL_CONNECTED) {
    Serial.printf("ESP-HIL WIFI lost status=%d\n", status);
    startJoin();  // READY is printed again when it is back
  }
}

void cmdWifi(char* args) {
  char* ssidEnc = strtok(args, " ");
  char* passEnc = strtok(nullptr, " ");
  char ssid[kSsidMax + 1];
  char pass[kPassMax + 1];
  if (ssidEnc == nullptr) {
    Serial.println("ESP-HIL ERR wifi missing ssid");
    return;
  }
  if (!percentDecode(ssidEnc, ssid, sizeof ssid) || ssid[0] == 0) {
    Serial.println("ESP-HIL ERR wifi bad ssid");
    return;
  }
  if (!percentDecode(passEnc ? passEnc : "", pass, sizeof pass)) {
    Serial.println("ESP-HIL ERR wifi bad password");
    return;
  }
  if (!storeCredentials(ssid, pass)) {
    Serial.println("ESP-HIL ERR wifi flash write failed");
    return;
  }
  Serial.println("ESP-HIL OK wifi");
  WiFi.disconnect();
  startJoin();
}

const char kDialUsage[] = "usage: dial <host> <port> | dial off";

// `dial <host> <port>`: the echo service dials a host's WiFiSocket.serve (and redials when
// cut) instead of listening; `dial off`: it listens again. Either starts a new session.
// nullptr when done, else why not (docs/console.md).
const char* dialCommand(const char* host, const char* port) {
  if (!servicesStarted) return "wifi is not up";
  if (host != nullptr && strcmp(host, "off") == 0 && port == nullptr) {
    if (echo.dialing()) echo.begin(kEchoPort);
    return nullptr;
  }
  if (host == nullptr || port == nullptr || *port == 0) return kDialUsage;
  uint32_t number = 0;
  for (const char* c = port; *c; ++c) {
    if (*c < '0' || *c > '9') return kDialUsage;
    number = number * 10 + static_cast<uint32_t>(*c - '0');
    if (number > 65535) return kDialUsage;
  }
  if (number == 0) return kDialUsage;
  // A name or an IPv4 address: letters, digits, '.', '-', '_' (also keeps replies plain).
  for (const char* c = host; *c; ++c) {
    const bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                    (*c >= '0' && *c <= '9') || *c == '.' || *c == '-' || *c == '_';
    if (!ok) return "bad host name";
  }
  if (!echo.connect(host, static_cast<uint16_t>(number))) return "host name too long";
  return nullptr;
}

void handleLine(char* text) {
  char* cmd = strtok(text, " ");
  if (cmd == nullptr) return;
  char* rest = strtok(nullptr, "");
  if (strcmp(cmd, "wifi") == 0) {
    char empty[1] = {0};
    cmdWifi(rest ? rest : empty);
  } else if (strcmp(cmd, "forget") == 0) {
    if (eraseCredentials()) {
      Serial.println("ESP-HIL OK forget");
    } else {
      Serial.println("ESP-HIL ERR forget flash write failed");
    }
  } else if (strcmp(cmd, "info") == 0) {
    char json[400];
    buildInfo(json, sizeof json);
    Serial.print("ESP-HIL INFO ");
    Serial.println(json);
  } else if (strcmp(cmd, "dial") == 0) {
    char* host = rest ? strtok(rest, " ") : nullptr;
    char* port = host ? strtok(nullptr, " ") : nullptr;
    const char* why = port && strtok(nullptr, " ") ? kDialUsage : dialCommand(host, port);
    if (why != nullptr) {
      Serial.print("ESP-HIL ERR dial ");
      Serial.println(why);
    } else {
      Serial.println("ESP-HIL OK dial");
    }
  } else if (strcmp(cmd, "reboot") == 0) {
    Serial.println("ESP-HIL OK reboot");
    Serial.flush();
    ESP.restart();
  } else {
    Serial.print("ESP-HIL ERR ");
    Serial.print(cmd);
    Serial.println(" unknown command");
  }
}

void consoleLoop() {
  // Bounded per loop(): a flood of console bytes must not starve the sockets.
  for (int budget = 0; budget < 128 && Serial.available() > 0; ++budget) {
    const int c = Serial.read();
    if (c < 0) break;
    if (c == '\n') {
      if (lineLen > 0 && line[lineLen - 1] == '\r') --lineLen;
      line[lineLen] = 0;
      if (lineOverflow) {
        Serial.println("ESP-HIL ERR line too long");
      } else {
        handleLine(line);
      }
      lineLen = 0;
      lineOverflow = false;
    } else if (lineLen < kLineMax) {
      line[lineLen++] = static_cast<char>(c);
    } else {
      lineOverflow = true;
    }
  }
}

// A reply taken from the link before a mode switch still goes out, first. False: not yet.
bool flushPendingEcho() {
  if (echoLen >= 0 && echoPeer != echo.peerSession()) echoLen = -1;  // that host is gone
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

const char* modeName(Mode m) {
  switch (m) {
    case Mode::kSink:
      return "sink";
    case Mode::kSource:
      return "source";
    default:
      return "echo";
  }
}

// A word of a control request: a view into ctrlIn (which stays whole for error replies).
struct Word {
  const char* p = nullptr;
  size_t n = 0;
  bool is(const char* s) const { return p != nullptr && strlen(s) == n && memcmp(p, s, n) == 0; }
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

void appendU64(char* buf, size_t cap, size_t* len, uint64_t v) {
  char num[21];
  size_t i = sizeof num - 1;
  num[i] = 0;
  do {
    num[--i] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0 && i > 0);
  append(buf, cap, len, num + i);
}

void appendCounters(char* buf, size_t cap, size_t* len, const Counters& c, const char* unit) {
  append(buf, cap, len, "\"");
  append(buf, cap, len, unit);
  append(buf, cap, len, "\": ");
  appendUnsigned(buf, cap, len, c.messages);
  append(buf, cap, len, ", \"bytes\": ");
  appendU64(buf, cap, len, c.bytes);
  append(buf, cap, len, ", \"elapsed_us\": ");
  appendUnsigned(buf, cap, len, c.started ? c.lastUs - c.firstUs : 0UL);
  append(buf, cap, len, ", \"elapsed_ms\": ");
  appendUnsigned(buf, cap, len, c.started ? c.lastMs - c.firstMs : 0UL);
}

void buildStats(char* buf, size_t cap) {
  size_t n = 0;
  buf[0] = 0;
  append(buf, cap, &n, "{\"mode\": \"");
  append(buf, cap, &n, modeName(linkMode));
  append(buf, cap, &n, "\", ");
  appendCounters(buf, cap, &n, linkCount, "messages");
  append(buf, cap, &n, ", \"source_left\": ");
  appendUnsigned(buf, cap, &n, sourceLeft);
  append(buf, cap, &n, ", \"ignored\": ");
  appendUnsigned(buf, cap, &n, linkIgnored);
  append(buf, cap, &n, ", \"raw\": {\"mode\": \"");
  append(buf, cap, &n, modeName(rawMode));
  append(buf, cap, &n, "\", ");
  appendCounters(buf, cap, &n, rawCount, "chunks");
  append(buf, cap, &n, ", \"source_left\": ");
  appendU64(buf, cap, &n, rawSourceLeft);
  append(buf, cap, &n, ", \"connected\": ");
  append(buf, cap, &n, rawClient.connected() ? "true" : "false");
  append(buf, cap, &n, ", \"connections\": ");
  appendUnsigned(buf, cap, &n, rawConnections);
  append(buf, cap, &n, ", \"buffer\": ");
  appendUnsigned(buf, cap, &n, kRawBuf);
  append(buf, cap, &n, "}}");
}

void replyError(const char* why, const char* command, int len) {
  size_t n = 0;
  ctrlOut[0] = 0;
  append(ctrlOut, sizeof ctrlOut, &n, "{\"error\": ");
  appendJsonString(ctrlOut, sizeof ctrlOut, &n, why);
  append(ctrlOut, sizeof ctrlOut, &n, ", \"command\": ");
  // Bytes that are not valid UTF-8 would make the reply invalid: show them as '?'.
  char shown[200];
  int i = 0;
  for (; i < len && i < static_cast<int>(sizeof shown) - 1; ++i) {
    const unsigned char c = static_cast<unsigned char>(command[i]);
    shown[i] = c >= 0x80 ? '?' : static_cast<char>(c);
  }
  shown[i] = 0;
  appendJsonString(ctrlOut, sizeof ctrlOut, &n, shown);
  append(ctrlOut, sizeof ctrlOut, &n, "}");
}

void replyMode(const char* service, Mode m) {
  size_t n = 0;
  ctrlOut[0] = 0;
  append(ctrlOut, sizeof ctrlOut, &n, "{\"ok\": true, \"service\": \"");
  append(ctrlOut, sizeof ctrlOut, &n, service);
  append(ctrlOut, sizeof ctrlOut, &n, "\", \"mode\": \"");
  append(ctrlOut, sizeof ctrlOut, &n, modeName(m));
  append(ctrlOut, sizeof ctrlOut, &n, "\"}");
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

// Runs one control request (`len` bytes in ctrlIn, terminated) and leaves the reply in ctrlOut.
void handleControl(int len) {
  Word w[4];
  const size_t count = splitWords(ctrlIn, static_cast<size_t>(len), w, 4);
  const bool raw = count > 0 && w[0].is("raw");
  // The verb and its arguments, after an optional "raw"; `words` counts them.
  const Word* arg = raw ? w + 1 : w;
  const size_t words = raw ? count - 1 : count;
  const Word& verb = arg[0];
  if (count == 0 || count > 4 || words == 0) {
    replyError("unknown command", ctrlIn, len);
  } else if (!raw && verb.is("info") && words == 1) {
    buildInfo(ctrlOut, sizeof ctrlOut);
  } else if (!raw && verb.is("stats") && words == 1) {
    buildStats(ctrlOut, sizeof ctrlOut);
  } else if (!raw && verb.is("dial")) {
    // The console's `dial` (docs/console.md); dialCommand() takes terminated strings.
    char host[72];
    char port[8];
    host[0] = port[0] = 0;
    const char* why = kDialUsage;
    if (words == 2 || (words == 3 && arg[2].n < sizeof port)) {
      why = "host name too long";
      if (arg[1].n < sizeof host) {
        memcpy(host, arg[1].p, arg[1].n);
        host[arg[1].n] = 0;
        if (words == 3) {
          memcpy(port, arg[2].p, arg[2].n);
          port[arg[2].n] = 0;
        }
        why = dialCommand(host, words == 3 ? port : nullptr);
      }
    }
    if (why != nullptr) {
      replyError(why, ctrlIn, len);
      return;
    }
    size_t n = 0;
    ctrlOut[0] = 0;
    append(ctrlOut, sizeof ctrlOut, &n, "{\"ok\": true, \"service\": \"link\", \"dial\": \"");
    append(ctrlOut, sizeof ctrlOut, &n, host);  // checked by dialCommand: no JSON escapes
    if (words == 3) {
      append(ctrlOut, sizeof ctrlOut, &n, ":");
      append(ctrlOut, sizeof ctrlOut, &n, port);
    }
    append(ctrlOut, sizeof ctrlOut, &n, "\"}");
  } else if ((verb.is("echo") || verb.is("sink")) && words == 1) {
    const Mode m = verb.is("echo") ? Mode::kEcho : Mode::kSink;
    if (raw) {
      setRawMode(m);
    } else {
      setLinkMode(m);
    }
    replyMode(raw ? "raw" : "link", m);
  } else if (raw && verb.is("source")) {
    // Up to 2^48 bytes (days at any speed), written `chunk` (1..kRawBuf) bytes at a time.
    uint64_t bytes = 0;
    uint64_t chunk = kRawBuf;
    if (words < 2 || words > 3 || !parseUnsigned(arg[1], 1ULL << 48, &bytes) ||
        (words == 3 && (!parseUnsigned(arg[2], kRawBuf, &chunk) || chunk == 0))) {
      replyError("usage: raw source <bytes> [<chunk 1..1460>]", ctrlIn, len);
      return;
    }
    setRawMode(Mode::kSource);
    rawSourceLeft = bytes;
    rawChunk = static_cast<size_t>(chunk);
    replyMode("raw", Mode::kSource);
  } else if (!raw && verb.is("source")) {
    uint64_t n = 0;
    uint64_t size = 0;
    if (words != 3 || !parseUnsigned(arg[1], 0xFFFFFFFFULL, &n) ||
        !parseUnsigned(arg[2], 0xFFFFFFFFULL, &size)) {
      replyError("usage: source <count> <size>", ctrlIn, len);
    } else if (size > echo.maxMessage() || size > sizeof echoBuf) {
      replyError("size exceeds the echo service's max_message", ctrlIn, len);
    } else if (!echo.connected()) {
      replyError("no host on the echo service: connect to it first", ctrlIn, len);
    } else {
      setLinkMode(Mode::kSource);
      sourceLeft = static_cast<uint32_t>(n);
      sourceSize = static_cast<uint32_t>(size);
      replyMode("link", Mode::kSource);
    }
  } else {
    replyError("unknown command", ctrlIn, len);
  }
}

void controlLoop() {
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

void copyMacLower() {
  const String mac = WiFi.macAddress();
  size_t i = 0;
  for (; i < sizeof macLower - 1 && i < mac.length(); ++i) {
    const char c = mac.c_str()[i];
    macLower[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  macLower[i] = 0;
}

}  // namespace

void setup() {
  Serial.begin(115200);
  Serial.println();
  // Strings the core hands out as String are copied once here: no allocation later.
  const String reason = ESP.getResetReason();
  strncpy(resetReason, reason.c_str(), sizeof resetReason - 1);
  resetReason[sizeof resetReason - 1] = 0;
  copyMacLower();
  Serial.print("ESP-HIL BOOT fw=");
  Serial.print(kIdentity);
  Serial.print(" reset=");
  printPercent(resetReason);  // "Power On" has a space; the line must split on spaces
  Serial.println();
  echo.setLog(Serial);
  control.setLog(Serial);
  EEPROM.begin(kEepromSize);
  if (loadCredentials()) {
    startJoin();
  } else {
    Serial.println("ESP-HIL WIFI none");
  }
}

void loop() {
  consoleLoop();
  wifiLoop();
  if (servicesStarted) {
    echo.loop();
    linkLoop();
    control.loop();
    controlLoop();
    echo.loop();  // push replies out in the same pass
    rawLoop();
  }
}
