// Listening echo: every message the PC sends comes back, text as text, binary as binary.
// PC side (esp-hil):  from harness.wifisocket import WiFiSocket
//                     with WiFiSocket.connect("<the board's ip>", 8080) as soc:
//                         soc.send("Hi"); print(soc.receive())
#include <Arduino.h>
#include <ESP8266WiFi.h>
#include <WiFiSocket.h>

const char* kSsid = "your-ssid";
const char* kPassword = "your-password";

WiFiSocket soc;
uint8_t buf[4096];  // the largest message WiFiSocket accepts by default

void setup() {
  Serial.begin(115200);
  WiFi.mode(WIFI_STA);
  WiFi.begin(kSsid, kPassword);
  while (WiFi.status() != WL_CONNECTED) delay(100);
  Serial.print("listening on ");
  Serial.print(WiFi.localIP());
  Serial.println(":8080");
  soc.setLog(Serial);
  // Optional: a keyed link (docs/protocol.md §6). Only a PC with the same 16..32 random bytes
  // (WiFiSocket(..., key=...) there) gets a session, and every frame is authenticated.
  // static const uint8_t kKey[32] = {/* your key */};
  // soc.setKey(kKey, sizeof kKey);
  soc.begin(8080);
}

void loop() {
  soc.loop();
  if (soc.available() > 0) {
    bool isText = false;
    const int n = soc.receive(buf, sizeof buf, &isText);
    // send() is false while the PC has not acknowledged enough: this simple echo waits for
    // room (a sketch with more to do would keep the message and retry in the next loop()).
    while (n >= 0 && !soc.send(buf, static_cast<size_t>(n), isText) && soc.connected()) soc.loop();
  }
}
