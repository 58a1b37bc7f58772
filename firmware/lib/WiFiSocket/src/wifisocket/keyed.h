// The cryptography of keyed links, protocol version 2 (docs/protocol.md §6): the AUTH
// proofs over the handshake transcript, the connection key and the per-frame tags.
//
// Portable core: no Arduino headers, no heap, no exceptions. Every function works on
// caller-given bytes; the HMAC state lives on the stack for the duration of a call (a
// connection keeps only its TagKey).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "frame.h"

namespace wsock {

constexpr size_t kKeyMin = 16;          // a pre-shared key is 16..32 random bytes
constexpr size_t kKeyMax = 32;
constexpr size_t kConnKeySize = 32;     // K_conn
constexpr uint8_t kRoleDialer = 'D';    // the role byte r of a proof, and a tag's dir
constexpr uint8_t kRoleAcceptor = 'A';

/// proof(role) = HMAC-SHA256(K, role || "esp-hil WS v2" || u16(len(H_d)) || H_d ||
/// u16(len(H_a)) || H_a), over the HELLO payloads exactly as sent and received.
/// Payloads are at most 64 bytes (the decoder refuses longer HELLOs).
void authProof(const uint8_t* key, size_t keyLen, uint8_t role, const uint8_t* helloD,
               size_t helloDLen, const uint8_t* helloA, size_t helloALen,
               uint8_t out[kAuthPayload]);

/// K_conn = HMAC-SHA256(K, "esp-hil WS v2 frames" || nonce_d || nonce_a).
void connectionKey(const uint8_t* key, size_t keyLen, const uint8_t nonceD[kHelloNonceSize],
                   const uint8_t nonceA[kHelloNonceSize], uint8_t out[kConnKeySize]);

/// K_conn as the tags use it: its two HMAC midstates (64 bytes), so that each tag costs the
/// frame's own SHA-256 blocks plus two, not four (most frames are one or two blocks).
struct TagKey {
  uint32_t inner[8];
  uint32_t outer[8];
};
void tagKey(const uint8_t connKey[kConnKeySize], TagKey* out);

/// tag = HMAC-SHA256(K_conn, dir || u64(n) || frame bytes 0 .. 16+L-1)[0:16]. The frame
/// bytes (header and payload, without the CRC) may come in two pieces (a ring that wraps);
/// `b` may be null when `bLen` is 0.
void frameTag(const TagKey& key, uint8_t dir, uint64_t n, const uint8_t* a, size_t aLen,
              const uint8_t* b, size_t bLen, uint8_t out[kTagSize]);
/// The same from K_conn itself (tools and tests; a connection keeps its TagKey).
void frameTag(const uint8_t connKey[kConnKeySize], uint8_t dir, uint64_t n, const uint8_t* a,
              size_t aLen, const uint8_t* b, size_t bLen, uint8_t out[kTagSize]);

}  // namespace wsock
