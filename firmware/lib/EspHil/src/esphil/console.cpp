#include "console.h"

#include <string.h>

// On the chip a F() string is in flash, which only takes aligned 32-bit reads:
// pgm_read_byte does that. Hosts without the core's pgmspace.h (the unit tests) have one
// address space.
#if __has_include(<pgmspace.h>)
#include <pgmspace.h>
#else
#define pgm_read_byte(p) (*reinterpret_cast<const uint8_t*>(p))
#endif

namespace esphil {

const char kDialUsage[] = "usage: dial <host> <port> | dial off";
const char kKeyUsage[] = "usage: key <32..64 hex digits> | key off";

LineReader::Result LineReader::feed(char c) {
  // A line is handed on as a C string: a NUL (noise on the wire as a host opens the port)
  // would cut it short, so it is not part of any line.
  if (c == '\0') return kPending;
  if (c == '\n') {
    if (len_ > 0 && buf_[len_ - 1] == '\r') --len_;
    buf_[len_] = 0;
    const bool tooLong = overflow_;
    if (tooLong) wipe(buf_, sizeof buf_);  // a dropped line leaves nothing (a key) behind
    len_ = 0;
    overflow_ = false;
    return tooLong ? kTooLong : kLine;
  }
  if (len_ < kLineMax) {
    buf_[len_++] = c;
  } else {
    overflow_ = true;
  }
  return kPending;
}

namespace {

char* skipSpaces(char* p) {
  while (*p == ' ') ++p;
  return p;
}

// Cuts the word at `p` off with a terminator; returns where the next one starts (spaces
// skipped), or the terminator when it was the last.
char* endWord(char* p) {
  while (*p != 0 && *p != ' ') ++p;
  if (*p == 0) return p;
  *p = 0;
  return skipSpaces(p + 1);
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

unsigned char byteAt(const char* p, bool inFlash) {
  return inFlash ? pgm_read_byte(p) : static_cast<unsigned char>(*p);
}

bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_' || c == '~';
}

}  // namespace

Command splitCommand(char* line) {
  Command cmd;
  cmd.name = skipSpaces(line);
  cmd.args = endWord(cmd.name);
  return cmd;
}

bool percentDecode(const char* in, char* out, size_t cap) {
  if (cap == 0) return false;
  size_t n = 0;
  for (size_t i = 0; in[i] != 0; ++i) {
    char c = in[i];
    if (c == '%') {
      const int hi = in[i + 1] != 0 ? hexValue(in[i + 1]) : -1;
      const int lo = hi >= 0 && in[i + 2] != 0 ? hexValue(in[i + 2]) : -1;
      if (hi < 0 || lo < 0) return false;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (n + 1 >= cap) return false;
    out[n++] = c;
  }
  out[n] = 0;
  return true;
}

size_t percentEncode(const char* in, char* out, size_t cap) {
  static const char kHex[] = "0123456789ABCDEF";
  if (cap == 0) return 0;
  size_t n = 0;
  for (const unsigned char* p = reinterpret_cast<const unsigned char*>(in); *p != 0; ++p) {
    if (unreserved(*p)) {
      if (n + 1 >= cap) break;
      out[n++] = static_cast<char>(*p);
    } else {
      if (n + 3 >= cap) break;
      out[n++] = '%';
      out[n++] = kHex[*p >> 4];
      out[n++] = kHex[*p & 0x0F];
    }
  }
  out[n] = 0;
  return n;
}

const char* parseWifi(char* args, char (&ssid)[kSsidMax + 1], char (&pass)[kPassMax + 1]) {
  char* ssidEnc = skipSpaces(args);
  char* passEnc = endWord(ssidEnc);
  endWord(passEnc);  // a third word is ignored, as it always was
  if (*ssidEnc == 0) return "missing ssid";
  if (!percentDecode(ssidEnc, ssid, sizeof ssid) || ssid[0] == 0) return "bad ssid";
  if (!percentDecode(passEnc, pass, sizeof pass)) return "bad password";
  return nullptr;
}

const char* checkDialTarget(const char* host, const char* port, uint16_t* number) {
  if (host == nullptr || port == nullptr || *port == 0) return kDialUsage;
  uint32_t value = 0;
  for (const char* c = port; *c != 0; ++c) {
    if (*c < '0' || *c > '9') return kDialUsage;
    value = value * 10 + static_cast<uint32_t>(*c - '0');
    if (value > 65535) return kDialUsage;
  }
  if (value == 0) return kDialUsage;
  size_t len = 0;
  for (const char* c = host; *c != 0; ++c, ++len) {
    const bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                    (*c >= '0' && *c <= '9') || *c == '.' || *c == '-' || *c == '_';
    if (!ok) return "bad host name";
  }
  if (len == 0) return kDialUsage;
  if (len > kHostMax) return "host name too long";
  *number = static_cast<uint16_t>(value);
  return nullptr;
}

const char* parseDial(char* args, char (&host)[kHostMax + 1], uint16_t* port, bool* off) {
  char* first = skipSpaces(args);
  char* second = endWord(first);
  char* third = endWord(second);
  if (*third != 0) return kDialUsage;
  *off = false;
  if (strcmp(first, "off") == 0 && *second == 0) {
    *off = true;
    host[0] = 0;
    *port = 0;
    return nullptr;
  }
  if (*first == 0 || *second == 0) return kDialUsage;
  const char* why = checkDialTarget(first, second, port);
  if (why != nullptr) return why;
  const size_t len = strlen(first);  // <= kHostMax: checked
  memcpy(host, first, len + 1);
  return nullptr;
}

const char* parseKey(const char* args, uint8_t (&key)[kKeyMax], size_t* len) {
  *len = 0;
  const char* p = args;
  while (*p == ' ') ++p;
  const char* const hex = p;
  size_t digits = 0;
  bool allHex = true;
  for (; *p != 0 && *p != ' '; ++p, ++digits) allHex = allHex && hexValue(*p) >= 0;
  while (*p == ' ') ++p;
  if (digits == 0 || *p != 0) return kKeyUsage;
  if (digits == 3 && memcmp(hex, "off", 3) == 0) return nullptr;
  if (!allHex) return "not hex";
  if (digits % 2 != 0) return "odd number of hex digits";
  if (digits < 2 * kKeyMin) return "too short";
  if (digits > 2 * kKeyMax) return "too long";
  for (size_t i = 0; i < digits / 2; ++i) {
    key[i] = static_cast<uint8_t>(hexValue(hex[2 * i]) * 16 + hexValue(hex[2 * i + 1]));
  }
  *len = digits / 2;
  return nullptr;
}

namespace {

constexpr uint8_t kKeyMagic[4] = {'E', 'H', 'K', '1'};
constexpr size_t kKeyCrcAt = kKeyRecordSize - 4;

}  // namespace

uint32_t crc32(const uint8_t* data, size_t len) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < len; ++i) {
    crc ^= data[i];
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

void wipe(void* p, size_t len) {
  volatile uint8_t* bytes = static_cast<volatile uint8_t*>(p);
  for (size_t i = 0; i < len; ++i) bytes[i] = 0;
}

bool encodeKeyRecord(const uint8_t* key, size_t len, uint8_t (&record)[kKeyRecordSize]) {
  if (len < kKeyMin || len > kKeyMax) return false;
  memset(record, 0, sizeof record);
  memcpy(record, kKeyMagic, sizeof kKeyMagic);
  record[4] = static_cast<uint8_t>(len);
  memcpy(record + 8, key, len);
  const uint32_t crc = crc32(record, kKeyCrcAt);
  for (size_t i = 0; i < 4; ++i) record[kKeyCrcAt + i] = static_cast<uint8_t>(crc >> (8 * i));
  return true;
}

size_t decodeKeyRecord(const uint8_t (&record)[kKeyRecordSize], uint8_t (&key)[kKeyMax]) {
  wipe(key, sizeof key);
  uint32_t stored = 0;
  for (size_t i = 0; i < 4; ++i) stored |= static_cast<uint32_t>(record[kKeyCrcAt + i]) << (8 * i);
  const size_t len = record[4];
  if (memcmp(record, kKeyMagic, sizeof kKeyMagic) != 0 || len < kKeyMin || len > kKeyMax ||
      crc32(record, kKeyCrcAt) != stored) {
    return 0;
  }
  memcpy(key, record + 8, len);
  return len;
}

Text::Text(char* buf, size_t cap) : buf_(buf), cap_(cap) {
  if (cap_ > 0) buf_[0] = 0;
}

void Text::put(const char* s, size_t n) {
  if (!fits(n)) {
    truncated_ = true;
    return;
  }
  memcpy(buf_ + len_, s, n);
  len_ += n;
  buf_[len_] = 0;
}

Text& Text::addFrom(const char* s, bool inFlash) {
  // Whole characters as long as they fit: plain text may be cut, but never mid-escape.
  for (char c; (c = static_cast<char>(byteAt(s, inFlash))) != 0; ++s) {
    if (!fits(1)) {
      truncated_ = true;
      break;
    }
    put(&c, 1);
  }
  return *this;
}

Text& Text::add(char c) {
  put(&c, 1);
  return *this;
}

Text& Text::jsonFrom(const char* s, bool inFlash) {
  if (!fits(2)) {
    truncated_ = true;
    return *this;
  }
  put("\"", 1);
  for (unsigned char c; (c = byteAt(s, inFlash)) != 0; ++s) {
    char esc[7];
    size_t n = 0;
    if (c == '"' || c == '\\') {
      esc[n++] = '\\';
      esc[n++] = static_cast<char>(c);
    } else if (c < 0x20) {
      static const char kHex[] = "0123456789abcdef";
      memcpy(esc, "\\u00", 4);
      n = 4;
      esc[n++] = kHex[c >> 4];
      esc[n++] = kHex[c & 0x0F];
    } else {
      esc[n++] = static_cast<char>(c);
    }
    if (!fits(n + 1)) {  // keep room for the closing quote
      truncated_ = true;
      break;
    }
    put(esc, n);
  }
  put("\"", 1);  // every put above left room for it
  return *this;
}

Text& Text::num(unsigned long long v) {
  char digits[21];
  size_t i = sizeof digits;
  do {
    digits[--i] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  put(digits + i, sizeof digits - i);
  return *this;
}

Text& Text::num(long long v) {
  if (v >= 0) return num(static_cast<unsigned long long>(v));
  if (!fits(2)) {
    truncated_ = true;
    return *this;
  }
  // The magnitude of LLONG_MIN does not fit a long long: negate in unsigned arithmetic.
  const unsigned long long mag = 0ULL - static_cast<unsigned long long>(v);
  const size_t before = len_;
  put("-", 1);
  num(mag);
  if (len_ == before + 1) {  // the digits did not fit: no lone sign
    len_ = before;
    buf_[len_] = 0;
  }
  return *this;
}

}  // namespace esphil
