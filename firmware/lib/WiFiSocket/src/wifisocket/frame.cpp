// Frame and HELLO codec of the WiFiSocket protocol. See frame.h.
#include "frame.h"

#include <string.h>

namespace wsock {

namespace {

// CRC-32 table size, chosen at compile time (-DWIFISOCKET_CRC=...):
//   4  16-entry (nibble) table, 64 B: the default on the ESP8266 (xtensa), where constant
//      data sits in scarce DRAM unless marked PROGMEM (an Arduino header, not used here);
//   8  256-entry table, 1 KiB: about twice as fast;
//   64 slicing-by-8, 8 KiB: eight bytes per step, 10-20 times as fast as the nibble table
//      (2 us against 19-46 us per 4 KiB frame on the development VM); the default where
//      RAM is cheap (the twin, the host tests, the fuzzers).
// All three compute the same CRC (checked against zlib.crc32 for every length up to 300 at
// every alignment; the vector tests run the default of the host).
#ifndef WIFISOCKET_CRC
#if defined(__XTENSA__)
#define WIFISOCKET_CRC 4
#else
#define WIFISOCKET_CRC 64
#endif
#endif
#if WIFISOCKET_CRC != 4 && WIFISOCKET_CRC != 8 && WIFISOCKET_CRC != 64
#error "WIFISOCKET_CRC must be 4, 8 or 64"
#endif

constexpr uint32_t kCrcPoly = 0xEDB88320U;  // reflected IEEE 802.3

#if WIFISOCKET_CRC == 4
// CRC-32 of every 4-bit value with the reflected IEEE polynomial 0xEDB88320.
const uint32_t kCrcNibble[16] = {
    0x00000000U, 0x1DB71064U, 0x3B6E20C8U, 0x26D930ACU, 0x76DC4190U, 0x6B6B51F4U,
    0x4DB26158U, 0x5005713CU, 0xEDB88320U, 0xF00F9344U, 0xD6D6A3E8U, 0xCB61B38CU,
    0x9B64C2B0U, 0x86D3D2D4U, 0xA00AE278U, 0xBDBDF21CU,
};
#else
constexpr int kCrcSlices = WIFISOCKET_CRC == 64 ? 8 : 1;

// t[0][b]: CRC register after shifting byte b through; t[k][b]: the same followed by k
// zero bytes (for slicing: the contribution of a byte k positions before the end).
struct CrcTables {
  uint32_t t[kCrcSlices][256];
  constexpr CrcTables() : t() {
    for (uint32_t b = 0; b < 256; ++b) {
      uint32_t c = b;
      for (int k = 0; k < 8; ++k) c = (c & 1U) ? (c >> 1) ^ kCrcPoly : c >> 1;
      t[0][b] = c;
    }
    for (int k = 1; k < kCrcSlices; ++k) {
      for (uint32_t b = 0; b < 256; ++b) {
        t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xFFU];
      }
    }
  }
};
constexpr CrcTables kCrc{};

inline uint32_t loadLe32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
#endif

struct ControlRange {  // bytes: every control payload is at most 124 (9 x 2 B of DRAM)
  uint8_t min;
  uint8_t max;
};

// Payload length range of each control type, indexed by type (data types unused).
const ControlRange kControlRange[9] = {
    {0, 0},                                  // 0: not a type
    {kHelloMinPayload, kHelloMaxPayload},    // HELLO
    {0, 0},                                  // TEXT (data)
    {0, 0},                                  // BINARY (data)
    {0, 0},                                  // ACK
    {kNoncePayload, kNoncePayload},          // PING
    {kNoncePayload, kNoncePayload},          // PONG
    {1, kCloseMaxPayload},                   // CLOSE
    {kAuthPayload, kAuthPayload},            // AUTH
};

}  // namespace

const char* closeCodeName(uint8_t code) {
  static const char* const kNames[] = {
      "NORMAL",  "PROTOCOL", "BAD_CRC",  "TOO_LARGE", "UNKNOWN_TYPE", "VERSION",
      "TIMEOUT", "REPLACED", "SEQUENCE", "WINDOW",    "INVALID_TEXT", "BUSY",
      "AUTH",    "BAD_TAG",
  };
  return code < sizeof(kNames) / sizeof(kNames[0]) ? kNames[code] : "UNKNOWN";
}

