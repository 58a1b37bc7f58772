// The ESP object: restart, heap, chip id, reset reason, hardware RNG.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "WString.h"

class EspClass {
 public:
  // Exits the process with code 3; the supervisor starts it again with
  // reset reason "Software/System restart".
  [[noreturn]] void restart();
  [[noreturn]] void reset() { restart(); }
  // Simulated heap: a fixed total minus the bytes live through operator new.
  uint32_t getFreeHeap();
  uint32_t getMaxFreeBlockSize() { return getFreeHeap(); }
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
  uint8_t getHeapFragmentation() { return 0; }  // the simulated heap does not fragment
  // As the core: after a watchdog or an exception the fatal-exception line, else the reason.
  String getResetInfo();
  // The chip's watchdogs (README: "Watchdogs"): the soft WDT (3.2 s) and, with it
  // disabled, the hardware WDT (8.2 s). wdtEnable's timeout is ignored, as on the core.
  void wdtEnable(uint32_t timeout_ms = 0);
  void wdtDisable();
  void wdtFeed();
};

extern EspClass ESP;
