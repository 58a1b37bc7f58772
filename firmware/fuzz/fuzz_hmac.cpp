// libFuzzer target: the device's SHA-256 and HMAC-SHA256 (wifisocket/sha256.h, hmac.h)
// against a one-shot reference written here from FIPS 180-4 and RFC 2104, whose round
// constants are computed (cube and square roots of primes) rather than copied, so a typo
// in the library's table cannot hide in both. libFuzzer cannot call Python's hmac; the
// shared vectors tie both implementations to RFC 4231 (tests/unit/test_hmac_vectors.py).
//
// Input layout (every input is valid; missing bytes read as 0):
//   byte 0      key length (0..255; above 64 the key is hashed first)
//   byte 1      bits 0-4: tag length - 1 (1..32); bit 5: also MAC a second message (the
//               first without its last byte) with the same object and key
//   byte 2      bits 0-2: n - 1, the number of chunk sizes that follow
//   n bytes     update() chunk sizes, used in a cycle; 0 = "all the rest"
//   byte        which bit of the tag to flip for the comparison check
//   key bytes   then the message: the rest (at most kMaxMessage bytes)
//
// Checked on every call: SHA-256 one-shot == incremental (any chunking) == reference;
// HMAC one-shot == incremental == reference, for the full and the truncated tag, and
// nothing is written past the tag; the same HmacSha256 reused gives the same tags; a key
// longer than a block gives the tag of its digest; constantTimeEqual() is byte equality
// (the tag equals itself, a one-bit flip anywhere differs, arbitrary pairs as memcmp).
#include <math.h>
#include <string.h>

#include "fuzz_common.h"
#include "wifisocket/hmac.h"
#include "wifisocket/sha256.h"

