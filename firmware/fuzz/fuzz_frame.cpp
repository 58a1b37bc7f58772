// libFuzzer target: the device's frame decoder (wifisocket/frame.h) fed arbitrary bytes in
// arbitrary chunkings, checked against a one-shot reference decoder written here from
// docs/protocol.md section 1 (and HELLO payloads against section 2).
//
// Input layout (every input is valid; missing bytes read as 0):
//   byte 0      bits 0-2: max_message = kMaxMessages[i]
//               bits 3-4: decoder buffer: 0 = max_message + 20, 1 = smaller than that by
//                         1 + bits 5-7 (may be below a header: a dead decoder),
//                         2 = a largest control frame (144), 3 = 4096 + 20
//   byte 1      bits 0-2: n - 1, the number of chunk sizes that follow
//               bit 3:    fix the CRCs: before decoding, every frame that the reference
//                         accepts gets a correct CRC written in (so mutations explore
//                         streams of valid frames, not only the CRC check)
//   byte 2      discard mask: the k-th accepted header gets discardPayload() if bit k % 8
//               is set (the frame is then only CRC-checked, never stored)
//   n bytes     chunk sizes, used in a cycle; 0 = "all the rest"
//   rest        the stream (at most kMaxStream bytes are used)
//
// Checked on every call: the decoder's events (header accepted, frame complete, error and
// its code) happen at exactly the stream offsets where the reference has them, whatever
// the chunking; it never holds more than the current partial frame (20 + max_message, or
// 20 + 124 for a control frame, and never more than its buffer); each frame's fields and
// payload are the bytes on the wire, and encodeFrame() re-encodes them byte for byte; a dead
// decoder takes nothing; reset() revives it. ASan/UBSan watch every access: the buffer is
// allocated with exactly its capacity.
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "wifisocket/frame.h"

