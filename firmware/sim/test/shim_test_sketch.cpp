// A small sketch that exercises the shim for tests/sim/test_shim*.py: a line
// console (one command per line, one or more reply lines) plus a raw TCP echo
// server and one outgoing connection.
#include <Arduino.h>
#include <EEPROM.h>
#include <ESP8266WiFi.h>
#include <WiFiUdp.h>
#include <coredecls.h>
#include <sys/time.h>
#include <time.h>
#include <Wire.h>
#include <LittleFS.h>
#include <SPI.h>
#include <ESP8266mDNS.h>
#include <ArduinoOTA.h>
#include <esp_hil_sim.h>
#include <assert.h>
#include <stdlib.h>
#include <new>
#include <string.h>

namespace {

constexpr size_t kLineMax = 512;
constexpr size_t kMaxClients = 4;

char g_line[kLineMax + 1];
size_t g_line_len = 0;
bool g_line_overflow = false;

WiFiServer* g_server = nullptr;
WiFiClient g_clients[kMaxClients];
bool g_active[kMaxClients] = {false};  // slot holds a client that has not been reported closed
WiFiClient g_out;
bool g_reported_wifi = true;
uint8_t* volatile g_block = nullptr;

// The next space-separated word of *rest; empty at the end.
const char* next_word(char** rest) {
  char* p = *rest;
  while (*p == ' ') p++;
  char* start = p;
  while (*p && *p != ' ') p++;
  if (*p) *p++ = '\0';
  *rest = p;
  return start;
}

void cmd_info() {
  Serial.printf("info heap=%u chip=%u mac=%s rssi=%d ip=%s allocs=%u reset=%s\n",
                static_cast<unsigned>(ESP.getFreeHeap()), static_cast<unsigned>(ESP.getChipId()),
                WiFi.macAddress().c_str(), static_cast<int>(WiFi.RSSI()), WiFi.localIP().toString().c_str(),
                static_cast<unsigned>(esp_hil_sim_alloc_count()), ESP.getResetReason().c_str());
}

void cmd_alloc(long n) {
  uint32_t before = ESP.getFreeHeap();
  uint32_t count = esp_hil_sim_alloc_count();
  // Through a volatile pointer so the compiler cannot elide the new/delete pair. Nothrow:
  // the figures of a failed new are the point (a plain one resets the chip, see `oom`).
  g_block = new (std::nothrow) uint8_t[static_cast<size_t>(n)];
  uint32_t during = ESP.getFreeHeap();
  uint32_t counted = esp_hil_sim_alloc_count() - count;
  bool got = g_block != nullptr;
  delete[] g_block;
  g_block = nullptr;
  Serial.printf("alloc ok=%d before=%u during=%u after=%u count=%u\n", got ? 1 : 0, static_cast<unsigned>(before),
                static_cast<unsigned>(during), static_cast<unsigned>(ESP.getFreeHeap()), static_cast<unsigned>(counted));
}

// malloc <n> / calloc <n> / realloc <n> (from a 16-byte block) / strdup <n>: the C
// allocator from the sketch, with the heap's figures around it. strdup's copy is libc's own
// allocation, which the sketch then frees: the twin must count neither.
void cmd_c_alloc(const char* how, size_t n) {
  const uint32_t before = ESP.getFreeHeap();
  const uint32_t count = esp_hil_sim_alloc_count();
  void* p = nullptr;
  char text[2048];
  if (!strcmp(how, "malloc")) {
    p = malloc(n);
  } else if (!strcmp(how, "calloc")) {
    p = calloc(n, 1);
    if (p && n > 0 && static_cast<uint8_t*>(p)[n - 1] != 0) Serial.println("calloc not zeroed");
  } else if (!strcmp(how, "realloc")) {
    void* small = malloc(16);
    if (small) memcpy(small, "0123456789abcde", 16);
    p = realloc(small, n);
    if (!p) free(small);  // a failed realloc leaves the old block
    if (p && memcmp(p, "0123456789abcde", n < 16 ? n : 16) != 0) Serial.println("realloc lost bytes");
  } else {
    n = n < sizeof text ? n : sizeof text - 1;
    memset(text, 'x', n);
    text[n] = '\0';
    p = strdup(text);
  }
  const uint32_t during = ESP.getFreeHeap();
  const uint32_t counted = esp_hil_sim_alloc_count() - count;
  free(p);
  Serial.printf("%s ok=%d before=%u during=%u after=%u count=%u\n", how, p ? 1 : 0, static_cast<unsigned>(before),
                static_cast<unsigned>(during), static_cast<unsigned>(ESP.getFreeHeap()),
                static_cast<unsigned>(counted));
}

void print_heap(const char* tag) {
  uint32_t free = 0;
  uint32_t max = 0;
  uint8_t frag = 0;
  ESP.getHeapStats(&free, &max, &frag);
  Serial.printf("%s free=%u max=%u frag=%u getfree=%u getmax=%u getfrag=%u\n", tag, static_cast<unsigned>(free),
                static_cast<unsigned>(max), static_cast<unsigned>(frag), static_cast<unsigned>(ESP.getFreeHeap()),
                static_cast<unsigned>(ESP.getMaxFreeBlockSize()), static_cast<unsigned>(ESP.getHeapFragmentation()));
}

// fragment <count> <size>: allocates count blocks of size bytes, then frees every other
// one (the first, the third, ...), keeping the rest until `unfragment`.
constexpr size_t kFragMax = 64;
uint8_t* g_frag[kFragMax];

void cmd_fragment(long count, long size) {
  size_t made = 0;
  for (; made < kFragMax && static_cast<long>(made) < count; made++) {
    g_frag[made] = new (std::nothrow) uint8_t[static_cast<size_t>(size)];
    if (!g_frag[made]) break;
  }
  for (size_t i = 0; i < made; i += 2) {
    delete[] g_frag[i];
    g_frag[i] = nullptr;
  }
  Serial.printf("fragment made=%u\n", static_cast<unsigned>(made));
}

void cmd_unfragment() {
  for (uint8_t*& p : g_frag) {
    delete[] p;
    p = nullptr;
  }
  Serial.println("unfragment");
}

// hnew <slot> <size> / hdel <slot> ("hdel all": every slot): single heap operations for
// the allocator's property test; each prints the heap's figures after it.
constexpr size_t kHeapSlots = 16;
uint8_t* g_slot[kHeapSlots];

void cmd_hnew(unsigned long slot, unsigned long size) {
  if (slot >= kHeapSlots || g_slot[slot]) {
    Serial.println("hnew bad slot");
    return;
  }
  g_slot[slot] = new (std::nothrow) uint8_t[size];
  if (g_slot[slot]) memset(g_slot[slot], 0xA5, size);  // the host bytes are real
  print_heap(g_slot[slot] ? "hnew ok=1" : "hnew ok=0");
}

void cmd_hdel(const char* which) {
  for (size_t i = 0; i < kHeapSlots; i++) {
    if (strcmp(which, "all") != 0 && strtoul(which, nullptr, 10) != i) continue;
    delete[] g_slot[i];
    g_slot[i] = nullptr;
  }
  print_heap("hdel");
}

void cmd_eeput(const char* text) {
  size_t len = strlen(text);
  if (len > 255) len = 255;
  EEPROM.begin(512);
  EEPROM.write(0, static_cast<uint8_t>(len));
  for (size_t i = 0; i < len; i++) EEPROM.write(static_cast<int>(1 + i), static_cast<uint8_t>(text[i]));
  uint32_t magic = 0xC0DE5EED;
  EEPROM.put(300, magic);
  Serial.printf("eeput ok=%d\n", EEPROM.commit() ? 1 : 0);
}

void cmd_eeget() {
  EEPROM.begin(512);
  uint32_t magic = 0;
  EEPROM.get(300, magic);
  if (magic != 0xC0DE5EED) {
    Serial.println("eeget empty");
    return;
  }
  String text;
  uint8_t len = EEPROM.read(0);
  for (int i = 0; i < len; i++) text += static_cast<char>(EEPROM.read(1 + i));
  Serial.print("eeget ");
  Serial.println(text);
}

void cmd_num(const char* arg) {
  long v = strtol(arg, nullptr, 10);
  Serial.print("num ");
  Serial.print(v);
  Serial.print(' ');
  Serial.print(static_cast<unsigned long>(static_cast<uint32_t>(v)), HEX);
  Serial.print(' ');
  String s(v);
  s += " ";
  s += String(static_cast<unsigned int>(static_cast<uint32_t>(v)), 16);
  Serial.println(s);
}

void cmd_ip(const char* arg) {
  IPAddress ip(9, 9, 9, 9);
  bool ok = ip.fromString(arg);
  Serial.print("ip ok=");
  Serial.print(ok ? 1 : 0);
  Serial.print(' ');
  Serial.println(ip);
}

void cmd_copy() {
  // Copies share one connection: stopping one closes it for all.
  for (size_t i = 0; i < kMaxClients; i++) {
    WiFiClient& c = g_clients[i];
    if (!g_active[i]) continue;
    WiFiClient copy = c;
    bool before = copy.connected();
    copy.stop();
    Serial.printf("copy before=%d original=%d copy=%d\n", before ? 1 : 0, c.connected() ? 1 : 0,
                  copy.connected() ? 1 : 0);
    c.stop();
    g_active[i] = false;
    return;
  }
  Serial.println("copy none");
}

// Fills the first client's connection (kernel socket and the shim's send buffer)
// with pattern bytes (i & 0xFF), then busy-waits (no yield: nothing flushes the
// shim's buffer meanwhile) and stop()s it: the buffered tail must still reach the
// peer before the FIN.
void cmd_fillstop(long hold_ms) {
  for (size_t i = 0; i < kMaxClients; i++) {
    if (!g_active[i]) continue;
    WiFiClient& c = g_clients[i];
    long sent = 0;
    unsigned long start = millis();
    uint8_t buf[1024];
    for (;;) {
      size_t room = static_cast<size_t>(c.availableForWrite());
      if (room == 0 || millis() - start > 5000) break;
      size_t chunk = room < sizeof buf ? room : sizeof buf;
      for (size_t k = 0; k < chunk; k++) buf[k] = static_cast<uint8_t>((sent + static_cast<long>(k)) & 0xFF);
      size_t took = c.write(buf, chunk);
      if (took != chunk) Serial.printf("shortwrite %u %u\n", static_cast<unsigned>(chunk), static_cast<unsigned>(took));
      sent += static_cast<long>(took);
    }
    Serial.printf("filled wrote=%ld afw=%d\n", sent, c.availableForWrite());
    unsigned long hold = millis();
    while (millis() - hold < static_cast<unsigned long>(hold_ms)) {
    }
    c.stop();
    g_active[i] = false;
    Serial.println("stopped");
    return;
  }
  Serial.println("fillstop none");
}

// "i2c w <addr> <hex bytes>": one write transaction (first byte: the register), then its
// endTransmission code; "i2c r <addr> <n>": requestFrom, then the bytes read, in hex.
void cmd_i2c(char* rest) {
  const char* how = next_word(&rest);
  const uint8_t address = static_cast<uint8_t>(strtoul(next_word(&rest), nullptr, 16));
  Wire.begin();
  if (!strcmp(how, "w")) {
    Wire.beginTransmission(address);
    size_t taken = 0;
    for (const char* b = next_word(&rest); *b; b = next_word(&rest)) {
      taken += Wire.write(static_cast<uint8_t>(strtoul(b, nullptr, 16)));
    }
    Serial.printf("i2c wrote=%u end=%u\n", static_cast<unsigned>(taken), Wire.endTransmission());
    return;
  }
  const size_t n = Wire.requestFrom(address, static_cast<size_t>(atol(next_word(&rest))), true);
  Serial.printf("i2c got=%u data=", static_cast<unsigned>(n));
  while (Wire.available()) Serial.printf("%02x", Wire.read());
  Serial.printf(" after=%d\n", Wire.read());
}

WiFiUDP g_udp;
int g_clock_sets = 0;  // settimeofday_cb calls
bool g_clock_from_sntp = false;

// "clock": time(), gettimeofday() and the settimeofday_cb calls so far; "clock ntp <TZ>":
// configTime(TZ, a server); "clock gmt <sec>": the offset form; "clock set <epoch>":
// settimeofday(); "clock local <ms>": getLocalTime() and the local time it gives.
void cmd_clock(char* rest) {
  const char* how = next_word(&rest);
  if (!strcmp(how, "ntp")) {
    configTime(next_word(&rest), "pool.ntp.org");
  } else if (!strcmp(how, "gmt")) {
    configTime(atoi(next_word(&rest)), 0, "pool.ntp.org");
  } else if (!strcmp(how, "set")) {
    timeval tv{static_cast<time_t>(atoll(next_word(&rest))), 0};
    Serial.printf("clock set=%d\n", settimeofday(&tv, nullptr));
    return;
  } else if (!strcmp(how, "local")) {
    tm t{};
    const bool ok = getLocalTime(&t, static_cast<uint32_t>(atol(next_word(&rest))));
    char text[32];
    strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &t);
    Serial.printf("clock local=%d at=%s\n", ok ? 1 : 0, text);
    return;
  }
  timeval tv{};
  gettimeofday(&tv, nullptr);
  Serial.printf("clock time=%lld tv=%lld sets=%d sntp=%d\n", static_cast<long long>(time(nullptr)),
                static_cast<long long>(tv.tv_sec), g_clock_sets, g_clock_from_sntp ? 1 : 0);
}

