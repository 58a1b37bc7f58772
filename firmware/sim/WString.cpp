#include "WString.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>

#include <new>
#include <utility>

namespace {

// Formats v in base 2..36 into the end of buf; returns the first character.
char* format_unsigned(unsigned long long v, unsigned base, char* end) {
  if (base < 2 || base > 36) base = 10;
  char* p = end;
  *--p = '\0';
  do {
    unsigned digit = static_cast<unsigned>(v % base);
    *--p = static_cast<char>(digit < 10 ? '0' + digit : 'a' + digit - 10);
    v /= base;
  } while (v != 0);
  return p;
}

}  // namespace

String::String(const char* s) {
  sso_[0] = '\0';
  if (s) copyFrom(s, strlen(s));
}

String::String(const char* s, size_t len) {
  sso_[0] = '\0';
  if (s) copyFrom(s, len);
}

String::String(const __FlashStringHelper* s) : String(reinterpret_cast<const char*>(s)) {}

String::String(const String& other) {
  sso_[0] = '\0';
  copyFrom(other.c_str(), other.len_);
}

String::String(String&& other) noexcept {
  sso_[0] = '\0';
  *this = std::move(other);
}

String::String(char c) {
  sso_[0] = '\0';
  copyFrom(&c, 1);
}

String::String(int value, unsigned char base) : String(static_cast<long long>(value), base) {}
String::String(unsigned int value, unsigned char base)
    : String(static_cast<unsigned long long>(value), base) {}
String::String(long value, unsigned char base) : String(static_cast<long long>(value), base) {}
String::String(unsigned long value, unsigned char base)
    : String(static_cast<unsigned long long>(value), base) {}

String::String(long long value, unsigned char base) {
  sso_[0] = '\0';
  char buf[72];
  // Like the core, only base 10 shows a sign; other bases print the two's complement.
  if (base == 10 && value < 0) {
    char* p = format_unsigned(0ULL - static_cast<unsigned long long>(value), 10, buf + sizeof buf);
    *--p = '-';
    copyFrom(p, strlen(p));
  } else {
    char* p = format_unsigned(static_cast<unsigned long long>(value), base, buf + sizeof buf);
    copyFrom(p, strlen(p));
  }
}

String::String(unsigned long long value, unsigned char base) {
  sso_[0] = '\0';
  char buf[72];
  char* p = format_unsigned(value, base, buf + sizeof buf);
  copyFrom(p, strlen(p));
}

String::String(unsigned char value, unsigned char base)
    : String(static_cast<unsigned long long>(value), base) {}

String::String(float value, unsigned char decimalPlaces) : String(static_cast<double>(value), decimalPlaces) {}

String::String(double value, unsigned char decimalPlaces) {
  sso_[0] = '\0';
  char buf[352];  // DBL_MAX in %f needs 309 digits
  int n = snprintf(buf, sizeof buf, "%.*f", decimalPlaces > 30 ? 30 : decimalPlaces, value);
  copyFrom(buf, n < 0 ? 0 : static_cast<size_t>(n) < sizeof buf ? static_cast<size_t>(n) : sizeof buf - 1);
}

String::~String() { release(); }

void String::release() {
  delete[] heap_;
  heap_ = nullptr;
  cap_ = kSso;
  len_ = 0;
  sso_[0] = '\0';
}

String& String::operator=(const String& other) {
  if (this != &other) copyFrom(other.c_str(), other.len_);
  return *this;
}

String& String::operator=(String&& other) noexcept {
  if (this == &other) return *this;
  release();
  if (other.heap_) {
    heap_ = other.heap_;
    cap_ = other.cap_;
    len_ = other.len_;
    other.heap_ = nullptr;
    other.cap_ = kSso;
  } else {
    memcpy(sso_, other.sso_, other.len_ + 1);
    len_ = other.len_;
  }
  other.len_ = 0;
  other.sso_[0] = '\0';
  return *this;
}

String& String::operator=(const char* s) {
  if (!s) {
    setLength(0);
  } else if (s >= c_str() && s <= c_str() + len_) {
    // Assigning a piece of ourselves: copy through a temporary first.
    String tmp(s);
    *this = std::move(tmp);
  } else {
    copyFrom(s, strlen(s));
  }
  return *this;
}

bool String::reserve(size_t size) {
  if (size <= cap_) return true;
  char* fresh = new (std::nothrow) char[size + 1];
  if (!fresh) return false;
  memcpy(fresh, c_str(), len_ + 1);
  delete[] heap_;
  heap_ = fresh;
  cap_ = size;
  return true;
}

void String::setLength(size_t len) {
  len_ = len;
  (heap_ ? heap_ : sso_)[len] = '\0';
}

void String::copyFrom(const char* s, size_t len) {
  if (!reserve(len)) {
    setLength(0);
    return;
  }
  char* dst = heap_ ? heap_ : sso_;
  memmove(dst, s, len);
  setLength(len);
}

bool String::concat(const char* s, size_t len) {
  if (!s) return false;
  if (len == 0) return true;
  // s may point into our own buffer, which reserve() may move.
  const char* base = c_str();
  bool inside = s >= base && s < base + len_ + 1;
  size_t offset = inside ? static_cast<size_t>(s - base) : 0;
  size_t grown = len_ + len;
  if (grown > cap_ && !reserve(grown < 2 * cap_ ? 2 * cap_ : grown)) return false;
  char* dst = heap_ ? heap_ : sso_;
  memmove(dst + len_, inside ? dst + offset : s, len);
  setLength(grown);
  return true;
}

