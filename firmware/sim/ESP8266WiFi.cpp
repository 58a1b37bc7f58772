#include "ESP8266WiFi.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim_internal.h"

ESP8266WiFiClass WiFi;

namespace {

// kJoining: scanning and associating (ESP_HIL_ASSOC_MS); kDhcp: associated, waiting for
// the address (ESP_HIL_DHCP_MS); kRetry: auto-reconnect's pause after a lost link.
enum class Phase { kIdle, kJoining, kDhcp, kDone, kRetry };

struct Station {
  Phase phase = Phase::kIdle;
  wl_status_t status = WL_IDLE_STATUS;  // what status() reports now
  uint64_t done_at_us = 0;  // when the current phase ends
  bool off_air = false;           // joined, and the AP has gone quiet...
  uint64_t off_air_since_us = 0;  // ...since then
  bool retrying = false;  // rejoining by itself after a lost link (auto-reconnect)
  char ssid[33] = {0};
  char password[65] = {0};
  char joined_password[65] = {0};  // the AP's password when we joined: a change kicks us
  bool have_credentials = false;
};

Station g_sta;
esp_hil_sim::Air g_air = {false, 0, {0}};  // the AP as the last tick saw it
char g_hostname[33] = "";

// Events wait here until the sketch yields; then they go to every live handler.
constexpr size_t kMaxHandlers = 16;
constexpr size_t kMaxPending = 8;
std::weak_ptr<WiFiEventHandlerOpaque> g_handlers[kMaxHandlers];

enum class Event : uint8_t { kConnected, kGotIp, kDisconnected };
struct Pending {
  Event event;
  WiFiDisconnectReason reason;
};
Pending g_pending[kMaxPending];
size_t g_pending_count = 0;

void raise(Event event, WiFiDisconnectReason reason = WIFI_DISCONNECT_REASON_UNSPECIFIED) {
  if (g_pending_count == kMaxPending) return;  // nobody yielded for 8 events: drop the newest
  g_pending[g_pending_count++] = {event, reason};
}

WiFiEventHandler add_handler(WiFiEventHandlerOpaque&& h) {
  for (auto& slot : g_handlers) {
    if (slot.expired()) {
      auto handler = std::make_shared<WiFiEventHandlerOpaque>(std::move(h));
      slot = handler;
      return handler;
    }
  }
  esp_hil_sim::log("more than %u WiFi event handlers: this one is not called", static_cast<unsigned>(kMaxHandlers));
  return nullptr;
}

// The station config as the twin stores it in flash (the SDK's format is its own).
struct StoredConfig {
  char magic[4];
  char ssid[33];
  char password[65];
};
constexpr char kStoredMagic[4] = {'E', 'S', 'T', 'A'};

// Like the SDK at boot: the stored config becomes the current one (once, on first use).
Station& station() {
  static bool loaded = false;
  if (loaded) return g_sta;
  loaded = true;
  if (!*esp_hil_sim::config().flash_path) return g_sta;
  const int fd = esp_hil_sim::flash_open(O_RDONLY);
  if (fd < 0) return g_sta;
  StoredConfig c;
  const ssize_t n = pread(fd, &c, sizeof c, esp_hil_sim::kStaConfigOffset);
  close(fd);
  if (n == static_cast<ssize_t>(sizeof c) && memcmp(c.magic, kStoredMagic, 4) == 0) {
    c.ssid[sizeof c.ssid - 1] = 0;
    c.password[sizeof c.password - 1] = 0;
    snprintf(g_sta.ssid, sizeof g_sta.ssid, "%s", c.ssid);
    snprintf(g_sta.password, sizeof g_sta.password, "%s", c.password);
    g_sta.have_credentials = g_sta.ssid[0] != 0;
  }
  return g_sta;
}

// Stores the current credentials (an empty SSID erases the record).
void store_config() {
  if (!*esp_hil_sim::config().flash_path) return;
  StoredConfig c;
  memset(&c, 0, sizeof c);
  memcpy(c.magic, kStoredMagic, 4);
  memcpy(c.ssid, g_sta.ssid, sizeof c.ssid);
  memcpy(c.password, g_sta.password, sizeof c.password);
  const bool erase = g_sta.ssid[0] == 0;
  esp_hil_sim::flash_write_sector(esp_hil_sim::kStaConfigOffset,
                                  reinterpret_cast<const uint8_t*>(&c), erase ? 0 : sizeof c);
}

// Decides how a join with these credentials ends, from the AP as it is now. The SSID is
// ESP_HIL_AP_SSID; whether it is on the air and its password, the test's (sim_air.cpp).
wl_status_t join_outcome(const char* ssid, const char* password) {
  const char* ap_ssid = getenv("ESP_HIL_AP_SSID");
  if (!g_air.on_air || !ap_ssid || !*ap_ssid || strcmp(ap_ssid, ssid) != 0) return WL_NO_SSID_AVAIL;
  // An open network (empty password) is joined only with an empty password.
  return strcmp(g_air.password, password) == 0 ? WL_CONNECTED : WL_WRONG_PASSWORD;
}

void leave() {
  if (g_sta.status == WL_CONNECTED) {
    esp_hil_sim::listeners_station_down();
    raise(Event::kDisconnected, WIFI_DISCONNECT_REASON_ASSOC_LEAVE);
  }
  g_sta.phase = Phase::kIdle;
  g_sta.retrying = false;
}

// The link went away under a joined station (AP gone, or it changed its password): the
// station is disconnected; with auto-reconnect on (the default) the SDK keeps rejoining.
// Listening sockets and open connections stay, as lwIP's PCBs do.
void lose(WiFiDisconnectReason reason, uint64_t now) {
  // The harness's view of why (a board's SDK says only the reason code).
  if (reason == WIFI_DISCONNECT_REASON_BEACON_TIMEOUT) {
    esp_hil_sim::log("station lost the AP: off the air for %u ms (beacon timeout, reason %d)",
                     static_cast<unsigned>((now - g_sta.off_air_since_us) / 1000u), static_cast<int>(reason));
  } else {
    esp_hil_sim::log("station lost the AP: it changed its password (reason %d)", static_cast<int>(reason));
  }
  g_sta.status = WL_DISCONNECTED;
  g_sta.off_air = false;
  raise(Event::kDisconnected, reason);
  if (WiFi.getAutoReconnect()) {
    g_sta.retrying = true;
    g_sta.phase = Phase::kRetry;
    g_sta.done_at_us = now + static_cast<uint64_t>(esp_hil_sim::config().reconnect_ms) * 1000u;
  } else {
    g_sta.phase = Phase::kIdle;
  }
}

}  // namespace

