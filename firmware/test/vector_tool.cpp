// Line-oriented driver of the portable frame codec, for tests/unit/test_vectors_cpp.py.
//
// Commands (one per line on stdin, one answer line each on stdout):
//   decode <max_message> <chunk> <hex>   -> F:<type>:<flags>:<seq>:<ack>:<payloadhex> ...
//                                           then END:<buffered> or ERR:<code>
//   encode <type> <seq> <ack> <payloadhex> -> frame hex
//   hello <payloadhex>                   -> H:<version>:<max>:<window>:<keepalive>:<s16>:<r16>
//                                           or ERR:<code>
//   encode_hello <version> <max> <window> <keepalive> <s16> <r16> -> payload hex
// Keyed links (docs/protocol.md §6, tests/vectors/keyed.json):
//   hello_keyed <payloadhex>             -> as `hello`, by a side with a key
//   proof <key> <D|A> <hd> <ha>          -> proof(role) over the two HELLO payloads
//   kconn <key> <nonce_d> <nonce_a>      -> K_conn
//   tag_frame <kconn> <D|A> <n> <type> <seq> <ack> <payloadhex> -> frame and tag hex
//   decode_keyed <kconn> <D|A> <n> <max_message> <chunk> <hex>
//                                        -> as `decode`, every frame's tag checked (counter
//                                           from n on): F:... then END:<buffered> or ERR:<code>
//   endpoint <key> <D|A> <s16> <max> <window> <keepalive> <noncehex> <inputhex>
//                                        -> the device session core keyed, opened in that
//                                           role with that nonce, fed the input whole, the
//                                           application taking every message:
//                                           OUT:<hex written> MSG:<hex>... [CLOSE:<code>]
//                                           [ACTIVE]
// Malformed commands answer "BAD:<why>" so a test sees the mistake instead of a hang.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>
#include <vector>

#include "wifisocket/frame.h"
#include "wifisocket/hmac.h"
#include "wifisocket/keyed.h"
#include "wifisocket/session.h"

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

std::string cmdEncode(char* args);

bool parseRole(const char* s, uint8_t* role) {
  if (s == nullptr || (strcmp(s, "D") != 0 && strcmp(s, "A") != 0)) return false;
  *role = static_cast<uint8_t>(s[0]);
  return true;
}

bool parseKey(const char* s, std::vector<uint8_t>* out) {
  return parseHex(s ? s : "", out) && out->size() >= wsock::kKeyMin &&
         out->size() <= wsock::kKeyMax;
}