uint32_t crc32Update(uint32_t crc, const uint8_t* data, size_t len) {
  crc = ~crc;
#if WIFISOCKET_CRC == 4
  for (size_t i = 0; i < len; ++i) {
    crc ^= data[i];
    crc = (crc >> 4) ^ kCrcNibble[crc & 0x0F];
    crc = (crc >> 4) ^ kCrcNibble[crc & 0x0F];
  }
#else
#if WIFISOCKET_CRC == 64
  const auto& t = kCrc.t;
  for (; len >= 8; len -= 8, data += 8) {
    const uint32_t a = crc ^ loadLe32(data);
    const uint32_t b = loadLe32(data + 4);
    crc = t[7][a & 0xFFU] ^ t[6][(a >> 8) & 0xFFU] ^ t[5][(a >> 16) & 0xFFU] ^ t[4][a >> 24] ^
          t[3][b & 0xFFU] ^ t[2][(b >> 8) & 0xFFU] ^ t[1][(b >> 16) & 0xFFU] ^ t[0][b >> 24];
  }
#endif
  for (size_t i = 0; i < len; ++i) crc = (crc >> 8) ^ kCrc.t[0][(crc ^ data[i]) & 0xFFU];
#endif
  return ~crc;
}

void writeHeader(uint8_t* out, uint8_t type, uint32_t length, uint32_t seq, uint32_t ack) {
  out[0] = kMagic0;
  out[1] = kMagic1;
  out[2] = type;
  out[3] = 0;
  putU32(out + 4, length);
  putU32(out + 8, seq);
  putU32(out + 12, ack);
}

size_t encodeFrame(uint8_t* out, size_t cap, uint8_t type, uint32_t seq, uint32_t ack,
                   const uint8_t* payload, size_t len) {
  if (len > 0xFFFFFFFFU - kFrameOverhead || cap < kFrameOverhead || len > cap - kFrameOverhead) {
    return 0;
  }
  writeHeader(out, type, static_cast<uint32_t>(len), seq, ack);
  if (len > 0) memcpy(out + kHeaderSize, payload, len);
  putU32(out + kHeaderSize + len, crc32(out, kHeaderSize + len));
  return kFrameOverhead + len;
}

FrameDecoder::FrameDecoder(uint8_t* buffer, size_t capacity, uint32_t maxMessage)
    : buf_(buffer), cap_(capacity), maxMessage_(maxMessage) {
  reset();
}

void FrameDecoder::reset() {
  fill_ = 0;
  need_ = 0;
  discard_ = false;
  tagged_ = false;  // a fresh connection: untagged until the peer's AUTH (§6)
  frameDone_ = false;
  error_ = 0xFF;
  reason_ = "";
  frame_ = FrameView();
  // Without room for a header the decoder could only overflow: refuse every byte instead.
  if (buf_ == nullptr || cap_ < kFrameOverhead) fail(kTooLarge, "decoder buffer too small");
}

FrameDecoder::Status FrameDecoder::fail(uint8_t code, const char* reason) {
  error_ = code;
  reason_ = reason;
  frame_.payload = nullptr;
  return kError;
}

FrameDecoder::Status FrameDecoder::checkHeader() {
  frame_.type = buf_[2];
  frame_.flags = buf_[3];
  frame_.length = getU32(buf_ + 4);
  frame_.seq = getU32(buf_ + 8);
  frame_.ack = getU32(buf_ + 12);
  frame_.payload = nullptr;
  const uint8_t type = frame_.type;
  const uint32_t length = frame_.length;
  if (type < kHello || type > kAuth) return fail(kUnknownType, "unknown frame type");
  if (frame_.flags != 0) return fail(kProtocol, "reserved flags set");
  const bool data = isDataType(type);
  if (data) {
    if (length > maxMessage_) return fail(kTooLarge, "message larger than max_message");
  } else {
    const ControlRange& r = kControlRange[type];
    if (length < r.min || length > r.max) {
      if (length > kControlTooLarge) return fail(kTooLarge, "control frame too large");
      return fail(kProtocol, "bad control frame length");
    }
  }
  if (data && frame_.seq == 0) return fail(kProtocol, "data frame with seq 0");
  if (!data && frame_.seq != 0) return fail(kProtocol, "control frame with seq");
  need_ = kFrameOverhead + static_cast<size_t>(length) + (tagged_ ? kTagSize : 0);
  crc_ = crc32(buf_, kHeaderSize);
  return kHeader;
}

