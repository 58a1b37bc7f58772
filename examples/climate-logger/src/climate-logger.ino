// climate-logger: a TMP102 temperature sensor on I2C, each reading logged with the time of
// day to LittleFS, served over WiFiSocket. An Arduino sketch (.ino): functions are used
// above their definitions, as the Arduino build allows.
//
// Requests (one WiFiSocket message each) and replies:
//   read  ->  t=21.50 at=2026-11-25T15:04:05Z   (at=unset before SNTP set the clock)
//             error=no sensor                   (nothing answers at 0x48)
//   name  ->  name=<the first line of /name.txt, else "logger">
//   log   ->  lines=<readings logged> last=<the last line of /log.csv>
#include <EspHil.h>
#include <LittleFS.h>
#include <WiFiSocket.h>
#include <Wire.h>
#include <time.h>

#ifndef LOGGER_PORT
#define LOGGER_PORT 8080
#endif

const uint8_t kSensor = 0x48;  // TMP102 with ADD0 to ground
const time_t kClockSet = 1600000000;  // before this, SNTP has not answered yet

WiFiSocketT<128, 1024, 1024> service;
char deviceName[32] = "logger";

void setup() {
  Serial.begin(115200);
  Wire.begin();
  LittleFS.begin();
  loadName();
  configTime("UTC0", "pool.ntp.org");
  EspHil.begin("climate-logger/1.0");
  service.begin(LOGGER_PORT);
  EspHil.ready(LOGGER_PORT, service.maxMessage());
}

void loop() {
  EspHil.loop();
  service.loop();
  char request[129];
  if (service.receive(request) < 0) return;
  char reply[160];
  if (!strcmp(request, "read")) {
    answerRead(reply, sizeof reply);
  } else if (!strcmp(request, "name")) {
    snprintf(reply, sizeof reply, "name=%s", deviceName);
  } else if (!strcmp(request, "log")) {
    answerLog(reply, sizeof reply);
  } else {
    snprintf(reply, sizeof reply, "error=unknown request");
  }
  service.send(reply);
}

void loadName() {
  File f = LittleFS.open("/name.txt", "r");
  if (!f) return;
  // readBytes, not readBytesUntil: that one waits the stream timeout (1 s) at the end of a
  // file without a final newline, on a board as on the twin.
  const size_t n = f.readBytes(deviceName, sizeof deviceName - 1);
  deviceName[n] = '\0';
  deviceName[strcspn(deviceName, "\r\n")] = '\0';
}

// The temperature in hundredths of a degree Celsius; false when the sensor does not answer.
bool readCentiCelsius(long* out) {
  Wire.beginTransmission(kSensor);
  Wire.write(0x00);  // the temperature register
  if (Wire.endTransmission() != 0 || Wire.requestFrom(kSensor, (uint8_t)2) != 2) return false;
  const int msb = Wire.read();
  const int lsb = Wire.read();
  const int16_t raw = (int16_t)((msb << 8) | lsb) >> 4;  // 12 bits, two's complement
  *out = raw * 625L / 100;  // 0.0625 degrees per step
  return true;
}

void answerRead(char* reply, size_t size) {
  long centi = 0;
  if (!readCentiCelsius(&centi)) {
    snprintf(reply, size, "error=no sensor");
    return;
  }
  char at[24] = "unset";
  const time_t now = time(nullptr);
  if (now >= kClockSet) {
    struct tm t;
    gmtime_r(&now, &t);
    strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &t);
  }
  const long whole = labs(centi) / 100;
  const long hundredths = labs(centi) % 100;
  char line[48];
  snprintf(line, sizeof line, "%s,%s%ld.%02ld", at, centi < 0 ? "-" : "", whole, hundredths);
  File log = LittleFS.open("/log.csv", "a");
  if (log) log.println(line);
  snprintf(reply, size, "t=%s%ld.%02ld at=%s", centi < 0 ? "-" : "", whole, hundredths, at);
}

void answerLog(char* reply, size_t size) {
  File log = LittleFS.open("/log.csv", "r");
  char last[64] = "";
  unsigned lines = 0;
  while (log && log.available()) {
    const size_t n = log.readBytesUntil('\n', last, sizeof last - 1);
    last[n] = '\0';
    if (n > 0 && last[n - 1] == '\r') last[n - 1] = '\0';
    lines++;
  }
  snprintf(reply, size, "lines=%u last=%s", lines, last);
}
