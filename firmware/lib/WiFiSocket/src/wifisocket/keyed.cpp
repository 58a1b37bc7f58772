// Proofs, connection key and frame tags of keyed links. See keyed.h.
#include "wifisocket/keyed.h"

#include "wifisocket/hmac.h"

namespace wsock {

namespace {

// The ASCII labels of docs/protocol.md §6, without terminators. Spelled as byte arrays so
// they stay 13 and 20 bytes (a string literal would add its NUL to sizeof).
const uint8_t kTranscriptLabel[13] = {'e', 's', 'p', '-', 'h', 'i', 'l',
                                      ' ', 'W', 'S', ' ', 'v', '2'};
const uint8_t kFramesLabel[20] = {'e', 's', 'p', '-', 'h', 'i', 'l', ' ', 'W', 'S',
                                  ' ', 'v', '2', ' ', 'f', 'r', 'a', 'm', 'e', 's'};

void updateU16Prefixed(HmacSha256& mac, const uint8_t* p, size_t len) {
  const uint8_t n[2] = {static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len)};
  mac.update(n, sizeof n);
  mac.update(p, len);
}

}  // namespace

void authProof(const uint8_t* key, size_t keyLen, uint8_t role, const uint8_t* helloD,
               size_t helloDLen, const uint8_t* helloA, size_t helloALen,
               uint8_t out[kAuthPayload]) {
  HmacSha256 mac;
  mac.setKey(key, keyLen);
  mac.begin();
  mac.update(&role, 1);
  mac.update(kTranscriptLabel, sizeof kTranscriptLabel);
  updateU16Prefixed(mac, helloD, helloDLen);
  updateU16Prefixed(mac, helloA, helloALen);
  mac.finish(out, kAuthPayload);
  mac.wipe();
}

void connectionKey(const uint8_t* key, size_t keyLen, const uint8_t nonceD[kHelloNonceSize],
                   const uint8_t nonceA[kHelloNonceSize], uint8_t out[kConnKeySize]) {
  HmacSha256 mac;
  mac.setKey(key, keyLen);
  mac.begin();
  mac.update(kFramesLabel, sizeof kFramesLabel);
  mac.update(nonceD, kHelloNonceSize);
  mac.update(nonceA, kHelloNonceSize);
  mac.finish(out, kConnKeySize);
  mac.wipe();
}

void tagKey(const uint8_t connKey[kConnKeySize], TagKey* out) {
  HmacSha256 mac;
  mac.setKey(connKey, kConnKeySize);
  mac.midstates(out->inner, out->outer);
  mac.wipe();
}

void frameTag(const uint8_t connKey[kConnKeySize], uint8_t dir, uint64_t n, const uint8_t* a,
              size_t aLen, const uint8_t* b, size_t bLen, uint8_t out[kTagSize]) {
  TagKey key;
  tagKey(connKey, &key);
  frameTag(key, dir, n, a, aLen, b, bLen, out);
  secureZero(&key, sizeof key);
}

void frameTag(const TagKey& key, uint8_t dir, uint64_t n, const uint8_t* a, size_t aLen,
              const uint8_t* b, size_t bLen, uint8_t out[kTagSize]) {
  HmacSha256 mac;
  mac.setMidstates(key.inner, key.outer);
  mac.begin();
  uint8_t prefix[9];
  prefix[0] = dir;
  putU64(prefix + 1, n);
  mac.update(prefix, sizeof prefix);
  mac.update(a, aLen);
  if (bLen > 0) mac.update(b, bLen);
  mac.finish(out, kTagSize);
  mac.wipe();
}

}  // namespace wsock