// "udp begin <port>": begin's result and the local port; "udp send <host> <port> <text>":
// one datagram, beginPacket's and endPacket's results; "udp recv": parsePacket, then the
// datagram and where it came from.
void cmd_udp(char* rest) {
  const char* how = next_word(&rest);
  if (!strcmp(how, "begin")) {
    const unsigned ok = g_udp.begin(static_cast<uint16_t>(atoi(next_word(&rest))));
    Serial.printf("udp begin=%u port=%u\n", ok, g_udp.localPort());
  } else if (!strcmp(how, "send")) {
    const char* host = next_word(&rest);
    const int began = g_udp.beginPacket(host, static_cast<uint16_t>(atoi(next_word(&rest))));
    g_udp.write(reinterpret_cast<const uint8_t*>(rest), strlen(rest));
    Serial.printf("udp began=%d sent=%d port=%u\n", began, g_udp.endPacket(), g_udp.localPort());
  } else {
    const int n = g_udp.parsePacket();
    char text[64] = {};
    const int got = g_udp.read(text, sizeof text - 1);
    Serial.printf("udp size=%d from=%s:%u read=%d left=%d data=%s\n", n,
                  g_udp.remoteIP().toString().c_str(), g_udp.remotePort(), got,
                  g_udp.available(), text);
  }
}

