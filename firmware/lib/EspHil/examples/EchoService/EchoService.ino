// A listening echo under esp-hil: the agent provisions WiFi over the console and prints
// READY with the port, so `pytest` (the `device` and `link` fixtures) finds it by itself.
// Every message comes back with its type: small text through the String form (the seed's
// `answer = soc.receive()`), the rest through a buffer.
// Console commands: the agent's (`wifi`, `info`, `forget`, `reboot`) plus `count`.
#include <Arduino.h>
#include <EspHil.h>
#include <WiFiSocket.h>

WiFiSocket soc;
uint8_t buf[WiFiSocket::kMaxMessage];
uint32_t echoed = 0;

// `count`: how many messages came back so far.
bool command(const char* name, char* args) {
  if (strcmp(name, "count") != 0) return false;
  (void)args;
  Serial.printf("ESP-HIL OK count %lu\n", static_cast<unsigned long>(echoed));
  return true;
}

void setup() {
  EspHil.begin("echo-service/1.0");
  EspHil.onCommand(command);
  soc.setLog(Serial);
  soc.begin(8080);
  EspHil.ready(8080, soc.maxMessage());
}

void loop() {
  EspHil.loop();
  soc.loop();
  if (soc.available() == 0) return;
  if (soc.nextIsText() && soc.nextLength() <= 64) {
    const String text = soc.receive();  // the seed's form, for small messages
    while (!soc.send(text) && soc.connected()) soc.loop();
  } else {
    bool isText = false;
    const int n = soc.receive(buf, sizeof buf, &isText);
    while (n >= 0 && !soc.send(buf, static_cast<size_t>(n), isText) && soc.connected()) soc.loop();
  }
  ++echoed;
}
