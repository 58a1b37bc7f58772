// sensor-node: reports its A0 reading when the PC asks and switches the LED on GPIO2 on
// command, over WiFiSocket; the EspHil agent provisions WiFi and tells the harness where
// to find it (README.md lists the commands).
//
// Built with -DSENSOR_DIAL_HOST=\"<pc>\" -DSENSOR_DIAL_PORT=<port> it dials the PC
// instead of listening on SENSOR_PORT. No heap after setup(): replies are built in a
// fixed buffer, and one that finds no room in the send window is kept and retried.
#include <Arduino.h>
#include <EspHil.h>
#include <WiFiSocket.h>
#include <string.h>

#ifndef SENSOR_PORT
#define SENSOR_PORT 8080
#endif

namespace {

constexpr uint8_t kLedPin = 2;  // the ESP-12's blue LED: lit when the pin is LOW
constexpr size_t kMaxMessage = 128;

WiFiSocketT<kMaxMessage, 1024, 1024> pc;  // the link to the PC, about 2.3 KiB of static RAM
bool ledOn = false;
char reply[kMaxMessage + 1];
bool replyPending = false;

#ifdef SENSOR_DIAL_HOST
char pcHost[esphil::kHostMax + 1] = SENSOR_DIAL_HOST;
uint16_t pcPort = SENSOR_DIAL_PORT;

// Console `dial <host> <port>`: dial another PC (the harness's, on the twin).
const char* dialPc(const char* host, uint16_t port) {
  if (host == nullptr) return "this build always dials";
  memcpy(pcHost, host, strlen(host) + 1);  // checked by the agent: at most kHostMax chars
  pcPort = port;
  pc.connect(pcHost, pcPort);
  EspHil.readyDialing(pcHost, pcPort, pc.maxMessage());
  return nullptr;
}
#endif

void setLed(bool on) {
  ledOn = on;
  digitalWrite(kLedPin, on ? LOW : HIGH);
}

// One request (TEXT) -> one reply in `reply`.
void handle(const char* request) {
  esphil::Text out(reply, sizeof reply);
  if (strcmp(request, "a0") == 0) {
    out.add("a0=").num(analogRead(A0));
  } else if (strcmp(request, "led on") == 0 || strcmp(request, "led off") == 0) {
    setLed(request[5] == 'n');
    out.add(ledOn ? "led=on" : "led=off");
  } else if (strcmp(request, "led") == 0) {
    out.add(ledOn ? "led=on" : "led=off");
  } else {
    out.add("error unknown command: ").add(request);
  }
}

// The key the harness provisions over the console (`key <hex>`, kept in flash): the link
// then accepts only a PC that proves it (docs/security.md).
void useKey(const uint8_t* key, size_t len) { pc.setKey(key, len); }

// Console `sensor`: the same facts for a human at the serial monitor.
bool consoleCommand(const char* name, char* args) {
  if (strcmp(name, "sensor") != 0) return false;
  (void)args;
  Serial.printf("ESP-HIL OK sensor led=%s a0=%d\n", ledOn ? "on" : "off", analogRead(A0));
  return true;
}

}  // namespace

void setup() {
  pinMode(kLedPin, OUTPUT);
  setLed(false);
  EspHil.begin("sensor-node/0.1.0");
  EspHil.onCommand(consoleCommand);
  EspHil.onKey(useKey);
  pc.setLog(Serial);
#ifdef SENSOR_DIAL_HOST
  EspHil.onDial(dialPc);
  pc.connect(pcHost, pcPort);  // dials once the WiFi is up; redials by itself
  EspHil.readyDialing(pcHost, pcPort, pc.maxMessage());
#else
  pc.begin(SENSOR_PORT);
  EspHil.ready(SENSOR_PORT, pc.maxMessage());
#endif
}

void loop() {
  EspHil.loop();
  pc.loop();
  if (replyPending && pc.send(reply)) replyPending = false;
  if (replyPending) return;  // one request at a time: the next waits for room
  char request[kMaxMessage + 1];
  if (pc.receive(request) < 0) return;
  handle(request);
  replyPending = !pc.send(reply);
}
