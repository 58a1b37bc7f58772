// SHA-256 (FIPS 180-4) for the keyed links of protocol v2 (docs/security.md).
//
// Portable core: no Arduino headers, no heap, no exceptions; compiled for the host (tests,
// fuzzers) and for the ESP8266. The core ships BearSSL's br_sha256, but this file keeps the
// library's portable core self-contained, so the host tests and libFuzzer exercise exactly
// the code that runs on the device (1.4 KB of flash, no static RAM: docs/security.md).
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace wsock {

constexpr size_t kSha256Size = 32;       // digest bytes
constexpr size_t kSha256BlockSize = 64;  // compression block bytes

/// Incremental SHA-256: update() any number of times with pieces of any size, then
/// finish(). 112 bytes (host and ESP8266), no pointers.
class Sha256 {
 public:
  Sha256() { reset(); }

  /// Starts a new message.
  void reset();
  /// Adds `len` bytes (`data` may be null when `len` is 0).
  void update(const uint8_t* data, size_t len);
  /// Writes the 32-byte digest of everything added since reset(), then resets.
  void finish(uint8_t out[kSha256Size]);
  /// Overwrites the state and buffered input (key material in HMAC) with zeros.
  void wipe();

 private:
  friend class HmacSha256;
  void compress(const uint8_t block[kSha256BlockSize]);

  uint32_t state_[8];
  uint64_t total_;  // message bytes so far; the message limit is 2^61 bytes, far beyond ours
  uint8_t block_[kSha256BlockSize];
  uint32_t fill_;   // bytes in block_
};

/// One-shot SHA-256 of `len` bytes.
void sha256(const uint8_t* data, size_t len, uint8_t out[kSha256Size]);

/// Overwrites `len` bytes with zeros in a way the compiler may not elide as a dead store.
void secureZero(void* p, size_t len);

}  // namespace wsock
