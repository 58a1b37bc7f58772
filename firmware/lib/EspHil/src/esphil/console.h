// The console vocabulary of the esp-hil agent, without Arduino: line assembly, command
// splitting, percent-encoding, the `wifi`, `dial` and `key` arguments, the stored key's
// flash record and a bounded text/JSON appender. Portable so the host tests
// (firmware/test/test_console.cpp) run it as is.
#pragma once

#include <stddef.h>
#include <stdint.h>

// The core's tag for a string in flash (F(), FPSTR()): Text reads one through pgmspace.
class __FlashStringHelper;

namespace esphil {

constexpr size_t kSsidMax = 32;   // 802.11 SSID bytes
constexpr size_t kPassMax = 64;   // WPA2 passphrase (63) or hex PSK (64)
constexpr size_t kLineMax = 256;  // a `wifi` line with both fields fully percent-encoded fits
constexpr size_t kHostMax = 63;   // WiFiSocket's dial host limit
constexpr size_t kKeyMin = 16;    // pre-shared key bytes (docs/protocol.md §6)
constexpr size_t kKeyMax = 32;

extern const char kDialUsage[];
extern const char kKeyUsage[];

/// Assembles console bytes into lines ('\n' ends one, a '\r' before it is dropped, NUL
/// bytes are skipped).
class LineReader {
 public:
  enum Result : uint8_t { kPending, kLine, kTooLong };
  /// kLine: line() holds the line until the next feed(); kTooLong: a line over kLineMax
  /// bytes ended (its bytes are gone).
  Result feed(char c);
  char* line() { return buf_; }

 private:
  char buf_[kLineMax + 1] = {};
  uint16_t len_ = 0;
  bool overflow_ = false;
};

/// A command line split in place: the first word and the rest (spaces after the first word
/// skipped). Neither is ever null; `name` is empty for a blank line.
struct Command {
  char* name;
  char* args;
};
Command splitCommand(char* line);

/// Decodes %XX escapes of `in` into `out` (`cap` includes the terminator). False if an
/// escape is malformed or the result does not fit.
bool percentDecode(const char* in, char* out, size_t cap);
/// Percent-encodes `in` (RFC 3986 unreserved characters stay) into `out`, never cutting an
/// escape; returns the length written. The result has no spaces.
size_t percentEncode(const char* in, char* out, size_t cap);

/// `wifi <ssid%> [<password%>]`: nullptr when `ssid`/`pass` hold the decoded fields, else
/// why not ("missing ssid", "bad ssid", "bad password").
const char* parseWifi(char* args, char (&ssid)[kSsidMax + 1], char (&pass)[kPassMax + 1]);

/// Checks a dial target: `port` decimal 1..65535, `host` a name or IPv4 address (letters,
/// digits, '.', '-', '_'), at most kHostMax characters. nullptr when fine, else why not.
const char* checkDialTarget(const char* host, const char* port, uint16_t* number);
/// `dial <host> <port>` or `dial off`: nullptr when fine (`*off` tells which), else why not.
const char* parseDial(char* args, char (&host)[kHostMax + 1], uint16_t* port, bool* off);

/// `key <hex>` (2 * kKeyMin ..= 2 * kKeyMax hex digits, an even count, either case) or
/// `key off`: nullptr when fine, the key in `key` and its length in `*len` (0 for off); else
/// why not. A reason never quotes the argument: it is a secret.
const char* parseKey(const char* args, uint8_t (&key)[kKeyMax], size_t* len);

/// The stored key as the agent keeps it in its flash sector (docs/console.md, "Where the
/// key lives"): the magic "EHK1", the length, three zero bytes, the key padded with zeros to
/// kKeyMax, then the CRC-32 (zlib's) of everything before it, little-endian. Its size is a
/// multiple of 4, as the SDK's flash calls want.
constexpr size_t kKeyRecordSize = 4 + 4 + kKeyMax + 4;
/// Fills `record` for a key of kKeyMin..kKeyMax bytes; false (nothing written) otherwise.
bool encodeKeyRecord(const uint8_t* key, size_t len, uint8_t (&record)[kKeyRecordSize]);
/// The key in a record read from flash: its length, or 0 for anything else (an erased
/// sector, a bad magic, length or CRC), with `key` then cleared.
size_t decodeKeyRecord(const uint8_t (&record)[kKeyRecordSize], uint8_t (&key)[kKeyMax]);
/// CRC-32 as zlib's crc32() (reflected, polynomial 0xEDB88320), so Python checks a record
/// with zlib.crc32. Our own (not the core's crc32()) to stay portable; bitwise: no table.
uint32_t crc32(const uint8_t* data, size_t len);
/// Overwrites `len` bytes with zeros in a way the compiler keeps (key material in buffers).
void wipe(void* p, size_t len);

/// Appends to a fixed buffer, always terminated; what does not fit is dropped (an escape or
/// a number is never cut in half). truncated() tells.
class Text {
 public:
  Text(char* buf, size_t cap);
  Text& add(const char* s) { return addFrom(s, false); }
  Text& add(const __FlashStringHelper* s) { return addFrom(flash(s), true); }
  Text& add(char c);
  /// A JSON string: quoted, '"' '\\' and control characters escaped.
  Text& json(const char* s) { return jsonFrom(s, false); }
  Text& json(const __FlashStringHelper* s) { return jsonFrom(flash(s), true); }
  Text& num(unsigned long long v);
  Text& num(long long v);
  Text& num(unsigned long v) { return num(static_cast<unsigned long long>(v)); }
  Text& num(unsigned v) { return num(static_cast<unsigned long long>(v)); }
  Text& num(long v) { return num(static_cast<long long>(v)); }
  Text& num(int v) { return num(static_cast<long long>(v)); }
  size_t length() const { return len_; }
  bool truncated() const { return truncated_; }
  const char* c_str() const { return buf_; }

 private:
  static const char* flash(const __FlashStringHelper* s) {
    return reinterpret_cast<const char*>(s);
  }
  Text& addFrom(const char* s, bool inFlash);
  Text& jsonFrom(const char* s, bool inFlash);
  bool fits(size_t n) const { return len_ + n < cap_; }
  void put(const char* s, size_t n);
  char* buf_;
  size_t cap_;
  size_t len_ = 0;
  bool truncated_ = false;
};

}  // namespace esphil
