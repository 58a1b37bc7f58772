// The host CPU cost of a keyed link's frame tag (docs/protocol.md §6): frameTag() over a frame
// with a 4 KiB payload (the 16-byte header and the payload) and with a 64-byte one, under the
// connection's TagKey (HMAC midstates kept per connection, as the session core does) and
// under K_conn itself (a new HMAC key setup per frame, as the session core did until
// 2026-11-24). A benchmark, not a test:
//
//   W=firmware/lib/WiFiSocket/src; g++ -std=c++17 -O2 -fno-exceptions -fno-rtti -I$W
//     firmware/test/bench_tag.cpp $W/wifisocket/{keyed,hmac,sha256}.cpp -o /tmp/bench_tag
//   /tmp/bench_tag 20000
//
// Prints "tag_ns <payload> <midstates|rekeyed> <ns>" lines, each the best of five runs.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <initializer_list>

#include "wifisocket/frame.h"
#include "wifisocket/keyed.h"

namespace {

double bestNsPerTag(size_t payload, long rounds, bool midstates) {
  static uint8_t frame[wsock::kHeaderSize + 4096];
  uint8_t key[wsock::kConnKeySize];
  wsock::TagKey tagKey;
  uint8_t tag[wsock::kTagSize] = {};
  for (size_t i = 0; i < sizeof frame; ++i) frame[i] = static_cast<uint8_t>(i * 7);
  for (size_t i = 0; i < sizeof key; ++i) key[i] = static_cast<uint8_t>(i);
  wsock::tagKey(key, &tagKey);
  double best = 1e18;
  for (int run = 0; run < 5; ++run) {
    timespec t0{}, t1{};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < rounds; ++i) {
      if (midstates) {
        wsock::frameTag(tagKey, wsock::kRoleDialer, static_cast<uint64_t>(i), frame,
                        wsock::kHeaderSize + payload, nullptr, 0, tag);
      } else {
        wsock::frameTag(key, wsock::kRoleDialer, static_cast<uint64_t>(i), frame,
                        wsock::kHeaderSize + payload, nullptr, 0, tag);
      }
      frame[20] = tag[0];  // a dependency between rounds: nothing is hoisted out of the loop
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
    if (ns / rounds < best) best = ns / rounds;
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const long rounds = argc > 1 ? strtol(argv[1], nullptr, 10) : 20000;
  if (rounds <= 0) {
    fprintf(stderr, "usage: bench_tag [rounds > 0]\n");
    return 2;
  }
  for (size_t payload : {size_t{64}, size_t{4096}}) {
    for (bool midstates : {true, false}) {
      printf("tag_ns %zu %s %.0f\n", payload, midstates ? "midstates" : "rekeyed",
             bestNsPerTag(payload, rounds, midstates));
    }
  }
  return 0;
}