// "fs begin|format|info", "fs write|append <path> <text>", "fs read <path>", "fs ls <dir>",
// "fs rm <path>", "fs mv <from> <to>": LittleFS, one reply line each.
void cmd_fs(char* rest) {
  const char* how = next_word(&rest);
  if (!strcmp(how, "begin")) {
    Serial.printf("fs begin=%d\n", LittleFS.begin() ? 1 : 0);
  } else if (!strcmp(how, "format")) {
    Serial.printf("fs format=%d\n", LittleFS.format() ? 1 : 0);
  } else if (!strcmp(how, "info")) {
    FSInfo info{};
    const bool ok = LittleFS.info(info);
    Serial.printf("fs info=%d total=%u used=%u block=%u name=%u\n", ok ? 1 : 0,
                  static_cast<unsigned>(info.totalBytes), static_cast<unsigned>(info.usedBytes),
                  static_cast<unsigned>(info.blockSize), static_cast<unsigned>(info.maxPathLength));
  } else if (!strcmp(how, "write") || !strcmp(how, "append")) {
    const char* path = next_word(&rest);
    File f = LittleFS.open(path, how[0] == 'w' ? "w" : "a");
    const size_t n = f ? f.print(rest) : 0;
    Serial.printf("fs open=%d wrote=%u\n", f ? 1 : 0, static_cast<unsigned>(n));
  } else if (!strcmp(how, "read")) {
    File f = LittleFS.open(next_word(&rest), "r");
    if (!f) {
      Serial.println("fs open=0");
      return;
    }
    char text[128] = {};
    const size_t total = f.size();
    f.readBytes(text, sizeof text - 1);
    Serial.printf("fs open=1 size=%u name=%s full=%s data=%s\n", static_cast<unsigned>(total),
                  f.name(), f.fullName(), text);
  } else if (!strcmp(how, "ls")) {
    Dir d = LittleFS.openDir(next_word(&rest));
    Serial.print("fs ls");
    while (d.next()) {
      Serial.printf(" %s%s:%u", d.fileName().c_str(), d.isDirectory() ? "/" : "",
                    static_cast<unsigned>(d.fileSize()));
    }
    Serial.println();
  } else if (!strcmp(how, "rm")) {
    Serial.printf("fs rm=%d\n", LittleFS.remove(next_word(&rest)) ? 1 : 0);
  } else if (!strcmp(how, "mv")) {
    const char* from = next_word(&rest);
    Serial.printf("fs mv=%d\n", LittleFS.rename(from, next_word(&rest)) ? 1 : 0);
  }
}

