// The chip's two watchdogs and the resets that end a run (README: "Resets").
//
// A thread sleeps until the current feed deadline, then checks whether the sketch fed the
// dog meanwhile; only a deadline that passed unfed resets the "chip". The idle path pays
// one relaxed atomic store per feed, the thread one wake-up per period while fed.

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

#include "sim_internal.h"

namespace esp_hil_sim {

namespace {

std::atomic<uint64_t> g_fed_us{0};
std::atomic<bool> g_soft_on{true};
// wdtEnable/wdtDisable wake the thread: the limit changed (feeds never do).
pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t g_changed;

uint64_t limit_us() { return g_soft_on.load(std::memory_order_relaxed) ? kSoftWdtUs : kHardWdtUs; }

// The core's postmortem text (core_esp8266_postmortem.cpp): cut_here(), the reason block,
// the stack frame bounds and cut_here() again. The twin has no Xtensa stack: no words, PC 0.
void write_cut_here(char* buf, size_t cap, size_t* len) {
  *len += static_cast<size_t>(snprintf(buf + *len, cap - *len,
                                       "\nTo make this dump useful, DECODE IT - https://tinyurl.com/8266dcdr\n"
                                       "--------------- CUT HERE FOR EXCEPTION DECODER ---------------\n"));
}

void fire_soft_wdt() {
  char buf[1024];
  size_t len = 0;
  write_cut_here(buf, sizeof buf, &len);
  len += static_cast<size_t>(snprintf(buf + len, sizeof buf - len,
                                      "\nSoft WDT reset\n"
                                      "\nException (4):\nepc1=0x00000000 epc2=0x00000000 epc3=0x00000000 "
                                      "excvaddr=0x00000000 depc=0x00000000\n"
                                      "\n>>>stack>>>\n\nctx: cont\nsp: 3ffffe00 end: 3fffffd0 offset: 0160\n"
                                      "<<<stack<<<\n"));
  write_cut_here(buf, sizeof buf, &len);
  reset_chip(kReasonSoftWdt, buf, len);
}

void* watchdog_thread(void*) {
  // Signals belong to the sketch's thread.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  pthread_mutex_lock(&g_mutex);
  for (;;) {
    // Re-read after every wake-up: a feed only moves the deadline on, never wakes us.
    const uint64_t deadline = g_fed_us.load(std::memory_order_relaxed) + limit_us();
    const uint64_t now = monotonic_us();
    if (now >= deadline) break;
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const uint64_t at_ns = static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec) +
                           (deadline - now) * 1000u;
    ts.tv_sec = static_cast<time_t>(at_ns / 1000000000u);
    ts.tv_nsec = static_cast<long>(at_ns % 1000000000u);
    pthread_cond_timedwait(&g_changed, &g_mutex, &ts);
  }
  pthread_mutex_unlock(&g_mutex);
  if (g_soft_on.load(std::memory_order_relaxed)) {
    fire_soft_wdt();
  } else {
    // The hardware watchdog resets the chip without a word; the ROM then says "wdt reset".
    reset_chip(kReasonHardWdt, nullptr, 0);
  }
  return nullptr;
}

}  // namespace

void wdt_start() {
  wdt_feed();
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&g_changed, &attr);
  pthread_condattr_destroy(&attr);
  pthread_t t;
  if (pthread_create(&t, nullptr, watchdog_thread, nullptr) != 0) {
    log("cannot start the watchdog thread: %s", strerror(errno));
    _exit(kExitConfig);
  }
  pthread_detach(t);
}

void wdt_feed() { g_fed_us.store(monotonic_us(), std::memory_order_relaxed); }

void wdt_soft_enable(bool on) {
  wdt_feed();
  pthread_mutex_lock(&g_mutex);
  g_soft_on.store(on, std::memory_order_relaxed);
  pthread_cond_signal(&g_changed);
  pthread_mutex_unlock(&g_mutex);
}

void reset_chip(int reason, const char* report, size_t len) {
  if (report != nullptr && len > 0) serial_tx_write(reinterpret_cast<const uint8_t*>(report), len);
  log("reset: rst_info.reason %d; exiting with code %d", reason, kExitResetBase + reason);
  fflush(stdout);
  _exit(kExitResetBase + reason);
}

}  // namespace esp_hil_sim