namespace esp_hil_sim {

bool link_up() { return g_sta.status == WL_CONNECTED && g_air.on_air; }

void wifi_tick() {
  air_read(&g_air);
  const uint64_t now = monotonic_us();
  const Config& cfg = config();
  switch (g_sta.phase) {
    case Phase::kIdle:
      return;
    case Phase::kRetry:
      if (now < g_sta.done_at_us) return;
      g_sta.phase = Phase::kJoining;
      g_sta.status = WL_DISCONNECTED;
      g_sta.done_at_us = now + static_cast<uint64_t>(cfg.assoc_ms) * 1000u;
      return;
    case Phase::kJoining: {
      if (now < g_sta.done_at_us) return;
      const wl_status_t outcome = join_outcome(g_sta.ssid, g_sta.password);
      if (outcome != WL_CONNECTED) {
        g_sta.status = outcome;
        raise(Event::kDisconnected, outcome == WL_WRONG_PASSWORD ? WIFI_DISCONNECT_REASON_AUTH_FAIL
                                                                 : WIFI_DISCONNECT_REASON_NO_AP_FOUND);
        // A first join's outcome holds until the next begin(); a rejoin tries again.
        g_sta.phase = g_sta.retrying ? Phase::kRetry : Phase::kDone;
        g_sta.done_at_us = now + static_cast<uint64_t>(cfg.reconnect_ms) * 1000u;
        return;
      }
      snprintf(g_sta.joined_password, sizeof g_sta.joined_password, "%s", g_air.password);
      raise(Event::kConnected);
      g_sta.phase = Phase::kDhcp;
      g_sta.done_at_us = now + static_cast<uint64_t>(cfg.dhcp_ms) * 1000u;
    }
      [[fallthrough]];
    case Phase::kDhcp:
      if (now < g_sta.done_at_us) return;
      g_sta.phase = Phase::kDone;
      g_sta.status = WL_CONNECTED;
      g_sta.retrying = false;
      g_sta.off_air = false;
      listeners_station_up();
      raise(Event::kGotIp);
      return;
    case Phase::kDone:
      if (g_sta.status != WL_CONNECTED) return;
      if (g_air.on_air && strcmp(g_air.password, g_sta.joined_password) != 0) {
        // The AP now wants another key: it deauthenticates its stations at once.
        lose(WIFI_DISCONNECT_REASON_AUTH_EXPIRE, now);
      } else if (g_air.on_air) {
        g_sta.off_air = false;
      } else if (!g_sta.off_air) {
        g_sta.off_air = true;
        g_sta.off_air_since_us = now;
      } else if (now - g_sta.off_air_since_us >= static_cast<uint64_t>(cfg.beacon_timeout_ms) * 1000u) {
        lose(WIFI_DISCONNECT_REASON_BEACON_TIMEOUT, now);
      }
      return;
  }
}

void wifi_service() {
  wifi_tick();
  // Taken out first: a handler may call WiFi.begin()/disconnect() and raise new events.
  Pending events[kMaxPending];
  const size_t count = g_pending_count;
  memcpy(events, g_pending, sizeof(Pending) * count);
  g_pending_count = 0;
  uint8_t bssid[6];
  memcpy(bssid, config().mac, 6);
  bssid[0] ^= 0x02;  // any fixed BSSID: the simulated AP's
  for (size_t i = 0; i < count; i++) {
    for (auto& slot : g_handlers) {
      std::shared_ptr<WiFiEventHandlerOpaque> h = slot.lock();
      if (!h) continue;
      switch (events[i].event) {
        case Event::kConnected:
          if (h->connected) {
            WiFiEventStationModeConnected e{String(g_sta.ssid), {}, 1};
            memcpy(e.bssid, bssid, 6);
            h->connected(e);
          }
          break;
        case Event::kGotIp:
          if (h->got_ip) h->got_ip({IPAddress(config().ip), IPAddress(255, 0, 0, 0), IPAddress(127, 0, 0, 1)});
          break;
        case Event::kDisconnected:
          if (h->disconnected) {
            WiFiEventStationModeDisconnected e{String(g_sta.ssid), {}, events[i].reason};
            memcpy(e.bssid, bssid, 6);
            h->disconnected(e);
          }
          break;
      }
    }
  }
}

bool wifi_connected() {
  wifi_tick();
  return g_sta.status == WL_CONNECTED;
}

}  // namespace esp_hil_sim

