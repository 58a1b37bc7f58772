// A sketch written as for the ESP8266 core (no shim-only API) that exercises the
// Arduino API on the twin for tests/sim/test_pins.py and tests/sim/test_arduino_api.py:
// one command per console line, one or more reply lines.
#include <Arduino.h>
#include <ESP8266WiFi.h>
#include <Ticker.h>

static_assert(LED_BUILTIN == 2 && D4 == 2 && D0 == 16 && D5 == 14 && D8 == 15 && A0 == 17, "NodeMCU pins");
static_assert(INPUT == 0 && OUTPUT == 1 && INPUT_PULLUP == 2 && RISING == 1 && FALLING == 2 && CHANGE == 3,
              "core constants");

namespace {

const char kProgmemText[] PROGMEM = "progmem text";

int g_mirror_in = -1;
int g_mirror_out = -1;
volatile uint32_t g_isr_count = 0;

Ticker g_ticker;
Ticker g_once;
constexpr int kMaxTicks = 16;
unsigned long g_tick_at[kMaxTicks];
unsigned long g_tick_armed = 0;
int g_ticks_wanted = 0;
int g_ticks_seen = 0;
unsigned long g_once_armed = 0;
unsigned long g_once_ms = 0;

WiFiEventHandler g_on_connected;
WiFiEventHandler g_on_got_ip;
WiFiEventHandler g_on_disconnected;

WiFiServer g_server(0);
WiFiClient g_client;
bool g_server_on = false;
bool g_defer = false;  // "serve PORT 1": answer a line on the pass after the one that read it
bool g_pending = false;
String g_pending_line;
uint32_t g_pending_at = 0;  // micros() when it was read

IRAM_ATTR void on_edge() { g_isr_count = g_isr_count + 1; }

void on_tick() {
  if (g_ticks_seen < kMaxTicks) g_tick_at[g_ticks_seen] = millis();
  if (++g_ticks_seen < g_ticks_wanted) return;
  g_ticker.detach();
  String at;  // milliseconds since attach of each tick
  for (int i = 0; i < g_ticks_seen && i < kMaxTicks; i++) {
    if (i > 0) at += ',';
    at += g_tick_at[i] - g_tick_armed;
  }
  Serial.printf("ticks n=%d at=%s\n", g_ticks_seen, at.c_str());
}

void on_once(int value) {
  Serial.printf("once value=%d late=%ld\n", value,
                static_cast<long>(millis() - g_once_armed) - static_cast<long>(g_once_ms));
}

// A one-shot Ticker that re-arms itself from its own callback, with a capturing lambda
// each time (the usual blink-pattern chain).
void chain(int left, String trail) {
  trail += left;
  if (left == 0) {
    Serial.printf("chain %s\n", trail.c_str());
    return;
  }
  trail += ',';
  g_once.once_ms(2, [left, trail]() { chain(left - 1, trail); });
}

void cmd_str(String text) {
  String upper = text;
  upper.toUpperCase();
  String lower = text;
  lower.toLowerCase();
  String replaced = text;
  replaced.replace("ab", "X");
  String trimmed = text;
  trimmed.remove(0, 1);
  Serial.println(String("str upper=") + upper + " lower=" + lower + " first=" + text.indexOf('b') +
                 " last=" + text.lastIndexOf('b') + " rep=" + replaced + " rm=" + trimmed +
                 " int=" + text.toInt() + " float=" + String(text.toFloat(), 3) +
                 " ab=" + (text.startsWith("ab") ? 1 : 0) + " eq=" + (text.equalsIgnoreCase("ABC") ? 1 : 0));
}

void cmd_info() {
  Serial.printf("info millis=%lu micros=%lu chip=%u heap=%u mac=%s status=%d ip=%s host=%s rssi=%d reset=%s\n",
                millis(), micros(), static_cast<unsigned>(ESP.getChipId()), static_cast<unsigned>(ESP.getFreeHeap()),
                WiFi.macAddress().c_str(), static_cast<int>(WiFi.status()), WiFi.localIP().toString().c_str(),
                WiFi.hostname().c_str(), static_cast<int>(WiFi.RSSI()), ESP.getResetReason().c_str());
}

void cmd_flash() {
  char buf[32];
  strcpy_P(buf, kProgmemText);
  char small[8];
  const size_t full = strlcpy(small, buf, sizeof small);
  strlcat(small, "xyz", sizeof small);  // already full: nothing fits
  Serial.printf("lcpy=%s/%u ", small, static_cast<unsigned>(full));
  Serial.print(F("flash f=yes "));
  Serial.printf_P(PSTR("pstr=%d copy=%s fp="), 7, buf);
  Serial.println(FPSTR(kProgmemText));
}

void handle(String line) {
  line.trim();
  if (line.isEmpty()) return;
  const int space = line.indexOf(' ');
  const String cmd = space < 0 ? line : line.substring(0, space);
  String rest = space < 0 ? String() : line.substring(space + 1);
  const int second = rest.indexOf(' ');
  const long a = rest.toInt();
  const long b = second < 0 ? 0 : rest.substring(second + 1).toInt();

  if (cmd == "mode") {
    pinMode(a, b);
    Serial.printf("mode %ld %ld\n", a, b);
  } else if (cmd == "write") {
    digitalWrite(a, b);
    Serial.printf("write %ld %ld\n", a, b);
  } else if (cmd == "read") {
    Serial.printf("read %ld %d\n", a, digitalRead(a));
  } else if (cmd == "aread") {
    Serial.printf("aread %d\n", analogRead(A0));
  } else if (cmd == "pwm") {
    analogWrite(a, b);
    Serial.printf("pwm %ld %ld\n", a, b);
  } else if (cmd == "pwmrange") {
    analogWriteRange(a);
    Serial.printf("pwmrange %ld\n", a);
  } else if (cmd == "mirror") {
    g_mirror_in = static_cast<int>(a);
    g_mirror_out = static_cast<int>(b);
    pinMode(g_mirror_in, INPUT);
    pinMode(g_mirror_out, OUTPUT);
    Serial.printf("mirror %ld %ld\n", a, b);
  } else if (cmd == "isr") {
    g_isr_count = 0;
    attachInterrupt(digitalPinToInterrupt(a), on_edge, static_cast<int>(b));
    Serial.printf("isr %ld %ld\n", a, b);
  } else if (cmd == "noisr") {
    detachInterrupt(digitalPinToInterrupt(a));
    Serial.printf("noisr %ld\n", a);
  } else if (cmd == "isrcount") {
    Serial.printf("isrcount %u\n", static_cast<unsigned>(g_isr_count));
  } else if (cmd == "tick") {
    g_ticks_seen = 0;
    g_ticks_wanted = static_cast<int>(b);
    g_tick_armed = millis();
    g_ticker.attach_ms(static_cast<uint32_t>(a), on_tick);
    Serial.printf("tick armed=%d\n", g_ticker.active() ? 1 : 0);
  } else if (cmd == "once") {
    g_once_armed = millis();
    g_once_ms = static_cast<unsigned long>(a);
    g_once.once_ms(static_cast<uint32_t>(a), on_once, static_cast<int>(b));
    Serial.println("once armed");
  } else if (cmd == "delaytick") {
    int count = 0;
    Ticker t;
    t.attach_ms(static_cast<uint32_t>(a), [&count]() { count++; });
    delay(static_cast<unsigned long>(b));
    t.detach();
    Serial.printf("delaytick count=%d\n", count);
  } else if (cmd == "nest") {
    // A callback that sleeps while another Ticker falls due: that one waits its turn.
    static int during = 0;
    during = 0;
    g_ticker.attach_ms(5, []() { during++; });
    g_once.once_ms(1, [ms = a]() {
      const int before = during;
      delay(static_cast<unsigned long>(ms));
      Serial.printf("nest during=%d\n", during - before);
    });
    Serial.println("nest armed");
  } else if (cmd == "chain") {
    chain(static_cast<int>(a), String());
    Serial.println("chain armed");
  } else if (cmd == "str") {
    cmd_str(rest);
  } else if (cmd == "parseint") {
    Serial.println("parseint ready");
    const long x = Serial.parseInt();
    const long y = Serial.parseInt();
    const float z = Serial.parseFloat();
    Serial.printf("parsed %ld %ld %.2f\n", x, y, static_cast<double>(z));
  } else if (cmd == "map") {
    char text[16];
    Serial.printf("map %ld %s\n", map(a, 0, 1023, 0, 100), dtostrf(a / 4.0, 0, 2, text));
  } else if (cmd == "flash") {
    cmd_flash();
  } else if (cmd == "info") {
    cmd_info();
  } else if (cmd == "wifi") {
    const String ssid = rest.substring(0, second);
    const String pass = second < 0 ? String() : rest.substring(second + 1);
    WiFi.mode(WIFI_STA);
    WiFi.begin(ssid, pass);
    Serial.println("wifi begun");
  } else if (cmd == "waitwifi") {
    const int8_t result = WiFi.waitForConnectResult(static_cast<unsigned long>(a));
    Serial.printf("waitwifi %d\n", result);
  } else if (cmd == "disconnect") {
    WiFi.disconnect();
    Serial.println("disconnect done");
  } else if (cmd == "serve") {
    g_server.begin(static_cast<uint16_t>(a));
    g_server_on = true;
    g_defer = b != 0;
    Serial.printf("serve %ld\n", a);
  } else if (cmd == "restart") {
    ESP.restart();
  } else {
    Serial.print("unknown ");
    Serial.println(cmd);
  }
}

void serve() {
  if (!g_server_on) return;
  if (!g_client.connected() && g_server.hasClient()) g_client = g_server.accept();
  if (g_pending) {  // read last pass, nothing left unread: only loop() coming round answers it
    g_pending = false;
    g_client.printf("got %s us=%lu\r\n", g_pending_line.c_str(),
                    static_cast<unsigned long>(micros() - g_pending_at));
  }
  if (g_client.connected() && g_client.available()) {
    // WiFiClient is a Stream: the same readStringUntil as Serial.
    String line = g_client.readStringUntil('\n');
    if (g_defer) {
      g_pending_line = line;
      g_pending_at = micros();
      g_pending = true;
      return;
    }
    g_client.print("got ");
    g_client.println(line);
  }
}

}  // namespace

void setup() {
  Serial.begin(115200);
  pinMode(LED_BUILTIN, OUTPUT);
  digitalWrite(LED_BUILTIN, HIGH);  // NodeMCU's LED is active low: off
  g_on_connected = WiFi.onStationModeConnected([](const WiFiEventStationModeConnected& e) {
    Serial.printf("event connected ssid=%s channel=%u\n", e.ssid.c_str(), e.channel);
  });
  g_on_got_ip = WiFi.onStationModeGotIP([](const WiFiEventStationModeGotIP& e) {
    Serial.print("event gotip ip=");
    Serial.println(e.ip);
  });
  g_on_disconnected = WiFi.onStationModeDisconnected([](const WiFiEventStationModeDisconnected& e) {
    Serial.printf("event disconnected reason=%d\n", static_cast<int>(e.reason));
  });
  Serial.print("boot reset=");
  Serial.println(ESP.getResetReason());
}

void loop() {
  if (Serial.available()) handle(Serial.readStringUntil('\n'));
  if (g_mirror_in >= 0) digitalWrite(g_mirror_out, digitalRead(g_mirror_in));
  serve();
}
