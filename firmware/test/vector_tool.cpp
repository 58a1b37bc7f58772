// Line-oriented driver of the portable frame codec, for tests/unit/test_vectors_cpp.py.
//
// Commands (one per line on stdin, one answer line each on stdout):
//   decode <max_message> <chunk> <hex>   -> F:<type>:<flags>:<seq>:<ack>:<payloadhex> ...
//                                           then END:<buffered> or ERR:<code>
//   encode <type> <seq> <ack> <payloadhex> -> frame hex
//   hello <payloadhex>                   -> H:<version>:<max>:<window>:<keepalive>:<s16>:<r16>
//                                           or ERR:<code>
//   encode_hello <version> <max> <window> <keepalive> <s16> <r16> -> payload hex
// Malformed commands answer "BAD:<why>" so a test sees the mistake instead of a hang.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>
#include <vector>

#include "wifisocket/frame.h"

namespace {

bool parseHex(const char* s, std::vector<uint8_t>* out) {
  out->clear();
  const size_t n = strlen(s);
  if (n % 2 != 0) return false;
  for (size_t i = 0; i < n; i += 2) {
    char pair[3] = {s[i], s[i + 1], 0};
    char* end = nullptr;
    const unsigned long v = strtoul(pair, &end, 16);
    if (end != pair + 2) return false;
    out->push_back(static_cast<uint8_t>(v));
  }
  return true;
}

std::string hex(const uint8_t* p, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    s.push_back(kDigits[p[i] >> 4]);
    s.push_back(kDigits[p[i] & 0x0F]);
  }
  return s;
}

bool parseU64(const char* s, int base, uint64_t* out) {
  if (s == nullptr || *s == 0) return false;
  char* end = nullptr;
  *out = strtoull(s, &end, base);
  return *end == 0;
}

std::string cmdDecode(char* args) {
  const char* maxs = strtok(args, " ");
  const char* chunks = strtok(nullptr, " ");
  const char* hexs = strtok(nullptr, " ");
  uint64_t maxMessage = 0;
  uint64_t chunk = 0;
  std::vector<uint8_t> bytes;
  if (!parseU64(maxs, 10, &maxMessage) || !parseU64(chunks, 10, &chunk)) return "BAD:args";
  if (!parseHex(hexs ? hexs : "", &bytes)) return "BAD:hex";
  // A buffer sized like the device's: the largest data payload or the largest control frame.
  const size_t cap = (maxMessage > wsock::kCloseMaxPayload ? maxMessage : wsock::kCloseMaxPayload) +
                     wsock::kFrameOverhead;
  std::vector<uint8_t> buffer(cap);
  wsock::FrameDecoder dec(buffer.data(), buffer.size(), static_cast<uint32_t>(maxMessage));
  std::string out;
  const size_t step = chunk == 0 ? bytes.size() : static_cast<size_t>(chunk);
  size_t pos = 0;
  while (pos < bytes.size() && !dec.failed()) {
    size_t end = pos + step < bytes.size() ? pos + step : bytes.size();
    // Feed one chunk, exactly as a socket read would hand it over.
    while (pos < end) {
      size_t used = 0;
      const auto st = dec.feed(bytes.data() + pos, end - pos, &used);
      pos += used;
      if (st == wsock::FrameDecoder::kFrame) {
        const wsock::FrameView& f = dec.frame();
        char head[80];
        snprintf(head, sizeof head, "F:%u:%u:%lu:%lu:", f.type, f.flags,
                 static_cast<unsigned long>(f.seq), static_cast<unsigned long>(f.ack));
        out += head;
        out += hex(f.payload, f.length);
        out += ' ';
      } else if (st == wsock::FrameDecoder::kError) {
        break;
      }
    }
  }
  char tail[32];
  if (dec.failed()) {
    snprintf(tail, sizeof tail, "ERR:%u", dec.errorCode());
  } else {
    snprintf(tail, sizeof tail, "END:%lu", static_cast<unsigned long>(dec.buffered()));
  }
  return out + tail;
}