wl_status_t ESP8266WiFiClass::begin(const char* ssid, const char* password, int32_t, const uint8_t*,
                                    bool connect) {
  // The core refuses these before touching the station.
  if (!ssid || !*ssid || strlen(ssid) > 32) return WL_CONNECT_FAILED;
  if (password && strlen(password) > 64) return WL_CONNECT_FAILED;
  leave();
  station();
  const bool same = strcmp(g_sta.ssid, ssid) == 0 && strcmp(g_sta.password, password ? password : "") == 0;
  snprintf(g_sta.ssid, sizeof g_sta.ssid, "%s", ssid);
  snprintf(g_sta.password, sizeof g_sta.password, "%s", password ? password : "");
  g_sta.have_credentials = true;
  if (persistent_ && !same) store_config();  // the core writes flash only on a change
  if (!connect) {
    g_sta.status = WL_DISCONNECTED;
    return g_sta.status;
  }
  g_sta.phase = Phase::kJoining;
  g_sta.status = WL_DISCONNECTED;
  g_sta.done_at_us = esp_hil_sim::monotonic_us() + static_cast<uint64_t>(esp_hil_sim::config().assoc_ms) * 1000u;
  esp_hil_sim::wifi_tick();  // a zero association delay connects at once
  return g_sta.status;
}

