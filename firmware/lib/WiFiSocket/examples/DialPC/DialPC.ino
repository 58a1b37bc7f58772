// The board dials the PC (the PC listens), and says hello every 5 s; it answers "pong" to
// "ping". It redials by itself whenever the connection is refused or lost.
// PC side (esp-hil):  from harness.wifisocket import WiFiSocket
//                     with WiFiSocket.serve(port=9000) as soc:
//                         print(soc.receive()); soc.send("ping"); print(soc.receive())
#include <Arduino.h>
#include <ESP8266WiFi.h>
#include <WiFiSocket.h>

const char* kSsid = "your-ssid";
const char* kPassword = "your-password";
const char* kPcHost = "192.168.1.10";  // the PC's address
const uint16_t kPcPort = 9000;

WiFiSocketT<256, 1024, 1024> soc;  // small text messages only: about 2.5 KiB of RAM
uint32_t lastHello = 0;

void setup() {
  Serial.begin(115200);
  WiFi.mode(WIFI_STA);
  WiFi.begin(kSsid, kPassword);
  while (WiFi.status() != WL_CONNECTED) delay(100);
  soc.setLog(Serial);  // "WS DIAL <host>:<port> connected" and friends
  soc.connect(kPcHost, kPcPort);
}

void loop() {
  soc.loop();
  char text[64];
  if (soc.receive(text) >= 0 && strcmp(text, "ping") == 0) soc.send("pong");
  if (soc.connected() && millis() - lastHello >= 5000) {
    lastHello = millis();
    soc.send("hello from the board");  // false = no room now: the next one comes in 5 s
  }
}
