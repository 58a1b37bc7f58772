// WiFiSocket wire protocol: frame and HELLO codec (docs/protocol.md sections 1, 2 and 6).
//
// Portable core: no Arduino headers, no heap, no exceptions. Used by the device library,
// the host-compiled tests and fuzzers. Every length read from the wire is checked before
// it is used to index or copy anything.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace wsock {

constexpr uint8_t kMagic0 = 0x57;  // 'W'
constexpr uint8_t kMagic1 = 0x53;  // 'S'
constexpr uint8_t kProtocolVersion = 1;       // unkeyed links
constexpr uint8_t kKeyedProtocolVersion = 2;  // keyed links (docs/protocol.md §6)

constexpr size_t kHeaderSize = 16;
constexpr size_t kCrcSize = 4;
constexpr size_t kFrameOverhead = kHeaderSize + kCrcSize;  // a frame is 20 + L bytes

constexpr size_t kHelloMinPayload = 32;
constexpr size_t kHelloMaxPayload = 64;
constexpr size_t kNoncePayload = 8;      // PING/PONG
constexpr size_t kHelloNonceSize = 16;   // HELLO v2 bytes 32..47
constexpr size_t kAuthPayload = 32;      // AUTH: an HMAC-SHA256 proof
constexpr size_t kTagSize = 16;          // after the CRC of every frame of a keyed link
constexpr size_t kCloseMaxPayload = 124;  // code + reason of up to 123 bytes
constexpr size_t kCloseMaxReason = kCloseMaxPayload - 1;
// A control frame longer than its type allows is TOO_LARGE (not PROTOCOL) above this.
constexpr size_t kControlTooLarge = 64;
// Largest control frame on the wire (a CLOSE with the longest reason).
constexpr size_t kMaxControlFrame = kFrameOverhead + kCloseMaxPayload;

enum FrameType : uint8_t {
  kHello = 1,
  kText = 2,
  kBinary = 3,
  kAck = 4,
  kPing = 5,
  kPong = 6,
  kClose = 7,
  kAuth = 8,
};

enum CloseCode : uint8_t {
  kNormal = 0,
  kProtocol = 1,
  kBadCrc = 2,
  kTooLarge = 3,
  kUnknownType = 4,
  kVersion = 5,
  kTimeout = 6,
  kReplaced = 7,
  kSequence = 8,
  kWindow = 9,
  kInvalidText = 10,
  kBusy = 11,
  kAuthFailed = 12,  // AUTH on the wire
  kBadTag = 13,
};

/// Upper-case protocol name of a close code ("PROTOCOL", ...), "UNKNOWN" outside the table.
const char* closeCodeName(uint8_t code);

inline bool isDataType(uint8_t type) { return type == kText || type == kBinary; }

// Big-endian helpers; the wire is network byte order throughout.
inline void putU32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}
inline uint32_t getU32(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | static_cast<uint32_t>(p[3]);
}
inline void putU64(uint8_t* p, uint64_t v) {
  putU32(p, static_cast<uint32_t>(v >> 32));
  putU32(p + 4, static_cast<uint32_t>(v));
}
inline uint64_t getU64(const uint8_t* p) {
  return (static_cast<uint64_t>(getU32(p)) << 32) | getU32(p + 4);
}

/// CRC-32 (IEEE 802.3, reflected, as zlib.crc32). `crc` is a previous result (0 to start),
/// so a frame can be checksummed in pieces: crc32Update(crc32Update(0, a), b) == crc32(a+b).
/// Implemented with a 16-entry (half-byte) table: 64 bytes of constant data instead of
/// 1 KiB, which matters on the ESP8266 where constants live in scarce DRAM.
uint32_t crc32Update(uint32_t crc, const uint8_t* data, size_t len);
inline uint32_t crc32(const uint8_t* data, size_t len) { return crc32Update(0, data, len); }

/// Writes the 16 header bytes of a frame.
void writeHeader(uint8_t* out, uint8_t type, uint32_t length, uint32_t seq, uint32_t ack);

/// Encodes one frame into `out`. Returns the bytes written (20 + len), or 0 if it does not
/// fit in `cap`. No validation of type/seq combinations: the caller builds legal frames.
size_t encodeFrame(uint8_t* out, size_t cap, uint8_t type, uint32_t seq, uint32_t ack,
                   const uint8_t* payload, size_t len);

/// A decoded frame. `payload` points into the decoder's buffer and is valid until the next
/// call to feed() or reset(); it is null while only the header is known.
struct FrameView {
  uint8_t type = 0;
  uint8_t flags = 0;
  uint32_t length = 0;
  uint32_t seq = 0;
  uint32_t ack = 0;
  const uint8_t* payload = nullptr;
};

