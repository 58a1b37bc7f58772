// HMAC-SHA256 (RFC 2104, test vectors RFC 4231) and a constant-time tag comparison, for the
// keyed links of protocol v2 (docs/security.md).
//
// Portable core: no Arduino headers, no heap, no exceptions.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "wifisocket/sha256.h"

namespace wsock {

/// HMAC-SHA256 with a key set once and used for many messages: setKey() hashes the padded
/// key blocks once and keeps the two midstates, so each message costs its own blocks plus
/// two compressions (not four). 184 bytes (host and ESP8266), no pointers.
///
///   HmacSha256 mac;  mac.setKey(key, keyLen);
///   mac.begin(); mac.update(a, n); mac.update(b, m); mac.finish(tag, 16);
class HmacSha256 {
 public:
  /// Sets the key; a key longer than 64 bytes is replaced by its SHA-256 (RFC 2104).
  /// An empty key is valid HMAC but worthless as a secret: callers refuse it.
  void setKey(const uint8_t* key, size_t len);
  /// Starts a message under the current key (without setKey(): the empty key).
  void begin();
  void update(const uint8_t* data, size_t len);
  /// Writes the first `outLen` bytes (1..32; clamped to 32) of the tag and ends the message.
  /// A truncated tag is the leading bytes of the full one (RFC 2104 section 5).
  void finish(uint8_t* out, size_t outLen);
  /// Forgets the key (zeros every byte that depended on it).
  void wipe();
  /// The key's two midstates after setKey() (64 bytes): a caller that uses one key for
  /// many messages may keep these instead of the whole object.
  void midstates(uint32_t inner[8], uint32_t outer[8]) const;
  /// Sets the key from midstates() taken earlier.
  void setMidstates(const uint32_t inner[8], const uint32_t outer[8]);

 private:
  uint32_t inner_[8] = {};  // state after the block key ^ ipad
  uint32_t outer_[8] = {};  // state after the block key ^ opad
  bool keyed_ = false;
  Sha256 work_;
};

/// One-shot HMAC-SHA256: the first `outLen` bytes (1..32) of the tag into `out`.
void hmacSha256(const uint8_t* key, size_t keyLen, const uint8_t* data, size_t len,
                uint8_t* out, size_t outLen);

/// True if the `len` bytes at `a` and `b` are equal, taking the same time whatever they
/// hold: it reads every byte and never branches on them, so a peer timing our rejections
/// learns nothing about how much of a forged tag was right. `len` itself is public.
bool constantTimeEqual(const uint8_t* a, const uint8_t* b, size_t len);

}  // namespace wsock