// Decodes `bytes` in chunks of `chunk` (0 = whole); with `connKey`, checks each frame's tag
// (dir, counter from n on) as a receiver on a keyed link does.
std::string decodeStream(const std::vector<uint8_t>& bytes, uint64_t maxMessage, uint64_t chunk,
                         const uint8_t* connKey, uint8_t dir, uint64_t n) {
  // A buffer sized like the device's: the largest data payload or the largest control
  // frame, and a tag.
  const size_t cap = (maxMessage > wsock::kCloseMaxPayload ? maxMessage : wsock::kCloseMaxPayload) +
                     wsock::kFrameOverhead + wsock::kTagSize;
  std::vector<uint8_t> buffer(cap);
  wsock::FrameDecoder dec(buffer.data(), buffer.size(), static_cast<uint32_t>(maxMessage));
  dec.setTagged(connKey != nullptr);
  std::string out;
  const size_t step = chunk == 0 ? bytes.size() : static_cast<size_t>(chunk);
  size_t pos = 0;
  int tagError = -1;
  while (pos < bytes.size() && !dec.failed() && tagError < 0) {
    size_t end = pos + step < bytes.size() ? pos + step : bytes.size();
    // Feed one chunk, exactly as a socket read would hand it over.
    while (pos < end) {
      size_t used = 0;
      const auto st = dec.feed(bytes.data() + pos, end - pos, &used);
      pos += used;
      if (st == wsock::FrameDecoder::kFrame) {
        const wsock::FrameView& f = dec.frame();
        if (connKey != nullptr) {
          uint8_t expect[wsock::kTagSize];
          wsock::frameTag(connKey, dir, n++, dec.frameBytes(), wsock::kHeaderSize + f.length,
                          nullptr, 0, expect);
          if (!wsock::constantTimeEqual(expect, dec.tag(), sizeof expect)) {
            tagError = wsock::kBadTag;
            break;
          }
        }
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
  if (tagError >= 0) {
    snprintf(tail, sizeof tail, "ERR:%d", tagError);
  } else if (dec.failed()) {
    snprintf(tail, sizeof tail, "ERR:%u", dec.errorCode());
  } else {
    snprintf(tail, sizeof tail, "END:%lu", static_cast<unsigned long>(dec.buffered()));
  }
  return out + tail;
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
  return decodeStream(bytes, maxMessage, chunk, nullptr, 0, 0);
}

std::string cmdDecodeKeyed(char* args) {
  const char* ks = strtok(args, " ");
  const char* ds = strtok(nullptr, " ");
  const char* ns = strtok(nullptr, " ");
  const char* maxs = strtok(nullptr, " ");
  const char* chunks = strtok(nullptr, " ");
  const char* hexs = strtok(nullptr, " ");
  std::vector<uint8_t> connKey, bytes;
  uint8_t dir = 0;
  uint64_t n = 0, maxMessage = 0, chunk = 0;
  if (!parseHex(ks ? ks : "", &connKey) || connKey.size() != wsock::kConnKeySize) {
    return "BAD:kconn";
  }
  if (!parseRole(ds, &dir) || !parseU64(ns, 10, &n) || !parseU64(maxs, 10, &maxMessage) ||
      !parseU64(chunks, 10, &chunk)) {
    return "BAD:args";
  }
  if (!parseHex(hexs ? hexs : "", &bytes)) return "BAD:hex";
  return decodeStream(bytes, maxMessage, chunk, connKey.data(), dir, n);
}

std::string cmdProof(char* args) {
  const char* ks = strtok(args, " ");
  const char* rs = strtok(nullptr, " ");
  const char* ds = strtok(nullptr, " ");
  const char* as = strtok(nullptr, " ");
  std::vector<uint8_t> key, hd, ha;
  uint8_t role = 0;
  if (!parseKey(ks, &key) || !parseRole(rs, &role)) return "BAD:args";
  if (!parseHex(ds ? ds : "", &hd) || !parseHex(as ? as : "", &ha)) return "BAD:hex";
  uint8_t out[wsock::kAuthPayload];
  wsock::authProof(key.data(), key.size(), role, hd.data(), hd.size(), ha.data(), ha.size(), out);
  return hex(out, sizeof out);
}

std::string cmdConnKey(char* args) {
  const char* ks = strtok(args, " ");
  const char* ds = strtok(nullptr, " ");
  const char* as = strtok(nullptr, " ");
  std::vector<uint8_t> key, nd, na;
  if (!parseKey(ks, &key)) return "BAD:key";
  if (!parseHex(ds ? ds : "", &nd) || !parseHex(as ? as : "", &na) ||
      nd.size() != wsock::kHelloNonceSize || na.size() != wsock::kHelloNonceSize) {
    return "BAD:nonce";
  }
  uint8_t out[wsock::kConnKeySize];
  wsock::connectionKey(key.data(), key.size(), nd.data(), na.data(), out);
  return hex(out, sizeof out);
}

std::string cmdTagFrame(char* args) {
  const char* ks = strtok(args, " ");
  const char* ds = strtok(nullptr, " ");
  const char* ns = strtok(nullptr, " ");
  char* rest = strtok(nullptr, "");
  std::vector<uint8_t> connKey;
  uint8_t dir = 0;
  uint64_t n = 0;
  if (!parseHex(ks ? ks : "", &connKey) || connKey.size() != wsock::kConnKeySize ||
      !parseRole(ds, &dir) || !parseU64(ns, 10, &n) || rest == nullptr) {
    return "BAD:args";
  }
  std::string frame = cmdEncode(rest);
  if (frame.rfind("BAD:", 0) == 0) return frame;
  std::vector<uint8_t> bytes;
  parseHex(frame.c_str(), &bytes);
  uint8_t tag[wsock::kTagSize];
  wsock::frameTag(connKey.data(), dir, n, bytes.data(), bytes.size() - wsock::kCrcSize, nullptr,
                  0, tag);
  return frame + hex(tag, sizeof tag);
}

// The nonce the endpoint command hands to its endpoint (one HELLO per run).
std::vector<uint8_t> g_nonce;

void fixedNonce(void*, uint8_t* out, size_t len) {
  for (size_t i = 0; i < len; ++i) out[i] = i < g_nonce.size() ? g_nonce[i] : 0;
}

std::string g_closed;

void recordClose(void*, int, uint8_t kind, uint8_t code, const char*) {
  if (kind == wsock::kClosedLocally) g_closed = " CLOSE:" + std::to_string(code);
}

std::string cmdEndpoint(char* args) {
  const char* f[8];
  for (int i = 0; i < 8; ++i) f[i] = strtok(i == 0 ? args : nullptr, " ");
  std::vector<uint8_t> key, input;
  uint8_t role = 0;
  uint64_t session = 0, maxMessage = 0, window = 0, keepalive = 0;
  if (!parseKey(f[0], &key) || !parseRole(f[1], &role) || !parseU64(f[2], 16, &session) ||
      !parseU64(f[3], 10, &maxMessage) || !parseU64(f[4], 10, &window) ||
      !parseU64(f[5], 10, &keepalive) || maxMessage == 0 || maxMessage > (1U << 20) ||
      window < maxMessage + wsock::kFrameOverhead || window > (4U << 20)) {
    return "BAD:args";
  }
  if (!parseHex(f[6] ? f[6] : "", &g_nonce) || !parseHex(f[7] ? f[7] : "", &input)) {
    return "BAD:hex";
  }
  wsock::EndpointConfig config;
  config.maxMessage = static_cast<uint32_t>(maxMessage);
  config.keepaliveMs = static_cast<uint32_t>(keepalive);
  std::vector<uint8_t> dec(maxMessage + wsock::kMaxControlFrame), rx(window), tx(4096);
  wsock::Endpoint ep(config, wsock::EndpointBuffers{dec.data(), dec.size(), rx.data(), rx.size(),
                                                    tx.data(), tx.size()});
  ep.setRandom(fixedNonce, nullptr);
  ep.setCloseHook(recordClose, nullptr);
  g_closed.clear();
  if (!ep.setKey(key.data(), key.size())) return "BAD:key";
  ep.start(session);
  const int slot =
      ep.open(0, role == wsock::kRoleAcceptor ? wsock::Endpoint::kAccepted
                                               : wsock::Endpoint::kDialled);
  std::vector<uint8_t> written, message(maxMessage);
  std::string messages;
  auto drain = [&]() {
    const uint8_t* p = nullptr;
    size_t n;
    while ((n = ep.peekOutput(slot, &p, 0)) > 0) {
      written.insert(written.end(), p, p + n);
      ep.consumeOutput(slot, n, 0);
    }
  };
  drain();
  ep.feed(slot, input.data(), input.size(), 0);
  drain();  // what the input was answered with, before the application acknowledges
  int got;
  while ((got = ep.receive(message.data(), message.size(), nullptr)) >= 0) {
    messages += " MSG:" + hex(message.data(), static_cast<size_t>(got));
  }
  return "OUT:" + hex(written.data(), written.size()) + messages + g_closed +
         (ep.connected() ? " ACTIVE" : "");
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

std::string cmdHello(char* args, bool keyed) {
  const char* ps = strtok(args, " ");
  std::vector<uint8_t> payload;
  if (!parseHex(ps ? ps : "", &payload)) return "BAD:hex";
  wsock::Hello h;
  const char* reason = nullptr;
  const uint8_t code = wsock::decodeHello(payload.data(), payload.size(), &h, &reason, keyed);
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
      answer = cmdHello(rest, false);
    } else if (strcmp(cmd, "hello_keyed") == 0) {
      answer = cmdHello(rest, true);
    } else if (strcmp(cmd, "proof") == 0) {
      answer = cmdProof(rest);
    } else if (strcmp(cmd, "kconn") == 0) {
      answer = cmdConnKey(rest);
    } else if (strcmp(cmd, "tag_frame") == 0) {
      answer = cmdTagFrame(rest);
    } else if (strcmp(cmd, "decode_keyed") == 0) {
      answer = cmdDecodeKeyed(rest);
    } else if (strcmp(cmd, "endpoint") == 0) {
      answer = cmdEndpoint(rest);
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
