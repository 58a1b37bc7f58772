// The simulated access point as the test controls it: a 128-byte file shared (mmap,
// MAP_SHARED) with the harness, "<ESP_HIL_FLASH>.air". Only the harness writes it
// (harness/sim/wifi.py); keep the layout in step with it. Until the harness first writes
// it (magic 0), the AP is the one of ESP_HIL_AP_SSID / ESP_HIL_AP_PASSWORD / ESP_HIL_RSSI.
//
//   0  u32 magic "AIR1"    4  u32 sequence (odd while the harness writes)
//   8  u8  on the air      9  i8  RSSI (dBm)    10  u8 password length (0..64)
//   16 password bytes (64)
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>

#include "sim_internal.h"

namespace esp_hil_sim {

namespace {

constexpr uint32_t kAirMagic = 0x31524941;  // "AIR1", little-endian
constexpr size_t kAirSize = 128;

struct AirFile {
  uint32_t magic;
  uint32_t seq;
  uint8_t on_air;
  int8_t rssi;
  uint8_t password_len;
  uint8_t pad[5];
  char password[64];
};
static_assert(sizeof(AirFile) <= kAirSize, "the air file is 128 bytes");

const volatile AirFile* air_file() {
  static const volatile AirFile* g_air = nullptr;
  static bool tried = false;
  if (tried) return g_air;
  tried = true;
  void* map = world_file(".air", kAirSize, false, "the test cannot move the access point");
  if (!map) return nullptr;
  g_air = static_cast<const volatile AirFile*>(map);
  return g_air;
}

// Read once: the environment does not change, and wifi_tick() asks at every turn of the
// loop (a getenv and a snprintf per message were a measurable share of the twin's CPU).
void from_environment(Air* out) {
  static Air env;
  static bool read = false;
  if (!read) {
    const char* ssid = getenv("ESP_HIL_AP_SSID");
    const char* password = getenv("ESP_HIL_AP_PASSWORD");
    env.on_air = ssid != nullptr && *ssid != 0;
    env.rssi = config().rssi;
    snprintf(env.password, sizeof env.password, "%s", password ? password : "");
    read = true;
  }
  *out = env;
}

}  // namespace

void air_read(Air* out) {
  const volatile AirFile* f = air_file();
  if (f == nullptr || f->magic != kAirMagic) {
    from_environment(out);
    return;
  }
  // A sequence lock: retry while the harness is in the middle of a write.
  Air seen;
  for (int attempt = 0; attempt < 1000; attempt++) {
    const uint32_t before = f->seq;
    std::atomic_thread_fence(std::memory_order_acquire);
    if (before & 1u) continue;
    seen.on_air = f->on_air != 0;
    seen.rssi = f->rssi;
    size_t len = f->password_len;
    if (len > sizeof f->password) len = sizeof f->password;
    for (size_t i = 0; i < len; i++) seen.password[i] = f->password[i];
    seen.password[len] = 0;
    std::atomic_thread_fence(std::memory_order_acquire);
    if (f->seq == before) {
      *out = seen;
      return;
    }
  }
  // The harness is in the middle of a write (or died there): keep what the last tick saw,
  // not the environment's AP, which a test may have changed since.
}

}  // namespace esp_hil_sim