FrameDecoder::Status FrameDecoder::feed(const uint8_t* data, size_t len, size_t* consumed) {
  *consumed = 0;
  if (failed()) return kError;
  if (frameDone_) {
    // The previous call handed out a frame; its bytes may now be reused.
    fill_ = 0;
    need_ = 0;
    discard_ = false;
    frameDone_ = false;
    frame_ = FrameView();
  }
  size_t i = 0;
  while (i < len) {
    if (need_ == 0) {
      const uint8_t b = data[i++];
      if ((fill_ == 0 && b != kMagic0) || (fill_ == 1 && b != kMagic1)) {
        *consumed = i;
        return fail(kProtocol, "bad magic");
      }
      buf_[fill_++] = b;
      if (fill_ == kHeaderSize) {
        *consumed = i;
        return checkHeader();
      }
      continue;
    }
    const size_t payloadEnd = kHeaderSize + frame_.length;
    const size_t crcEnd = payloadEnd + kCrcSize;
    // Protocol-legal but beyond the memory this decoder was given (unless discarded): checked
    // before the first byte is stored (the payload's or, for an empty tagged frame, the tag's).
    if (!discard_ && need_ > cap_ && (fill_ < payloadEnd || fill_ >= crcEnd)) {
      *consumed = i;
      return fail(kTooLarge, "frame larger than receive buffer");
    }
    if (fill_ < payloadEnd) {
      size_t take = payloadEnd - fill_;
      if (take > len - i) take = len - i;
      if (!discard_) memcpy(buf_ + fill_, data + i, take);
      crc_ = crc32Update(crc_, data + i, take);
      fill_ += take;
      i += take;
      continue;
    }
    if (fill_ < crcEnd) {
      crcBytes_[fill_ - payloadEnd] = data[i++];
      if (++fill_ == crcEnd && crc_ != getU32(crcBytes_)) {
        *consumed = i;
        return fail(kBadCrc, "CRC mismatch");  // noise, found before the tag (§6)
      }
    } else {
      // The tag goes where the CRC would be in the buffer (the CRC is kept apart).
      const uint8_t b = data[i++];
      if (!discard_) buf_[payloadEnd + (fill_ - crcEnd)] = b;
      ++fill_;
    }
    if (fill_ == need_) {
      *consumed = i;
      frame_.payload = discard_ ? nullptr : buf_ + kHeaderSize;
      frameDone_ = true;
      return kFrame;
    }
  }
  *consumed = i;
  return kNeedMore;
}

size_t encodeHello(const Hello& hello, uint8_t* out, size_t cap) {
  const bool keyed = hello.version == kKeyedProtocolVersion;
  const size_t size = keyed ? kKeyedHelloPayloadSize : kHelloPayloadSize;
  if (cap < size) return 0;
  out[0] = hello.version;
  out[1] = 0;
  out[2] = 0;
  out[3] = 0;
  putU32(out + 4, hello.maxMessage);
  putU32(out + 8, hello.window);
  putU32(out + 12, hello.keepaliveMs);
  putU64(out + 16, hello.session);
  putU64(out + 24, hello.resume);
  if (keyed) memcpy(out + kHelloPayloadSize, hello.nonce, kHelloNonceSize);
  return size;
}

uint8_t decodeHello(const uint8_t* payload, size_t len, Hello* out, const char** reason,
                    bool keyed) {
  if (len < kHelloPayloadSize) {
    *reason = "HELLO too short";
    return kProtocol;
  }
  // Version first: a later major version may give the reserved bytes a meaning.
  const uint8_t version = payload[0];
  if (version != kProtocolVersion && version != kKeyedProtocolVersion) {
    *reason = "unsupported protocol version";
    return kVersion;
  }
  // Keyed-ness is configuration on both sides, never negotiated (docs/protocol.md §6).
  if (version == kKeyedProtocolVersion && !keyed) {
    *reason = "no key on this side";
    return kAuthFailed;
  }
  if (version == kProtocolVersion && keyed) {
    *reason = "peer has no key";
    return kAuthFailed;
  }
  if (keyed && len < kKeyedHelloPayloadSize) {
    *reason = "HELLO too short";  // no nonce
    return kProtocol;
  }
  if (payload[1] != 0 || payload[2] != 0 || payload[3] != 0) {
    *reason = "HELLO reserved bytes set";
    return kProtocol;
  }
  Hello h;
  h.version = version;
  h.maxMessage = getU32(payload + 4);
  h.window = getU32(payload + 8);
  h.keepaliveMs = getU32(payload + 12);
  h.session = getU64(payload + 16);
  h.resume = getU64(payload + 24);
  if (keyed) memcpy(h.nonce, payload + kHelloPayloadSize, kHelloNonceSize);
  if (h.maxMessage < 1) {
    *reason = "HELLO max_message is 0";
    return kProtocol;
  }
  if (static_cast<uint64_t>(h.window) < static_cast<uint64_t>(h.maxMessage) + kFrameOverhead) {
    *reason = "HELLO window smaller than max_message + 20";
    return kProtocol;
  }
  if (h.session == 0) {
    *reason = "HELLO session id is 0";
    return kProtocol;
  }
  *out = h;
  *reason = "";
  return kNormal;
}

}  // namespace wsock
