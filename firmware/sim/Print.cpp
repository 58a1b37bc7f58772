#include "Print.h"

#include <stdio.h>
#include <stdlib.h>

size_t Print::write(const uint8_t* buf, size_t size) {
  size_t n = 0;
  while (n < size && write(buf[n]) == 1) n++;
  return n;
}

size_t Print::vprintf(const char* fmt, va_list args) {
  char local[256];
  va_list copy;
  va_copy(copy, args);
  int len = vsnprintf(local, sizeof local, fmt, copy);
  va_end(copy);
  if (len < 0) return 0;
  if (static_cast<size_t>(len) < sizeof local) return write(reinterpret_cast<uint8_t*>(local), len);
  // Long output: a temporary from the heap (the real core's Print allocates here too, and
  // frees before returning).
  char* big = static_cast<char*>(malloc(static_cast<size_t>(len) + 1));
  if (!big) return 0;
  vsnprintf(big, static_cast<size_t>(len) + 1, fmt, args);
  size_t n = write(reinterpret_cast<uint8_t*>(big), static_cast<size_t>(len));
  free(big);
  return n;
}

size_t Print::printf(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  size_t n = vprintf(fmt, args);
  va_end(args);
  return n;
}

size_t Print::printf_P(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  size_t n = vprintf(fmt, args);
  va_end(args);
  return n;
}

size_t Print::print(const __FlashStringHelper* s) { return write(reinterpret_cast<const char*>(s)); }
size_t Print::print(const String& s) { return write(s.c_str(), s.length()); }
size_t Print::print(const char* s) { return write(s); }
size_t Print::print(char c) { return write(static_cast<uint8_t>(c)); }
size_t Print::print(unsigned char v, int base) { return print(static_cast<unsigned long long>(v), base); }
size_t Print::print(int v, int base) { return print(static_cast<long long>(v), base); }
size_t Print::print(unsigned int v, int base) { return print(static_cast<unsigned long long>(v), base); }
size_t Print::print(long v, int base) { return print(static_cast<long long>(v), base); }
size_t Print::print(unsigned long v, int base) { return print(static_cast<unsigned long long>(v), base); }

size_t Print::print(long long v, int base) {
  if (base == 0) return write(static_cast<uint8_t>(v));
  if (base == 10 && v < 0) return printUnsigned(0ULL - static_cast<unsigned long long>(v), 10, true);
  return printUnsigned(static_cast<unsigned long long>(v), base, false);
}

size_t Print::print(unsigned long long v, int base) {
  if (base == 0) return write(static_cast<uint8_t>(v));
  return printUnsigned(v, base, false);
}

size_t Print::printUnsigned(unsigned long long v, int base, bool negative) {
  if (base < 2 || base > 36) base = 10;
  char buf[72];
  char* p = buf + sizeof buf;
  do {
    unsigned digit = static_cast<unsigned>(v % static_cast<unsigned>(base));
    *--p = static_cast<char>(digit < 10 ? '0' + digit : 'A' + digit - 10);
    v /= static_cast<unsigned>(base);
  } while (v != 0);
  if (negative) *--p = '-';
  return write(reinterpret_cast<uint8_t*>(p), static_cast<size_t>(buf + sizeof buf - p));
}

size_t Print::print(double v, int digits) {
  char buf[64];
  int len = snprintf(buf, sizeof buf, "%.*f", digits < 0 ? 0 : digits, v);
  if (len < 0) return 0;
  return write(reinterpret_cast<uint8_t*>(buf), static_cast<size_t>(len) < sizeof buf ? len : sizeof buf - 1);
}

size_t Print::print(const Printable& p) { return p.printTo(*this); }

size_t Print::println() { return write("\r\n"); }
