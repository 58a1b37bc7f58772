// Host-compiled tests of the EspHil agent's console core (esphil/console.h).
//
// Without arguments: unit tests, "PASS <name>" per test and "FAIL ..." per failed check,
// non-zero exit on any failure. With `--tool`: one command per stdin line, one answer line
// each, for the property tests of tests/unit/test_console_cpp.py:
//   enc <hex>              -> percentEncode of the bytes (cap: 3 per byte + 1)
//   dec <text>             -> OK <hex> | BAD                (cap 1024)
//   wifi <args>            -> OK <ssid hex> <password hex> | ERR <why>
//   dial <args>            -> OK <host> <port> | OFF | ERR <why>
//   json <cap> <hex>       -> <0|1 truncated> <Text::json of the bytes with that cap>
//                             (MISMATCH when its F() overload writes anything else)
//   lines <hex>            -> L:<hex> per line, T per too-long line, in order ("-" if none)
//   key <args>             -> OK <key hex> <record hex> | OFF | ERR <why>
//   rec <hex>              -> OK <key hex> | NONE        (decodeKeyRecord of those bytes)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>

#include "check.h"
#include "esphil/console.h"

using namespace esphil;

namespace {


std::string feedAll(LineReader& r, const char* bytes) {
  std::string out;
  for (const char* p = bytes; *p; ++p) {
    const LineReader::Result res = r.feed(*p);
    if (res == LineReader::kLine) out += std::string("[") + r.line() + "]";
    if (res == LineReader::kTooLong) out += "T";
  }
  return out;
}

void test_lines_and_carriage_returns() {
  LineReader r;
  CHECK(feedAll(r, "info\r\nwifi a b\n\n") == "[info][wifi a b][]");
  CHECK(feedAll(r, "par") == "");  // nothing until the newline
  CHECK(feedAll(r, "tial\n") == "[partial]");
  CHECK(feedAll(r, "a\rb\n") == "[a\rb]");  // only a '\r' right before '\n' goes
}

void test_too_long_line_is_reported_once_and_forgotten() {
  LineReader r;
  std::string longLine(kLineMax, 'x');
  CHECK(feedAll(r, (longLine + "\n").c_str()) == "[" + longLine + "]");  // exactly fits
  CHECK(feedAll(r, (longLine + "y\ninfo\n").c_str()) == "T[info]");
}

void test_split_command() {
  char line[] = "  wifi   My%20Net  pw ";
  const Command c = splitCommand(line);
  CHECK(strcmp(c.name, "wifi") == 0 && strcmp(c.args, "My%20Net  pw ") == 0);
  char blank[] = "   ";
  const Command b = splitCommand(blank);
  CHECK(b.name[0] == 0 && b.args[0] == 0);
  char one[] = "info";
  const Command o = splitCommand(one);
  CHECK(strcmp(o.name, "info") == 0 && o.args[0] == 0);
}

void test_percent() {
  char out[8];
  CHECK(percentDecode("a%20B", out, sizeof out) && strcmp(out, "a B") == 0);
  CHECK(!percentDecode("%2", out, sizeof out));
  CHECK(!percentDecode("%zz", out, sizeof out));
  CHECK(!percentDecode("12345678", out, sizeof out));  // 8 + terminator > 8
  CHECK(percentDecode("1234567", out, sizeof out));
  char enc[16];
  CHECK(percentEncode("Power On", enc, sizeof enc) == 10 && strcmp(enc, "Power%20On") == 0);
  CHECK(percentEncode("a b", enc, 4) == 1 && strcmp(enc, "a") == 0);  // never half an escape
}

void test_wifi_arguments() {
  char ssid[kSsidMax + 1];
  char pass[kPassMax + 1];
  char a1[] = "My%20Net s%3Dcret";
  CHECK(parseWifi(a1, ssid, pass) == nullptr && strcmp(ssid, "My Net") == 0 &&
        strcmp(pass, "s=cret") == 0);
  char a2[] = "Open";
  CHECK(parseWifi(a2, ssid, pass) == nullptr && pass[0] == 0);
  char a3[] = "";
  CHECK(strcmp(parseWifi(a3, ssid, pass), "missing ssid") == 0);
  char a4[] = "%00 x";  // decodes to an empty SSID
  CHECK(strcmp(parseWifi(a4, ssid, pass), "bad ssid") == 0);
  std::string tooLong(kPassMax + 1, 'p');
  std::string a5 = "net " + tooLong;
  CHECK(strcmp(parseWifi(&a5[0], ssid, pass), "bad password") == 0);
  std::string longest = std::string(kSsidMax, 's') + " " + std::string(kPassMax, 'p');
  CHECK(parseWifi(&longest[0], ssid, pass) == nullptr && strlen(ssid) == kSsidMax &&
        strlen(pass) == kPassMax);
}

void test_dial_arguments() {
  char host[kHostMax + 1];
  uint16_t port = 0;
  bool off = true;
  char a1[] = "192.168.1.10 9000";
  CHECK(parseDial(a1, host, &port, &off) == nullptr && !off && strcmp(host, "192.168.1.10") == 0 &&
        port == 9000);
  char a2[] = "off";
  CHECK(parseDial(a2, host, &port, &off) == nullptr && off);
  char a3[] = "host 65536";
  CHECK(parseDial(a3, host, &port, &off) == kDialUsage);
  char a4[] = "host 0";
  CHECK(parseDial(a4, host, &port, &off) == kDialUsage);
  char a5[] = "ho/st 80";
  CHECK(strcmp(parseDial(a5, host, &port, &off), "bad host name") == 0);
  char a6[] = "host 80 extra";
  CHECK(parseDial(a6, host, &port, &off) == kDialUsage);
  std::string a7 = std::string(kHostMax + 1, 'h') + " 80";
  CHECK(strcmp(parseDial(&a7[0], host, &port, &off), "host name too long") == 0);
  std::string a8 = std::string(kHostMax, 'h') + " 65535";
  CHECK(parseDial(&a8[0], host, &port, &off) == nullptr && strlen(host) == kHostMax && port == 65535);
}

void test_key_arguments() {
  uint8_t key[kKeyMax];
  size_t len = 99;
  const std::string k16(32, 'a');
  CHECK(parseKey(k16.c_str(), key, &len) == nullptr && len == 16 && key[0] == 0xAA && key[15] == 0xAA);
  const std::string k32 = "  " + std::string(62, 'F') + "0e ";  // spaces around: one word
  CHECK(parseKey(k32.c_str(), key, &len) == nullptr && len == 32 && key[30] == 0xFF && key[31] == 0x0E);
  CHECK(parseKey("off", key, &len) == nullptr && len == 0);
  CHECK(parseKey("", key, &len) == kKeyUsage && len == 0);
  CHECK(parseKey("   ", key, &len) == kKeyUsage);
  CHECK(parseKey((k16 + " extra").c_str(), key, &len) == kKeyUsage);
  CHECK(parseKey("off now", key, &len) == kKeyUsage);
  CHECK(strcmp(parseKey((std::string(31, 'a') + "g").c_str(), key, &len), "not hex") == 0);
  CHECK(strcmp(parseKey(std::string(33, 'a').c_str(), key, &len), "odd number of hex digits") == 0);
  CHECK(strcmp(parseKey(std::string(30, 'a').c_str(), key, &len), "too short") == 0);
  CHECK(strcmp(parseKey(std::string(66, 'a').c_str(), key, &len), "too long") == 0);
  CHECK(len == 0);  // a refused key leaves no length behind
}

void test_key_record() {
  CHECK(crc32(reinterpret_cast<const uint8_t*>("123456789"), 9) == 0xCBF43926u);  // the check value
  uint8_t key[kKeyMax];
  for (size_t i = 0; i < sizeof key; ++i) key[i] = static_cast<uint8_t>(0xA0 + i);
  uint8_t record[kKeyRecordSize];
  CHECK(!encodeKeyRecord(key, kKeyMin - 1, record) && !encodeKeyRecord(key, kKeyMax + 1, record));
  CHECK(encodeKeyRecord(key, 20, record));
  CHECK(memcmp(record, "EHK1\x14\0\0\0", 8) == 0 && record[8] == 0xA0 && record[8 + 20] == 0);
  uint8_t out[kKeyMax];
  CHECK(decodeKeyRecord(record, out) == 20 && memcmp(out, key, 20) == 0);
  for (size_t i = 0; i < sizeof record; ++i) {  // any single flipped bit: no key
    record[i] ^= 0x10;
    CHECK(decodeKeyRecord(record, out) == 0 && out[0] == 0);
    record[i] ^= 0x10;
  }
  uint8_t erased[kKeyRecordSize];
  memset(erased, 0xFF, sizeof erased);
  CHECK(decodeKeyRecord(erased, out) == 0);
  memset(erased, 0, sizeof erased);
  CHECK(decodeKeyRecord(erased, out) == 0);
}

void test_text_appender() {
  char buf[16];
  Text t(buf, sizeof buf);
  t.add("{\"n\": ").num(-42L).add('}');
  CHECK(strcmp(buf, "{\"n\": -42}") == 0 && !t.truncated());
  Text big(buf, sizeof buf);
  big.num(18446744073709551615ULL);  // 20 digits do not fit in 15: nothing, not half
  CHECK(buf[0] == 0 && big.truncated());
  Text q(buf, sizeof buf);
  q.json("a\"b\n");
  CHECK(strcmp(buf, "\"a\\\"b\\u000a\"") == 0);
  Text cut(buf, 8);
  cut.json("\n\n");  // "\u000a" is 6: one fits with both quotes (8 - 1 for the terminator)
  CHECK(strcmp(buf, "\"\"") == 0 && cut.truncated());
  char min[24];
  Text m(min, sizeof min);
  m.num(static_cast<long long>(-9223372036854775807LL - 1));
  CHECK(strcmp(min, "-9223372036854775808") == 0);
  // The F() overloads read the same bytes the same way (here flash is ordinary memory).
  const auto* f = reinterpret_cast<const __FlashStringHelper*>("a\"b\n");
  Text fj(buf, 8);
  fj.add(f).json(f);
  CHECK(strcmp(buf, "a\"b\n\"a\"") == 0 && fj.truncated());
}

// --- tool mode -----------------------------------------------------------------------

bool fromHex(const char* hex, std::string* out) {
  const size_t n = strlen(hex);
  if (n % 2 != 0) return false;
  out->clear();
  for (size_t i = 0; i < n; i += 2) {
    unsigned v = 0;
    if (sscanf(hex + i, "%2x", &v) != 1) return false;
    out->push_back(static_cast<char>(v));
  }
  return true;
}

std::string toHex(const std::string& s) {
  std::string out;
  char b[3];
  for (unsigned char c : s) {
    snprintf(b, sizeof b, "%02x", c);
    out += b;
  }
  return out;
}

void answer(char* line) {
  const Command c = splitCommand(line);
  std::string bytes;
  if (strcmp(c.name, "enc") == 0 && fromHex(c.args, &bytes) && bytes.find('\0') == std::string::npos) {
    std::string out(3 * bytes.size() + 1, '\0');
    const size_t n = percentEncode(bytes.c_str(), &out[0], out.size());
    printf("%s\n", std::string(out.c_str(), n).c_str());
  } else if (strcmp(c.name, "dec") == 0) {
    char out[1024];
    if (percentDecode(c.args, out, sizeof out)) {
      printf("OK %s\n", toHex(out).c_str());
    } else {
      printf("BAD\n");
    }
  } else if (strcmp(c.name, "wifi") == 0) {
    char ssid[kSsidMax + 1];
    char pass[kPassMax + 1];
    const char* why = parseWifi(c.args, ssid, pass);
    if (why == nullptr) {
      printf("OK %s %s\n", toHex(ssid).c_str(), toHex(pass).c_str());
    } else {
      printf("ERR %s\n", why);
    }
  } else if (strcmp(c.name, "dial") == 0) {
    char host[kHostMax + 1];
    uint16_t port = 0;
    bool off = false;
    const char* why = parseDial(c.args, host, &port, &off);
    if (why != nullptr) {
      printf("ERR %s\n", why);
    } else if (off) {
      printf("OFF\n");
    } else {
      printf("OK %s %u\n", host, static_cast<unsigned>(port));
    }
  } else if (strcmp(c.name, "key") == 0) {
    uint8_t key[kKeyMax];
    size_t len = 0;
    uint8_t record[kKeyRecordSize];
    const char* why = parseKey(c.args, key, &len);
    if (why != nullptr) {
      printf("ERR %s\n", why);
    } else if (len == 0) {
      printf("OFF\n");
    } else if (!encodeKeyRecord(key, len, record)) {
      printf("BAD record\n");
    } else {
      printf("OK %s %s\n", toHex(std::string(reinterpret_cast<char*>(key), len)).c_str(),
             toHex(std::string(reinterpret_cast<char*>(record), sizeof record)).c_str());
    }
  } else if (strcmp(c.name, "rec") == 0 && fromHex(c.args, &bytes) && bytes.size() == kKeyRecordSize) {
    uint8_t record[kKeyRecordSize];
    uint8_t key[kKeyMax];
    memcpy(record, bytes.data(), sizeof record);
    const size_t len = decodeKeyRecord(record, key);
    if (len == 0) {
      printf("NONE\n");
    } else {
      printf("OK %s\n", toHex(std::string(reinterpret_cast<char*>(key), len)).c_str());
    }
  } else if (strcmp(c.name, "json") == 0) {
    Command rest = splitCommand(c.args);
    const long cap = strtol(rest.name, nullptr, 10);
    if (cap < 1 || cap > 4096 || !fromHex(rest.args, &bytes) ||
        bytes.find('\0') != std::string::npos) {
      printf("BAD json\n");
      return;
    }
    std::string buf(static_cast<size_t>(cap), '\0');
    Text t(&buf[0], buf.size());
    t.json(bytes.c_str());
    std::string flashBuf(buf.size(), '\0');
    Text f(&flashBuf[0], flashBuf.size());
    f.json(reinterpret_cast<const __FlashStringHelper*>(bytes.c_str()));
    if (flashBuf != buf || f.truncated() != t.truncated()) {
      printf("MISMATCH json F()\n");
      return;
    }
    printf("%d %s\n", t.truncated() ? 1 : 0, t.c_str());
  } else if (strcmp(c.name, "lines") == 0 && fromHex(c.args, &bytes)) {
    LineReader r;
    std::string out;
    for (char ch : bytes) {
      const LineReader::Result res = r.feed(ch);
      if (res == LineReader::kLine) out += " L:" + toHex(r.line());
      if (res == LineReader::kTooLong) out += " T";
    }
    printf("%s\n", out.empty() ? "-" : out.c_str() + 1);
  } else {
    printf("BAD command\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  if (argc > 1 && strcmp(argv[1], "--tool") == 0) {
    static char line[64 * 1024];
    while (fgets(line, sizeof line, stdin) != nullptr) {
      const size_t n = strlen(line);
      if (n > 0 && line[n - 1] == '\n') line[n - 1] = 0;
      answer(line);
    }
    return 0;
  }
  const check::Test tests[] = {
      {"lines_and_carriage_returns", test_lines_and_carriage_returns},
      {"too_long_line_is_reported_once_and_forgotten", test_too_long_line_is_reported_once_and_forgotten},
      {"split_command", test_split_command},
      {"percent", test_percent},
      {"wifi_arguments", test_wifi_arguments},
      {"dial_arguments", test_dial_arguments},
      {"key_arguments", test_key_arguments},
      {"key_record", test_key_record},
      {"text_appender", test_text_appender},
  };
  return check::runTests(tests);
}
