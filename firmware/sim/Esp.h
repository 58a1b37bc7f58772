// The ESP object: restart, heap, chip id, reset reason, hardware RNG.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "WString.h"

// The core's Esp.h: what the radio does after a deep sleep's wake-up (ignored by the twin).
enum RFMode { RF_DEFAULT = 0, RF_CAL = 1, RF_NO_CAL = 2, RF_DISABLED = 4 };
#define WakeMode RFMode
#define WAKE_RF_DEFAULT RF_DEFAULT
#define WAKE_RFCAL RF_CAL
#define WAKE_NO_RFCAL RF_NO_CAL
#define WAKE_RF_DISABLED RF_DISABLED

class EspClass {
 public:
  // Exits the process with code 3; the supervisor starts it again with
  // reset reason "Software/System restart".
  [[noreturn]] void restart();
  [[noreturn]] void reset() { restart(); }
  // The simulated heap (README: "Heap"): umm_malloc's 8-byte blocks over an arena of the
  // board's ceiling, best fit; what operator new holds is taken.
  uint32_t getFreeHeap();
  uint32_t getMaxFreeBlockSize();
  uint8_t getHeapFragmentation();  // umm_malloc's metric: 0 = one free run, toward 100 = crumbs
  void getHeapStats(uint32_t* free = nullptr, uint32_t* max = nullptr, uint8_t* frag = nullptr);
  void getHeapStats(uint32_t* free, uint16_t* max, uint8_t* frag = nullptr);
  uint32_t getChipId();
  String getResetReason();
  uint32_t random();
  void random(uint8_t* buf, size_t len);
  const char* getSdkVersion() { return "esp-hil-sim"; }
  String getCoreVersion() { return String("esp-hil-sim"); }
  String getFullVersion() { return String("SDK:") + getSdkVersion() + "/Core:" + getCoreVersion(); }
  uint32_t getFlashChipSize() { return 4u * 1024u * 1024u; }
  uint32_t getFlashChipRealSize() { return getFlashChipSize(); }
  uint8_t getCpuFreqMHz() { return 80; }
  uint32_t getCycleCount();  // 80 per microsecond since power on
  // As the core: after a watchdog or an exception the fatal-exception line, else the reason.
  String getResetInfo();
  // Deep sleep (README: "Deep sleep"): nothing runs for time_us (0 = until an external
  // reset), then the chip wakes through RST: reset reason "Deep-Sleep Wake". Never returns.
  static void deepSleep(uint64_t time_us, RFMode mode = RF_DEFAULT);
  static void deepSleepInstant(uint64_t time_us, RFMode mode = RF_DEFAULT);
  static uint64_t deepSleepMax();
  // The 512 bytes of RTC user memory: `offset` in 4-byte words, `size` in bytes. They
  // survive every reset but a power-on (then their content is undefined).
  static bool rtcUserMemoryRead(uint32_t offset, uint32_t* data, size_t size);
  static bool rtcUserMemoryWrite(uint32_t offset, uint32_t* data, size_t size);
  // The chip's watchdogs (README: "Watchdogs"): the soft WDT (3.2 s) and, with it
  // disabled, the hardware WDT (8.2 s). wdtEnable's timeout is ignored, as on the core.
  void wdtEnable(uint32_t timeout_ms = 0);
  void wdtDisable();
  void wdtFeed();
};

extern EspClass ESP;
