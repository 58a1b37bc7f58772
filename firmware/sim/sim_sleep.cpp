// Deep sleep and the RTC user memory that outlives it (README: "Deep sleep").
//
// On the chip, deep sleep powers the CPU, RAM and radio down; only the RTC runs, and with
// GPIO16 wired to RST its timer resets the chip when the time is up (ROM cause 5). The
// twin's process stops doing anything for that time, then ends with 16 + 5; the supervisor
// boots it again as "Deep-Sleep Wake". RTC memory survives every reset but a power cut.

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "Esp.h"
#include "sim_internal.h"

namespace esp_hil_sim {

namespace {

constexpr size_t kRtcUserSize = 512;  // Esp.cpp: the user half of RTC memory, 128 words

bool g_rtc_loaded = false;
uint8_t g_rtc[kRtcUserSize];

bool rtc_path(char* out, size_t cap) {
  const char* flash = config().flash_path;
  if (!*flash) return false;
  snprintf(out, cap, "%s.rtc", flash);
  return true;
}

// What RTC memory holds now. After a power-on it is undefined: random bytes, so a sketch
// that trusts it without a check of its own fails on the twin as it may on a board.
void rtc_load() {
  if (g_rtc_loaded) return;
  g_rtc_loaded = true;
  char path[sizeof config().flash_path + 8];
  if (rtc_path(path, sizeof path)) {
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      const bool whole = ::pread(fd, g_rtc, sizeof g_rtc, 0) == static_cast<ssize_t>(sizeof g_rtc);
      ::close(fd);
      if (whole) return;
    }
  }
  ESP.random(g_rtc, sizeof g_rtc);
}

void rtc_store() {
  char path[sizeof config().flash_path + 8];
  if (!rtc_path(path, sizeof path)) return;
  const int fd = ::open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    log("cannot keep RTC memory in %s", path);
    return;
  }
  if (::pwrite(fd, g_rtc, sizeof g_rtc, 0) != static_cast<ssize_t>(sizeof g_rtc)) log("short write to %s", path);
  ::close(fd);
}

// Power-on: the RTC lost its power too. Runs before main() and, by its priority, before the
// sketch's global constructors.
__attribute__((constructor(200))) void rtc_power_on() {
  char path[sizeof config().flash_path + 8];
  if (strcmp(config().reset_reason, "Power On") == 0 && rtc_path(path, sizeof path)) ::unlink(path);
}

bool rtc_range_ok(uint32_t offset, size_t size) {
  // Esp.cpp rtcUserMemoryRead/Write: `offset` counts 4-byte words, `size` bytes.
  return size != 0 && static_cast<uint64_t>(offset) * 4 + size <= kRtcUserSize;
}

}  // namespace

bool rtc_user_read(uint32_t offset, uint32_t* data, size_t size) {
  if (!rtc_range_ok(offset, size)) return false;
  rtc_load();
  memcpy(data, g_rtc + offset * 4, size);
  return true;
}

bool rtc_user_write(uint32_t offset, const uint32_t* data, size_t size) {
  if (!rtc_range_ok(offset, size)) return false;
  rtc_load();
  memcpy(g_rtc + offset * 4, data, size);
  rtc_store();
  return true;
}

void deep_sleep(uint64_t us) {
  wdt_park();
  const double scaled = static_cast<double>(us) * config().deep_sleep_scale;
  if (us == 0) {
    log("deep sleep until an external reset");
  } else {
    log("deep sleep for %llu us (%.0f us at ESP_HIL_DEEP_SLEEP_SCALE)", static_cast<unsigned long long>(us), scaled);
  }
  // Nothing runs: the console, the sockets and the sketch are silent (the peers of open
  // connections hear nothing until the wake-up's reset ends them). Only a harness that went
  // away is noticed, in 100 ms steps.
  const uint64_t until = monotonic_us() + static_cast<uint64_t>(scaled);
  for (;;) {
    exit_if_orphaned();
    const uint64_t now = monotonic_us();
    if (us != 0 && now >= until) break;
    const uint64_t step = us == 0 || until - now > 100000 ? 100000 : until - now;
    const timespec ts = {0, static_cast<long>(step * 1000)};
    nanosleep(&ts, nullptr);
  }
  reset_chip(kReasonDeepSleep, nullptr, 0);
}

}  // namespace esp_hil_sim
