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

#include <fcntl.h>
#include <ucontext.h>

#include <atomic>
#include <initializer_list>

#include "sim_internal.h"

namespace esp_hil_sim {

namespace {

std::atomic<uint64_t> g_fed_us{0};
std::atomic<bool> g_soft_on{true};
bool g_parked = false;  // deep sleep: the chip's CPU is off, no dog runs (under g_mutex)
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

// What survives the reset for getResetInfo(): the chip keeps rst_info in RTC memory; the
// twin keeps it in "<ESP_HIL_FLASH>.rst" (written just before the process ends).
struct RstInfo {
  uint32_t reason, exccause, epc1, epc2, epc3, excvaddr, depc;
};

void save_rst_info(const RstInfo& info) {
  const char* flash = config().flash_path;
  if (!*flash) return;
  char path[sizeof config().flash_path + 8];
  snprintf(path, sizeof path, "%s.rst", flash);
  const int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  ssize_t ignored = ::write(fd, &info, sizeof info);
  (void)ignored;
  ::close(fd);
}

#if !defined(__SANITIZE_ADDRESS__)  // a sanitizer build keeps its own report
char* put_hex(char* p, uint32_t v) {
  for (int shift = 28; shift >= 0; shift -= 4) *p++ = "0123456789abcdef"[(v >> shift) & 0xF];
  return p;
}

char* put_text(char* p, const char* s) {
  while (*s) *p++ = *s++;
  return p;
}

// The core's report of a CPU exception (core_esp8266_postmortem.cpp), from a signal handler:
// only write(2) and hand-made formatting. The Xtensa cause: 28 LoadProhibited / 29
// StoreProhibited for a bad access, 6 IntegerDivideByZero, 0 IllegalInstruction.
void on_crash(int sig, siginfo_t* si, void* ctx) {
  uint32_t cause = 0;
  if (sig == SIGSEGV || sig == SIGBUS) {
    const auto* uc = static_cast<const ucontext_t*>(ctx);
    const bool write_fault = (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0;  // x86 page-fault error code
    cause = write_fault ? 29 : 28;
  } else if (sig == SIGFPE) {
    cause = 6;
  }
  const uint32_t addr = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(si->si_addr));
  char buf[512];
  char* p = buf;
  p = put_text(p, "\nTo make this dump useful, DECODE IT - https://tinyurl.com/8266dcdr\n"
                  "--------------- CUT HERE FOR EXCEPTION DECODER ---------------\n\nException (");
  if (cause >= 10) *p++ = static_cast<char>('0' + cause / 10);
  *p++ = static_cast<char>('0' + cause % 10);
  p = put_text(p, "):\nepc1=0x00000000 epc2=0x00000000 epc3=0x00000000 excvaddr=0x");
  p = put_hex(p, sig == SIGSEGV || sig == SIGBUS ? addr : 0);
  p = put_text(p, " depc=0x00000000\n\n>>>stack>>>\n\nctx: cont\nsp: 3ffffe00 end: 3fffffd0 offset: 0150\n"
                  "<<<stack<<<\n\nTo make this dump useful, DECODE IT - https://tinyurl.com/8266dcdr\n"
                  "--------------- CUT HERE FOR EXCEPTION DECODER ---------------\n");
  save_rst_info({static_cast<uint32_t>(kReasonException), cause, 0, 0, 0, sig == SIGSEGV || sig == SIGBUS ? addr : 0, 0});
  ssize_t ignored = ::write(1, buf, static_cast<size_t>(p - buf));
  (void)ignored;
  _exit(kExitResetBase + kReasonException);
}
#endif

void* watchdog_thread(void*) {
  // Signals belong to the sketch's thread.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  pthread_mutex_lock(&g_mutex);
  for (;;) {
    if (g_parked) {
      pthread_cond_wait(&g_changed, &g_mutex);
      continue;
    }
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
    save_rst_info({static_cast<uint32_t>(kReasonSoftWdt), 4, 0, 0, 0, 0, 0});
    fire_soft_wdt();
  } else {
    // The hardware watchdog resets the chip without a word; the ROM then says "wdt reset".
    save_rst_info({static_cast<uint32_t>(kReasonHardWdt), 4, 0, 0, 0, 0, 0});
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

void crash_handlers_install() {
#if defined(__SANITIZE_ADDRESS__)
  // A sanitizer build keeps the sanitizer's own report: it says more than the core's would.
#else
  static uint8_t alt_stack[64 * 1024];
  stack_t st = {};
  st.ss_sp = alt_stack;
  st.ss_size = sizeof alt_stack;
  sigaltstack(&st, nullptr);  // a stack overflow must still get its report
  struct sigaction sa = {};
  sa.sa_sigaction = on_crash;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE}) sigaction(sig, &sa, nullptr);
#endif
}

bool rst_info_load(uint32_t reason, uint32_t out[7]) {
  const char* flash = config().flash_path;
  if (!*flash) return false;
  char path[sizeof config().flash_path + 8];
  snprintf(path, sizeof path, "%s.rst", flash);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  RstInfo info;
  const bool ok = ::read(fd, &info, sizeof info) == static_cast<ssize_t>(sizeof info) && info.reason == reason;
  ::close(fd);
  if (ok) memcpy(out, &info, sizeof info);
  return ok;
}

void wdt_feed() { g_fed_us.store(monotonic_us(), std::memory_order_relaxed); }

void wdt_soft_enable(bool on) {
  wdt_feed();
  pthread_mutex_lock(&g_mutex);
  g_soft_on.store(on, std::memory_order_relaxed);
  pthread_cond_signal(&g_changed);
  pthread_mutex_unlock(&g_mutex);
}

void wdt_park() {
  pthread_mutex_lock(&g_mutex);
  g_parked = true;
  pthread_cond_signal(&g_changed);
  pthread_mutex_unlock(&g_mutex);
}

// raise_exception()'s "User exception" line and postmortem_report()'s first cut_here(),
// which every user exception's report begins with.
namespace {
size_t user_exception_head(char* buf, size_t cap) {
  size_t len = static_cast<size_t>(snprintf(buf, cap, "\nUser exception (panic/abort/assert)"));
  write_cut_here(buf, cap, &len);
  return len;
}
}  // namespace

// abort() and a failed assert() (core_esp8266_postmortem.cpp abort(), __assert_func() ->
// __panic_func() -> raise_exception()): the report with `reason` ("Abort called", "Panic
// <file>:<line> <func>: Assertion '<expr>' failed."), the stack frame bounds of a user
// exception and cut_here() again, then the SDK's restart.
void user_exception(const char* reason) {
  char buf[1024];
  size_t len = user_exception_head(buf, sizeof buf);
  len += static_cast<size_t>(snprintf(buf + len, sizeof buf - len,
                                      "\n%.400s\n"
                                      "\n>>>stack>>>\n\nctx: cont\nsp: 3ffffe00 end: 3fffffd0 offset: 0010\n"
                                      "<<<stack<<<\n",
                                      reason));
  write_cut_here(buf, sizeof buf, &len);
  reset_chip(kReasonSoftRestart, buf, len);
}

// core_esp8266_postmortem.cpp raise_exception() -> postmortem_report(): "User exception",
// cut_here(), the C++ exception's name, the stack frame bounds (offset 16 for a user
// exception), the failed allocation umm recorded, cut_here() again and its caller, then
// __real_system_restart_local(). The twin has no Xtensa addresses: the caller is 0, the
// size is the sketch's.
void unhandled_exception(const char* what, size_t size) {
  char buf[1024];
  size_t len = user_exception_head(buf, sizeof buf);
  len += static_cast<size_t>(snprintf(buf + len, sizeof buf - len,
                                      "\nUnhandled C++ exception: %s\n"
                                      "\n>>>stack>>>\n\nctx: cont\nsp: 3ffffe00 end: 3fffffd0 offset: 0010\n"
                                      "<<<stack<<<\n"
                                      "\nlast failed alloc call: 00000000(%d)\n",
                                      what, static_cast<int>(size)));
  write_cut_here(buf, sizeof buf, &len);
  len += static_cast<size_t>(snprintf(buf + len, sizeof buf - len, "\nlast failed alloc caller: 0x00000000\n"));
  reset_chip(kReasonSoftRestart, buf, len);
}

void reset_chip(int reason, const char* report, size_t len) {
  if (report != nullptr && len > 0) serial_tx_write(reinterpret_cast<const uint8_t*>(report), len);
  log("reset: rst_info.reason %d; exiting with code %d", reason, kExitResetBase + reason);
  fflush(stdout);
  _exit(kExitResetBase + reason);
}

}  // namespace esp_hil_sim

#if !defined(__SANITIZE_ADDRESS__)
// The sketch's abort() and assert() end as on the core: the report, then a reboot (exit
// 16 + 4), where libc's would kill the process and halt the twin. A sanitizer build keeps
// libc's: the sanitizers end the process through abort(), and that must halt it.
extern "C" void abort() noexcept { esp_hil_sim::user_exception("Abort called"); }

extern "C" void __assert_fail(const char* expr, const char* file, unsigned int line,
                              const char* func) noexcept {
  char reason[400];
  snprintf(reason, sizeof reason, "Panic %s:%u %s: Assertion '%s' failed.", file, line, func, expr);
  esp_hil_sim::user_exception(reason);
}
#endif
