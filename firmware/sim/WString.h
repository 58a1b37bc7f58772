// A minimal Arduino String. Like the ESP8266 core's, short strings live in an
// inline buffer (no heap); longer ones are allocated with operator new[], so
// they show up in ESP.getFreeHeap() and in esp_hil_sim_alloc_count().
#pragma once

#include <stddef.h>
#include <stdint.h>

class __FlashStringHelper;

class String {
 public:
  String() { sso_[0] = '\0'; }
  String(const char* s);  // NOLINT(google-explicit-constructor): Arduino API
  String(const char* s, size_t len);
  String(const __FlashStringHelper* s);  // NOLINT
  String(const String& other);
  String(String&& other) noexcept;
  explicit String(char c);
  explicit String(int value, unsigned char base = 10);
  explicit String(unsigned int value, unsigned char base = 10);
  explicit String(long value, unsigned char base = 10);
  explicit String(unsigned long value, unsigned char base = 10);
  explicit String(long long value, unsigned char base = 10);
  explicit String(unsigned long long value, unsigned char base = 10);
  explicit String(unsigned char value, unsigned char base = 10);
  explicit String(float value, unsigned char decimalPlaces = 2);
  explicit String(double value, unsigned char decimalPlaces = 2);
  ~String();

  String& operator=(const String& other);
  String& operator=(String&& other) noexcept;
  String& operator=(const char* s);
  String& operator=(const __FlashStringHelper* s) { return *this = reinterpret_cast<const char*>(s); }
  String& operator=(char c);

  const char* c_str() const { return heap_ ? heap_ : sso_; }
  size_t length() const { return len_; }
  bool isEmpty() const { return len_ == 0; }
  // Makes room for size characters; false when out of memory (nothing changes).
  bool reserve(size_t size);

  bool concat(const char* s, size_t len);
  bool concat(const char* s);
  bool concat(const String& s) { return concat(s.c_str(), s.length()); }
  bool concat(char c) { return concat(&c, 1); }
  bool concat(int v) { return concat(String(v)); }
  bool concat(unsigned int v) { return concat(String(v)); }
  bool concat(long v) { return concat(String(v)); }
  bool concat(unsigned long v) { return concat(String(v)); }
  bool concat(unsigned char v) { return concat(String(v)); }
  bool concat(long long v) { return concat(String(v)); }
  bool concat(unsigned long long v) { return concat(String(v)); }
  bool concat(float v) { return concat(String(v)); }
  bool concat(double v) { return concat(String(v)); }
  bool concat(const __FlashStringHelper* s) { return concat(reinterpret_cast<const char*>(s)); }

  template <typename T>
  String& operator+=(const T& v) {
    concat(v);
    return *this;
  }
  String& operator+=(const char* s) {
    concat(s);
    return *this;
  }

  bool equals(const char* s) const;
  bool equals(const String& s) const;
  bool operator==(const String& s) const { return equals(s); }
  bool operator==(const char* s) const { return equals(s); }
  bool operator!=(const String& s) const { return !equals(s); }
  bool operator!=(const char* s) const { return !equals(s); }
  int compareTo(const String& s) const;
  bool operator<(const String& s) const { return compareTo(s) < 0; }
  bool operator>(const String& s) const { return compareTo(s) > 0; }
  bool operator<=(const String& s) const { return compareTo(s) <= 0; }
  bool operator>=(const String& s) const { return compareTo(s) >= 0; }
  bool equalsIgnoreCase(const String& s) const;

  char charAt(size_t index) const { return index < len_ ? c_str()[index] : '\0'; }
  char operator[](size_t index) const { return charAt(index); }
  char& operator[](size_t index);  // out of range: a scratch char, as on the core
  void setCharAt(size_t index, char c) {
    if (index < len_) buffer()[index] = c;
  }
  // Copies at most bufsize - 1 characters from index, always terminated.
  void getBytes(unsigned char* buf, unsigned int bufsize, unsigned int index = 0) const;
  void toCharArray(char* buf, unsigned int bufsize, unsigned int index = 0) const {
    getBytes(reinterpret_cast<unsigned char*>(buf), bufsize, index);
  }
  char* begin() { return buffer(); }
  char* end() { return buffer() + len_; }
  const char* begin() const { return c_str(); }
  const char* end() const { return c_str() + len_; }

  int indexOf(char c, size_t from = 0) const;
  int indexOf(const char* s, size_t from = 0) const;
  int indexOf(const String& s, size_t from = 0) const { return indexOf(s.c_str(), from); }
  int lastIndexOf(char c) const { return lastIndexOf(c, len_); }
  int lastIndexOf(char c, size_t from) const;
  int lastIndexOf(const char* s) const { return lastIndexOf(s, len_); }
  int lastIndexOf(const char* s, size_t from) const;
  int lastIndexOf(const String& s) const { return lastIndexOf(s.c_str(), len_); }
  int lastIndexOf(const String& s, size_t from) const { return lastIndexOf(s.c_str(), from); }
  bool startsWith(const char* prefix) const { return startsWith(prefix, 0); }
  bool startsWith(const char* prefix, size_t offset) const;
  bool startsWith(const String& prefix) const { return startsWith(prefix.c_str(), 0); }
  bool startsWith(const String& prefix, size_t offset) const { return startsWith(prefix.c_str(), offset); }
  bool endsWith(const char* suffix) const;
  bool endsWith(const String& suffix) const { return endsWith(suffix.c_str()); }
  String substring(size_t from) const { return substring(from, len_); }
  String substring(size_t from, size_t to) const;
  long toInt() const;
  float toFloat() const { return static_cast<float>(toDouble()); }
  double toDouble() const;
  void trim();
  void toLowerCase();
  void toUpperCase();
  void replace(char find, char with);
  void replace(const char* find, const char* with);
  void replace(const String& find, const String& with) { replace(find.c_str(), with.c_str()); }
  void replace(const char* find, const String& with) { replace(find, with.c_str()); }
  void remove(size_t index, size_t count = static_cast<size_t>(-1));
  void clear() { setLength(0); }

 private:
  static constexpr size_t kSso = 11;  // characters that fit inline (as on the ESP8266 core)
  void setLength(size_t len);
  void copyFrom(const char* s, size_t len);
  void release();
  char* buffer() { return heap_ ? heap_ : sso_; }

  char* heap_ = nullptr;
  size_t cap_ = kSso;  // characters that fit without reallocating
  size_t len_ = 0;
  char sso_[kSso + 1];
};

String operator+(const String& a, const String& b);
String operator+(const String& a, const char* b);
String operator+(const char* a, const String& b);
String operator+(char a, const String& b);
inline String operator+(const __FlashStringHelper* a, const String& b) { return reinterpret_cast<const char*>(a) + b; }
// String + number, char, ...: what += takes.
template <typename T>
String operator+(const String& a, const T& b) {
  String out(a);
  out += b;
  return out;
}