bool String::concat(const char* s) { return s ? concat(s, strlen(s)) : false; }

bool String::equals(const char* s) const {
  if (!s) return len_ == 0;
  return strcmp(c_str(), s) == 0;
}

bool String::equals(const String& s) const {
  return len_ == s.len_ && memcmp(c_str(), s.c_str(), len_) == 0;
}

int String::compareTo(const String& s) const { return strcmp(c_str(), s.c_str()); }

bool String::equalsIgnoreCase(const String& s) const {
  return len_ == s.len_ && strcasecmp(c_str(), s.c_str()) == 0;
}

String& String::operator=(char c) {
  copyFrom(&c, 1);
  return *this;
}

char& String::operator[](size_t index) {
  static char scratch;
  if (index >= len_) {
    scratch = '\0';
    return scratch;
  }
  return buffer()[index];
}

void String::getBytes(unsigned char* buf, unsigned int bufsize, unsigned int index) const {
  if (!buf || bufsize == 0) return;
  if (index >= len_) {
    buf[0] = '\0';
    return;
  }
  size_t n = len_ - index;
  if (n > bufsize - 1) n = bufsize - 1;
  memcpy(buf, c_str() + index, n);
  buf[n] = '\0';
}

int String::lastIndexOf(char c, size_t from) const {
  if (len_ == 0) return -1;
  if (from >= len_) from = len_ - 1;
  for (size_t i = from + 1; i-- > 0;) {
    if (c_str()[i] == c) return static_cast<int>(i);
  }
  return -1;
}

int String::lastIndexOf(const char* s, size_t from) const {
  if (!s) return -1;
  const size_t n = strlen(s);
  if (n == 0 || n > len_) return -1;
  size_t start = len_ - n;
  if (from < start) start = from;
  for (size_t i = start + 1; i-- > 0;) {
    if (memcmp(c_str() + i, s, n) == 0) return static_cast<int>(i);
  }
  return -1;
}

int String::indexOf(char c, size_t from) const {
  if (from >= len_) return -1;
  const char* hit = static_cast<const char*>(memchr(c_str() + from, c, len_ - from));
  return hit ? static_cast<int>(hit - c_str()) : -1;
}

int String::indexOf(const char* s, size_t from) const {
  if (!s || from > len_) return -1;
  const char* hit = strstr(c_str() + from, s);
  return hit ? static_cast<int>(hit - c_str()) : -1;
}

bool String::startsWith(const char* prefix, size_t offset) const {
  size_t n = prefix ? strlen(prefix) : 0;
  return offset <= len_ && n <= len_ - offset && memcmp(c_str() + offset, prefix, n) == 0;
}

bool String::endsWith(const char* suffix) const {
  size_t n = suffix ? strlen(suffix) : 0;
  return n <= len_ && memcmp(c_str() + len_ - n, suffix, n) == 0;
}

String String::substring(size_t from, size_t to) const {
  if (from > to) std::swap(from, to);
  if (to > len_) to = len_;
  if (from >= to) return String();
  return String(c_str() + from, to - from);
}

long String::toInt() const {
  // long is 32 bits on the chip: strtol saturates there.
  const long long v = strtoll(c_str(), nullptr, 10);
  return v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : static_cast<long>(v);
}

double String::toDouble() const { return strtod(c_str(), nullptr); }

void String::toLowerCase() {
  for (char& c : *this) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
}

void String::toUpperCase() {
  for (char& c : *this) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
}

void String::replace(char find, char with) {
  for (char& c : *this) {
    if (c == find) c = with;
  }
}

void String::replace(const char* find, const char* with) {
  if (!find || !*find || !with) return;
  const size_t nf = strlen(find);
  if (indexOf(find) < 0) return;
  // Built in a copy: find or with may point into this string.
  String out;
  size_t at = 0;
  for (int hit; (hit = indexOf(find, at)) >= 0; at = static_cast<size_t>(hit) + nf) {
    out.concat(c_str() + at, static_cast<size_t>(hit) - at);
    out.concat(with);
  }
  out.concat(c_str() + at, len_ - at);
  *this = std::move(out);
}

void String::remove(size_t index, size_t count) {
  if (index >= len_) return;
  if (count > len_ - index) count = len_ - index;
  char* buf = buffer();
  memmove(buf + index, buf + index + count, len_ - index - count);
  setLength(len_ - count);
}

void String::trim() {
  char* buf = heap_ ? heap_ : sso_;
  size_t start = 0;
  while (start < len_ && isspace(static_cast<unsigned char>(buf[start]))) start++;
  size_t end = len_;
  while (end > start && isspace(static_cast<unsigned char>(buf[end - 1]))) end--;
  memmove(buf, buf + start, end - start);
  setLength(end - start);
}

String operator+(const String& a, const String& b) {
  String out(a);
  out += b;
  return out;
}

String operator+(const String& a, const char* b) {
  String out(a);
  out += b;
  return out;
}

String operator+(char a, const String& b) {
  String out(a);
  out += b;
  return out;
}

String operator+(const char* a, const String& b) {
  String out(a);
  out += b;
  return out;
}
