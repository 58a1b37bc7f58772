#include "Esp.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "esp_hil_sim.h"
#include "sim_internal.h"

EspClass ESP;

void EspClass::restart() {
  esp_hil_sim::log("ESP.restart(): exiting with code %d", esp_hil_sim::kExitRestart);
  // Console bytes go out with write(2) directly; stdio only if the sketch used it.
  fflush(stdout);
  _exit(esp_hil_sim::kExitRestart);
}

uint32_t EspClass::getFreeHeap() {
  uint32_t total = esp_hil_sim_heap_total();
  // The sketch's operator new and lwIP's PCBs share the arena, as they share umm's heap.
  uint32_t live = esp_hil_sim_alloc_live_bytes() + esp_hil_sim::heap_system_bytes();
  return live >= total ? 0 : total - live;
}

void EspClass::deepSleep(uint64_t time_us, RFMode) { esp_hil_sim::deep_sleep(time_us); }

// The SDK's system_deep_sleep_instant skips waiting for the radio to shut down; the twin
// has nothing to wait for either way.
void EspClass::deepSleepInstant(uint64_t time_us, RFMode) { esp_hil_sim::deep_sleep(time_us); }

uint64_t EspClass::deepSleepMax() {
  // Esp.cpp: cali * (2^31 - 1) / 2^12, cali being system_rtc_clock_cali_proc(), the RTC
  // clock's period in microseconds as Q12. It drifts per chip and with temperature; the
  // twin uses 6.5 us (a ~154 kHz RTC clock), about 3.8 hours.
  constexpr uint64_t kCali = 26624;  // 6.5 * 4096
  return kCali * (0x80000000ull - 1) / 0x1000;
}

bool EspClass::rtcUserMemoryRead(uint32_t offset, uint32_t* data, size_t size) {
  return esp_hil_sim::rtc_user_read(offset, data, size);
}

bool EspClass::rtcUserMemoryWrite(uint32_t offset, uint32_t* data, size_t size) {
  return esp_hil_sim::rtc_user_write(offset, data, size);
}

uint32_t EspClass::getMaxFreeBlockSize() { return esp_hil_sim::heap_max_block(); }

uint8_t EspClass::getHeapFragmentation() { return esp_hil_sim::heap_fragmentation(); }

void EspClass::getHeapStats(uint32_t* free, uint32_t* max, uint8_t* frag) {
  if (free) *free = getFreeHeap();
  if (max) *max = getMaxFreeBlockSize();
  if (frag) *frag = getHeapFragmentation();
}

void EspClass::getHeapStats(uint32_t* free, uint16_t* max, uint8_t* frag) {
  uint32_t max32 = 0;
  getHeapStats(free, &max32, frag);
  if (max) *max = max32 > UINT16_MAX ? UINT16_MAX : static_cast<uint16_t>(max32);  // Esp-frag.cpp saturates
}

void EspClass::wdtEnable(uint32_t) { esp_hil_sim::wdt_soft_enable(true); }

void EspClass::wdtDisable() { esp_hil_sim::wdt_soft_enable(false); }

void EspClass::wdtFeed() { esp_hil_sim::wdt_feed(); }

uint32_t EspClass::getChipId() { return esp_hil_sim::config().chip_id; }

String EspClass::getResetReason() { return String(esp_hil_sim::config().reset_reason); }

String EspClass::getResetInfo() {
  // The core's Esp.cpp: REASON_WDT_RST (1) .. REASON_SOFT_WDT_RST (3) get the full line.
  static const char* const kFatal[] = {"Hardware Watchdog", "Exception", "Software Watchdog"};
  const char* reason = esp_hil_sim::config().reset_reason;
  for (uint32_t r = 1; r <= 3; r++) {
    if (strcmp(reason, kFatal[r - 1]) != 0) continue;
    uint32_t info[7] = {r, 0, 0, 0, 0, 0, 0};
    esp_hil_sim::rst_info_load(r, info);
    char buf[200];
    snprintf(buf, sizeof buf,
             "Fatal exception:%u flag:%u (%s) epc1:0x%08x epc2:0x%08x epc3:0x%08x excvaddr:0x%08x depc:0x%08x",
             static_cast<unsigned>(info[1]), static_cast<unsigned>(r), reason, static_cast<unsigned>(info[2]),
             static_cast<unsigned>(info[3]), static_cast<unsigned>(info[4]), static_cast<unsigned>(info[5]),
             static_cast<unsigned>(info[6]));
    return String(buf);
  }
  return getResetReason();
}

uint32_t EspClass::random() {
  uint32_t v = 0;
  random(reinterpret_cast<uint8_t*>(&v), sizeof v);
  return v;
}

void EspClass::random(uint8_t* buf, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = getrandom(buf + done, len - done, 0);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  if (done == len) return;
  // getrandom() unavailable (old kernel, seccomp): fall back to the device file.
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    while (done < len) {
      ssize_t n = read(fd, buf + done, len - done);
      if (n <= 0 && !(n < 0 && errno == EINTR)) break;
      if (n > 0) done += static_cast<size_t>(n);
    }
    close(fd);
  }
  if (done < len) {
    esp_hil_sim::log("no randomness available");
    _exit(esp_hil_sim::kExitConfig);
  }
}

uint32_t EspClass::getCycleCount() { return static_cast<uint32_t>(esp_hil_sim::monotonic_us() * 80u); }
