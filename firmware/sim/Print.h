// Print: the byte sink that Serial and WiFiClient share, with the Arduino
// formatting helpers on top of write().
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "Printable.h"
#include "WString.h"

#define DEC 10
#define HEX 16
#define OCT 8
#define BIN 2

class Print {
 public:
  virtual ~Print() = default;

  virtual size_t write(uint8_t c) = 0;
  virtual size_t write(const uint8_t* buf, size_t size);
  size_t write(const char* s) { return s ? write(reinterpret_cast<const uint8_t*>(s), strlen(s)) : 0; }
  size_t write(const char* buf, size_t size) {
    return write(reinterpret_cast<const uint8_t*>(buf), size);
  }
  // As the core: an integer is one byte, so write(0) and write(0x0D) are not ambiguous with
  // write(const char*).
  size_t write(short t) { return write(static_cast<uint8_t>(t)); }
  size_t write(unsigned short t) { return write(static_cast<uint8_t>(t)); }
  size_t write(int t) { return write(static_cast<uint8_t>(t)); }
  size_t write(unsigned int t) { return write(static_cast<uint8_t>(t)); }
  size_t write(long t) { return write(static_cast<uint8_t>(t)); }
  size_t write(unsigned long t) { return write(static_cast<uint8_t>(t)); }
  size_t write(long long t) { return write(static_cast<uint8_t>(t)); }
  size_t write(unsigned long long t) { return write(static_cast<uint8_t>(t)); }
  size_t write(char c) { return write(static_cast<uint8_t>(c)); }
  size_t write(int8_t c) { return write(static_cast<uint8_t>(c)); }
  virtual int availableForWrite() { return 0; }
  virtual void flush() {}

  size_t printf(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
  size_t printf_P(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
  size_t vprintf(const char* fmt, va_list args);

  size_t print(const __FlashStringHelper* s);
  size_t print(const String& s);
  size_t print(const char* s);
  size_t print(char c);
  size_t print(unsigned char v, int base = DEC);
  size_t print(int v, int base = DEC);
  size_t print(unsigned int v, int base = DEC);
  size_t print(long v, int base = DEC);
  size_t print(unsigned long v, int base = DEC);
  size_t print(long long v, int base = DEC);
  size_t print(unsigned long long v, int base = DEC);
  size_t print(double v, int digits = 2);
  size_t print(const Printable& p);

  size_t println();
  template <typename T>
  size_t println(const T& v) {
    size_t n = print(v);
    return n + println();
  }
  template <typename T>
  size_t println(const T& v, int base) {
    size_t n = print(v, base);
    return n + println();
  }

 private:
  size_t printUnsigned(unsigned long long v, int base, bool negative);
};