namespace {

using wsock::FrameDecoder;

// Built with -DFUZZ_SELFTEST the reference is wrong on purpose (it takes a CLOSE of 124
// bytes for too long), so replaying the seeds must fail: proof that disagreements are caught.
#ifdef FUZZ_SELFTEST
constexpr uint32_t kReferenceCloseMax = 123;
#else
constexpr uint32_t kReferenceCloseMax = 124;
#endif

constexpr uint32_t kMaxMessages[8] = {0, 1, 8, 64, 124, 300, 1024, 4096};
constexpr size_t kMaxStream = 8192;
// Every event is at least 16 bytes after the previous one of its kind (headers are 16 bytes,
// frames 20): two events per frame plus the final error bound the count.
constexpr size_t kMaxEvents = 2 * (kMaxStream / wsock::kHeaderSize) + 4;

struct Event {
  char kind = 0;    // 'H' header accepted, 'F' frame complete, 'E' error
  size_t at = 0;    // stream bytes consumed when it happened
  uint8_t code = 0;
  uint32_t length = 0;
  bool operator==(const Event& o) const {
    return kind == o.kind && at == o.at && code == o.code && length == o.length;
  }
};

struct Events {
  Event list[kMaxEvents];
  size_t count = 0;
  void add(char kind, size_t at, uint8_t code, uint32_t length) {
    FUZZ_CHECK(count < kMaxEvents);
    list[count].kind = kind;
    list[count].at = at;
    list[count].code = code;
    list[count].length = length;
    ++count;
  }
};

// The header rules of docs/protocol.md section 1, in the documented order.
uint8_t referenceHeaderCheck(const uint8_t* h, uint32_t maxMessage) {
  const uint8_t type = h[2];
  const uint8_t flags = h[3];
  const uint32_t length = fuzz::be32(h + 4);
  const uint32_t seq = fuzz::be32(h + 8);
  if (type < 1 || type > 8) return wsock::kUnknownType;
  if (flags != 0) return wsock::kProtocol;
  const bool data = type == 2 || type == 3;
  if (data) {
    if (length > maxMessage) return wsock::kTooLarge;
  } else {
    uint32_t lo = 0, hi = 0;
    switch (type) {
      case 1: lo = 32; hi = 64; break;     // HELLO
      case 4: lo = 0; hi = 0; break;       // ACK
      case 5: case 6: lo = hi = 8; break;  // PING, PONG
      case 8: lo = hi = 32; break;         // AUTH (keyed links, section 6)
      default: lo = 1; hi = kReferenceCloseMax; break;  // CLOSE
    }
    if (length < lo || length > hi) return length > 64 ? wsock::kTooLarge : wsock::kProtocol;
  }
  if (data && seq == 0) return wsock::kProtocol;
  if (!data && seq != 0) return wsock::kProtocol;
  return wsock::kNormal;
}

bool discarded(uint8_t mask, size_t headerIndex) { return ((mask >> (headerIndex % 8)) & 1) != 0; }

// One-shot reference decoder over the whole stream. Returns the bytes of an incomplete
// last frame that a live decoder would be holding at the end. A legal frame too large for
// the decoder's buffer is TOO_LARGE when its first payload byte arrives, unless discarded.
size_t referenceDecode(const uint8_t* s, size_t n, uint32_t maxMessage, size_t cap,
                       uint8_t discardMask, Events* ev) {
  if (cap < wsock::kFrameOverhead) {
    ev->add('E', 0, wsock::kTooLarge, 0);
    return 0;
  }
  size_t pos = 0;
  size_t headers = 0;
  for (;;) {
    const size_t avail = n - pos;
    if (avail == 0) return 0;
    if (s[pos] != wsock::kMagic0) return ev->add('E', pos + 1, wsock::kProtocol, 0), 0;
    if (avail == 1) return 1;
    if (s[pos + 1] != wsock::kMagic1) return ev->add('E', pos + 2, wsock::kProtocol, 0), 0;
    if (avail < wsock::kHeaderSize) return avail;
    const uint8_t code = referenceHeaderCheck(s + pos, maxMessage);
    if (code != wsock::kNormal) return ev->add('E', pos + wsock::kHeaderSize, code, 0), 0;
    const uint32_t length = fuzz::be32(s + pos + 4);
    ev->add('H', pos + wsock::kHeaderSize, 0, length);
    const size_t total = wsock::kFrameOverhead + length;
    if (length > 0 && total > cap && !discarded(discardMask, headers) &&
        avail > wsock::kHeaderSize) {
      return ev->add('E', pos + wsock::kHeaderSize, wsock::kTooLarge, 0), 0;
    }
    ++headers;
    if (avail < total) return avail;
    const size_t body = wsock::kHeaderSize + length;
    if (fuzz::referenceCrc32(s + pos, body) != fuzz::be32(s + pos + body)) {
      return ev->add('E', pos + total, wsock::kBadCrc, 0), 0;
    }
    ev->add('F', pos + total, 0, length);
    pos += total;
  }
}

// Writes a correct CRC into every frame the reference would accept, front to back.
void fixCrcsInPlace(uint8_t* s, size_t n, uint32_t maxMessage) {
  size_t pos = 0;
  while (n - pos >= wsock::kHeaderSize && s[pos] == wsock::kMagic0 &&
         s[pos + 1] == wsock::kMagic1 &&
         referenceHeaderCheck(s + pos, maxMessage) == wsock::kNormal) {
    const size_t body = wsock::kHeaderSize + fuzz::be32(s + pos + 4);
    if (n - pos < body + wsock::kCrcSize) return;
    const uint32_t crc = fuzz::referenceCrc32(s + pos, body);
    wsock::putU32(s + pos + body, crc);
    pos += body + wsock::kCrcSize;
  }
}

// The HELLO checks of docs/protocol.md section 2 (and 6), in the documented order, by a side
// with (`keyed`) or without a key.
uint8_t referenceHelloCheck(const uint8_t* p, size_t len, bool keyed) {
  if (len < 32) return wsock::kProtocol;
  if (p[0] != 1 && p[0] != 2) return wsock::kVersion;
  if ((p[0] == 2) != keyed) return wsock::kAuthFailed;
  if (p[0] == 2 && len < 48) return wsock::kProtocol;
  if (p[1] != 0 || p[2] != 0 || p[3] != 0) return wsock::kProtocol;
  const uint32_t maxMessage = fuzz::be32(p + 4);
  const uint32_t window = fuzz::be32(p + 8);
  if (maxMessage < 1) return wsock::kProtocol;
  if (static_cast<uint64_t>(window) < static_cast<uint64_t>(maxMessage) + 20) {
    return wsock::kProtocol;
  }
  if (fuzz::be32(p + 16) == 0 && fuzz::be32(p + 20) == 0) return wsock::kProtocol;
  return wsock::kNormal;
}

void checkHello(const uint8_t* p, size_t len) {
  for (int side = 0; side < 2; ++side) {
    const bool keyed = side == 1;
    wsock::Hello h;
    const char* reason = nullptr;
    const uint8_t code = wsock::decodeHello(p, len, &h, &reason, keyed);
    FUZZ_CHECK(code == referenceHelloCheck(p, len, keyed));
    FUZZ_CHECK(reason != nullptr);
    if (code != wsock::kNormal) {
      FUZZ_CHECK(reason[0] != 0);
      continue;
    }
    // It re-encodes to the bytes it was read from (a version 2 HELLO with its nonce).
    uint8_t again[wsock::kHelloMaxPayload];
    const size_t n = wsock::encodeHello(h, again, sizeof again);
    FUZZ_CHECK(n == (keyed ? wsock::kKeyedHelloPayloadSize : wsock::kHelloPayloadSize));
    FUZZ_CHECK(memcmp(again, p, n) == 0);
  }
}

// A complete frame: its fields are the bytes on the wire, and it re-encodes to them.
// A discarded frame has no payload; the wire's payload re-encodes to the same bytes.
void checkFrame(const FrameDecoder& dec, const uint8_t* wire, size_t size, bool discard) {
  const wsock::FrameView& f = dec.frame();
  FUZZ_CHECK(size == wsock::kFrameOverhead + f.length);
  FUZZ_CHECK(f.type == wire[2] && f.flags == 0);
  FUZZ_CHECK(f.length == fuzz::be32(wire + 4));
  FUZZ_CHECK(f.seq == fuzz::be32(wire + 8) && f.ack == fuzz::be32(wire + 12));
  const uint8_t* payload = wire + wsock::kHeaderSize;
  if (discard) {
    FUZZ_CHECK(f.payload == nullptr);
  } else {
    FUZZ_CHECK(f.payload != nullptr);
    FUZZ_CHECK(memcmp(f.payload, payload, f.length) == 0);
    payload = f.payload;
  }
  static uint8_t out[wsock::kFrameOverhead + 4096];
  FUZZ_CHECK(wsock::encodeFrame(out, sizeof out, f.type, f.seq, f.ack, payload, f.length) ==
             size);
  FUZZ_CHECK(memcmp(out, wire, size) == 0);
  if (f.type == wsock::kHello && f.payload != nullptr) checkHello(f.payload, f.length);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Cursor in(data, size);
  const uint8_t cfg = in.u8();
  const uint32_t maxMessage = kMaxMessages[cfg & 7];
  size_t cap = 0;
  switch ((cfg >> 3) & 3) {
    case 0: cap = wsock::kFrameOverhead + maxMessage; break;
    case 1: {
      const size_t less = 1 + (cfg >> 5);
      const size_t full = wsock::kFrameOverhead + maxMessage;
      cap = full > less ? full - less : 0;
      break;
    }
    case 2: cap = wsock::kMaxControlFrame; break;
    default: cap = wsock::kFrameOverhead + 4096; break;
  }
  const uint8_t chunkCfg = in.u8();
  const size_t nChunks = (chunkCfg & 7) + 1;
  const bool fixCrcs = (chunkCfg & 8) != 0;
  const uint8_t discardMask = in.u8();
  uint8_t chunks[8];
  for (size_t i = 0; i < nChunks; ++i) chunks[i] = in.u8();
  size_t n = 0;
  const uint8_t* stream = in.bytes(kMaxStream, &n);
  static uint8_t fixed[kMaxStream];
  if (fixCrcs && n > 0) {
    memcpy(fixed, stream, n);
    fixCrcsInPlace(fixed, n, maxMessage);
    stream = fixed;
  }

  // Exactly `cap` bytes from the heap: ASan flags any access outside the decoder's buffer.
  uint8_t* buf = static_cast<uint8_t*>(malloc(cap > 0 ? cap : 1));
  FUZZ_CHECK(buf != nullptr);
  FrameDecoder dec(buf, cap, maxMessage);
  FUZZ_CHECK(dec.maxMessage() == maxMessage);

  static Events want;
  static Events got;
  want.count = got.count = 0;
  const size_t tail = referenceDecode(stream, n, maxMessage, cap, discardMask, &want);

  // An empty feed first: a live decoder needs more, a dead one reports its error.
  size_t consumed = 99;
  FrameDecoder::Status st = dec.feed(stream, 0, &consumed);
  FUZZ_CHECK(consumed == 0);
  if (st == FrameDecoder::kError) {
    got.add('E', 0, dec.errorCode(), 0);
  } else {
    FUZZ_CHECK(st == FrameDecoder::kNeedMore);
  }

  size_t pos = 0;         // stream bytes consumed
  size_t frameStart = 0;  // where the frame being decoded began
  size_t chunkIndex = 0;
  size_t headers = 0;     // headers accepted so far
  bool discard = false;   // the current frame's payload is discarded
  while (!dec.failed() && pos < n) {
    size_t chunk = chunks[chunkIndex++ % nChunks];
    if (chunk == 0 || chunk > n - pos) chunk = n - pos;
    const size_t chunkEnd = pos + chunk;
    while (pos < chunkEnd && !dec.failed()) {
      st = dec.feed(stream + pos, chunkEnd - pos, &consumed);
      FUZZ_CHECK(consumed <= chunkEnd - pos);
      pos += consumed;
      switch (st) {
        case FrameDecoder::kNeedMore:
          FUZZ_CHECK(pos == chunkEnd);
          break;
        case FrameDecoder::kHeader:
          FUZZ_CHECK(consumed > 0);
          FUZZ_CHECK(dec.frame().payload == nullptr);
          got.add('H', pos, 0, dec.frame().length);
          discard = discarded(discardMask, headers++);
          if (discard) dec.discardPayload();
          break;
        case FrameDecoder::kFrame:
          FUZZ_CHECK(consumed > 0);
          got.add('F', pos, 0, dec.frame().length);
          checkFrame(dec, stream + frameStart, pos - frameStart, discard);
          FUZZ_CHECK(dec.buffered() == 0);
          frameStart = pos;
          break;
        case FrameDecoder::kError:
          got.add('E', pos, dec.errorCode(), 0);
          break;
      }
      if (st != FrameDecoder::kError && st != FrameDecoder::kFrame) {
        // Only the frame in progress is held, and never more than fits the rules.
        FUZZ_CHECK(dec.buffered() == pos - frameStart);
        // (A discarded frame is counted but not stored, so it may exceed the buffer.)
        FUZZ_CHECK(dec.buffered() <= cap || discard);
        // A data frame is at most 20 + max_message bytes, a control frame 20 + 124.
        const size_t largest = maxMessage > wsock::kCloseMaxPayload ? maxMessage
                                                                    : wsock::kCloseMaxPayload;
        FUZZ_CHECK(dec.buffered() < wsock::kFrameOverhead + largest);
        if (st == FrameDecoder::kHeader || dec.buffered() > wsock::kHeaderSize) {
          FUZZ_CHECK(dec.buffered() < wsock::kFrameOverhead + dec.frame().length);
        }
      }
    }
  }

  FUZZ_CHECK(got.count == want.count);
  for (size_t i = 0; i < got.count; ++i) FUZZ_CHECK(got.list[i] == want.list[i]);

  if (dec.failed()) {
    FUZZ_CHECK(strcmp(wsock::closeCodeName(dec.errorCode()), "UNKNOWN") != 0);  // in the table
    FUZZ_CHECK(dec.errorReason() != nullptr && dec.errorReason()[0] != 0);
    // Dead: takes nothing more, however valid.
    const uint8_t more[1] = {wsock::kMagic0};
    FUZZ_CHECK(dec.feed(more, sizeof more, &consumed) == FrameDecoder::kError);
    FUZZ_CHECK(consumed == 0);
  } else {
    FUZZ_CHECK(pos == n);
    FUZZ_CHECK(dec.buffered() == tail);
  }

  // reset() forgets the partial frame and the error: an ACK goes through again.
  dec.reset();
  if (cap >= wsock::kFrameOverhead) {
    uint8_t ack[wsock::kFrameOverhead];
    const uint32_t ackValue = static_cast<uint32_t>(n) * 2654435761U;
    FUZZ_CHECK(wsock::encodeFrame(ack, sizeof ack, wsock::kAck, 0, ackValue, nullptr, 0) ==
               sizeof ack);
    FUZZ_CHECK(dec.feed(ack, sizeof ack, &consumed) == FrameDecoder::kHeader);
    FUZZ_CHECK(consumed == wsock::kHeaderSize);
    FUZZ_CHECK(dec.feed(ack + consumed, sizeof ack - consumed, &consumed) ==
               FrameDecoder::kFrame);
    FUZZ_CHECK(dec.frame().type == wsock::kAck && dec.frame().ack == ackValue);
  } else {
    FUZZ_CHECK(dec.failed());
  }

  // HELLO payload parsing on arbitrary lengths, not only the 32..64 the decoder lets by.
  checkHello(stream, n < 80 ? n : 80);
  free(buf);
  return 0;
}
