// Internal plumbing of the POSIX shim: configuration from the environment,
// the clock, the console RX buffer and the socket tables that the idle poll
// watches. Not part of the Arduino API; sketches must not include this.
#pragma once

#include <stddef.h>
#include <stdint.h>

class Ticker;

namespace esp_hil_sim {

// Exit codes of the firmware process (documented in README.md).
constexpr int kExitRestart = 3;  // ESP.restart()
constexpr int kExitConfig = 2;   // unusable environment (bad flash path, bad address)
constexpr int kExitOrphaned = 4; // the harness that started the twin died
// The chip reset itself: the exit code is kExitResetBase + the SDK's rst_reason
// (user_interface.h: REASON_WDT_RST 1, REASON_EXCEPTION_RST 2, REASON_SOFT_WDT_RST 3,
// REASON_DEEP_SLEEP_AWAKE 5). ESP.restart() keeps its own code, kExitRestart.
constexpr int kExitResetBase = 16;
constexpr int kReasonHardWdt = 1;
constexpr int kReasonException = 2;
constexpr int kReasonSoftWdt = 3;
constexpr int kReasonSoftRestart = 4;  // REASON_SOFT_RESTART: what abort()/panic leave
constexpr int kReasonDeepSleep = 5;

// Watchdog periods of the chip: the SDK's soft WDT bites after two unfed 1.6 s ticks, the
// hardware one after about 8.2 s (docs/twin.md cites the figures).
constexpr uint64_t kSoftWdtUs = 3200000;
constexpr uint64_t kHardWdtUs = 8200000;

// Longest idle wait after loop(): keeps millis()-based timers in the sketch running.
constexpr int kIdlePollMs = 5;

// lwIP's control blocks as the core's lwip2 (2.1.3, lwipopts.h; TCP_MSS 536 or 1460,
// LWIP_FEATURES 1, no IPv6) lays them out on the chip: sizeof(struct tcp_pcb) and
// sizeof(struct tcp_pcb_listen), measured with xtensa-lx106-elf-gcc (docs/twin.md).
// With MEMP_MEM_MALLOC each is a malloc from the sketch's heap.
constexpr size_t kTcpPcbSize = 184;
constexpr size_t kTcpPcbListenSize = 36;

constexpr size_t kMaxListeners = 16;
constexpr size_t kMaxConns = 32;
constexpr size_t kSerialRxSize = 256;  // the real core's default RX buffer
// Per-connection send buffer in front of the kernel socket. It makes
// availableForWrite() exact and bounded, like lwIP's: what is in it plus what the kernel
// holds unacknowledged (SIOCOUTQ) never exceeds TCP_SND_BUF = 2 x TCP_MSS (2920 at most).
constexpr size_t kTxBuffer = 2 * 1460;
// stop() waits this long at most for buffered bytes to reach the kernel (the core's
// WiFiClient::stop() flushes with a 300 ms bound as well).
constexpr int kStopFlushMs = 300;

constexpr size_t kFlashSize = 4u * 1024u * 1024u;
constexpr uint32_t kEepromOffset = 0x3FB000;
constexpr size_t kEepromSector = 4096;
// The SDK keeps the station config (WiFi.persistent) in its system parameter sectors at
// the end of flash; the twin keeps its own record in the first of them.
constexpr uint32_t kStaConfigOffset = 0x3FD000;

// The flash file (ESP_HIL_FLASH), created erased if missing; -1 (logged) on failure.
int flash_open(int flags);
// Erases the 4 KiB sector at `offset` and writes `len` bytes at its start (pwrite + fsync);
// len 0 (data may be null) only erases. sim_flash.cpp, with the SDK calls of spi_flash.h.
bool flash_write_sector(uint32_t offset, const uint8_t* data, size_t len);
// A file the harness shares with the firmware beside the flash file ("<flash><suffix>",
// created and grown to `size` bytes), mapped MAP_SHARED; null without a flash file or on
// failure, logged with what is lost (`loses`).
void* world_file(const char* suffix, size_t size, bool writable, const char* loses);

struct Config {
  uint32_t ip;  // ESP_HIL_IP, network byte order
  char ip_text[16];
  uint8_t mac[6];  // ESP_HIL_MAC
  uint32_t chip_id;  // ESP_HIL_CHIP_ID
  char flash_path[512];  // ESP_HIL_FLASH ("" = none)
  char reset_reason[64];  // ESP_HIL_RESET_REASON
  int32_t rssi;  // ESP_HIL_RSSI
  uint32_t assoc_ms;  // ESP_HIL_ASSOC_MS: simulated association delay
  uint32_t dhcp_ms;  // ESP_HIL_DHCP_MS: from association to the IP (GotIP)
  uint32_t beacon_timeout_ms;  // ESP_HIL_BEACON_TIMEOUT_MS: AP gone this long = link lost
  uint32_t reconnect_ms;  // ESP_HIL_RECONNECT_MS: auto-reconnect's pause between attempts
  uint32_t tcp_mss;  // ESP_HIL_TCP_MSS: the lwIP build variant's TCP_MSS, 536 or 1460
  double deep_sleep_scale;  // ESP_HIL_DEEP_SLEEP_SCALE: the fraction of a deep sleep slept, 0..1
  uint32_t sntp_ms;  // ESP_HIL_SNTP_MS: configTime() to the clock set; kSntpNever: never
};
constexpr uint32_t kSntpNever = 0xFFFFFFFFu;

// Reads the environment once; safe to call any number of times, from any point
// (global constructors of the sketch may run before main()).
const Config& config();

// Diagnostics on stderr, prefixed with "[shim] ".
void log(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

uint64_t monotonic_us();  // since process start

// What the last poll of the idle service saw holds until the sketch next gives the
// "system" control (the next idle pass, delay(), yield()), as lwIP's state on the chip
// changes only then. Each of those starts a new generation (never 0); a cached answer is
// used only while its generation is the current one, else the shim asks the kernel.
extern uint32_t g_poll_gen;
void next_poll_gen();

// One pass of the idle service: polls the console and the sockets for at most
// timeout_ms and returns as soon as any of them is ready. After a loop() pass that took
// input it does not wait at all (see note_input_taken).
void idle(int timeout_ms);

// The sketch took bytes (a connection's, the console's). It may hold them, parsed, for
// its next pass (a message read after the code that handles it ran): on the chip loop()
// comes round again at once, so the next idle pass must not sleep through it.
void note_input_taken();

// Services the console only, until the deadline (delay()).
void sleep_ms(uint32_t ms);

// --- watchdogs and resets (sim_wdt.cpp) ---
void wdt_start();  // power on: starts the watchdog thread, dog fed, soft WDT enabled
// The sketch gave the system control (loop() returned, delay(), yield(), a blocking call
// that yields on the core) or called ESP.wdtFeed(): both watchdogs are fed.
void wdt_feed();
void wdt_soft_enable(bool on);  // ESP.wdtEnable() / ESP.wdtDisable()
void wdt_park();  // deep sleep: neither dog runs until the process ends
// Writes `report` to the console, then ends the process with kExitResetBase + reason.
[[noreturn]] void reset_chip(int reason, const char* report, size_t len);
// The core's __unhandled_exception(what) after a failed plain new of `size` bytes
// (abi.cpp): its "User exception" report, then the SDK's restart, exit 16 + 4.
[[noreturn]] void unhandled_exception(const char* what, size_t size);
// abort() / a failed assert(): the core's "User exception" report with `reason` ("Abort
// called", "Panic <file>:<line> <func>: Assertion '<expr>' failed."), then exit 16 + 4.
[[noreturn]] void user_exception(const char* reason);
// SIGSEGV/SIGBUS/SIGILL/SIGFPE: the core's exception report, then exit 16 + 2 (not in a
// sanitizer build, whose own report says more).
void crash_handlers_install();
// rst_info (reason, exccause, epc1..3, excvaddr, depc) the last run left for `reason`.
bool rst_info_load(uint32_t reason, uint32_t out[7]);

// --- the simulated heap (sim_alloc.cpp) ---
uint32_t heap_max_block();  // the largest free run of the arena, in bytes
// Blocks the emulated lwIP takes for itself (its PCBs), from the arena the sketch's `new`
// uses and by the same rules, so they count in getFreeHeap() and friends; they do not count
// in esp_hil_sim_alloc_count() / _live_*, which are the sketch's own allocations.
// heap_take returns the run's first block, -1 when no free run holds `size` bytes.
int heap_take(size_t size);
void heap_give(int block, size_t size);  // size as taken; -1 is ignored
uint32_t heap_system_bytes();  // what heap_take holds now (whole blocks)
bool heap_fits(size_t size);  // heap_take(size) would succeed now
uint8_t heap_fragmentation();  // umm_malloc's fragmentation metric, 0..100

// --- deep sleep and RTC user memory (sim_sleep.cpp) ---
// Sleeps `us` (0 = until an external reset), scaled by ESP_HIL_DEEP_SLEEP_SCALE, then ends
// the process with kExitResetBase + kReasonDeepSleep: the wake through RST.
[[noreturn]] void deep_sleep(uint64_t us);
// The 512 bytes of RTC user memory; survive every reset but power-on ("<flash>.rtc").
bool rtc_user_read(uint32_t offset, uint32_t* data, size_t size);
bool rtc_user_write(uint32_t offset, const uint32_t* data, size_t size);

// Powers off (exit 4) when the harness that started the process is gone; checks every 100 ms.
void exit_if_orphaned();

// --- console (fd 0 / fd 1) ---
void serial_pump();  // moves whatever stdin has now into the RX buffer, never blocks
size_t serial_rx_available();
int serial_rx_read();
int serial_rx_peek();
size_t serial_tx_write(const uint8_t* data, size_t len);

// --- GPIO and A0 (sim_pins.cpp) ---
// digitalWrite's high-to-low changes per GPIO so far: SPI.cpp starts a transaction at each
// fall of a device's chip select.
extern uint32_t g_falls[17];  // GPIO 0..16
// The level the sketch drives on `pin` (0/1), or -1 if the pin is not an output.
int pin_output(uint8_t pin);
void pins_init();  // maps the pins file shared with the harness; power-on state
void pins_service();  // runs attachInterrupt handlers whose edge or level the inputs show

// --- Ticker (Ticker.cpp) ---
// Microseconds until the next Ticker is due (0 = due now), or -1 when none is armed.
int64_t timers_wait_us();
void timers_service();  // runs the callbacks that are due
int timer_add(Ticker* t);  // table slot, or -1 when the table is full
void timer_remove(int slot);

// Runs what the "system" runs when the sketch yields: pending WiFi events, interrupts
// seen on the pins, due Tickers. Not re-entered from a callback that calls delay() or yield().
void run_system_callbacks();
void sntp_service();  // sets the clock once SNTP would have answered; runs settimeofday_cb

// --- the access point as the test sets it (sim_air.cpp, "<ESP_HIL_FLASH>.air") ---
struct Air {
  bool on_air;  // the AP is up (and an SSID is configured)
  int32_t rssi;
  char password[65];
};
void air_read(Air* out);  // a consistent snapshot; unchanged while the harness writes; never blocks

// --- WiFi station state (ESP8266WiFi.cpp) ---
// The radio link carries traffic: joined, and the AP on the air. While it does not, the
// sockets neither deliver nor send (bytes wait, as in lwIP's queues) and accept nothing.
bool link_up();
bool wifi_connected();  // also advances the simulated association
// A host name or dotted quad to an IPv4 address (network byte order), as the SDK's DNS
// would give it (here: the PC's resolver). sim_net.cpp.
bool resolve_host(const char* host, uint32_t* addr);
// A non-blocking UDP socket bound to the twin's address and `port` (0: any), its port in
// *bound when given; -1 (logged, naming `who`) on failure. sim_net.cpp.
int udp_open(uint16_t port, const char* who, uint16_t* bound = nullptr);
void wifi_tick();
void wifi_service();  // delivers pending station events to the sketch's handlers

// --- sockets (sim_net.cpp) ---
struct Conn {
  int fd;  // -1 once stopped
  int refs;  // WiFiClient copies sharing this slot; 0 = slot free
  bool want_out;  // the send buffer holds bytes the kernel did not take: poll for POLLOUT
  bool broken;  // a send failed for good (reset, EPIPE): writes take nothing
  uint16_t tx_len;  // bytes waiting in the slot's send buffer
  bool eof_seen;  // peer closed and nothing left to read: stop polling POLLIN
  // The sketch was told the send buffer is full while the peer had bytes unacknowledged:
  // the idle poll waits for the ACK that frees room (lwIP's sent callback).
  bool awaiting_ack;
  // The kernel tells of each ACK (conn_revents); without it the idle poll ticks instead.
  bool ack_events;
  uint32_t remote_ip;  // network byte order
  uint16_t remote_port;
  uint16_t local_port;
  int pcb = -1;  // the connection's tcp_pcb in the simulated heap (heap_take), -1 once freed
  // Cached in generation g_poll_gen by the idle poll (0 = nothing cached):
  uint32_t open_gen;  // the peer had not closed (no POLLRDHUP/POLLHUP/POLLERR)
  uint32_t avail_gen;  // `avail` is the count of unread bytes (less what was read since)
  int avail;
};

struct Listener {
  bool used;
  bool wanted;  // begin() was called; opened once the station is connected
  bool nodelay;
  uint32_t bind_ip;  // network byte order, 0 = the twin's own address
  uint16_t port;
  int fd;
  int lpcb = -1;  // the tcp_pcb_listen in the simulated heap from begin() to stop(), or -1
  uint32_t quiet_gen;  // the idle poll of this generation saw no pending connection
};

extern Conn g_conns[kMaxConns];
extern Listener g_listeners[kMaxListeners];

// Slot index holding one reference to `fd` and owning `pcb` (a kTcpPcbSize heap_take
// block); -1 when the table is full, the block then given back.
int conn_alloc(int fd, int pcb);
// Resets `fd` (SO_LINGER 0: an RST, no FIN) and closes it: a connection lwIP refuses.
void conn_refuse(int fd);
void conn_ref(int slot);
void conn_unref(int slot);  // closes the socket when the last reference goes
void conn_close(int slot);  // flushes (bounded), closes the socket; the slot lives on while referenced
// Sends what the slot's buffer holds without blocking; true when it is empty.
bool conn_flush(int slot);
// Like conn_flush, but waits up to timeout_ms for the kernel to take everything.
bool conn_flush_wait(int slot, int timeout_ms);
void conns_flush_all();  // conn_flush on every slot with buffered bytes
// Takes up to len bytes for sending (directly or into the buffer); returns how many.
size_t conn_write(int slot, const uint8_t* data, size_t len);
size_t conn_writable(int slot);  // what conn_write takes now, exactly
// A connection's poll() revents with the ACK notices (see sim_net.cpp) drained and taken out:
// POLLERR stays only for a real error.
short conn_revents(int fd, short events, short revents);

int listener_alloc(uint32_t bind_ip, uint16_t port);
void listener_free(int slot);
// WiFiServer::begin on the core: tcp_new() (a tcp_pcb), then tcp_listen() (a
// tcp_pcb_listen, the tcp_pcb freed after). False when the heap cannot give them.
bool listener_reserve(int slot);
void listener_release(int slot);  // stop(): the tcp_pcb_listen goes back to the heap
// Resets every connection pending on the listener: lwIP had no heap for their PCBs.
void listener_refuse_pending(int slot);
bool listener_open(int slot);  // bind + listen if the station is connected
void listener_close(int slot);
void listeners_station_up();  // opens every wanted listener
void listeners_station_down();

bool set_nodelay(int fd, bool on);
void set_mss(int fd);  // TCP_MAXSEG = the lwIP variant's TCP_MSS (segments never larger)

}  // namespace esp_hil_sim
