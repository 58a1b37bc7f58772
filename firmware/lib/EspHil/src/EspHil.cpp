#include "EspHil.h"

#include <ESP8266WiFi.h>
#include <spi_flash.h>  // the SDK's flash calls: the twins (sim, sim-core) emulate them too
#include <string.h>
#ifdef ESP_HIL_SIM
#include <esp_hil_sim.h>  // the twin's allocation counter
#endif
#if !defined(ESPHIL_KEY_SECTOR) && !defined(ESP_HIL_SIM) && !defined(HOST_MOCK)
#include <flash_hal.h>  // FS_end, EEPROM_start: the flash layout the sketch is linked with
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

// The flash sector (address / 4096) that holds the key, 0 for none (docs/console.md, "Where
// the key lives"): the one the core's layouts leave free between the end of the file system
// (rounded down to its 8 KiB blocks) and EEPROM, 0x3FA on every 4 MB layout with a file
// system; the twins use that one in their 4 MiB flash.
uint32_t keySector() {
#if defined(ESPHIL_KEY_SECTOR)
  return ESPHIL_KEY_SECTOR;
#elif defined(ESP_HIL_SIM) || defined(HOST_MOCK)
  return 0x3FA;
#else
  const uint32_t fsEnd = FS_end - 0x40200000u;
  const uint32_t eeprom = EEPROM_start - 0x40200000u;
  if (fsEnd % SPI_FLASH_SEC_SIZE != 0 || fsEnd + SPI_FLASH_SEC_SIZE > eeprom) return 0;
  return fsEnd / SPI_FLASH_SEC_SIZE;
#endif
}

// The stored key into `key`: its length, 0 when none (nothing stored, erased, damaged).
size_t loadKey(uint8_t (&key)[esphil::kKeyMax]) {
  alignas(4) uint8_t record[esphil::kKeyRecordSize];  // the SDK reads whole aligned words
  const uint32_t sector = keySector();
  size_t len = 0;
  if (sector != 0 &&
      spi_flash_read(sector * SPI_FLASH_SEC_SIZE, reinterpret_cast<uint32_t*>(record),
                     sizeof record) == SPI_FLASH_RESULT_OK) {
    len = esphil::decodeKeyRecord(record, key);
  } else {
    esphil::wipe(key, sizeof key);
  }
  esphil::wipe(record, sizeof record);
  return len;
}

// Erases the key's sector and writes `key` there (len 0: erased only), then reads it back.
bool storeKey(const uint8_t* key, size_t len) {
  const uint32_t sector = keySector();
  if (sector == 0 || spi_flash_erase_sector(static_cast<uint16_t>(sector)) != SPI_FLASH_RESULT_OK) {
    return false;
  }
  alignas(4) uint8_t record[esphil::kKeyRecordSize];
  bool ok = true;
  if (len > 0) {
    ok = esphil::encodeKeyRecord(key, len, record) &&
         spi_flash_write(sector * SPI_FLASH_SEC_SIZE, reinterpret_cast<uint32_t*>(record),
                         sizeof record) == SPI_FLASH_RESULT_OK;
    esphil::wipe(record, sizeof record);
  }
  uint8_t back[esphil::kKeyMax];
  ok = ok && loadKey(back) == len && memcmp(back, key, len) == 0;
  esphil::wipe(back, sizeof back);
  return ok;
}

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
  uint8_t key[esphil::kKeyMax];
  keySet_ = loadKey(key) > 0;
  esphil::wipe(key, sizeof key);
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

void EspHilClass::onKey(KeyHook hook) {
  keyHook_ = hook;
  uint8_t key[esphil::kKeyMax];
  const size_t len = loadKey(key);
  keySet_ = len > 0;
  if (hook != nullptr && len > 0) hook(key, len);
  esphil::wipe(key, sizeof key);
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
  j.add(", \"key\": ").add(keySet_ ? "true" : "false");  // whether, never what
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
  // The harness provisions a key only to a sketch that applies it to its links.
  if (keyHook_ != nullptr) Serial.print(F(" auth=1"));
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

void EspHilClass::cmdKey(char* args) {
  uint8_t key[esphil::kKeyMax];
  size_t len = 0;
  const char* why = esphil::parseKey(args, key, &len);
  esphil::wipe(args, strlen(args));  // the hex leaves the line buffer at once
  if (why == nullptr && keySector() == 0) why = "no key sector";
  if (why != nullptr) {
    error("key", why);
  } else if (!storeKey(key, len)) {
    keySet_ = loadKey(key) > 0;  // the erase may have gone through: say what flash holds
    error("key", "flash write failed");
  } else {
    keySet_ = len > 0;
    if (keyHook_ != nullptr) keyHook_(key, len);  // before OK: then the sketch has it
    ok("key");
  }
  esphil::wipe(key, sizeof key);
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
  } else if (strcmp(cmd.name, "key") == 0) {
    cmdKey(cmd.args);
  } else if (strcmp(cmd.name, "dial") == 0 && dialHook_ != nullptr) {
    cmdDial(cmd.args);
  } else if (commandHook_ == nullptr || !commandHook_(cmd.name, cmd.args)) {
    error(cmd.name, "unknown command");
  }
}
