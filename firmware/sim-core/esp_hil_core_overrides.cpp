// What esp-hil adds to the ESP8266 core's host emulation (tests/host) to run its test
// firmware: the pieces the mock lacks, and one address per instance. Compiled into the
// sim-core build only (harness/sim/core/build.py); see docs/sim-core.md.
#include <Arduino.h>
#include <WiFiServer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <user_interface.h>

#include <lwip/netif.h>

// -- missing in the mock (the real core has both: WiFiServer.cpp, Esp.cpp) ---------------

void WiFiServer::setNoDelay(bool nodelay) { _noDelay = nodelay ? _ndTrue : _ndFalse; }

bool WiFiServer::getNoDelay() { return _noDelay == _ndTrue; }

uint8_t* EspClass::random(uint8_t* resultArray, const size_t outputSizeBytes) {
  size_t got = 0;
  while (got < outputSizeBytes) {
    const ssize_t n = getrandom(resultArray + got, outputSizeBytes - got, 0);
    if (n <= 0) {
      // The chip's RNG never fails; a host without entropy cannot stand in for it.
      fprintf(stderr, "[sim-core] getrandom failed\n");
      abort();
    }
    got += static_cast<size_t>(n);
  }
  return resultArray;
}

uint32_t EspClass::random() {
  uint32_t value;
  random(reinterpret_cast<uint8_t*>(&value), sizeof value);
  return value;
}

// -- file systems: their sources are submodules the core snapshot lacks, and the test
// firmware uses none (the harness also passes -S 0 -L 0) -------------------------------

void mock_start_spiffs(const String&, size_t, size_t, size_t) {}
void mock_stop_spiffs() {}
void mock_start_littlefs(const String&, size_t, size_t, size_t) {}
void mock_stop_littlefs() {}

// -- one address per instance --------------------------------------------------------------
// The mock's wifi_get_ip_info() takes the host's first non-loopback address and leaves
// servers on 0.0.0.0, so two instances on one host share ports. This one (the mock's is
// renamed at compile time) gives each instance the address in ESP_HIL_IP (127.0.0.N, as our
// own shim does) and makes WiFiServer bind to it.

extern "C" {
extern netif netif0;

bool wifi_get_ip_info(uint8 if_index, struct ip_info* info) {
  (void)if_index;
  static uint8_t ip[4];
  static bool parsed = false;
  if (!parsed) {
    const char* env = getenv("ESP_HIL_IP");
    unsigned a, b, c, d;
    char end;
    if (env == nullptr || sscanf(env, "%u.%u.%u.%u%c", &a, &b, &c, &d, &end) != 4 || a > 255 ||
        b > 255 || c > 255 || d > 255) {
      fprintf(stderr, "[sim-core] ESP_HIL_IP=%s is not an IPv4 address\n", env ? env : "(unset)");
      exit(2);
    }
    ip[0] = a, ip[1] = b, ip[2] = c, ip[3] = d;
    parsed = true;
  }
  uint32_t ip_netorder;  // lwIP keeps addresses in network byte order
  memcpy(&ip_netorder, ip, sizeof ip_netorder);
  const uint8_t mask_bytes[4] = {255, 0, 0, 0};
  uint32_t mask;
  memcpy(&mask, mask_bytes, sizeof mask);
  // WiFiServer binds to this one (host byte order).
  global_source_address = (uint32_t{ip[0]} << 24) | (ip[1] << 16) | (ip[2] << 8) | ip[3];
  if (info) {
    info->ip.addr = ip_netorder;
    info->netmask.addr = mask;
    info->gw.addr = ip_netorder;
  }
  netif0.ip_addr.addr = ip_netorder;
  netif0.netmask.addr = mask;
  netif0.gw.addr = ip_netorder;
  netif0.flags = NETIF_FLAG_IGMP | NETIF_FLAG_UP | NETIF_FLAG_LINK_UP;
  netif0.next = nullptr;
  return true;
}
}

// -- the SDK's stored station config ---------------------------------------------------------
// The mock answers every wifi_station_get_config() with a fixed "emulated-ssid" and forgets
// what wifi_station_set_config() is given, so a board that was never provisioned would look
// provisioned. The SDK keeps the config in its own flash sectors; here it is the file
// `station_config` in the instance's working directory (beside `eeprom`), so it survives a
// reset and each instance has its own. The mock's four functions are renamed at compile time.

namespace {

constexpr const char* kStationFile = "station_config";

station_config& current_config() {
  static station_config config;
  static bool loaded = false;
  if (!loaded) {
    loaded = true;
    memset(&config, 0, sizeof config);  // no file: never provisioned (erased config)
    if (FILE* f = fopen(kStationFile, "rb")) {
      if (fread(&config, sizeof config, 1, f) != 1) memset(&config, 0, sizeof config);
      fclose(f);
    }
  }
  return config;
}

}  // namespace

extern "C" {

bool wifi_station_get_config(struct station_config* config) {
  if (config == nullptr) return false;
  *config = current_config();
  return true;
}

bool wifi_station_get_config_default(struct station_config* config) {
  if (config == nullptr) return false;
  memset(config, 0, sizeof *config);
  if (FILE* f = fopen(kStationFile, "rb")) {
    if (fread(config, sizeof *config, 1, f) != 1) memset(config, 0, sizeof *config);
    fclose(f);
  }
  return true;
}

bool wifi_station_set_config_current(struct station_config* config) {
  if (config == nullptr) return false;
  current_config() = *config;
  return true;
}

bool wifi_station_set_config(struct station_config* config) {
  if (!wifi_station_set_config_current(config)) return false;
  FILE* f = fopen(kStationFile, "wb");
  if (f == nullptr) return false;
  const bool written = fwrite(config, sizeof *config, 1, f) == 1;
  return fclose(f) == 0 && written;
}

}  // extern "C"