// "spi <cs> <hex bytes>": chip select low, the bytes exchanged, chip select high; the bytes
// read back. "spi hw <hex bytes>": the same with the hardware chip select (GPIO15).
void cmd_spi(char* rest) {
  const char* first = next_word(&rest);
  const bool hw = !strcmp(first, "hw");
  const int cs = hw ? -1 : atoi(first);
  uint8_t data[32];
  size_t n = 0;
  for (const char* b = next_word(&rest); *b && n < sizeof data; b = next_word(&rest)) {
    data[n++] = static_cast<uint8_t>(strtoul(b, nullptr, 16));
  }
  SPI.begin();
  SPI.setHwCs(hw);
  SPI.beginTransaction(SPISettings(1000000, MSBFIRST, SPI_MODE0));
  if (!hw) {
    pinMode(cs, OUTPUT);
    digitalWrite(cs, LOW);
  }
  SPI.transfer(data, static_cast<uint16_t>(n));
  if (!hw) digitalWrite(cs, HIGH);
  SPI.endTransaction();
  Serial.print("spi got=");
  for (size_t i = 0; i < n; i++) Serial.printf("%02x", data[i]);
  Serial.println();
}

// "mdns begin <host>", "mdns service <instance> <service> <proto> <port> [<key> <value>]",
// "mdns end": MDNS, whose update() loop() calls.
void cmd_mdns(char* rest) {
  const char* how = next_word(&rest);
  if (!strcmp(how, "begin")) {
    Serial.printf("mdns begin=%d\n", MDNS.begin(next_word(&rest)) ? 1 : 0);
  } else if (!strcmp(how, "service")) {
    const char* instance = next_word(&rest);
    const char* service = next_word(&rest);
    const char* proto = next_word(&rest);
    const uint16_t port = static_cast<uint16_t>(atoi(next_word(&rest)));
    auto handle = MDNS.addService(instance, service, proto, port);
    const char* key = next_word(&rest);
    if (handle && *key) MDNS.addServiceTxt(handle, key, next_word(&rest));
    Serial.printf("mdns service=%d\n", handle ? 1 : 0);
  } else if (!strcmp(how, "ota")) {  // "mdns ota <host> <password or ->"
    ArduinoOTA.setHostname(next_word(&rest));
    const char* password = next_word(&rest);
    if (strcmp(password, "-") != 0) ArduinoOTA.setPassword(password);
    ArduinoOTA.begin();
    Serial.println("mdns ota=1");
  } else {
    Serial.printf("mdns end=%d\n", MDNS.end() ? 1 : 0);
  }
}