std::string cmdEncode(char* args) {
  const char* ts = strtok(args, " ");
  const char* ss = strtok(nullptr, " ");
  const char* as = strtok(nullptr, " ");
  const char* ps = strtok(nullptr, " ");
  uint64_t type = 0, seq = 0, ack = 0;
  std::vector<uint8_t> payload;
  if (!parseU64(ts, 10, &type) || !parseU64(ss, 10, &seq) || !parseU64(as, 10, &ack)) {
    return "BAD:args";
  }
  if (!parseHex(ps ? ps : "", &payload)) return "BAD:hex";
  std::vector<uint8_t> out(payload.size() + wsock::kFrameOverhead);
  const size_t n = wsock::encodeFrame(out.data(), out.size(), static_cast<uint8_t>(type),
                                      static_cast<uint32_t>(seq), static_cast<uint32_t>(ack),
                                      payload.data(), payload.size());
  if (n == 0) return "BAD:encode";
  return hex(out.data(), n);
}

std::string cmdHello(char* args) {
  const char* ps = strtok(args, " ");
  std::vector<uint8_t> payload;
  if (!parseHex(ps ? ps : "", &payload)) return "BAD:hex";
  wsock::Hello h;
  const char* reason = nullptr;
  const uint8_t code = wsock::decodeHello(payload.data(), payload.size(), &h, &reason);
  char line[160];
  if (code != wsock::kNormal) {
    snprintf(line, sizeof line, "ERR:%u", code);
  } else {
    snprintf(line, sizeof line, "H:%u:%lu:%lu:%lu:%016llx:%016llx", h.version,
             static_cast<unsigned long>(h.maxMessage), static_cast<unsigned long>(h.window),
             static_cast<unsigned long>(h.keepaliveMs),
             static_cast<unsigned long long>(h.session),
             static_cast<unsigned long long>(h.resume));
  }
  return line;
}

std::string cmdEncodeHello(char* args) {
  const char* f[6];
  for (int i = 0; i < 6; ++i) f[i] = strtok(i == 0 ? args : nullptr, " ");
  uint64_t v[6];
  for (int i = 0; i < 6; ++i) {
    if (!parseU64(f[i], i < 4 ? 10 : 16, &v[i])) return "BAD:args";
  }
  wsock::Hello h;
  h.version = static_cast<uint8_t>(v[0]);
  h.maxMessage = static_cast<uint32_t>(v[1]);
  h.window = static_cast<uint32_t>(v[2]);
  h.keepaliveMs = static_cast<uint32_t>(v[3]);
  h.session = v[4];
  h.resume = v[5];
  uint8_t out[wsock::kHelloPayloadSize];
  const size_t n = wsock::encodeHello(h, out, sizeof out);
  return n == 0 ? std::string("BAD:encode") : hex(out, n);
}

}  // namespace

int main() {
  std::string line;
  int c;
  while (true) {
    line.clear();
    while ((c = getchar()) != EOF && c != '\n') line.push_back(static_cast<char>(c));
    if (line.empty() && c == EOF) break;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::vector<char> buf(line.begin(), line.end());
    buf.push_back(0);
    char* cmd = strtok(buf.data(), " ");
    char* rest = strtok(nullptr, "");
    char empty[1] = {0};
    if (rest == nullptr) rest = empty;
    std::string answer;
    if (cmd == nullptr) {
      answer = "BAD:empty";
    } else if (strcmp(cmd, "decode") == 0) {
      answer = cmdDecode(rest);
    } else if (strcmp(cmd, "encode") == 0) {
      answer = cmdEncode(rest);
    } else if (strcmp(cmd, "hello") == 0) {
      answer = cmdHello(rest);
    } else if (strcmp(cmd, "encode_hello") == 0) {
      answer = cmdEncodeHello(rest);
    } else {
      answer = "BAD:command";
    }
    fputs(answer.c_str(), stdout);
    fputc('\n', stdout);
    fflush(stdout);
    if (c == EOF) break;
  }
  return 0;
}
