// HMAC-SHA256 (RFC 2104): H((K ^ opad) || H((K ^ ipad) || m)), with the two key blocks
// hashed once per key.
#include "wifisocket/hmac.h"

#include <string.h>

namespace wsock {

void HmacSha256::setKey(const uint8_t* key, size_t len) {
  uint8_t pad[kSha256BlockSize];
  if (len > kSha256BlockSize) {
    sha256(key, len, pad);
    len = kSha256Size;
  } else if (len > 0) {
    memcpy(pad, key, len);
  }
  memset(pad + len, 0, kSha256BlockSize - len);
  for (uint8_t& b : pad) b ^= 0x36;
  work_.reset();
  work_.compress(pad);
  memcpy(inner_, work_.state_, sizeof inner_);
  for (uint8_t& b : pad) b ^= 0x36 ^ 0x5c;
  work_.reset();
  work_.compress(pad);
  memcpy(outer_, work_.state_, sizeof outer_);
  secureZero(pad, sizeof pad);
  work_.wipe();
  keyed_ = true;
}

void HmacSha256::midstates(uint32_t inner[8], uint32_t outer[8]) const {
  memcpy(inner, inner_, sizeof inner_);
  memcpy(outer, outer_, sizeof outer_);
}

void HmacSha256::setMidstates(const uint32_t inner[8], const uint32_t outer[8]) {
  memcpy(inner_, inner, sizeof inner_);
  memcpy(outer_, outer, sizeof outer_);
  keyed_ = true;
}

void HmacSha256::begin() {
  if (!keyed_) setKey(nullptr, 0);
  memcpy(work_.state_, inner_, sizeof inner_);
  work_.total_ = kSha256BlockSize;
  work_.fill_ = 0;
}

void HmacSha256::update(const uint8_t* data, size_t len) { work_.update(data, len); }

void HmacSha256::finish(uint8_t* out, size_t outLen) {
  uint8_t digest[kSha256Size];
  work_.finish(digest);
  memcpy(work_.state_, outer_, sizeof outer_);
  work_.total_ = kSha256BlockSize;
  work_.fill_ = 0;
  work_.update(digest, sizeof digest);
  work_.finish(digest);
  memcpy(out, digest, outLen < kSha256Size ? outLen : kSha256Size);
  secureZero(digest, sizeof digest);
  // The message may be secret too; the work state holds its last partial block.
  work_.wipe();
}

void HmacSha256::wipe() {
  secureZero(inner_, sizeof inner_);
  secureZero(outer_, sizeof outer_);
  work_.wipe();
  keyed_ = false;
}

void hmacSha256(const uint8_t* key, size_t keyLen, const uint8_t* data, size_t len,
                uint8_t* out, size_t outLen) {
  HmacSha256 mac;
  mac.setKey(key, keyLen);
  mac.begin();
  mac.update(data, len);
  mac.finish(out, outLen);
  mac.wipe();
}

bool constantTimeEqual(const uint8_t* a, const uint8_t* b, size_t len) {
  uint32_t diff = 0;
  for (size_t i = 0; i < len; ++i) {
    diff |= static_cast<uint32_t>(a[i] ^ b[i]);
#if defined(__GNUC__)
    // Opaque to the optimizer: it cannot prove diff is final and leave the loop early.
    __asm__ volatile("" : "+r"(diff));
#endif
  }
  // diff is 0..255: (diff - 1) has its top bit set exactly when diff == 0. No branch.
  return ((diff - 1U) >> 31) != 0;
}

}  // namespace wsock