void handle_line(char* line) {
  char* rest = line;
  const char* cmd = next_word(&rest);
  if (!strcmp(cmd, "echo")) {
    Serial.print("echo ");
    Serial.println(rest);
  } else if (!strcmp(cmd, "info")) {
    cmd_info();
  } else if (!strcmp(cmd, "wifi")) {
    const char* ssid = next_word(&rest);
    const char* pass = next_word(&rest);
    int r = WiFi.begin(ssid, pass);
    Serial.printf("wifi begin=%d ip=%s\n", r, WiFi.localIP().toString().c_str());
    g_reported_wifi = false;
  } else if (!strcmp(cmd, "disconnect")) {
    WiFi.disconnect();
    Serial.printf("disconnect status=%d\n", static_cast<int>(WiFi.status()));
  } else if (!strcmp(cmd, "listen")) {
    if (!g_server) {
      g_server = new WiFiServer(static_cast<uint16_t>(atoi(next_word(&rest))));
      g_server->setNoDelay(true);
    }
    g_server->begin();
    Serial.printf("listen status=%u\n", static_cast<unsigned>(g_server->status()));
  } else if (!strcmp(cmd, "unlisten")) {
    if (g_server) g_server->stop();
    const unsigned status = g_server ? static_cast<unsigned>(g_server->status()) : 0u;
    Serial.printf("unlisten status=%u\n", status);
  } else if (!strcmp(cmd, "dial")) {
    const char* host = next_word(&rest);
    int port = atoi(next_word(&rest));
    int ok = g_out.connect(host, static_cast<uint16_t>(port));
    if (ok) {
      g_out.setNoDelay(true);
      g_out.write(reinterpret_cast<const uint8_t*>(rest), strlen(rest));
    }
    Serial.printf("dial ok=%d local=%u remote=%s:%u\n", ok, g_out.localPort(), g_out.remoteIP().toString().c_str(),
                  g_out.remotePort());
  } else if (!strcmp(cmd, "afw")) {
    int afw = -1;
    for (WiFiClient& c : g_clients) {
      if (c) {
        afw = c.availableForWrite();
        break;
      }
    }
    Serial.printf("afw %d\n", afw);
  } else if (!strcmp(cmd, "fillstop")) {
    cmd_fillstop(atol(next_word(&rest)));
  } else if (!strcmp(cmd, "copy")) {
    cmd_copy();
  } else if (!strcmp(cmd, "eeput")) {
    cmd_eeput(rest);
  } else if (!strcmp(cmd, "eeget")) {
    cmd_eeget();
  } else if (!strcmp(cmd, "i2c")) {
    cmd_i2c(rest);
  } else if (!strcmp(cmd, "udp")) {
    cmd_udp(rest);
  } else if (!strcmp(cmd, "clock")) {
    cmd_clock(rest);
  } else if (!strcmp(cmd, "fs")) {
    cmd_fs(rest);
  } else if (!strcmp(cmd, "spi")) {
    cmd_spi(rest);
  } else if (!strcmp(cmd, "mdns")) {
    cmd_mdns(rest);
  } else if (!strcmp(cmd, "hnew")) {
    const unsigned long slot = strtoul(next_word(&rest), nullptr, 10);
    cmd_hnew(slot, strtoul(next_word(&rest), nullptr, 10));
  } else if (!strcmp(cmd, "hdel")) {
    cmd_hdel(next_word(&rest));
  } else if (!strcmp(cmd, "heap")) {
    print_heap("heap");
  } else if (!strcmp(cmd, "fragment")) {
    const long count = atol(next_word(&rest));
    cmd_fragment(count, atol(next_word(&rest)));
  } else if (!strcmp(cmd, "unfragment")) {
    cmd_unfragment();
  } else if (!strcmp(cmd, "alloc")) {
    cmd_alloc(atol(next_word(&rest)));
  } else if (!strcmp(cmd, "malloc") || !strcmp(cmd, "calloc") || !strcmp(cmd, "realloc") ||
             !strcmp(cmd, "strdup")) {
    cmd_c_alloc(cmd, strtoul(next_word(&rest), nullptr, 10));
  } else if (!strcmp(cmd, "oom")) {
    // oom <size>: a plain new[], as most sketch code does; past the heap the chip resets.
    g_block = new uint8_t[static_cast<size_t>(atol(next_word(&rest)))];
    Serial.printf("oom ok=%d\n", g_block != nullptr ? 1 : 0);
    delete[] g_block;
    g_block = nullptr;
  } else if (!strcmp(cmd, "abort")) {
    abort();  // the core's report and a reboot, as on the chip
  } else if (!strcmp(cmd, "assert")) {
    const long value = atol(next_word(&rest));
    assert(value == 42);
    Serial.printf("assert held %ld\n", value);
  } else if (!strcmp(cmd, "num")) {
    cmd_num(next_word(&rest));
  } else if (!strcmp(cmd, "ip")) {
    cmd_ip(rest);
  } else if (!strcmp(cmd, "rand")) {
    uint32_t a = ESP.random();
    uint32_t b = ESP.random();
    Serial.printf("rand %u %u\n", static_cast<unsigned>(a), static_cast<unsigned>(b));
  } else if (!strcmp(cmd, "millis")) {
    unsigned long t0 = millis();
    delay(static_cast<unsigned long>(atol(next_word(&rest))));
    Serial.printf("millis start=%lu slept=%lu\n", t0, millis() - t0);
  } else if (!strcmp(cmd, "spin")) {
    // spin <ms> <how>: stay in this loop() pass for <ms>, feeding the watchdog by `how`:
    // none, feed (ESP.wdtFeed), yield, delay (delay(1)); "hw" = none with the soft WDT off.
    const unsigned long ms = static_cast<unsigned long>(atol(next_word(&rest)));
    const char* how = next_word(&rest);
    if (!strcmp(how, "hw")) ESP.wdtDisable();
    const unsigned long t0 = millis();
    while (millis() - t0 < ms) {
      if (!strcmp(how, "feed")) ESP.wdtFeed();
      if (!strcmp(how, "yield")) yield();
      if (!strcmp(how, "delay")) delay(1);
      delayMicroseconds(500);
    }
    if (!strcmp(how, "hw")) ESP.wdtEnable(0);
    Serial.printf("spun %lu\n", millis() - t0);
  } else if (!strcmp(cmd, "crash")) {
    // A store through a null pointer, as a sketch bug does (volatile: not optimized away).
    volatile uint32_t* volatile p = nullptr;
    *p = 1;
  } else if (!strcmp(cmd, "sleep")) {
    // sleep <us> [instant]: deep sleep; the process ends with the wake-up's reset.
    const uint64_t us = strtoull(next_word(&rest), nullptr, 10);
    Serial.println("sleeping");
    if (!strcmp(next_word(&rest), "instant")) ESP.deepSleepInstant(us);
    ESP.deepSleep(us, WAKE_RF_DISABLED);
    Serial.println("awake in the same run");  // never: deep sleep does not return
  } else if (!strcmp(cmd, "rtc")) {
    // rtc <word offset> <bytes> [<u32>]: writes <u32> repeated over the range first, then
    // prints the read's result and the first word.
    const uint32_t offset = static_cast<uint32_t>(strtoul(next_word(&rest), nullptr, 10));
    const size_t size = static_cast<size_t>(strtoul(next_word(&rest), nullptr, 10));
    const char* value = next_word(&rest);
    uint32_t words[129] = {0};  // one word more than RTC user memory: overlong sizes reach the API
    int wrote = -1;
    if (*value && size <= sizeof words) {
      for (uint32_t& w : words) w = static_cast<uint32_t>(strtoul(value, nullptr, 10));
      wrote = ESP.rtcUserMemoryWrite(offset, words, size) ? 1 : 0;
    }
    uint32_t first = 0;
    const bool read = size <= sizeof words && ESP.rtcUserMemoryRead(offset, words, size);
    if (read) memcpy(&first, words, size < 4 ? size : 4);
    Serial.printf("rtc wrote=%d read=%d first=%u\n", wrote, read ? 1 : 0, static_cast<unsigned>(first));
  } else if (!strcmp(cmd, "dsmax")) {
    Serial.printf("dsmax %llu\n", static_cast<unsigned long long>(ESP.deepSleepMax()));
  } else if (!strcmp(cmd, "rstinfo")) {
    Serial.printf("rstinfo %s\n", ESP.getResetInfo().c_str());
  } else if (!strcmp(cmd, "restart")) {
    Serial.println("restart");
    ESP.restart();
  } else {
    Serial.printf("unknown %s\n", cmd);
  }
}

