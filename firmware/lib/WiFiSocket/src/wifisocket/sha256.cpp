// SHA-256 as FIPS 180-4 section 6.2 describes it, written for size rather than speed: one
// round loop, the message schedule kept as a rolling 16-word window (64 bytes of stack
// instead of 256; the ESP8266's sketch stack is 4 KB).
#include "wifisocket/sha256.h"

#include <string.h>

// On the ESP8266 `.rodata` is copied into the 80 KB of data RAM at boot (the heap's RAM),
// so the 256-byte round-constant table (and the initial state, unless the compiler folds
// it into code) is placed in flash, as PROGMEM / ICACHE_RODATA_ATTR would (`.irom.text*`
// sections): 256 bytes of RAM saved (measured with xtensa-lx106-elf-g++). Flash is
// memory-mapped and reads correctly with aligned 32-bit loads, the only way these uint32_t
// tables are read, so plain indexing works (no pgm_read_dword). The attribute is spelled out
// because the portable core includes no Arduino headers; only the cross compiler defines
// __XTENSA__.
#if defined(__XTENSA__)
#define WSOCK_IN_FLASH(name) __attribute__((section(".irom.text.wsock." #name), aligned(4)))
#else
#define WSOCK_IN_FLASH(name)
#endif

namespace wsock {
namespace {

// The first 32 bits of the fractional parts of the cube roots of the first 64 primes.
const uint32_t kRound[64] WSOCK_IN_FLASH(sha256_k) = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
};

// The first 32 bits of the fractional parts of the square roots of the first 8 primes.
const uint32_t kInitial[8] WSOCK_IN_FLASH(sha256_h0) = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

inline uint32_t rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

inline uint32_t loadBe32(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | static_cast<uint32_t>(p[3]);
}

inline void storeBe32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

}  // namespace

void secureZero(void* p, size_t len) {
  volatile uint8_t* v = static_cast<volatile uint8_t*>(p);
  while (len-- > 0) *v++ = 0;
}

void Sha256::reset() {
  for (unsigned i = 0; i < 8; ++i) state_[i] = kInitial[i];
  total_ = 0;
  fill_ = 0;
}

void Sha256::wipe() {
  secureZero(state_, sizeof state_);
  secureZero(block_, sizeof block_);
  reset();
}

void Sha256::compress(const uint8_t block[kSha256BlockSize]) {
  uint32_t w[16];
  for (unsigned i = 0; i < 16; ++i) w[i] = loadBe32(block + 4 * i);
  uint32_t a = state_[0], b = state_[1], c = state_[2], d = state_[3];
  uint32_t e = state_[4], f = state_[5], g = state_[6], h = state_[7];
  for (unsigned i = 0; i < 64; ++i) {
    if (i >= 16) {
      // w[i & 15] still holds W[i-16]; it becomes W[i].
      const uint32_t w15 = w[(i - 15) & 15];
      const uint32_t w2 = w[(i - 2) & 15];
      const uint32_t s0 = rotr(w15, 7) ^ rotr(w15, 18) ^ (w15 >> 3);
      const uint32_t s1 = rotr(w2, 17) ^ rotr(w2, 19) ^ (w2 >> 10);
      w[i & 15] += s0 + w[(i - 7) & 15] + s1;
    }
    const uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) +
                        kRound[i] + w[i & 15];
    const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  state_[0] += a;
  state_[1] += b;
  state_[2] += c;
  state_[3] += d;
  state_[4] += e;
  state_[5] += f;
  state_[6] += g;
  state_[7] += h;
}

void Sha256::update(const uint8_t* data, size_t len) {
  if (len == 0) return;  // data may be null then, and memcpy must not see it
  total_ += len;
  if (fill_ > 0) {
    const size_t take = len < kSha256BlockSize - fill_ ? len : kSha256BlockSize - fill_;
    memcpy(block_ + fill_, data, take);
    fill_ += static_cast<uint32_t>(take);
    data += take;
    len -= take;
    if (fill_ < kSha256BlockSize) return;
    compress(block_);
    fill_ = 0;
  }
  for (; len >= kSha256BlockSize; data += kSha256BlockSize, len -= kSha256BlockSize) {
    compress(data);
  }
  if (len > 0) {
    memcpy(block_, data, len);
    fill_ = static_cast<uint32_t>(len);
  }
}

void Sha256::finish(uint8_t out[kSha256Size]) {
  const uint64_t bits = total_ * 8;
  block_[fill_++] = 0x80;
  if (fill_ > kSha256BlockSize - 8) {
    memset(block_ + fill_, 0, kSha256BlockSize - fill_);
    compress(block_);
    fill_ = 0;
  }
  memset(block_ + fill_, 0, kSha256BlockSize - 8 - fill_);
  storeBe32(block_ + 56, static_cast<uint32_t>(bits >> 32));
  storeBe32(block_ + 60, static_cast<uint32_t>(bits));
  compress(block_);
  for (unsigned i = 0; i < 8; ++i) storeBe32(out + 4 * i, state_[i]);
  reset();
}

void sha256(const uint8_t* data, size_t len, uint8_t out[kSha256Size]) {
  Sha256 h;
  h.update(data, len);
  h.finish(out);
}

}  // namespace wsock
