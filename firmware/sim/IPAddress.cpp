#include "IPAddress.h"

#include <stdio.h>
#include <string.h>

#include "Print.h"

IPAddress::IPAddress(uint32_t address) { memcpy(bytes_, &address, 4); }

IPAddress::operator uint32_t() const {
  uint32_t word;
  memcpy(&word, bytes_, 4);
  return word;
}

bool IPAddress::operator==(const IPAddress& other) const { return memcmp(bytes_, other.bytes_, 4) == 0; }

bool IPAddress::fromString(const char* text) {
  if (!text) return false;
  uint8_t parsed[4];
  const char* p = text;
  for (int part = 0; part < 4; part++) {
    if (part > 0) {
      if (*p != '.') return false;
      p++;
    }
    unsigned value = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9') {
      if (++digits > 3) return false;
      value = value * 10 + static_cast<unsigned>(*p - '0');
      p++;
    }
    if (digits == 0 || value > 255) return false;
    parsed[part] = static_cast<uint8_t>(value);
  }
  if (*p != '\0') return false;
  memcpy(bytes_, parsed, 4);
  return true;
}

String IPAddress::toString() const {
  char buf[16];
  snprintf(buf, sizeof buf, "%u.%u.%u.%u", bytes_[0], bytes_[1], bytes_[2], bytes_[3]);
  return String(buf);
}

size_t IPAddress::printTo(Print& p) const {
  char buf[16];
  int len = snprintf(buf, sizeof buf, "%u.%u.%u.%u", bytes_[0], bytes_[1], bytes_[2], bytes_[3]);
  return p.write(buf, static_cast<size_t>(len));
}
