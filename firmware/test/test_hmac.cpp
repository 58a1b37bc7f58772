// Host-compiled tests of the device's SHA-256 and HMAC-SHA256 (wifisocket/sha256.h, hmac.h).
//
//   test_hmac            property tests; prints "PASS <name>" per test, "FAIL ..." per failed
//                        check; exits non-zero on any failure
//   test_hmac --tool     answers one line per command line (for tests/unit/test_hmac_vectors.py;
//                        "-" is the empty hex string):
//                          sha256 <hex> <chunk>                  -> digest hex
//                          hmac <key hex> <msg hex> <outlen> <chunk> -> tag hex
//                          equal <hex a> <hex b>                 -> 1 or 0 (constantTimeEqual)
//                        chunk 0 = the one-shot function, n > 0 = update() in n-byte pieces;
//                        a malformed line -> "BAD: <why>"
//   test_hmac --bench N  HMAC-SHA256 of a 4 KiB message N times under one key; prints
//                        "ns_per_4k <ns>" (build it with -O2 and no sanitizers for figures)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <initializer_list>

#include "check.h"
#include "wifisocket/hmac.h"
#include "wifisocket/sha256.h"

using namespace wsock;

namespace {


// --- hex -----------------------------------------------------------------------------------

int nibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Parses hex ("-" = empty) into out; returns the byte count or -1 if malformed/too long.
long parseHex(const char* s, uint8_t* out, size_t cap) {
  if (strcmp(s, "-") == 0) return 0;
  const size_t n = strlen(s);
  if (n % 2 != 0 || n / 2 > cap) return -1;
  for (size_t i = 0; i < n / 2; ++i) {
    const int hi = nibble(s[2 * i]), lo = nibble(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return -1;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return static_cast<long>(n / 2);
}

void printHex(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) printf("%02x", p[i]);
  printf("\n");
}

bool sameHex(const uint8_t* p, const char* hex) {
  uint8_t want[64];
  const long n = parseHex(hex, want, sizeof want);
  return n >= 0 && memcmp(p, want, static_cast<size_t>(n)) == 0;
}

// --- helpers under test ----------------------------------------------------------------------

void sha256Chunked(const uint8_t* p, size_t n, size_t chunk, uint8_t out[kSha256Size]) {
  Sha256 h;
  for (size_t at = 0; at < n; at += chunk) h.update(p + at, n - at < chunk ? n - at : chunk);
  h.finish(out);
}

void hmacChunked(const uint8_t* key, size_t keyLen, const uint8_t* p, size_t n, size_t chunk,
                 uint8_t* out, size_t outLen) {
  HmacSha256 mac;
  mac.setKey(key, keyLen);
  mac.begin();
  for (size_t at = 0; at < n; at += chunk) mac.update(p + at, n - at < chunk ? n - at : chunk);
  mac.finish(out, outLen);
}

// A deterministic byte pattern (no libc rand: the same on every host).
void pattern(uint8_t* p, size_t n, uint32_t seed) {
  uint32_t x = seed * 2654435761U + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p[i] = static_cast<uint8_t>(x);
  }
}

// --- tests -----------------------------------------------------------------------------------

// FIPS 180-2 appendix B examples: one block, two blocks, a million 'a' (many updates).
void test_sha256_fips_examples() {
  uint8_t d[kSha256Size];
  sha256(reinterpret_cast<const uint8_t*>("abc"), 3, d);
  CHECK(sameHex(d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
  const char* two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  sha256(reinterpret_cast<const uint8_t*>(two), strlen(two), d);
  CHECK(sameHex(d, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
  sha256(nullptr, 0, d);
  CHECK(sameHex(d, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
  Sha256 h;
  uint8_t a[1000];
  memset(a, 'a', sizeof a);
  for (int i = 0; i < 1000; ++i) h.update(a, sizeof a);
  h.finish(d);
  CHECK(sameHex(d, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
}

// Every length around the padding boundaries, every chunk size: the same digest.
void test_sha256_chunking_never_matters() {
  uint8_t msg[200];
  pattern(msg, sizeof msg, 1);
  for (size_t n = 0; n <= sizeof msg; ++n) {
    uint8_t one[kSha256Size];
    sha256(msg, n, one);
    for (size_t chunk = 1; chunk <= 70; ++chunk) {
      uint8_t got[kSha256Size];
      sha256Chunked(msg, n, chunk, got);
      CHECK(memcmp(one, got, sizeof one) == 0);
    }
  }
}

// finish() resets: the object hashes the next message from scratch; wipe() too.
void test_sha256_finish_and_wipe_reset() {
  uint8_t first[kSha256Size], again[kSha256Size], ref[kSha256Size];
  Sha256 h;
  h.update(reinterpret_cast<const uint8_t*>("xyz"), 3);
  h.finish(first);
  h.update(reinterpret_cast<const uint8_t*>("xyz"), 3);
  h.finish(again);
  CHECK(memcmp(first, again, sizeof first) == 0);
  h.update(reinterpret_cast<const uint8_t*>("garbage"), 7);
  h.wipe();
  h.finish(again);
  sha256(nullptr, 0, ref);
  CHECK(memcmp(again, ref, sizeof ref) == 0);
}

// RFC 4231 test case 2 (the one with a readable key), whole and by byte.
void test_hmac_rfc4231_case2() {
  const char* key = "Jefe";
  const char* msg = "what do ya want for nothing?";
  uint8_t tag[kSha256Size];
  hmacSha256(reinterpret_cast<const uint8_t*>(key), 4, reinterpret_cast<const uint8_t*>(msg),
             strlen(msg), tag, sizeof tag);
  CHECK(sameHex(tag, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));
  hmacChunked(reinterpret_cast<const uint8_t*>(key), 4, reinterpret_cast<const uint8_t*>(msg),
              strlen(msg), 1, tag, sizeof tag);
  CHECK(sameHex(tag, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));
}

// RFC 2104: a key longer than a block is the same key as its SHA-256; a key shorter than a
// block is the same key zero-padded to the block.
void test_hmac_key_normalisation() {
  uint8_t key[200], msg[100];
  pattern(key, sizeof key, 2);
  pattern(msg, sizeof msg, 3);
  for (size_t keyLen = 65; keyLen <= sizeof key; keyLen += 15) {
    uint8_t hashed[kSha256Size], a[kSha256Size], b[kSha256Size];
    sha256(key, keyLen, hashed);
    hmacSha256(key, keyLen, msg, sizeof msg, a, sizeof a);
    hmacSha256(hashed, sizeof hashed, msg, sizeof msg, b, sizeof b);
    CHECK(memcmp(a, b, sizeof a) == 0);
  }
  uint8_t padded[kSha256BlockSize] = {};
  memcpy(padded, key, 20);
  uint8_t a[kSha256Size], b[kSha256Size];
  hmacSha256(key, 20, msg, sizeof msg, a, sizeof a);
  hmacSha256(padded, sizeof padded, msg, sizeof msg, b, sizeof b);
  CHECK(memcmp(a, b, sizeof a) == 0);
  // ...but a key one byte longer than a block is hashed, not padded: different tag.
  uint8_t longKey[kSha256BlockSize + 1] = {};
  memcpy(longKey, key, 20);
  hmacSha256(longKey, sizeof longKey, msg, sizeof msg, b, sizeof b);
  CHECK(memcmp(a, b, sizeof a) != 0);
}

// One key, many messages: begin() starts afresh each time; chunking never matters; a
// truncated tag is the prefix of the full one; other keys or messages give other tags.
void test_hmac_reuse_chunking_truncation() {
  uint8_t key[32], msg[300];
  pattern(key, sizeof key, 4);
  pattern(msg, sizeof msg, 5);
  HmacSha256 mac;
  mac.setKey(key, sizeof key);
  for (size_t n = 0; n <= sizeof msg; n += 13) {
    uint8_t full[kSha256Size], again[kSha256Size];
    hmacSha256(key, sizeof key, msg, n, full, sizeof full);
    const size_t chunks[] = {1, 7, 64, 65, 300};
    for (size_t chunk : chunks) {
      mac.begin();
      for (size_t at = 0; at < n; at += chunk) mac.update(msg + at, n - at < chunk ? n - at : chunk);
      mac.finish(again, sizeof again);
      CHECK(memcmp(full, again, sizeof full) == 0);
    }
    for (size_t outLen = 1; outLen <= kSha256Size; ++outLen) {
      uint8_t cut[kSha256Size + 1];
      memset(cut, 0xEE, sizeof cut);
      mac.begin();
      mac.update(msg, n);
      mac.finish(cut, outLen);
      CHECK(memcmp(cut, full, outLen) == 0);
      CHECK(cut[outLen] == 0xEE);  // nothing written past outLen
    }
    uint8_t other[kSha256Size];
    key[0] ^= 1;
    hmacSha256(key, sizeof key, msg, n, other, sizeof other);
    key[0] ^= 1;
    CHECK(memcmp(full, other, sizeof full) != 0);
  }
  // outLen above 32 is clamped: 32 bytes written, no more.
  uint8_t big[40];
  memset(big, 0xEE, sizeof big);
  mac.begin();
  mac.finish(big, sizeof big);
  CHECK(big[kSha256Size] == 0xEE);
}

// Without a key, and after wipe(): the empty key (RFC 2104 allows it; callers refuse it).
void test_hmac_unkeyed_and_wiped_use_the_empty_key() {
  uint8_t ref[kSha256Size], got[kSha256Size];
  hmacSha256(nullptr, 0, nullptr, 0, ref, sizeof ref);
  CHECK(sameHex(ref, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"));
  HmacSha256 fresh;
  fresh.begin();
  fresh.finish(got, sizeof got);
  CHECK(memcmp(ref, got, sizeof ref) == 0);
  HmacSha256 used;
  used.setKey(reinterpret_cast<const uint8_t*>("secret"), 6);
  used.begin();
  used.update(reinterpret_cast<const uint8_t*>("m"), 1);
  used.wipe();
  used.begin();
  used.finish(got, sizeof got);
  CHECK(memcmp(ref, got, sizeof ref) == 0);
}

// A key set from midstates() of another object is the same key: a connection keeps 64
// bytes of midstates instead of the HMAC object, and its tags must not change.
void test_hmac_midstates_are_the_key() {
  uint8_t key[40], msg[300];
  pattern(key, sizeof key, 7);
  pattern(msg, sizeof msg, 8);
  for (size_t keyLen : {size_t{16}, size_t{32}, size_t{40}}) {
    uint32_t inner[8], outer[8];
    HmacSha256 a;
    a.setKey(key, keyLen);
    a.midstates(inner, outer);
    for (size_t n : {size_t{0}, size_t{1}, size_t{55}, size_t{64}, size_t{300}}) {
      uint8_t ref[kSha256Size], got[kSha256Size];
      hmacSha256(key, keyLen, msg, n, ref, sizeof ref);
      HmacSha256 b;
      b.setMidstates(inner, outer);
      b.begin();
      b.update(msg, n);
      b.finish(got, sizeof got);
      CHECK(memcmp(ref, got, sizeof ref) == 0);
    }
  }
}

// Equal exactly when equal, whichever byte and bit differ; length 0 is equal.
void test_constant_time_equal() {
  uint8_t a[33], b[33];
  pattern(a, sizeof a, 6);
  memcpy(b, a, sizeof b);
  CHECK(constantTimeEqual(a, b, 0));
  for (size_t n = 1; n <= sizeof a; ++n) {
    CHECK(constantTimeEqual(a, b, n));
    for (size_t i = 0; i < n; ++i) {
      for (int bit = 0; bit < 8; ++bit) {
        b[i] ^= static_cast<uint8_t>(1 << bit);
        CHECK(!constantTimeEqual(a, b, n));
        CHECK(!constantTimeEqual(b, a, n));
        b[i] ^= static_cast<uint8_t>(1 << bit);
      }
    }
  }
  uint8_t zeros[16] = {}, ones[16];
  memset(ones, 0xFF, sizeof ones);
  CHECK(!constantTimeEqual(zeros, ones, sizeof zeros));
  CHECK(constantTimeEqual(ones, ones, sizeof ones));
}

// --- modes -----------------------------------------------------------------------------------

constexpr size_t kMaxInput = 8192;

int runTool() {
  static char line[4 * kMaxInput];
  static uint8_t key[kMaxInput], msg[kMaxInput];
  while (fgets(line, sizeof line, stdin) != nullptr) {
    char* save = nullptr;
    const char* cmd = strtok_r(line, " \n", &save);
    const char* args[4] = {};
    size_t nargs = 0;
    for (const char* t; nargs < 4 && (t = strtok_r(nullptr, " \n", &save)) != nullptr;) {
      args[nargs++] = t;
    }
    uint8_t out[kSha256Size];
    if (cmd != nullptr && strcmp(cmd, "sha256") == 0 && nargs == 2) {
      const long n = parseHex(args[0], msg, sizeof msg);
      const long chunk = strtol(args[1], nullptr, 10);
      if (n < 0 || chunk < 0) {
        printf("BAD: sha256 wants <hex> <chunk>\n");
      } else {
        if (chunk == 0) sha256(msg, static_cast<size_t>(n), out);
        else sha256Chunked(msg, static_cast<size_t>(n), static_cast<size_t>(chunk), out);
        printHex(out, sizeof out);
      }
    } else if (cmd != nullptr && strcmp(cmd, "hmac") == 0 && nargs == 4) {
      const long k = parseHex(args[0], key, sizeof key);
      const long n = parseHex(args[1], msg, sizeof msg);
      const long outLen = strtol(args[2], nullptr, 10);
      const long chunk = strtol(args[3], nullptr, 10);
      if (k < 0 || n < 0 || outLen < 1 || outLen > 32 || chunk < 0) {
        printf("BAD: hmac wants <key hex> <msg hex> <outlen 1..32> <chunk>\n");
      } else if (chunk == 0) {
        hmacSha256(key, static_cast<size_t>(k), msg, static_cast<size_t>(n), out,
                   static_cast<size_t>(outLen));
        printHex(out, static_cast<size_t>(outLen));
      } else {
        hmacChunked(key, static_cast<size_t>(k), msg, static_cast<size_t>(n),
                    static_cast<size_t>(chunk), out, static_cast<size_t>(outLen));
        printHex(out, static_cast<size_t>(outLen));
      }
    } else if (cmd != nullptr && strcmp(cmd, "equal") == 0 && nargs == 2) {
      const long a = parseHex(args[0], key, sizeof key);
      const long b = parseHex(args[1], msg, sizeof msg);
      if (a < 0 || b < 0 || a != b) {
        printf("BAD: equal wants two hex strings of one length\n");
      } else {
        printf("%d\n", constantTimeEqual(key, msg, static_cast<size_t>(a)) ? 1 : 0);
      }
    } else {
      printf("BAD: unknown command or wrong argument count\n");
    }
    fflush(stdout);
  }
  return 0;
}

int runBench(long rounds) {
  static uint8_t msg[4096];
  uint8_t key[32], tag[kSha256Size];
  pattern(msg, sizeof msg, 7);
  pattern(key, sizeof key, 8);
  HmacSha256 mac;
  mac.setKey(key, sizeof key);
  timespec t0{}, t1{};
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < rounds; ++i) {
    mac.begin();
    mac.update(msg, sizeof msg);
    mac.finish(tag, sizeof tag);
    msg[0] = tag[0];  // a dependency between rounds: nothing can be hoisted out of the loop
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  const double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
  printf("ns_per_4k %.0f\n", ns / static_cast<double>(rounds));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && strcmp(argv[1], "--tool") == 0) return runTool();
  if (argc == 3 && strcmp(argv[1], "--bench") == 0) {
    const long rounds = strtol(argv[2], nullptr, 10);
    return runBench(rounds > 0 ? rounds : 1);
  }
  const check::Test tests[] = {
      {"sha256_fips_examples", test_sha256_fips_examples},
      {"sha256_chunking_never_matters", test_sha256_chunking_never_matters},
      {"sha256_finish_and_wipe_reset", test_sha256_finish_and_wipe_reset},
      {"hmac_rfc4231_case2", test_hmac_rfc4231_case2},
      {"hmac_key_normalisation", test_hmac_key_normalisation},
      {"hmac_reuse_chunking_truncation", test_hmac_reuse_chunking_truncation},
      {"hmac_unkeyed_and_wiped_use_the_empty_key", test_hmac_unkeyed_and_wiped_use_the_empty_key},
      {"hmac_midstates_are_the_key", test_hmac_midstates_are_the_key},
      {"constant_time_equal", test_constant_time_equal},
  };
  return check::runTests(tests);
}
