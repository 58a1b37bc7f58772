// ESP8266WiFi: the station against the simulated access point described by
// ESP_HIL_AP_SSID / ESP_HIL_AP_PASSWORD (see README.md).
#pragma once

#include <stdint.h>

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

 private:
  WiFiMode_t mode_ = WIFI_STA;
  bool persistent_ = true;  // begin()/disconnect() also change the config stored in flash
  bool auto_reconnect_ = true;
};

extern ESP8266WiFiClass WiFi;