namespace {

using wsock::kSha256BlockSize;
using wsock::kSha256Size;

constexpr size_t kMaxMessage = 4096;

// --- the reference ----------------------------------------------------------------------

struct Constants {
  uint32_t k[64];
  uint32_t h0[8];
};

// FIPS 180-4 sections 4.2.2 and 5.3.3: the first 32 bits of the fractional parts of the
// cube roots of the first 64 primes, and of the square roots of the first 8. A double has
// 53 bits; the integer parts take at most 3, so 32 fraction bits are exact.
const Constants& constants() {
  static Constants c;
  static bool done = false;
  if (!done) {
    unsigned found = 0;
    for (unsigned n = 2; found < 64; ++n) {
      bool prime = true;
      for (unsigned d = 2; d * d <= n; ++d) prime = prime && n % d != 0;
      if (!prime) continue;
      const double cube = cbrt(static_cast<double>(n));
      c.k[found] = static_cast<uint32_t>(ldexp(cube - floor(cube), 32));
      if (found < 8) {
        const double square = sqrt(static_cast<double>(n));
        c.h0[found] = static_cast<uint32_t>(ldexp(square - floor(square), 32));
      }
      ++found;
    }
    done = true;
  }
  return c;
}

uint32_t rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

// Pads the whole message (FIPS 180-4 5.1.1) into one buffer and runs the 64-word schedule
// of 6.2.2 over it: nothing incremental, nothing shared with the library.
void referenceSha256(const uint8_t* msg, size_t len, uint8_t out[kSha256Size]) {
  static uint8_t padded[kMaxMessage + 2 * kSha256BlockSize + 256];
  FUZZ_CHECK(len <= kMaxMessage + kSha256BlockSize + 256);
  size_t total = len + 1 + 8;
  total += (kSha256BlockSize - total % kSha256BlockSize) % kSha256BlockSize;
  if (len > 0) memcpy(padded, msg, len);
  padded[len] = 0x80;
  memset(padded + len + 1, 0, total - len - 1);
  const uint64_t bits = static_cast<uint64_t>(len) * 8;
  for (int i = 0; i < 8; ++i) padded[total - 1 - i] = static_cast<uint8_t>(bits >> (8 * i));

  const Constants& c = constants();
  uint32_t h[8];
  memcpy(h, c.h0, sizeof h);
  for (size_t at = 0; at < total; at += kSha256BlockSize) {
    uint32_t w[64];
    for (int t = 0; t < 16; ++t) w[t] = fuzz::be32(padded + at + 4 * t);
    for (int t = 16; t < 64; ++t) {
      const uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
      const uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
      w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t v[8];
    memcpy(v, h, sizeof v);
    for (int t = 0; t < 64; ++t) {
      const uint32_t ch = (v[4] & v[5]) ^ (~v[4] & v[6]);
      const uint32_t maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
      const uint32_t t1 =
          v[7] + (rotr(v[4], 6) ^ rotr(v[4], 11) ^ rotr(v[4], 25)) + ch + c.k[t] + w[t];
      const uint32_t t2 = (rotr(v[0], 2) ^ rotr(v[0], 13) ^ rotr(v[0], 22)) + maj;
      memmove(v + 1, v, 7 * sizeof v[0]);
      v[4] += t1;
      v[0] = t1 + t2;
    }
    for (int i = 0; i < 8; ++i) h[i] += v[i];
  }
  for (int i = 0; i < 8; ++i) {
    for (int b = 0; b < 4; ++b) out[4 * i + b] = static_cast<uint8_t>(h[i] >> (24 - 8 * b));
  }
}

// RFC 2104 section 2, literally: K0, then H(K0 ^ opad || H(K0 ^ ipad || text)).
void referenceHmac(const uint8_t* key, size_t keyLen, const uint8_t* msg, size_t len,
                   uint8_t out[kSha256Size]) {
  uint8_t k0[kSha256BlockSize] = {};
#ifdef FUZZ_SELFTEST
  // Planted fault: a long key is cut to a block instead of hashed. The fuzzer must find a
  // key above 64 bytes and report the disagreement (tests/unit/test_fuzz_targets.py).
  memcpy(k0, key, keyLen < kSha256BlockSize ? keyLen : kSha256BlockSize);
#else
  if (keyLen > kSha256BlockSize) {
    referenceSha256(key, keyLen, k0);
  } else if (keyLen > 0) {
    memcpy(k0, key, keyLen);
  }
#endif
  static uint8_t buf[kSha256BlockSize + kMaxMessage];
  FUZZ_CHECK(len <= kMaxMessage);
  for (size_t i = 0; i < kSha256BlockSize; ++i) buf[i] = k0[i] ^ 0x36;
  if (len > 0) memcpy(buf + kSha256BlockSize, msg, len);
  uint8_t inner[kSha256Size];
  referenceSha256(buf, kSha256BlockSize + len, inner);
  for (size_t i = 0; i < kSha256BlockSize; ++i) buf[i] = k0[i] ^ 0x5c;
  memcpy(buf + kSha256BlockSize, inner, sizeof inner);
  referenceSha256(buf, kSha256BlockSize + kSha256Size, out);
}

// --- the library, fed in chunks ---------------------------------------------------------

struct Chunks {
  uint8_t sizes[8];
  size_t count;
  size_t next(size_t* index, size_t left) const {
    size_t n = sizes[(*index)++ % count];
    return n == 0 || n > left ? left : n;
  }
};

void sha256Chunked(const uint8_t* p, size_t n, const Chunks& ch, uint8_t out[kSha256Size]) {
  wsock::Sha256 h;
  size_t i = 0;
  for (size_t at = 0, step = 0; at < n; at += step) {
    step = ch.next(&i, n - at);
    h.update(p + at, step);
  }
  h.finish(out);
}

// MACs `msg` with `mac` (already keyed) into out[0..outLen); out[outLen] is a canary.
void hmacChunked(wsock::HmacSha256& mac, const uint8_t* msg, size_t n, const Chunks& ch,
                 uint8_t* out, size_t outLen) {
  out[outLen] = 0xA5;
  mac.begin();
  size_t i = 0;
  for (size_t at = 0, step = 0; at < n; at += step) {
    step = ch.next(&i, n - at);
    mac.update(msg + at, step);
  }
  mac.finish(out, outLen);
  FUZZ_CHECK(out[outLen] == 0xA5);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Cursor in(data, size);
  const size_t keyLen = in.u8();
  const uint8_t cfg = in.u8();
  const size_t outLen = (cfg & 31) + 1;
  const bool second = (cfg & 32) != 0;
  Chunks chunks{};
  chunks.count = (in.u8() & 7) + 1;
  for (size_t i = 0; i < chunks.count; ++i) chunks.sizes[i] = in.u8();
  const uint8_t flipBit = in.u8();
  size_t gotKey = 0, len = 0;
  const uint8_t* key = in.bytes(keyLen, &gotKey);
  const uint8_t* msg = in.bytes(kMaxMessage, &len);

  // SHA-256: three ways, one digest.
  uint8_t ref[kSha256Size], one[kSha256Size], inc[kSha256Size];
  referenceSha256(msg, len, ref);
  wsock::sha256(msg, len, one);
  sha256Chunked(msg, len, chunks, inc);
  FUZZ_CHECK(memcmp(ref, one, sizeof ref) == 0);
  FUZZ_CHECK(memcmp(ref, inc, sizeof ref) == 0);

  // HMAC: reference, one-shot, incremental, truncated.
  referenceHmac(key, gotKey, msg, len, ref);
  wsock::hmacSha256(key, gotKey, msg, len, one, sizeof one);
  FUZZ_CHECK(memcmp(ref, one, sizeof ref) == 0);
  wsock::HmacSha256 mac;
  mac.setKey(key, gotKey);
  uint8_t tag[kSha256Size + 1];
  hmacChunked(mac, msg, len, chunks, tag, outLen);
  FUZZ_CHECK(memcmp(ref, tag, outLen) == 0);
  FUZZ_CHECK(wsock::constantTimeEqual(ref, tag, outLen));

  // Reuse: the same object, afresh, whole; then (optionally) a second message.
  const Chunks whole{{0}, 1};
  hmacChunked(mac, msg, len, whole, tag, kSha256Size);
  FUZZ_CHECK(memcmp(ref, tag, kSha256Size) == 0);
  if (second && len > 0) {
    referenceHmac(key, gotKey, msg, len - 1, ref);
    hmacChunked(mac, msg, len - 1, chunks, tag, outLen);
    FUZZ_CHECK(memcmp(ref, tag, outLen) == 0);
  }

  // RFC 2104: a long key is its digest.
  if (gotKey > kSha256BlockSize) {
    uint8_t digest[kSha256Size], viaDigest[kSha256Size];
    wsock::sha256(key, gotKey, digest);
    wsock::hmacSha256(digest, sizeof digest, msg, len, viaDigest, sizeof viaDigest);
    wsock::hmacSha256(key, gotKey, msg, len, one, sizeof one);
    FUZZ_CHECK(memcmp(viaDigest, one, sizeof one) == 0);
  }

  // Tag comparison: equal to itself, unequal after any one-bit flip, and byte equality on
  // arbitrary pairs (the key against the message's start).
  memcpy(tag, ref, kSha256Size);
  FUZZ_CHECK(wsock::constantTimeEqual(ref, tag, outLen));
  tag[(flipBit >> 3) % outLen] ^= static_cast<uint8_t>(1U << (flipBit & 7));
  FUZZ_CHECK(!wsock::constantTimeEqual(ref, tag, outLen));
  const size_t n = gotKey < len ? gotKey : len;
  FUZZ_CHECK(wsock::constantTimeEqual(key, msg, n) == (memcmp(key, msg, n) == 0));
  mac.wipe();
  return 0;
}
