#include "Stream.h"

#include "Arduino.h"

size_t Stream::readBytes(uint8_t* buffer, size_t length) {
  size_t n = 0;
  while (n < length) {
    unsigned long start = millis();
    int c;
    while ((c = read()) < 0) {
      if (millis() - start >= timeout_ms_) return n;
      delay(1);
    }
    buffer[n++] = static_cast<uint8_t>(c);
  }
  return n;
}
