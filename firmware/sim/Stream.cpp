#include "Stream.h"

#include <ctype.h>
#include <string.h>

#include "Arduino.h"

int Stream::timed(int (Stream::*op)()) {
  const unsigned long start = millis();
  for (;;) {
    const int c = (this->*op)();
    if (c >= 0) return c;
    if (millis() - start >= timeout_ms_) return -1;
    delay(1);
  }
}

size_t Stream::readBytes(uint8_t* buffer, size_t length) {
  size_t n = 0;
  while (n < length) {
    const int c = timedRead();
    if (c < 0) break;
    buffer[n++] = static_cast<uint8_t>(c);
  }
  return n;
}

size_t Stream::readBytesUntil(char terminator, char* buffer, size_t length) {
  size_t n = 0;
  while (n < length) {
    const int c = timedRead();
    if (c < 0 || c == static_cast<unsigned char>(terminator)) break;
    buffer[n++] = static_cast<char>(c);
  }
  return n;
}

String Stream::readString() {
  String out;
  for (int c; (c = timedRead()) >= 0;) out += static_cast<char>(c);
  return out;
}

String Stream::readStringUntil(char terminator) {
  String out;
  for (int c; (c = timedRead()) >= 0 && c != static_cast<unsigned char>(terminator);) out += static_cast<char>(c);
  return out;
}

bool Stream::findUntil(const char* target, const char* terminator) {
  const size_t tlen = target ? strlen(target) : 0;
  const size_t elen = terminator ? strlen(terminator) : 0;
  if (tlen == 0) return true;
  // Matched prefix lengths; a mismatch restarts at 0 or 1 (enough for the short
  // markers sketches look for; the core's own find() is no smarter).
  size_t t = 0;
  size_t e = 0;
  for (int c; (c = timedRead()) >= 0;) {
    t = c == static_cast<unsigned char>(target[t]) ? t + 1 : (c == static_cast<unsigned char>(target[0]) ? 1 : 0);
    if (t == tlen) return true;
    if (elen) {
      e = c == static_cast<unsigned char>(terminator[e]) ? e + 1
                                                         : (c == static_cast<unsigned char>(terminator[0]) ? 1 : 0);
      if (e == elen) return false;
    }
  }
  return false;
}

int Stream::peekNumberStart(bool decimal) {
  for (;;) {
    const int c = timedPeek();
    if (c < 0 || c == '-' || isdigit(c) || (decimal && c == '.')) return c;
    read();
  }
}

long Stream::parseInt() {
  int c = peekNumberStart(false);
  if (c < 0) return 0;
  bool negative = false;
  long value = 0;
  for (;;) {
    if (c == '-') {
      negative = true;
    } else if (isdigit(c)) {
      value = value * 10 + (c - '0');
    } else {
      break;
    }
    read();
    c = timedPeek();
    if (c < 0) break;
  }
  return negative ? -value : value;
}

float Stream::parseFloat() {
  int c = peekNumberStart(true);
  if (c < 0) return 0;
  bool negative = false;
  bool fraction = false;
  double value = 0;
  double scale = 1;
  for (;;) {
    if (c == '-') {
      negative = true;
    } else if (c == '.' && !fraction) {
      fraction = true;
    } else if (isdigit(c)) {
      value = value * 10 + (c - '0');
      if (fraction) scale /= 10;
    } else {
      break;
    }
    read();
    c = timedPeek();
    if (c < 0) break;
  }
  const double out = value * scale;
  return static_cast<float>(negative ? -out : out);
}
