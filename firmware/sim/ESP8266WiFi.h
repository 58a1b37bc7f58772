// ESP8266WiFi: the station against the simulated access point described by
// ESP_HIL_AP_SSID / ESP_HIL_AP_PASSWORD (see README.md).
#pragma once

#include <stdint.h>

#include <functional>
#include <memory>

#include "Arduino.h"
#include "IPAddress.h"
#include "WiFiClient.h"
#include "WiFiServer.h"

typedef enum {
  WL_NO_SHIELD = 255,
  WL_IDLE_STATUS = 0,
  WL_NO_SSID_AVAIL = 1,
  WL_SCAN_COMPLETED = 2,
  WL_CONNECTED = 3,
  WL_CONNECT_FAILED = 4,
  WL_CONNECTION_LOST = 5,
  WL_WRONG_PASSWORD = 6,
  WL_DISCONNECTED = 7,
} wl_status_t;

typedef enum WiFiMode { WIFI_OFF = 0, WIFI_STA = 1, WIFI_AP = 2, WIFI_AP_STA = 3 } WiFiMode_t;

// The station events of the core (ESP8266WiFiType.h); the shim raises the ones a
// simulated join produces: Connected + GotIP, or Disconnected with the reason.
enum WiFiDisconnectReason {
  WIFI_DISCONNECT_REASON_UNSPECIFIED = 1,
  WIFI_DISCONNECT_REASON_AUTH_EXPIRE = 2,
  WIFI_DISCONNECT_REASON_AUTH_LEAVE = 3,
  WIFI_DISCONNECT_REASON_ASSOC_EXPIRE = 4,
  WIFI_DISCONNECT_REASON_ASSOC_LEAVE = 8,
  WIFI_DISCONNECT_REASON_BEACON_TIMEOUT = 200,
  WIFI_DISCONNECT_REASON_NO_AP_FOUND = 201,
  WIFI_DISCONNECT_REASON_AUTH_FAIL = 202,
  WIFI_DISCONNECT_REASON_ASSOC_FAIL = 203,
  WIFI_DISCONNECT_REASON_HANDSHAKE_TIMEOUT = 204,
};

struct WiFiEventStationModeConnected {
  String ssid;
  uint8_t bssid[6];
  uint8_t channel;
};

struct WiFiEventStationModeDisconnected {
  String ssid;
  uint8_t bssid[6];
  WiFiDisconnectReason reason;
};

struct WiFiEventStationModeGotIP {
  IPAddress ip;
  IPAddress mask;
  IPAddress gw;
};

// The handler lives as long as the returned WiFiEventHandler (as on the core).
struct WiFiEventHandlerOpaque {
  std::function<void(const WiFiEventStationModeConnected&)> connected;
  std::function<void(const WiFiEventStationModeDisconnected&)> disconnected;
  std::function<void(const WiFiEventStationModeGotIP&)> got_ip;
};
typedef std::shared_ptr<WiFiEventHandlerOpaque> WiFiEventHandler;

class ESP8266WiFiClass {
 public:
  bool mode(WiFiMode_t m) {
    mode_ = m;
    return true;
  }
  WiFiMode_t getMode() const { return mode_; }
  void persistent(bool on) { persistent_ = on; }
  bool setAutoReconnect(bool on) {
    auto_reconnect_ = on;
    return true;
  }
  bool getAutoReconnect() const { return auto_reconnect_; }

  // Starts joining; the outcome shows in status() after the simulated association
  // delay. Returns the status right after the call (WL_DISCONNECTED while joining,
  // WL_CONNECT_FAILED for an unusable SSID or password).
  wl_status_t begin(const char* ssid, const char* password = nullptr, int32_t channel = 0,
                    const uint8_t* bssid = nullptr, bool connect = true);
  wl_status_t begin(const String& ssid, const String& password) { return begin(ssid.c_str(), password.c_str()); }
  wl_status_t begin();  // rejoins with the last credentials
  // As on the core: erases the stored credentials too unless eraseCredentials is false.
  bool disconnect(bool wifioff = false) { return disconnect(wifioff, true); }
  bool disconnect(bool wifioff, bool eraseCredentials);
  bool reconnect();
  bool isConnected() { return status() == WL_CONNECTED; }
  // Waits (letting the system run) until a join has an outcome; the status, or -1 when
  // timeoutLength ms pass first. WL_DISCONNECTED at once if the station is off.
  int8_t waitForConnectResult(unsigned long timeoutLength = 60000);
  wl_status_t status();

  IPAddress localIP();  // 0.0.0.0 until connected
  IPAddress subnetMask();
  IPAddress gatewayIP();
  String macAddress();  // "AA:BB:CC:DD:EE:FF"
  uint8_t* macAddress(uint8_t* mac);
  // The station config's SSID / password (stored ones after boot, as the SDK loads them).
  String SSID();
  String psk();
  int32_t RSSI();  // 31 (the core's "no value") while not connected
  int32_t channel() { return 1; }
  String hostname();
  bool hostname(const char* name);
  bool hostname(const String& name) { return hostname(name.c_str()); }
  bool setHostname(const char* name) { return hostname(name); }
  String getHostname() { return hostname(); }

  // Handlers run from the loop context when the sketch yields (between loop() passes,
  // in delay() and yield()), as the core's event handlers do. Keep the returned handle:
  // the handler is gone when the last copy of it is.
  [[nodiscard]] WiFiEventHandler onStationModeConnected(
      std::function<void(const WiFiEventStationModeConnected&)> handler);
  [[nodiscard]] WiFiEventHandler onStationModeDisconnected(
      std::function<void(const WiFiEventStationModeDisconnected&)> handler);
  [[nodiscard]] WiFiEventHandler onStationModeGotIP(std::function<void(const WiFiEventStationModeGotIP&)> handler);

 private:
  WiFiMode_t mode_ = WIFI_STA;
  bool persistent_ = true;  // begin()/disconnect() also change the config stored in flash
  bool auto_reconnect_ = true;
};

extern ESP8266WiFiClass WiFi;
