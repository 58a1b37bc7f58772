// esp-hil test firmware: the sketch the harness flashes and talks to (docs/console.md).
//
// Console on Serial at 115200: BOOT line, WiFi provisioning (`wifi`, `forget`, `info`,
// `reboot`), READY line once the services listen. Services: echo on 8080 (every message
// comes back with its type) and control on 8081 (`info` -> JSON). Credentials live in
// EEPROM behind a magic/version/CRC header, so erased flash (0xFF) reads as "none".
// loop() never blocks; nothing is allocated after setup().
#include <Arduino.h>
#include <EEPROM.h>
#include <ESP8266WiFi.h>
#include <WiFiSocket.h>
#include <string.h>

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
  Serial.printf(" port=%u ctrl=%u mac=", kEchoPort, kCtrlPort);
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

void echoLoop() {
  for (int i = 0; i < 8; ++i) {
    if (echoLen >= 0 && echoPeer != echo.peerSession()) echoLen = -1;  // that host is gone
    if (echoLen < 0) {
      echoLen = echo.receive(echoBuf, sizeof echoBuf, &echoText);
      if (echoLen < 0) return;
      echoPeer = echo.peerSession();
    }
    if (!echo.send(echoBuf, static_cast<size_t>(echoLen), echoText)) return;  // retry later
    echoLen = -1;
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
    if (strcmp(ctrlIn, "info") == 0) {
      buildInfo(ctrlOut, sizeof ctrlOut);
    } else {
      size_t len = 0;
      ctrlOut[0] = 0;
      append(ctrlOut, sizeof ctrlOut, &len, "{\"error\": \"unknown command\", \"command\": ");
      // Bytes that are not valid UTF-8 would make the reply invalid: show them as '?'.
      for (int i = 0; i < n; ++i) {
        if (static_cast<unsigned char>(ctrlIn[i]) >= 0x80) ctrlIn[i] = '?';
      }
      char shown[200];
      strncpy(shown, ctrlIn, sizeof shown - 1);
      shown[sizeof shown - 1] = 0;
      appendJsonString(ctrlOut, sizeof ctrlOut, &len, shown);
      append(ctrlOut, sizeof ctrlOut, &len, "}");
    }
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
    echoLoop();
    control.loop();
    controlLoop();
    echo.loop();  // push replies out in the same pass
  }
}
