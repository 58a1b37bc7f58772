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
  ~String();

  String& operator=(const String& other);
  String& operator=(String&& other) noexcept;
  String& operator=(const char* s);

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
  bool operator<(const String& s) const;

  char charAt(size_t index) const { return index < len_ ? c_str()[index] : '\0'; }
  char operator[](size_t index) const { return charAt(index); }
  int indexOf(char c, size_t from = 0) const;
  int indexOf(const char* s, size_t from = 0) const;
  bool startsWith(const char* prefix) const;
  bool endsWith(const char* suffix) const;
  String substring(size_t from) const { return substring(from, len_); }
  String substring(size_t from, size_t to) const;
  long toInt() const;
  void trim();
  void clear() { setLength(0); }

 private:
  static constexpr size_t kSso = 11;  // characters that fit inline (as on the ESP8266 core)
  void setLength(size_t len);
  void copyFrom(const char* s, size_t len);
  void release();

  char* heap_ = nullptr;
  size_t cap_ = kSso;  // characters that fit without reallocating
  size_t len_ = 0;
  char sso_[kSso + 1];
};

String operator+(const String& a, const String& b);
String operator+(const String& a, const char* b);
String operator+(const char* a, const String& b);