wl_status_t ESP8266WiFiClass::begin() {
  if (!station().have_credentials) return WL_CONNECT_FAILED;
  char ssid[sizeof g_sta.ssid];
  char password[sizeof g_sta.password];
  memcpy(ssid, g_sta.ssid, sizeof ssid);
  memcpy(password, g_sta.password, sizeof password);
  return begin(ssid, password);
}

WiFiEventHandler ESP8266WiFiClass::onStationModeConnected(
    std::function<void(const WiFiEventStationModeConnected&)> handler) {
  WiFiEventHandlerOpaque h;
  h.connected = std::move(handler);
  return add_handler(std::move(h));
}

WiFiEventHandler ESP8266WiFiClass::onStationModeDisconnected(
    std::function<void(const WiFiEventStationModeDisconnected&)> handler) {
  WiFiEventHandlerOpaque h;
  h.disconnected = std::move(handler);
  return add_handler(std::move(h));
}

WiFiEventHandler ESP8266WiFiClass::onStationModeGotIP(std::function<void(const WiFiEventStationModeGotIP&)> handler) {
  WiFiEventHandlerOpaque h;
  h.got_ip = std::move(handler);
  return add_handler(std::move(h));
}

String ESP8266WiFiClass::hostname() {
  if (!*g_hostname) {
    // The core's default: "ESP-" and the chip id in hex.
    snprintf(g_hostname, sizeof g_hostname, "ESP-%06X", static_cast<unsigned>(esp_hil_sim::config().chip_id));
  }
  return String(g_hostname);
}

bool ESP8266WiFiClass::hostname(const char* name) {
  if (!name || !*name || strlen(name) >= sizeof g_hostname) return false;
  snprintf(g_hostname, sizeof g_hostname, "%s", name);
  return true;
}

bool ESP8266WiFiClass::disconnect(bool, bool eraseCredentials) {
  leave();
  if (eraseCredentials) {
    station();
    memset(g_sta.ssid, 0, sizeof g_sta.ssid);
    memset(g_sta.password, 0, sizeof g_sta.password);
    g_sta.have_credentials = false;
    if (persistent_) store_config();
  }
  g_sta.status = WL_IDLE_STATUS;
  return true;
}

int8_t ESP8266WiFiClass::waitForConnectResult(unsigned long timeoutLength) {
  if ((mode_ & WIFI_STA) == 0) return WL_DISCONNECTED;
  const unsigned long start = millis();
  while (millis() - start < timeoutLength) {
    if (status() != WL_DISCONNECTED) return static_cast<int8_t>(status());
    delay(1);
  }
  return -1;
}

bool ESP8266WiFiClass::reconnect() { return begin() != WL_CONNECT_FAILED; }

wl_status_t ESP8266WiFiClass::status() {
  esp_hil_sim::wifi_tick();
  return g_sta.status;
}

IPAddress ESP8266WiFiClass::localIP() {
  return esp_hil_sim::wifi_connected() ? IPAddress(esp_hil_sim::config().ip) : IPAddress();
}

IPAddress ESP8266WiFiClass::subnetMask() {
  return esp_hil_sim::wifi_connected() ? IPAddress(255, 0, 0, 0) : IPAddress();
}

IPAddress ESP8266WiFiClass::gatewayIP() {
  return esp_hil_sim::wifi_connected() ? IPAddress(127, 0, 0, 1) : IPAddress();
}

String ESP8266WiFiClass::macAddress() {
  const uint8_t* m = esp_hil_sim::config().mac;
  char text[18];
  snprintf(text, sizeof text, "%02X:%02X:%02X:%02X:%02X:%02X", m[0], m[1], m[2], m[3], m[4], m[5]);
  return String(text);
}

uint8_t* ESP8266WiFiClass::macAddress(uint8_t* mac) {
  memcpy(mac, esp_hil_sim::config().mac, 6);
  return mac;
}

String ESP8266WiFiClass::SSID() { return String(station().ssid); }

String ESP8266WiFiClass::psk() { return String(station().password); }

int32_t ESP8266WiFiClass::RSSI() { return esp_hil_sim::wifi_connected() ? g_air.rssi : 31; }
