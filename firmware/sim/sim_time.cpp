// The chip's wall clock as a sketch sees it. As on the core, time() and gettimeofday()
// count from 1970-01-01 00:00:00 at boot until something sets them: SNTP, started by
// configTime(), or the sketch's own settimeofday(). SNTP here takes the PC's clock (the
// servers named are not contacted) once the station is connected and ESP_HIL_SNTP_MS
// have passed ("never": no server answers). The settimeofday_cb callback then runs from
// the system context, as the core schedules it. The sketch's calls reach this file
// through -Wl,--wrap=time,gettimeofday,settimeofday (harness/sim/build.py), so a sketch
// never sets the PC's clock.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

#include "Arduino.h"
#include "coredecls.h"
#include "sim_internal.h"

extern "C" {
time_t __real_time(time_t* out);
int __real_gettimeofday(struct timeval* tv, void* tz);
time_t __wrap_time(time_t* out);
int __wrap_gettimeofday(struct timeval* tv, void* tz);
int __wrap_settimeofday(const struct timeval* tv, const struct timezone* tz);
}

namespace {

bool g_sntp_started = false;
uint64_t g_sntp_since_us = 0;
bool g_set = false;  // the clock was set: the PC's time plus g_shift_us
int64_t g_shift_us = 0;
BoolCB g_on_set;
bool g_on_set_due = false;
bool g_on_set_from_sntp = false;

int64_t pc_us() {
  struct timeval tv;
  __real_gettimeofday(&tv, nullptr);
  return static_cast<int64_t>(tv.tv_sec) * 1000000 + tv.tv_usec;
}

// Microseconds since the epoch as the chip's clock reads them now.
int64_t now_us() {
  if (g_set) return pc_us() + g_shift_us;
  return static_cast<int64_t>(esp_hil_sim::monotonic_us());
}

void set_clock(int64_t us, bool from_sntp) {
  g_shift_us = us - pc_us();
  g_set = true;
  g_on_set_due = true;
  g_on_set_from_sntp = from_sntp;
}

void start_sntp() {
  g_sntp_started = true;
  g_sntp_since_us = esp_hil_sim::monotonic_us();
}

}  // namespace

namespace esp_hil_sim {

void sntp_service() {
  const uint32_t wait_ms = config().sntp_ms;
  if (g_sntp_started && wait_ms != kSntpNever && wifi_connected() && link_up() &&
      monotonic_us() - g_sntp_since_us >= static_cast<uint64_t>(wait_ms) * 1000u) {
    g_sntp_started = false;  // one answer; a later configTime() asks again
    set_clock(pc_us(), true);
  }
  if (g_on_set_due) {
    g_on_set_due = false;
    if (g_on_set) g_on_set(g_on_set_from_sntp);
  }
}

}  // namespace esp_hil_sim

time_t __wrap_time(time_t* out) {
  const time_t t = static_cast<time_t>(now_us() / 1000000);
  if (out) *out = t;
  return t;
}

int __wrap_gettimeofday(struct timeval* tv, void*) {
  if (!tv) return 0;
  const int64_t us = now_us();
  tv->tv_sec = static_cast<time_t>(us / 1000000);
  tv->tv_usec = static_cast<suseconds_t>(us % 1000000);
  return 0;
}

int __wrap_settimeofday(const struct timeval* tv, const struct timezone* tz) {
  if (tz || !tv) return EINVAL;  // as the core (tz is obsolete)
  set_clock(static_cast<int64_t>(tv->tv_sec) * 1000000 + tv->tv_usec, false);
  return 0;
}

void settimeofday_cb(const BoolCB& cb) { g_on_set = cb; }
void settimeofday_cb(BoolCB&& cb) { g_on_set = std::move(cb); }
void settimeofday_cb(const TrivialCB& cb) {
  g_on_set = [cb](bool) { cb(); };
}

void setTZ(const char* tz) {
  if (tz && *tz) {
    setenv("TZ", tz, 1);
  } else {
    unsetenv("TZ");
  }
  tzset();
}

void configTime(const char* tz, const char*, const char*, const char*) {
  setTZ(tz);
  start_sntp();
}

void configTime(int timezone_sec, int daylightOffset_sec, const char*, const char*,
                const char*) {
  // A POSIX TZ string names the offset west of UTC: UTC+1 is "...-1".
  const int west = -(timezone_sec + daylightOffset_sec);
  const int a = west < 0 ? -west : west;
  char tz[32];
  snprintf(tz, sizeof tz, "ESP%c%d:%02d:%02d", west < 0 ? '-' : '+', a / 3600, a / 60 % 60,
           a % 60);
  setTZ(tz);
  start_sntp();
}

void configTime(int timezone_sec, int daylightOffset_sec, String server1, String server2,
                String server3) {
  configTime(timezone_sec, daylightOffset_sec, server1.c_str(), server2.c_str(),
             server3.c_str());
}

void configTime(const char* tz, String server1, String server2, String server3) {
  configTime(tz, server1.c_str(), server2.c_str(), server3.c_str());
}

bool getLocalTime(struct tm* info, uint32_t ms) {
  const uint32_t start = millis();
  while (millis() - start <= ms) {
    time_t now;
    time(&now);
    localtime_r(&now, info);
    if (info->tm_year > 2016 - 1900) return true;
    delay(10);
  }
  return false;
}
