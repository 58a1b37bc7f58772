#include "EspHil.h"

#include <ESP8266WiFi.h>
#include <string.h>
#ifdef ESP_HIL_SIM
#include <esp_hil_sim.h>  // the twin's allocation counter
#endif

EspHilClass EspHil;

namespace {

constexpr uint32_t kJoinTimeoutMs = 10000;
constexpr int kConsoleBudget = 128;  // bytes per loop(): a console flood must not starve the sketch

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

void copyString(char* out, size_t cap, const char* in) { esphil::Text(out, cap).add(in); }

}  // namespace

void EspHilClass::begin(const char* name) {
  Serial.begin(115200);
  Serial.println();
  esphil::Text id(identity_, sizeof identity_);
  id.add(name != nullptr ? name : "sketch");
#ifdef ESP_HIL_BUILD_ID
  id.add("+" ESP_HIL_BUILD_ID);  // the twin's build: the harness checks it runs the right one
#endif
  // The core hands these out as String: copied once here, nothing allocated later.
  copyString(resetReason_, sizeof resetReason_, ESP.getResetReason().c_str());
  const String mac = WiFi.macAddress();
  size_t i = 0;
  for (; i < sizeof mac_ - 1 && i < mac.length(); ++i) {
    const char c = mac.c_str()[i];
    mac_[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  mac_[i] = 0;
  Serial.print(F("ESP-HIL BOOT fw="));
  Serial.print(identity_);
  Serial.print(F(" reset="));
  printPercent(resetReason_);  // "Power On" has a space; the line must split on spaces
  Serial.println();
  copyString(ssid_, sizeof ssid_, WiFi.SSID().c_str());  // the SDK's stored station config
  if (ssid_[0] != 0) {
    startJoin(nullptr);
  } else {
    Serial.println(F("ESP-HIL WIFI none"));
  }
}

void EspHilClass::ready(uint16_t port, uint32_t maxMessage, const char* extra) {
  readyDialing(nullptr, port, maxMessage, extra);
}

void EspHilClass::readyDialing(const char* host, uint16_t port, uint32_t maxMessage,
                               const char* extra) {
  dialHost_ = host;
  port_ = port;
  maxMessage_ = maxMessage;
  readyExtra_ = extra;
  declared_ = true;
  if (wifiUp()) printReady();
}

void EspHilClass::loop() {
  for (int budget = 0; budget < kConsoleBudget && Serial.available() > 0; ++budget) {
    const int c = Serial.read();
    if (c < 0) break;
    const esphil::LineReader::Result r = reader_.feed(static_cast<char>(c));
    if (r == esphil::LineReader::kLine) {
      handleLine(reader_.line());
    } else if (r == esphil::LineReader::kTooLong) {
      Serial.println(F("ESP-HIL ERR line too long"));
    }
  }
  wifiLoop();
}

void EspHilClass::ok(const char* command) {
  Serial.print(F("ESP-HIL OK "));
  Serial.println(command);
}

void EspHilClass::error(const char* command, const char* why) {
  Serial.print(F("ESP-HIL ERR "));
  Serial.print(command);
  Serial.print(' ');
  Serial.println(why);
}

size_t EspHilClass::info(char* buf, size_t cap) {
  esphil::Text j(buf, cap);
  j.add("{\"fw\": ").json(identity_);
  j.add(", \"heap\": ").num(static_cast<unsigned long>(ESP.getFreeHeap()));
  j.add(", \"uptime_ms\": ").num(static_cast<unsigned long>(millis()));
  j.add(", \"reset_reason\": ").json(resetReason_);
  j.add(", \"rssi\": ").num(WiFi.status() == WL_CONNECTED ? static_cast<long>(WiFi.RSSI()) : 0L);
  j.add(", \"chip_id\": ").num(static_cast<unsigned long>(ESP.getChipId()));
  j.add(", \"mac\": ").json(mac_);
  if (declared_) j.add(", \"max_message\": ").num(static_cast<unsigned long>(maxMessage_));
  if (infoHook_ != nullptr) infoHook_(j);
#ifdef ESP_HIL_SIM
  // Only the twin can count operator new calls: proves "no allocation after setup".
  j.add(", \"allocs\": ").num(static_cast<unsigned long long>(esp_hil_sim_alloc_count()));
#endif
  j.add('}');
  return j.length();
}

void EspHilClass::printPercent(const char* s) {
  char enc[3 * 48 + 1];  // the longest field printed: the reset reason (or a 32-byte SSID)
  esphil::percentEncode(s, enc, sizeof enc);
  Serial.print(enc);
}

void EspHilClass::startJoin(const char* pass) {
  WiFi.mode(WIFI_STA);
  WiFi.setAutoReconnect(true);
  if (pass != nullptr) {
    WiFi.persistent(true);  // the SDK stores them in its own flash sectors (not EEPROM)
    WiFi.begin(ssid_, pass);
  } else {
    WiFi.begin();  // the station config: stored by `wifi`, loaded by the SDK at boot
  }
  Serial.print(F("ESP-HIL WIFI connecting ssid="));
  printPercent(ssid_);
  Serial.println();
  state_ = State::kJoining;
  joinStartedAt_ = millis();
}

void EspHilClass::printReady() {
  const IPAddress ip = WiFi.localIP();
  Serial.print(F("ESP-HIL READY fw="));
  Serial.print(identity_);
  Serial.printf_P(PSTR(" ip=%u.%u.%u.%u port=%u"), ip[0], ip[1], ip[2], ip[3],
                dialHost_ != nullptr ? 0u : static_cast<unsigned>(port_));
  if (dialHost_ != nullptr) Serial.printf_P(PSTR(" dial=%s:%u"), dialHost_, static_cast<unsigned>(port_));
  Serial.print(F(" mac="));
  Serial.print(mac_);
  Serial.print(F(" max="));
  Serial.print(static_cast<unsigned long>(maxMessage_));
  if (readyExtra_ != nullptr && readyExtra_[0] != 0) {
    Serial.print(' ');
    Serial.print(readyExtra_);
  }
  Serial.println();
}

void EspHilClass::wifiLoop() {
  const int status = WiFi.status();
  if (state_ == State::kJoining) {
    if (status == WL_CONNECTED) {
      state_ = State::kUp;
      if (declared_) printReady();
      return;
    }
    const bool final = status == WL_NO_SSID_AVAIL || status == WL_WRONG_PASSWORD ||
                       status == WL_CONNECT_FAILED;
    if (final || millis() - joinStartedAt_ >= kJoinTimeoutMs) {
      Serial.printf_P(PSTR("ESP-HIL WIFI fail status=%d reason=%s ssid="), status,
                    final ? failReason(status) : "timeout");
      printPercent(ssid_);
      Serial.println();
      WiFi.disconnect(false, false);  // stop retrying, keep the credentials: `wifi` starts over
      state_ = State::kFailed;
    }
  } else if (state_ == State::kUp && status != WL_CONNECTED) {
    Serial.printf_P(PSTR("ESP-HIL WIFI lost status=%d\n"), status);
    // No new begin(): the SDK's auto-reconnect (set in startJoin) keeps rejoining, also
    // through WL_NO_SSID_AVAIL while the AP is away, where a fresh join would give up.
    state_ = State::kLost;
  } else if (state_ == State::kLost && status == WL_CONNECTED) {
    state_ = State::kUp;
    if (declared_) printReady();  // READY again: the link is back
  }
}

void EspHilClass::cmdWifi(char* args) {
  char ssid[esphil::kSsidMax + 1];
  char pass[esphil::kPassMax + 1];
  const char* why = esphil::parseWifi(args, ssid, pass);
  if (why != nullptr) {
    error("wifi", why);
    return;
  }
  ok("wifi");
  WiFi.disconnect(false, false);
  copyString(ssid_, sizeof ssid_, ssid);
  startJoin(pass);
}

void EspHilClass::cmdDial(char* args) {
  char host[esphil::kHostMax + 1];
  uint16_t port = 0;
  bool off = false;
  const char* why = esphil::parseDial(args, host, &port, &off);
  if (why == nullptr) why = dialHook_(off ? nullptr : host, port);
  if (why != nullptr) {
    error("dial", why);
  } else {
    ok("dial");
  }
}

void EspHilClass::handleLine(char* line) {
  const esphil::Command cmd = esphil::splitCommand(line);
  if (cmd.name[0] == 0) return;
  if (strcmp(cmd.name, "wifi") == 0) {
    cmdWifi(cmd.args);
  } else if (strcmp(cmd.name, "forget") == 0) {
    WiFi.persistent(true);
    WiFi.disconnect(false, true);  // erases the stored station config
    ssid_[0] = 0;
    state_ = State::kNone;
    ok("forget");
  } else if (strcmp(cmd.name, "info") == 0) {
    char json[400];
    info(json, sizeof json);
    Serial.print(F("ESP-HIL INFO "));
    Serial.println(json);
  } else if (strcmp(cmd.name, "reboot") == 0) {
    ok("reboot");
    Serial.flush();
    ESP.restart();
  } else if (strcmp(cmd.name, "dial") == 0 && dialHook_ != nullptr) {
    cmdDial(cmd.args);
  } else if (commandHook_ == nullptr || !commandHook_(cmd.name, cmd.args)) {
    error(cmd.name, "unknown command");
  }
}
