// A sketch that dials the PC under esp-hil: READY says `port=0 dial=<host>:<port>`, and
// the console command `dial <host> <port>` points it at another PC (what the harness does
// on the twin). It answers "pong" to "ping" and echoes anything else.
// Build with -DPC_HOST='"192.168.1.10"' -DPC_PORT=9000 (or change the defaults below).
#include <Arduino.h>
#include <EspHil.h>
#include <WiFiSocket.h>

#ifndef PC_HOST
#define PC_HOST "192.168.1.10"
#endif
#ifndef PC_PORT
#define PC_PORT 9000
#endif

WiFiSocketT<256, 1024, 1024> soc;
char pcHost[esphil::kHostMax + 1] = PC_HOST;
uint16_t pcPort = PC_PORT;

const char* dial(const char* host, uint16_t port) {
  if (host == nullptr) return "this sketch always dials";
  strcpy(pcHost, host);  // checked by the agent: at most kHostMax characters
  pcPort = port;
  soc.connect(pcHost, pcPort);
  EspHil.readyDialing(pcHost, pcPort, soc.maxMessage());
  return nullptr;
}

void setup() {
  EspHil.begin("dial-service/1.0");
  EspHil.onDial(dial);
  soc.setLog(Serial);
  soc.connect(pcHost, pcPort);  // dials once the WiFi is up, and redials by itself
  EspHil.readyDialing(pcHost, pcPort, soc.maxMessage());
}

void loop() {
  EspHil.loop();
  soc.loop();
  char text[257];
  const int n = soc.receive(text);
  if (n < 0) return;
  const char* reply = strcmp(text, "ping") == 0 ? "pong" : text;
  while (!soc.send(reply) && soc.connected()) soc.loop();
}