/// Incremental frame decoder over a caller-given fixed buffer (docs/protocol.md §1,
/// "Decoding rules", checked in exactly that order and as soon as the bytes are there).
///
/// The buffer must hold the largest frame the caller wants to accept; a frame that passes
/// every protocol check but does not fit the buffer fails with TOO_LARGE (a configuration
/// limit, never a read past the buffer).
class FrameDecoder {
 public:
  enum Status : uint8_t {
    kNeedMore,  // all given bytes consumed, no complete frame yet
    kHeader,    // a header passed all checks; frame() has the fields, payload still null
    kFrame,     // a whole frame with a good CRC (and its tag, if tagged) is in frame()
    kError,     // the decoder is dead; errorCode()/errorReason() say why
  };

  FrameDecoder(uint8_t* buffer, size_t capacity, uint32_t maxMessage);
  /// A decoder without memory: fails on the first byte until assigned a real one.
  FrameDecoder() : FrameDecoder(nullptr, 0, 0) {}

  /// Consumes bytes from `data` until the end, a header, a frame or an error, and returns
  /// which; `*consumed` is how many bytes were taken. Call again with the rest.
  Status feed(const uint8_t* data, size_t len, size_t* consumed);

  const FrameView& frame() const { return frame_; }
  bool failed() const { return error_ != 0xFF; }
  uint8_t errorCode() const { return error_; }
  const char* errorReason() const { return reason_; }
  /// Bytes held of a frame not yet complete.
  size_t buffered() const { return frameDone_ ? 0 : fill_; }
  uint32_t maxMessage() const { return maxMessage_; }
  void setMaxMessage(uint32_t maxMessage) { maxMessage_ = maxMessage; }
  /// Forgets any partial frame and error (a fresh connection).
  void reset();
  /// After kHeader: do not store this frame's payload, only check its CRC (the caller
  /// will refuse the frame anyway and needs no memory for it). frame().payload stays null.
  void discardPayload() { discard_ = true; }
  /// Keyed link (docs/protocol.md §6): from the next frame on, every frame is followed by a
  /// 16-byte tag, read after the CRC is checked. The tag is stored after the payload, so
  /// the buffer needs 20 + L + 16 bytes; the caller verifies it (frameTag(), tag()).
  void setTagged(bool tagged) { tagged_ = tagged; }
  bool tagged() const { return tagged_; }
  /// After kFrame: header and payload as received (16 + length bytes), the bytes a tag
  /// covers; null if the payload was discarded.
  const uint8_t* frameBytes() const { return frame_.payload != nullptr ? buf_ : nullptr; }
  /// After kFrame on a tagged decoder: the frame's 16 tag bytes; null otherwise.
  const uint8_t* tag() const {
    return tagged_ && frame_.payload != nullptr ? buf_ + kHeaderSize + frame_.length : nullptr;
  }

 private:
  Status fail(uint8_t code, const char* reason);
  Status checkHeader();

  uint8_t* buf_;
  size_t cap_;
  uint32_t maxMessage_;
  size_t fill_ = 0;  // bytes of the current frame taken so far
  size_t need_ = 0;  // total frame size once the header is known, else 0
  uint32_t crc_ = 0; // running CRC over header and payload
  uint8_t crcBytes_[kCrcSize] = {};
  bool discard_ = false;
  bool tagged_ = false;
  bool frameDone_ = false;
  uint8_t error_ = 0xFF;
  const char* reason_ = "";
  FrameView frame_;
};

/// The HELLO payload (docs/protocol.md §2; the nonce only in version 2, §6).
struct Hello {
  uint8_t version = kProtocolVersion;
  uint32_t maxMessage = 0;
  uint32_t window = 0;
  uint32_t keepaliveMs = 0;
  uint64_t session = 0;
  uint64_t resume = 0;
  uint8_t nonce[kHelloNonceSize] = {};
};

constexpr size_t kHelloPayloadSize = 32;       // version 1
constexpr size_t kKeyedHelloPayloadSize = 48;  // version 2: + the nonce

/// Writes the payload of the hello's version (32 bytes for 1, 48 with the nonce for 2);
/// returns its size, or 0 if `cap` is too small.
size_t encodeHello(const Hello& hello, uint8_t* out, size_t cap);

/// Parses and validates a HELLO payload received by a side with (`keyed`) or without a key.
/// Returns kNormal (0) on success, else the close code, with `*reason` set to a static
/// string. In the order of docs/protocol.md §2: length >= 32 (PROTOCOL), version 1 or 2
/// (VERSION), the version this side speaks (AUTH), 48 bytes for version 2, reserved bytes,
/// max_message >= 1, window >= max_message + 20, session != 0 (PROTOCOL).
uint8_t decodeHello(const uint8_t* payload, size_t len, Hello* out, const char** reason,
                    bool keyed = false);

}  // namespace wsock
