// The shim's core: main(), configuration from the environment, the clock, the
// console buffers and the idle poll that runs between two calls of loop().
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "Arduino.h"
#include "sim_internal.h"

namespace esp_hil_sim {

Conn g_conns[kMaxConns];
Listener g_listeners[kMaxListeners];
uint32_t g_poll_gen = 1;

void next_poll_gen() {
  if (++g_poll_gen == 0) g_poll_gen = 1;
}

namespace {

bool g_input_taken = false;  // since the last idle pass (note_input_taken)

bool g_config_ready = false;
Config g_config;

uint64_t raw_monotonic_us() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

// Set at the first clock read (possibly from a sketch's global constructor):
// millis() counts from "power on".
uint64_t g_start_us = 0;

[[noreturn]] void config_error(const char* what, const char* value) {
  log("bad %s=%s", what, value ? value : "(unset)");
  _exit(kExitConfig);
}

bool parse_mac(const char* text, uint8_t out[6]) {
  unsigned b[6];
  char tail;
  int n = sscanf(text, "%2x%*1[:-]%2x%*1[:-]%2x%*1[:-]%2x%*1[:-]%2x%*1[:-]%2x%c", &b[0], &b[1], &b[2],
                 &b[3], &b[4], &b[5], &tail);
  if (n != 6) return false;
  for (int i = 0; i < 6; i++) out[i] = static_cast<uint8_t>(b[i]);
  return true;
}

// A delay in ms from the environment (0..60000), or `fallback` when unset.
uint32_t env_ms(const char* name, uint32_t fallback) {
  const char* text = getenv(name);
  if (!text || !*text) return fallback;
  char* end = nullptr;
  unsigned long v = strtoul(text, &end, 10);
  if (*end != '\0' || v > 60000) config_error(name, text);
  return static_cast<uint32_t>(v);
}

void load_config() {
  Config& c = g_config;
  memset(&c, 0, sizeof c);

  const char* ip = getenv("ESP_HIL_IP");
  if (!ip || !*ip) {
    ip = "127.0.0.1";
    log("ESP_HIL_IP is not set: using %s", ip);
  }
  in_addr addr;
  if (inet_pton(AF_INET, ip, &addr) != 1) config_error("ESP_HIL_IP", ip);
  c.ip = addr.s_addr;
  snprintf(c.ip_text, sizeof c.ip_text, "%s", ip);

  const char* chip = getenv("ESP_HIL_CHIP_ID");
  const char* mac = getenv("ESP_HIL_MAC");
  if (mac && *mac) {
    if (!parse_mac(mac, c.mac)) config_error("ESP_HIL_MAC", mac);
  } else {
    // Espressif's OUI; the chip id is the MAC's last three bytes on a real chip.
    const uint8_t fallback[6] = {0x5C, 0xCF, 0x7F, 0xC0, 0xFF, 0xEE};
    memcpy(c.mac, fallback, 6);
  }
  if (chip && *chip) {
    char* end = nullptr;
    unsigned long v = strtoul(chip, &end, 0);
    if (*end != '\0' || v > 0xFFFFFFFFul) config_error("ESP_HIL_CHIP_ID", chip);
    c.chip_id = static_cast<uint32_t>(v);
    if (!mac || !*mac) {
      c.mac[3] = static_cast<uint8_t>(c.chip_id >> 16);
      c.mac[4] = static_cast<uint8_t>(c.chip_id >> 8);
      c.mac[5] = static_cast<uint8_t>(c.chip_id);
    }
  } else {
    c.chip_id = (static_cast<uint32_t>(c.mac[3]) << 16) | (static_cast<uint32_t>(c.mac[4]) << 8) | c.mac[5];
  }

  const char* flash = getenv("ESP_HIL_FLASH");
  if (flash && strlen(flash) >= sizeof c.flash_path) config_error("ESP_HIL_FLASH", flash);
  snprintf(c.flash_path, sizeof c.flash_path, "%s", flash ? flash : "");

  const char* reason = getenv("ESP_HIL_RESET_REASON");
  snprintf(c.reset_reason, sizeof c.reset_reason, "%s", reason && *reason ? reason : "Power On");

  const char* rssi = getenv("ESP_HIL_RSSI");
  c.rssi = -55;
  if (rssi && *rssi) {
    char* end = nullptr;
    long v = strtol(rssi, &end, 10);
    if (*end != '\0' || v < -120 || v > 0) config_error("ESP_HIL_RSSI", rssi);
    c.rssi = static_cast<int32_t>(v);
  }

  const char* assoc = getenv("ESP_HIL_ASSOC_MS");
  c.assoc_ms = 30;
  if (assoc && *assoc) {
    char* end = nullptr;
    unsigned long v = strtoul(assoc, &end, 10);
    if (*end != '\0' || v > 60000) config_error("ESP_HIL_ASSOC_MS", assoc);
    c.assoc_ms = static_cast<uint32_t>(v);
  }
  c.dhcp_ms = env_ms("ESP_HIL_DHCP_MS", 0);
  c.beacon_timeout_ms = env_ms("ESP_HIL_BEACON_TIMEOUT_MS", 6000);
  c.reconnect_ms = env_ms("ESP_HIL_RECONNECT_MS", 1000);
  const char* sntp = getenv("ESP_HIL_SNTP_MS");
  c.sntp_ms = sntp && strcmp(sntp, "never") == 0 ? kSntpNever : env_ms("ESP_HIL_SNTP_MS", 100);
  // The core's lwIP variants: "v2 Lower Memory" (TCP_MSS 536, the default) or "Higher
  // Bandwidth" (1460). TCP_SND_BUF is 2 x TCP_MSS in both (lwip2 lwipopts.h).
  const char* mss = getenv("ESP_HIL_TCP_MSS");
  c.tcp_mss = 536;
  if (mss && *mss) {
    if (strcmp(mss, "536") == 0) {
      c.tcp_mss = 536;
    } else if (strcmp(mss, "1460") == 0) {
      c.tcp_mss = 1460;
    } else {
      config_error("ESP_HIL_TCP_MSS", mss);
    }
  }
  // A deep sleep of minutes or hours would stall a test: it may sleep a fraction of the time.
  const char* scale = getenv("ESP_HIL_DEEP_SLEEP_SCALE");
  c.deep_sleep_scale = 1.0;
  if (scale && *scale) {
    char* end = nullptr;
    const double v = strtod(scale, &end);
    if (*end != '\0' || !(v >= 0.0 && v <= 1.0)) config_error("ESP_HIL_DEEP_SLEEP_SCALE", scale);
    c.deep_sleep_scale = v;
  }
}

// --- console ---
uint8_t g_rx[kSerialRxSize];
size_t g_rx_head = 0;  // index of the oldest byte
size_t g_rx_count = 0;
bool g_stdin_eof = false;  // stop polling fd 0 after EOF, or the idle loop would spin
bool g_stdout_closed = false;

bool stdin_wanted() { return !g_stdin_eof && g_rx_count < kSerialRxSize; }

// Reads what fd 0 has (poll said it is readable, so read() does not block).
void stdin_read_ready() {
  while (g_rx_count < kSerialRxSize) {
    size_t tail = (g_rx_head + g_rx_count) % kSerialRxSize;
    size_t room = g_rx_head + g_rx_count < kSerialRxSize ? kSerialRxSize - tail : g_rx_head - tail;
    ssize_t n = ::read(0, g_rx + tail, room);
    if (n > 0) {
      g_rx_count += static_cast<size_t>(n);
      // Only go on if more may be waiting; a second read() could block.
      if (static_cast<size_t>(n) < room) return;
      pollfd p = {0, POLLIN, 0};
      if (poll(&p, 1, 0) <= 0 || !(p.revents & (POLLIN | POLLHUP))) return;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    g_stdin_eof = true;  // EOF, or an error that will not go away
    return;
  }
}

void note_stdin(short revents) {
  if (revents & POLLNVAL) {
    g_stdin_eof = true;
  } else if (revents & (POLLIN | POLLHUP | POLLERR)) {
    stdin_read_ready();
  }
}

}  // namespace

const Config& config() {
  if (!g_config_ready) {
    g_config_ready = true;
    load_config();
  }
  return g_config;
}

void log(const char* fmt, ...) {
  static const char kPrefix[] = "[shim] ";
  constexpr size_t kPrefixLen = sizeof kPrefix - 1;
  char buf[512];
  memcpy(buf, kPrefix, kPrefixLen);
  va_list args;
  va_start(args, fmt);
  // Leaves room for the newline; a longer message is cut.
  int len = vsnprintf(buf + kPrefixLen, sizeof buf - kPrefixLen - 1, fmt, args);
  va_end(args);
  size_t body = len < 0 ? 0 : static_cast<size_t>(len);
  if (body > sizeof buf - kPrefixLen - 2) body = sizeof buf - kPrefixLen - 2;
  size_t total = kPrefixLen + body;
  buf[total++] = '\n';
  // One write(), so a line from the shim is never interleaved with another.
  ssize_t ignored = ::write(2, buf, total);
  (void)ignored;
}

uint64_t monotonic_us() {
  uint64_t now = raw_monotonic_us();
  if (g_start_us == 0) g_start_us = now;
  return now - g_start_us;
}

void serial_pump() {
  if (!stdin_wanted()) return;
  pollfd p = {0, POLLIN, 0};
  if (poll(&p, 1, 0) > 0) note_stdin(p.revents);
}

size_t serial_rx_available() { return g_rx_count; }

int serial_rx_peek() { return g_rx_count ? g_rx[g_rx_head] : -1; }

void note_input_taken() { g_input_taken = true; }

int serial_rx_read() {
  if (!g_rx_count) return -1;
  note_input_taken();
  uint8_t c = g_rx[g_rx_head];
  g_rx_head = (g_rx_head + 1) % kSerialRxSize;
  g_rx_count--;
  return c;
}

size_t serial_tx_write(const uint8_t* data, size_t len) {
  if (g_stdout_closed) return len;  // like a UART with nothing attached: bytes go nowhere
  size_t done = 0;
  int stalled_ms = 0;
  while (done < len) {
    ssize_t n = ::write(1, data + done, len - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && stalled_ms < 10000) {
      // Someone made fd 1 non-blocking: wait like a full UART FIFO, but not forever.
      pollfd p = {1, POLLOUT, 0};
      poll(&p, 1, 100);
      stalled_ms += 100;
      continue;
    }
    log("stdout is gone (%s): console output is dropped from now on", strerror(errno));
    g_stdout_closed = true;
    return len;
  }
  return len;
}

// The harness that started us is gone (killed without stopping us): a twin nobody can reach
// must not keep holding its address and ports, so it powers off.
void exit_if_orphaned() {
  static pid_t parent = getppid();
  static uint64_t next_check_us = 0;
  uint64_t now = monotonic_us();
  if (now < next_check_us) return;
  next_check_us = now + 100000;
  if (getppid() != parent) {
    log("the harness that started this twin is gone; powering off");
    _exit(kExitOrphaned);
  }
}

namespace {
bool g_in_callbacks = false;

// How long until a Ticker is due (-1 = none). Inside a callback (one that calls delay())
// a due Ticker cannot run, so it must not cut the wait short either, or delay() would spin.
int64_t callbacks_wait_us() { return g_in_callbacks ? -1 : timers_wait_us(); }
}  // namespace

void idle(int timeout_ms) {
  wdt_feed();  // loop() returned: on the core the SDK runs and feeds both dogs
  if (g_input_taken) timeout_ms = 0;
  g_input_taken = false;
  next_poll_gen();
  exit_if_orphaned();
  wifi_tick();
  // What each pollfd stands for: -1 = stdin, 0.. = listener, 1000.. = connection.
  constexpr int kConnBase = 1000;
  pollfd fds[1 + kMaxListeners + kMaxConns];
  int owner[1 + kMaxListeners + kMaxConns];
  nfds_t n = 0;
  if (stdin_wanted()) {
    fds[n] = {0, POLLIN, 0};
    owner[n++] = -1;
  }
  // Without a link the sockets are not watched: nothing arrives, nothing leaves.
  const bool link = link_up();
  for (size_t i = 0; link && i < kMaxListeners; i++) {
    if (g_listeners[i].used && g_listeners[i].fd >= 0) {
      fds[n] = {g_listeners[i].fd, POLLIN, 0};
      owner[n++] = static_cast<int>(i);
    }
  }
  for (size_t i = 0; link && i < kMaxConns; i++) {
    const Conn& c = g_conns[i];
    if (c.refs <= 0 || c.fd < 0) continue;
    short events =
        static_cast<short>((c.eof_seen ? 0 : POLLIN | POLLRDHUP) | (c.want_out ? POLLOUT : 0));
    if (!events) continue;
    fds[n] = {c.fd, events, 0};
    owner[n++] = kConnBase + static_cast<int>(i);
  }

  // A connection whose send buffer waits for the peer's ACK wakes the poll with its ACK
  // notice (conn_revents); one whose kernel gives none is looked at again in 100 us.
  bool ack_tick = false;
  for (size_t i = 0; link && i < kMaxConns; i++) {
    Conn& c = g_conns[i];
    if (!c.awaiting_ack || c.ack_events || c.refs <= 0 || c.fd < 0) continue;
    int outq = 0;
    if (ioctl(c.fd, SIOCOUTQ, &outq) == 0 && outq > 0) {
      ack_tick = true;
    } else {
      c.awaiting_ack = false;
    }
  }

  // A Ticker due sooner shortens the wait (rounded up: waking early would spin).
  const int64_t timer_us = callbacks_wait_us();
  if (timer_us >= 0 && timer_us < static_cast<int64_t>(timeout_ms) * 1000) {
    timeout_ms = static_cast<int>((timer_us + 999) / 1000);
  }
  int ready;
  if (ack_tick && timeout_ms != 0) {
    const timespec tick = {0, 100 * 1000};
    ready = ppoll(fds, n, &tick, nullptr);
  } else {
    ready = poll(fds, n, timeout_ms);
  }
  run_system_callbacks();
  if (ready < 0) return;
  const uint32_t gen = g_poll_gen;
  for (nfds_t i = 0; i < n; i++) {
    short rev = fds[i].revents;
    if (owner[i] == -1) {
      if (rev) note_stdin(rev);
    } else if (owner[i] >= kConnBase) {
      const int slot = owner[i] - kConnBase;
      Conn& c = g_conns[slot];
      rev = conn_revents(fds[i].fd, fds[i].events, rev);
      // The kernel has room again: push the send buffer on, as lwIP would on its own.
      if (c.want_out && (rev & (POLLOUT | POLLERR | POLLHUP))) conn_flush(slot);
      if (!(fds[i].events & POLLIN)) continue;
      int pending = 0;  // not readable: nothing unread at the time of the poll
      if (rev & (POLLIN | POLLERR | POLLHUP | POLLRDHUP)) {
        if (ioctl(c.fd, FIONREAD, &pending) != 0) continue;
        if (pending == 0) {
          // Readable with nothing to read = the peer closed (or reset). That state is
          // final, so stop watching it instead of waking up for it again and again.
          c.eof_seen = true;
          continue;
        }
      }
      c.avail = pending;
      c.avail_gen = gen;
      if (!(rev & (POLLRDHUP | POLLHUP | POLLERR))) c.open_gen = gen;
    } else if (!(rev & POLLIN)) {
      g_listeners[owner[i]].quiet_gen = gen;
    }
  }
}

void run_system_callbacks() {
  if (g_in_callbacks) return;
  g_in_callbacks = true;
  wifi_service();
  pins_service();
  timers_service();
  sntp_service();
  g_in_callbacks = false;
}

void sleep_ms(uint32_t ms) {
  wdt_feed();
  next_poll_gen();  // the system runs during delay(): cached socket state is stale
  const uint64_t deadline = monotonic_us() + static_cast<uint64_t>(ms) * 1000u;
  for (;;) {
    wifi_tick();
    uint64_t now = monotonic_us();
    if (now >= deadline) return;
    uint64_t left_us = deadline - now;
    // Wake at least every idle period so the simulated WiFi association advances,
    // and when the next Ticker is due.
    if (left_us > static_cast<uint64_t>(kIdlePollMs) * 1000u) left_us = kIdlePollMs * 1000u;
    const int64_t timer_us = callbacks_wait_us();
    if (timer_us >= 0 && static_cast<uint64_t>(timer_us) < left_us) left_us = static_cast<uint64_t>(timer_us);
    timespec ts = {0, static_cast<long>(left_us * 1000u)};
    // The console, and connections whose send buffer waits for the kernel. Sockets
    // with unread data are left out: the sketch cannot read them during delay().
    pollfd fds[1 + kMaxConns];
    int slot_of[1 + kMaxConns];
    nfds_t n = 0;
    if (stdin_wanted()) {
      fds[n] = {0, POLLIN, 0};
      slot_of[n++] = -1;
    }
    for (size_t i = 0; link_up() && i < kMaxConns; i++) {
      if (g_conns[i].refs > 0 && g_conns[i].fd >= 0 && g_conns[i].want_out) {
        fds[n] = {g_conns[i].fd, POLLOUT, 0};
        slot_of[n++] = static_cast<int>(i);
      }
    }
    const int ready = ppoll(n ? fds : nullptr, n, &ts, nullptr);
    wdt_feed();
    run_system_callbacks();
    if (ready <= 0) continue;
    for (nfds_t i = 0; i < n; i++) {
      if (!fds[i].revents) continue;
      if (slot_of[i] < 0) {
        note_stdin(fds[i].revents);
      } else if (conn_revents(fds[i].fd, fds[i].events, fds[i].revents)) {
        conn_flush(slot_of[i]);
      }
    }
  }
}

}  // namespace esp_hil_sim

unsigned long millis() { return static_cast<uint32_t>(esp_hil_sim::monotonic_us() / 1000u); }

unsigned long micros() { return static_cast<uint32_t>(esp_hil_sim::monotonic_us()); }

void delay(unsigned long ms) { esp_hil_sim::sleep_ms(static_cast<uint32_t>(ms)); }

void delayMicroseconds(unsigned int us) {
  timespec ts = {static_cast<time_t>(us / 1000000u), static_cast<long>(us % 1000000u) * 1000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

void yield() {
  esp_hil_sim::wdt_feed();
  esp_hil_sim::next_poll_gen();
  esp_hil_sim::wifi_tick();
  esp_hil_sim::serial_pump();
  esp_hil_sim::conns_flush_all();
  esp_hil_sim::run_system_callbacks();
}

void optimistic_yield(uint32_t) { yield(); }

int main() {
  // A peer that closes while we write must not kill the "chip"; sends use
  // MSG_NOSIGNAL as well, this also covers a closed stdout.
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, nullptr, _IONBF, 0);
  esp_hil_sim::config();
  esp_hil_sim::monotonic_us();  // power on: millis() starts here
  esp_hil_sim::pins_init();
  esp_hil_sim::crash_handlers_install();
  esp_hil_sim::wdt_start();
  setup();
  for (;;) {
    loop();
    esp_hil_sim::idle(esp_hil_sim::kIdlePollMs);
  }
}