void poll_console() {
  while (Serial.available() > 0) {
    int c = Serial.read();
    if (c == '\r') continue;
    if (c == '\n') {
      g_line[g_line_len] = '\0';
      if (g_line_overflow) {
        Serial.println("error line too long");
      } else {
        handle_line(g_line);
      }
      g_line_len = 0;
      g_line_overflow = false;
    } else if (g_line_len < kLineMax) {
      g_line[g_line_len++] = static_cast<char>(c);
    } else {
      g_line_overflow = true;
    }
  }
}

void poll_network() {
  if (!g_reported_wifi && WiFi.status() != WL_DISCONNECTED) {
    g_reported_wifi = true;
    Serial.printf("wifi status=%d ip=%s\n", static_cast<int>(WiFi.status()), WiFi.localIP().toString().c_str());
  }
  if (g_server && g_server->hasClient()) {
    WiFiClient incoming = g_server->accept();
    bool placed = false;
    for (size_t i = 0; i < kMaxClients; i++) {
      WiFiClient& c = g_clients[i];
      if (!g_active[i]) {
        c = incoming;
        g_active[i] = true;
        placed = true;
        Serial.printf("accepted %s:%u nodelay=%d\n", c.remoteIP().toString().c_str(), c.remotePort(),
                      c.getNoDelay() ? 1 : 0);
        break;
      }
    }
    if (!placed) incoming.stop();
  }
  for (size_t i = 0; i < kMaxClients; i++) {
    WiFiClient& c = g_clients[i];
    if (!g_active[i]) continue;
    // Echo only what the socket will take, so nothing needs buffering here.
    uint8_t buf[512];
    size_t want = static_cast<size_t>(c.available());
    size_t room = static_cast<size_t>(c.availableForWrite());
    size_t n = want < room ? want : room;
    if (n > sizeof buf) n = sizeof buf;
    if (n > 0) {
      int got = c.read(buf, n);
      if (got > 0) {
        size_t took = c.write(buf, static_cast<size_t>(got));
        // availableForWrite() promised room for this; a short write breaks that promise.
        if (took != static_cast<size_t>(got)) Serial.printf("shortwrite %d %u\n", got, static_cast<unsigned>(took));
      }
    }
    if (!c.connected()) {
      c.stop();
      g_active[i] = false;
      Serial.println("closed");
    }
  }
  if (g_out && g_out.available() > 0) {
    char buf[256];
    int got = g_out.read(reinterpret_cast<uint8_t*>(buf), sizeof buf - 1);
    buf[got > 0 ? got : 0] = '\0';
    Serial.print("dialrx ");
    Serial.println(buf);
  }
}

}  // namespace

void setup() {
  Serial.begin(115200);
  WiFi.mode(WIFI_STA);
  WiFi.persistent(false);
  settimeofday_cb([](bool from_sntp) {
    g_clock_sets++;
    g_clock_from_sntp = from_sntp;
  });
  Serial.print(F("boot reset="));
  Serial.println(ESP.getResetReason());
}

void loop() {
  poll_console();
  poll_network();
  MDNS.update();
  ArduinoOTA.handle();
}
