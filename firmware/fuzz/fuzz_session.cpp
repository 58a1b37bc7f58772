// libFuzzer target: the device's session state (wifisocket/session.h) driven by a program
// of operations read from the fuzz input: connections open and drop, the peer sends HELLOs,
// data, control frames and raw bytes (split into fragments), the application takes and
// sends messages, output is written in pieces, and time advances (across the u32 wrap).
//
// Frames the harness builds get a correct CRC, so the fuzzer reaches the state machine
// rather than stopping at the CRC check; raw bytes cover everything else.
//
// Checked: ASan/UBSan on every access (each buffer is allocated with exactly its size);
// no heap allocation at all while the program runs (malloc hooks); every byte the device
// writes decodes as valid frames; a connection starts with a HELLO carrying this session's
// id and limits (or with a CLOSE), and nothing follows a CLOSE; data frames on one
// connection have increasing sequence numbers and are written only while that connection
// is the active one (so never before the peer's HELLO); the close hook gets sane
// arguments; available()/receive()/send() keep their contracts; the resend buffer never
// holds more than its size; the active slot is a live one.
//
// Input layout (missing bytes read as 0, so every input is a valid program):
//   byte 0   bits 0-1 buffer layout (kLayouts), 2-3 keepalive, 4-5 handshake bound,
//            6-7 dead-bound factor
//   bytes 1-2  start time (x 65537: 0 .. 0xFFFFFFFF)      byte 3  session id
//   then operations [op][slot][arguments...], op % 17:
//     0 open a connection      1 HELLO from the peer     2 data frame from the peer
//     3 ACK/PING/PONG/CLOSE    4 raw bytes [n][n bytes]  5 fragment size for feeds
//     6 advance time + tick    7 write some output       8 write all output, settle
//     9 application receive   10 application send       11 transport lost
//    12 release if closing    13 application close()    14 close() and start() anew
//    15 a frame cut short     16 evict() the oldest connection without HELLO
//   slot = byte % 6 - 1 (-1 and 4 are out of range on purpose). The arguments of each
//   operation are read by the op* functions below; make_corpus.py writes them.
//
// Built with -DFUZZ_KEYED=1 (the target fuzz_keyed) the endpoint has a pre-shared key and
// the harness is a keyed peer (docs/protocol.md §6): its HELLOs are version 2 with a nonce
// (op 1 reads one more byte: bits 0-1 nonce from the input / counter / the device's own /
// zeros, bit 2 the other version), and ops are taken % 19:
//    17 the peer's AUTH [sel]: sel % 4 the right proof / the wrong key's / the device's own
//       role (reflected) / bytes from the input; after it the peer's frames carry tags. A
//       peer that is the acceptor first reads what the device wrote (its AUTH comes after
//       the dialer's, docs/protocol.md §6) unless bit 2 of sel says it answers out of turn
//    18 setKey [sel]: sel % 4 the key / another key / clear / a length that is refused
// Checked on top: the device writes HELLO, AUTH, CLOSE only before its AUTH, then a correct
// tag on every frame (verified whenever the harness knows the transcript); as the acceptor
// it writes its AUTH only after the peer's right AUTH (a refusal is an untagged CLOSE); the active
// connection of a keyed slot is one whose peer sent the right AUTH (so nothing is ever
// delivered from a peer that did not prove the key); authFailures()/tagFailures() only grow.

#include <sanitizer/allocator_interface.h>
#include <stdlib.h>
#include <string.h>

#include <new>

#include "fuzz_common.h"
#include "wifisocket/frame.h"
#include "wifisocket/hmac.h"
#include "wifisocket/keyed.h"
#include "wifisocket/session.h"

#ifndef FUZZ_KEYED
#define FUZZ_KEYED 0
#endif

namespace {

using wsock::Endpoint;
using wsock::FrameDecoder;

constexpr int kSlots = Endpoint::kMaxSlots;
constexpr size_t kMaxOps = 4096;
constexpr bool kKeyed = FUZZ_KEYED != 0;
constexpr int kOps = kKeyed ? 19 : 17;

// The keys of the keyed build: the shared one, and another (refused or wrong).
const uint8_t kFuzzKey[32] = {0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a,
                              0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35,
                              0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f};
const uint8_t kOtherKey[16] = {0xF0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

// The endpoint's nonces: a counter, so a run is reproducible (the harness reads them from
// the device's HELLOs, it never predicts them).
uint64_t g_nonceCounter = 0;
void counterRandom(void*, uint8_t* out, size_t len) {
  for (size_t i = 0; i < len; ++i) {
    if (i % 8 == 0) ++g_nonceCounter;
    out[i] = static_cast<uint8_t>(g_nonceCounter >> (8 * (i % 8)));
  }
}

// What the harness (the peer) said on the connection in one slot, keyed build.
struct PeerSide {
  bool keyed = false;     // opened while the endpoint had a key: the device speaks version 2
  bool accepted = false;  // the device accepted it: the harness is the dialer
  uint8_t hello[wsock::kHelloMaxPayload] = {};
  size_t helloLen = 0;    // our last HELLO payload as sent (0: none)
  bool authSent = false;  // our AUTH is out: our frames carry tags
  bool authOk = false;    // it was the right proof over the HELLOs as the harness knows them
  uint8_t connKey[wsock::kConnKeySize] = {};
  uint64_t txN = 0;
  uint8_t role() const { return accepted ? wsock::kRoleDialer : wsock::kRoleAcceptor; }
};

// The endpoint's key as the harness set it (keyed build).
struct KeyMirror {
  const uint8_t* key = nullptr;
  size_t len = 0;
};
KeyMirror g_key;

// ---------------------------------------------------------------- allocation watch

bool g_trace = false;  // FUZZ_TRACE=1: print each operation (to read a finding)
// Per thread: libFuzzer's own threads (the RSS watcher) allocate while a program runs.
thread_local bool g_watching = false;
thread_local size_t g_allocations = 0;

void onMalloc(const volatile void*, size_t) {
  if (g_watching) ++g_allocations;
}
void onFree(const volatile void*) {}

// ---------------------------------------------------------------- configuration

struct Layout {
  uint32_t maxMessage;
  size_t decoderCap;
  size_t rxCap;
  size_t txCap;
};

// The decoder must hold maxMessage + 20 and a largest control frame (session.h); within
// that, the layouts go from the echo service's defaults to rings that wrap constantly.
constexpr Layout kLayouts[4] = {
    {4096, 4096 + wsock::kFrameOverhead, 8192, 8192},  // docs/protocol.md section 5
    {64, wsock::kMaxControlFrame, 84, 84},             // window = exactly one frame
    {100, wsock::kMaxControlFrame, 300, 150},
    {32, wsock::kMaxControlFrame, 1000, 53},            // resend ring holds one message
};
constexpr uint32_t kKeepalives[4] = {0, 1, 1000, 60000};
constexpr uint32_t kHandshakes[4] = {1, 50, 2000, 100000};
constexpr uint32_t kDeadFactors[4] = {1, 3, 100, 0xFFFFFFFFU};
constexpr uint32_t kTimeSteps[8] = {0, 1, 10, 999, 1000, 2999, 10000, 0x7FFFFFFFU};

constexpr uint64_t kPeerA = 0xA1A2A3A4A5A6A7A8ULL;
constexpr uint64_t kPeerB = 0xB1B2B3B4B5B6B7B8ULL;

// ---------------------------------------------------------------- output checking

// Everything the device writes on one connection, decoded and judged.
struct OutputCheck {
  static constexpr size_t kCap = wsock::kFrameOverhead + 8192 + wsock::kTagSize;
  uint8_t buf[kCap];
  FrameDecoder dec;
  uint64_t session = 0;       // this side's session id when the connection opened
  uint32_t maxMessage = 0;
  uint32_t window = 0;
  size_t txCap = 0;
  bool sawHello = false;
  bool sawClose = false;
  bool sawData = false;
  uint32_t lastSeq = 0;
  bool activeSeen = false;  // the slot was the active one while this frame was written
  bool accepted = false;    // Role kAccepted: the HELLO answers the dialer's
  uint64_t peerNow = 0;     // the endpoint's peer session while these bytes were written
  // The endpoint's peer sessions around each feed of this connection before the device's
  // HELLO was written: an acceptor's HELLO names the one it had when the dialer's HELLO came
  // in, and (keyed) another connection may take the session before the HELLO is written.
  uint64_t peersFed[8] = {};
  size_t peersFedCount = 0;
  bool peersFedFull = false;

  void notePeer(uint64_t p) {
    if (sawHello) return;
    for (size_t i = 0; i < peersFedCount; ++i) {
      if (peersFed[i] == p) return;
    }
    if (peersFedCount < 8) {
      peersFed[peersFedCount++] = p;
    } else {
      peersFedFull = true;  // too many to tell: that HELLO's resume is not checked
    }
  }
  bool named(uint64_t resume) const {
    if (resume == 0 || resume == peerNow || peersFedFull) return true;
    for (size_t i = 0; i < peersFedCount; ++i) {
      if (peersFed[i] == resume) return true;
    }
    return false;
  }
  // Keyed: the device's HELLO, whether its AUTH is out, and (when its proof matches the
  // HELLOs the harness knows) the connection key its tags must verify under.
  bool keyed = false;
  const PeerSide* peer = nullptr;
  uint8_t devHello[wsock::kHelloMaxPayload] = {};
  size_t devHelloLen = 0;
  bool devAuth = false;
  bool known = false;
  uint8_t connKey[wsock::kConnKeySize] = {};
  uint64_t rxN = 0;

  void open(const Endpoint& ep, size_t tx, bool acceptedRole, const PeerSide* peerSide) {
    accepted = acceptedRole;
    keyed = ep.keyed();
    peer = peerSide;
    devHelloLen = 0;
    devAuth = known = false;
    rxN = 0;
    peersFedCount = 0;
    peersFedFull = false;
    dec = FrameDecoder(buf, kCap, 0xFFFFFFFFU);
    session = ep.sessionId();
    maxMessage = ep.maxMessage();
    window = ep.window();
    txCap = tx;
    sawHello = sawClose = sawData = activeSeen = false;
    lastSeq = 0;
  }

  void feed(const uint8_t* p, size_t n, bool active, uint64_t* pingNonce) {
    if (active) activeSeen = true;
    while (n > 0) {
      size_t used = 0;
      const FrameDecoder::Status st = dec.feed(p, n, &used);
      FUZZ_CHECK(st != FrameDecoder::kError);  // the device never writes a broken frame
      p += used;
      n -= used;
      if (st == FrameDecoder::kFrame) {
        if (dec.tagged() && known) {
          uint8_t expect[wsock::kTagSize];
          wsock::frameTag(connKey, accepted ? wsock::kRoleAcceptor : wsock::kRoleDialer, rxN++,
                          dec.frameBytes(), wsock::kHeaderSize + dec.frame().length, nullptr, 0,
                          expect);
          FUZZ_CHECK(memcmp(expect, dec.tag(), sizeof expect) == 0);  // the device's tags
        }
        onFrame(dec.frame(), pingNonce);
        activeSeen = active;
      }
    }
  }

  void checkDeviceProof(const uint8_t* proof);

  void onFrame(const wsock::FrameView& f, uint64_t* pingNonce) {
    if (g_trace) {
      fprintf(stderr, "  device wrote type %u len %u seq %u ack %u\n", f.type, f.length, f.seq,
              f.ack);
    }
    FUZZ_CHECK(!sawClose);  // nothing after a CLOSE
    if (!sawHello && f.type == wsock::kClose) {
      // Closed before its HELLO went out (e.g. the application closed at once): a CLOSE
      // is the one frame a peer accepts before HELLO (docs/protocol.md section 1).
      sawClose = true;
      return;
    }
    if (!sawHello) {
      FUZZ_CHECK(f.type == wsock::kHello);  // every connection starts with a HELLO
      wsock::Hello h;
      const char* reason = nullptr;
      FUZZ_CHECK(wsock::decodeHello(f.payload, f.length, &h, &reason, keyed) == wsock::kNormal);
      if (keyed) {
        FUZZ_CHECK(f.length == wsock::kKeyedHelloPayloadSize);
        memcpy(devHello, f.payload, f.length);
        devHelloLen = f.length;
      }
      FUZZ_CHECK(h.session == session);
      FUZZ_CHECK(h.maxMessage == maxMessage && h.window == window);
      // An acceptor names a remembered session only to the dialer that named itself as
      // its peer, so never another peer session (docs/protocol.md section 2, Strangers).
      if (accepted) FUZZ_CHECK(named(h.resume));
      if (accepted && h.resume == 0) FUZZ_CHECK(f.ack == 0);
      sawHello = true;
      return;
    }
    if (keyed && !devAuth) {
      // Between its HELLO and its AUTH the device says nothing else (a CLOSE ends it).
      FUZZ_CHECK(f.type == wsock::kAuth || f.type == wsock::kClose);
      if (f.type == wsock::kClose) {
        sawClose = true;
        return;
      }
      // An acceptor proves nothing to a dialer that has not proven the key (§6).
      if (accepted) FUZZ_CHECK(peer != nullptr && peer->authOk);
      devAuth = true;
      dec.setTagged(true);
      checkDeviceProof(f.payload);
      return;
    }
    switch (f.type) {
      case wsock::kHello:
      case wsock::kAuth:
        FUZZ_CHECK(false);  // one HELLO (and one AUTH) per connection
        break;
      case wsock::kText:
      case wsock::kBinary:
        // Data goes out only on the active connection, so never before the peer's HELLO.
        FUZZ_CHECK(activeSeen);
        FUZZ_CHECK(wsock::kFrameOverhead + f.length <= txCap);
        // Increasing on one connection: resends happen on a new one. (Not necessarily +1:
        // the peer may acknowledge frames before this connection carried them, and those
        // are dropped rather than written.)
        FUZZ_CHECK(f.seq >= 1);
        if (sawData) FUZZ_CHECK(f.seq > lastSeq);
        sawData = true;
        lastSeq = f.seq;
        break;
      case wsock::kPing:
        *pingNonce = wsock::getU64(f.payload);
        break;
      case wsock::kClose:
        sawClose = true;
        break;
      default:
        break;
    }
  }
};

// The device's AUTH: when the harness knows both HELLOs and the key, the proof must be
// exactly the one of docs/protocol.md §6, and then every later tag is checked too.
void OutputCheck::checkDeviceProof(const uint8_t* proof) {
  if (peer == nullptr || peer->helloLen == 0 || g_key.len == 0) return;
  const uint8_t* hd = accepted ? peer->hello : devHello;
  const size_t hdLen = accepted ? peer->helloLen : devHelloLen;
  const uint8_t* ha = accepted ? devHello : peer->hello;
  const size_t haLen = accepted ? devHelloLen : peer->helloLen;
  uint8_t expect[wsock::kAuthPayload];
  wsock::authProof(g_key.key, g_key.len, accepted ? wsock::kRoleAcceptor : wsock::kRoleDialer,
                   hd, hdLen, ha, haLen, expect);
  // A HELLO from raw bytes, or a key changed since: unknown transcript, tags not checked.
  if (memcmp(expect, proof, sizeof expect) != 0) return;
  known = true;
  const uint8_t* nd = hd + wsock::kHelloPayloadSize;
  const uint8_t* na = ha + wsock::kHelloPayloadSize;
  wsock::connectionKey(g_key.key, g_key.len, nd, na, connKey);
}

// ---------------------------------------------------------------- the harness

struct Harness {
  Endpoint* ep = nullptr;
  Layout layout{};
  uint32_t now = 0;
  size_t fragment = 0;       // feed frames in pieces of this size (0 = whole)
  uint32_t peerNext = 1;     // next seq the harness's data frames use by default
  uint64_t lastPingNonce = 0;
  uint64_t sessionCounter = 0;
  OutputCheck out[kSlots];
  bool tracked[kSlots] = {};  // out[i] describes the connection in slot i
  PeerSide peer[kSlots];      // keyed build: what the harness said in slot i
  uint32_t authFailures = 0, tagFailures = 0;

  static uint8_t frame[wsock::kFrameOverhead + 8192 + wsock::kTagSize];
  static uint8_t payload[8192];
  static uint8_t inbox[8192 + 16];

  void feed(int slot, const uint8_t* p, size_t n) {
    if (fragment == 0) {
      feedPiece(slot, p, n);
      return;
    }
    for (size_t off = 0; off < n; off += fragment) {
      const size_t k = n - off < fragment ? n - off : fragment;
      feedPiece(slot, p + off, k);
    }
  }

  void feedPiece(int slot, const uint8_t* p, size_t n) {
    const bool note = slot >= 0 && slot < kSlots && tracked[slot];
    if (note) out[slot].notePeer(ep->peerSession());
    ep->feed(slot, p, n, now);
    if (note) out[slot].notePeer(ep->peerSession());
  }

  void feedFrame(int slot, uint8_t type, uint32_t seq, uint32_t ack, const uint8_t* body,
                 size_t len) {
    size_t n = wsock::encodeFrame(frame, sizeof frame, type, seq, ack, body, len);
    FUZZ_CHECK(n == wsock::kFrameOverhead + len);
    if (kKeyed && slot >= 0 && slot < kSlots && peer[slot].authSent) {
      PeerSide& p = peer[slot];
      wsock::frameTag(p.connKey, p.role(), p.txN++, frame, n - wsock::kCrcSize, nullptr, 0,
                      frame + n);
      n += wsock::kTagSize;
    }
    if (g_trace) fprintf(stderr, "  peer frame type %u seq %u ack %u len %zu\n", type, seq, ack, len);
    feed(slot, frame, n);
  }

  uint32_t chooseAck(uint8_t sel, fuzz::Cursor& in) {
    const uint32_t sent = ep->nextSeq() - 1;
    switch (sel & 3) {
      case 0: return sent;
      case 1: return 0;
      case 2: return sent - in.u8();
      default: return in.u32();
    }
  }

  uint64_t u64(fuzz::Cursor& in) {
    const uint64_t hi = in.u32();
    return (hi << 32) | in.u32();
  }

  // Writes up to `budget` bytes of the slot's output (0 = all there is), checking them.
  void drain(int slot, size_t budget) {
    size_t left = budget == 0 ? static_cast<size_t>(-1) : budget;
    while (left > 0) {
      const uint8_t* p = nullptr;
      const size_t n = ep->peekOutput(slot, &p, now);
      if (n == 0) return;
      FUZZ_CHECK(p != nullptr);
      FUZZ_CHECK(slot >= 0 && slot < kSlots && ep->inUse(slot));
      const size_t k = n < left ? n : left;
      if (tracked[slot]) {
        out[slot].peerNow = ep->peerSession();
        out[slot].feed(p, k, ep->activeSlot() == slot, &lastPingNonce);
      }
      ep->consumeOutput(slot, k, now);
      left -= k;
    }
  }

  // Like the Arduino class: flush what a closing slot has to say, then free it.
  void settle() {
    for (int i = 0; i < kSlots; ++i) {
      if (!ep->closing(i)) continue;
      drain(i, 0);
      ep->release(i);
      tracked[i] = false;
    }
  }

  void checkInvariants() {
    FUZZ_CHECK(ep->unackedBytes() <= layout.txCap);
    // Counters only grow; a keyed connection is active only after the peer's right AUTH.
    FUZZ_CHECK(ep->authFailures() >= authFailures && ep->tagFailures() >= tagFailures);
    authFailures = ep->authFailures();
    tagFailures = ep->tagFailures();
    if (kKeyed && ep->activeSlot() >= 0) {
      const PeerSide& p = peer[ep->activeSlot()];
      FUZZ_CHECK(!p.keyed || p.authOk);
    }
    FUZZ_CHECK(ep->maxMessage() <= layout.maxMessage);
    FUZZ_CHECK(ep->maxMessage() + wsock::kFrameOverhead <= layout.rxCap);
    const int avail = ep->available();
    FUZZ_CHECK(avail >= -1 && avail <= static_cast<int>(ep->maxMessage()));
    const int active = ep->activeSlot();
    FUZZ_CHECK(active >= -1 && active < kSlots);
    FUZZ_CHECK(ep->connected() == (active >= 0));
    if (active >= 0) FUZZ_CHECK(ep->inUse(active) && !ep->closing(active));
  }

  void run(fuzz::Cursor& in) {
    for (size_t ops = 0; ops < kMaxOps && !in.empty(); ++ops) {
      const uint8_t op = in.u8();
      // Slots -1..4: the API must shrug off the two out of range as well.
      const int slot = static_cast<int>(in.u8() % (kSlots + 2)) - 1;
      if (g_trace) fprintf(stderr, "op %zu: %u slot %d now %u\n", ops, op % kOps, slot, now);
      switch (op % kOps) {
        case 0: {  // a TCP connection comes up
          const bool accepted = (op & 0x80) != 0;
          const int s = ep->open(now, accepted ? Endpoint::kAccepted : Endpoint::kDialled);
          FUZZ_CHECK(s >= -1 && s < kSlots);
          if (s >= 0) {
            FUZZ_CHECK(ep->inUse(s) && !ep->closing(s));
            peer[s] = PeerSide();
            peer[s].keyed = ep->keyed();
            peer[s].accepted = accepted;
            out[s].open(*ep, layout.txCap, accepted, &peer[s]);
            tracked[s] = true;
          }
          break;
        }
        case 17: opAuth(slot, in); break;
        case 18: opSetKey(in); break;
        case 1: opHello(slot, in); break;
        case 2: opData(slot, in); break;
        case 3: opControl(slot, in); break;
        case 4: {  // raw bytes, anything at all
          size_t n = 0;
          const uint8_t* p = in.bytes(in.u8(), &n);
          feed(slot, p, n);
          break;
        }
        case 5: fragment = in.u8() % 24; break;
        case 6:
          now += kTimeSteps[in.u8() % 8];
          ep->tick(now);
          break;
        case 7: {
          static constexpr size_t kBudgets[4] = {1, 7, 100, 0};
          drain(slot, kBudgets[in.u8() % 4]);
          break;
        }
        case 8:
          for (int i = 0; i < kSlots; ++i) drain(i, 0);
          settle();
          break;
        case 9: opReceive(in); break;
        case 10: opSend(in); break;
        case 11:  // the connection drops without a word
          ep->transportLost(slot);
          if (slot >= 0 && slot < kSlots) {
            FUZZ_CHECK(!ep->inUse(slot));
            tracked[slot] = false;
          }
          break;
        case 12:
          if (ep->closing(slot)) {
            drain(slot, in.u8() % 2 == 0 ? 0 : 3);
            ep->release(slot);
            tracked[slot] = false;
          }
          break;
        case 13:  // the application closes everything
          ep->close();
          for (int i = 0; i < kSlots; ++i) FUZZ_CHECK(!ep->inUse(i) || ep->closing(i));
          settle();
          break;
        case 14:  // begin() again: a new session (what a reboot looks like to the peer)
          ep->close();
          settle();
          ep->start(0x5E55000000000000ULL + ++sessionCounter);
          peerNext = 1;
          break;
        case 15:  // a frame cut short: the header and part of the rest
          opTruncated(slot, in);
          break;
        case 16: {  // every slot busy: the Arduino class evicts one without HELLO
          const int active = ep->activeSlot();
          const int v = ep->evict();
          FUZZ_CHECK(v >= -1 && v < kSlots);
          if (v >= 0) {
            FUZZ_CHECK(v != active && ep->closing(v));  // never the connection past HELLO
            drain(v, 0);
            ep->release(v);
            tracked[v] = false;
          }
          break;
        }
      }
      checkInvariants();
      if (g_trace) {
        fprintf(stderr, "  -> active %d nextSeq %u unacked %u peer %llx avail %d\n",
                ep->activeSlot(), ep->nextSeq(), ep->unackedBytes(),
                static_cast<unsigned long long>(ep->peerSession()), ep->available());
      }
    }
    for (int i = 0; i < kSlots; ++i) drain(i, 0);
    settle();
    checkInvariants();
  }

  void opHello(int slot, fuzz::Cursor& in) {
    const uint8_t sel = in.u8();
    wsock::Hello h;
    switch (sel & 3) {
      case 0: h.session = kPeerA; break;
      case 1: h.session = kPeerB; break;
      case 2: h.session = u64(in); break;
      default: h.session = 0; break;  // invalid
    }
    switch ((sel >> 2) & 3) {
      case 0: h.resume = 0; break;
      case 2: h.resume = u64(in); break;
      default: h.resume = ep->sessionId(); break;
    }
    const uint32_t ack = chooseAck(sel >> 4, in);
    switch ((sel >> 6) & 3) {
      case 0:  // the host library's defaults
        h.maxMessage = 1U << 20;
        h.window = 2U << 20;
        h.keepaliveMs = 1000;
        break;
      case 1:  // small limits: the device's sends hit them
        h.maxMessage = in.u8() + 1U;
        h.window = h.maxMessage + wsock::kFrameOverhead + in.u8();
        h.keepaliveMs = in.u16();
        break;
      case 2:  // anything
        h.maxMessage = in.u32();
        h.window = in.u32();
        h.keepaliveMs = in.u32();
        break;
      default:
        h.version = in.u8();
        h.maxMessage = 4096;
        h.window = 8192;
        h.keepaliveMs = 0;
        break;
    }
    const bool slotKeyed = slot >= 0 && slot < kSlots && peer[slot].keyed;
    if (kKeyed) {
      const uint8_t ksel = in.u8();
      const bool v2 = slotKeyed != ((ksel & 4) != 0);  // bit 2: the other side's version
      if ((sel >> 6) != 3) h.version = v2 ? wsock::kKeyedProtocolVersion : wsock::kProtocolVersion;
      switch (ksel & 3) {
        case 0: {
          size_t got = 0;
          const uint8_t* p = in.bytes(sizeof h.nonce, &got);
          memcpy(h.nonce, p, got);
          break;
        }
        case 1: counterRandom(nullptr, h.nonce, sizeof h.nonce); break;
        case 2:  // the device's own nonce, reflected
          if (slot >= 0 && slot < kSlots && out[slot].devHelloLen > 0) {
            memcpy(h.nonce, out[slot].devHello + wsock::kHelloPayloadSize, sizeof h.nonce);
          }
          break;
        default: break;
      }
    }
    uint8_t body[wsock::kHelloMaxPayload];
    size_t len = wsock::encodeHello(h, body, sizeof body);
    FUZZ_CHECK(len == wsock::kHelloPayloadSize || len == wsock::kKeyedHelloPayloadSize);
    if ((sel & 0xF0) == 0xF0) {  // a longer HELLO of a later minor version
      const size_t extra = in.u8() % (wsock::kHelloMaxPayload - len + 1);
      memset(body + len, 0xEE, extra);
      len += extra;
    }
    if (h.session != 0 && !(h.session == kPeerA || h.session == kPeerB)) peerNext = 1;
    if (kKeyed && slot >= 0 && slot < kSlots) {
      memcpy(peer[slot].hello, body, len);
      peer[slot].helloLen = len;
    }
    feedFrame(slot, wsock::kHello, 0, ack, body, len);
  }

  // Keyed build: the peer's AUTH, right or wrong; its later frames carry tags.
  void opAuth(int slot, fuzz::Cursor& in) {
    const uint8_t sel = in.u8();
    uint8_t proof[wsock::kAuthPayload] = {};
    bool right = false;
    if (slot >= 0 && slot < kSlots) {
      PeerSide& p = peer[slot];
      // Read its HELLO, and as the acceptor (the device dialled) its AUTH too, in turn.
      if (tracked[slot] && (out[slot].devHelloLen == 0 || (!p.accepted && !(sel & 4)))) {
        drain(slot, 0);
      }
      const OutputCheck& o = out[slot];
      const bool transcript = p.helloLen > 0 && o.devHelloLen > 0 && g_key.len > 0;
      const uint8_t* hd = p.accepted ? p.hello : o.devHello;
      const size_t hdLen = p.accepted ? p.helloLen : o.devHelloLen;
      const uint8_t* ha = p.accepted ? o.devHello : p.hello;
      const size_t haLen = p.accepted ? o.devHelloLen : p.helloLen;
      switch (sel & 3) {
        case 0:
        case 1: {
          const bool wrong = (sel & 3) == 1;
          const uint8_t* key = wrong ? (g_key.key == kFuzzKey ? kOtherKey : kFuzzKey) : g_key.key;
          const size_t keyLen = wrong ? (g_key.key == kFuzzKey ? sizeof kOtherKey : sizeof kFuzzKey)
                                      : g_key.len;
          if (transcript) {
            wsock::authProof(key, keyLen, p.role(), hd, hdLen, ha, haLen, proof);
            right = !wrong;
          }
          break;
        }
        case 2:  // the device's own proof, reflected
          if (transcript) {
            const uint8_t dev = p.accepted ? wsock::kRoleAcceptor : wsock::kRoleDialer;
            wsock::authProof(g_key.key, g_key.len, dev, hd, hdLen, ha, haLen, proof);
          }
          break;
        default: {
          size_t got = 0;
          const uint8_t* b = in.bytes(sizeof proof, &got);
          memcpy(proof, b, got);
          break;
        }
      }
      if (transcript) {
        wsock::connectionKey(g_key.key, g_key.len, hd + wsock::kHelloPayloadSize,
                             ha + wsock::kHelloPayloadSize, p.connKey);
      }
      if (g_trace) fprintf(stderr, "  peer AUTH variant %u right %d\n", sel & 3, right);
      feedFrame(slot, wsock::kAuth, 0, 0, proof, sizeof proof);
      p.authSent = true;
      p.txN = 0;
      p.authOk = p.authOk || right;
      return;
    }
    feedFrame(slot, wsock::kAuth, 0, 0, proof, sizeof proof);
  }

  // Keyed build: the key changes (or a bad one is refused) while connections are up.
  void opSetKey(fuzz::Cursor& in) {
    const uint8_t sel = in.u8();
    const bool before = ep->keyed();
    switch (sel & 3) {
      case 0:
        FUZZ_CHECK(ep->setKey(kFuzzKey, sizeof kFuzzKey));
        g_key = KeyMirror{kFuzzKey, sizeof kFuzzKey};
        break;
      case 1:
        FUZZ_CHECK(ep->setKey(kOtherKey, sizeof kOtherKey));
        g_key = KeyMirror{kOtherKey, sizeof kOtherKey};
        break;
      case 2:
        FUZZ_CHECK(ep->setKey(nullptr, 0) && !ep->keyed());
        g_key = KeyMirror{};
        break;
      default: {
        static constexpr size_t kBad[4] = {1, 15, 33, 64};
        FUZZ_CHECK(!ep->setKey(kFuzzKey, kBad[(sel >> 2) & 3]));
        FUZZ_CHECK(ep->keyed() == before);
        break;
      }
    }
    settle();
  }

  void opData(int slot, fuzz::Cursor& in) {
    const uint8_t sel = in.u8();
    const uint8_t type = (sel & 1) ? wsock::kText : wsock::kBinary;
    uint32_t seq = 0;
    switch ((sel >> 1) & 3) {
      case 0: seq = peerNext; break;
      case 1: seq = peerNext > 1 ? peerNext - 1 : 1; break;  // a duplicate
      case 2: seq = in.u8(); break;                          // may be 0 or skip ahead
      default: seq = in.u32(); break;
    }
    const uint32_t ack = chooseAck(sel >> 3, in);
    const uint32_t max = ep->maxMessage();
    size_t len = 0;
    switch ((sel >> 5) & 7) {
      case 0: len = 0; break;
      case 1: len = 1; break;
      case 2: case 3: len = in.u8(); break;
      case 4: len = in.u16() % (max + 1); break;
      case 5: len = max; break;
      case 6: len = max + 1; break;  // TOO_LARGE
      default: len = in.u16(); break;
    }
    if (len > sizeof payload) len = sizeof payload;
    memset(payload, in.u8(), len);
    if (seq == peerNext) ++peerNext;
    feedFrame(slot, type, seq, ack, payload, len);
  }

  void opControl(int slot, fuzz::Cursor& in) {
    const uint8_t sel = in.u8();
    const uint32_t ack = chooseAck(sel >> 2, in);
    uint8_t body[wsock::kCloseMaxPayload];
    switch (sel & 3) {
      case 0:
        feedFrame(slot, wsock::kAck, 0, ack, nullptr, 0);
        break;
      case 1:
        wsock::putU64(body, u64(in));
        feedFrame(slot, wsock::kPing, 0, ack, body, wsock::kNoncePayload);
        break;
      case 2:  // answers the device's last PING, or not
        wsock::putU64(body, (sel & 0x80) ? lastPingNonce : u64(in));
        feedFrame(slot, wsock::kPong, 0, ack, body, wsock::kNoncePayload);
        break;
      default: {
        const size_t len = 1 + in.u8() % wsock::kCloseMaxPayload;
        body[0] = in.u8();
        for (size_t i = 1; i < len; ++i) body[i] = static_cast<uint8_t>(in.u8() ^ 0x41);
        feedFrame(slot, wsock::kClose, 0, ack, body, len);
        break;
      }
    }
  }

  void opTruncated(int slot, fuzz::Cursor& in) {
    const uint8_t type = static_cast<uint8_t>(1 + in.u8() % 7);
    const size_t len = in.u8();
    memset(payload, 0x5A, len);
    const uint32_t seq = wsock::isDataType(type) ? peerNext : 0;
    const size_t n = wsock::encodeFrame(frame, sizeof frame, type, seq, 0, payload, len);
    FUZZ_CHECK(n > 0);
    feed(slot, frame, in.u8() % n);
  }

  void opReceive(fuzz::Cursor& in) {
    static constexpr size_t kCaps[4] = {0, 1, 100, 8192};
    const size_t cap = kCaps[in.u8() % 4];
    const int avail = ep->available();
    memset(inbox, 0xCC, sizeof inbox);
    bool isText = false;
    const int got = ep->receive(inbox, cap, &isText);
    if (avail < 0) {
      FUZZ_CHECK(got == -1);
    } else if (static_cast<size_t>(avail) > cap) {
      FUZZ_CHECK(got == -2);
      FUZZ_CHECK(ep->available() == avail);  // the message stays
    } else {
      FUZZ_CHECK(got == avail);
    }
    // Nothing is written beyond what was taken.
    const size_t written = got > 0 ? static_cast<size_t>(got) : 0;
    for (size_t i = written; i < sizeof inbox; ++i) FUZZ_CHECK(inbox[i] == 0xCC);
  }

  void opSend(fuzz::Cursor& in) {
    const uint8_t sel = in.u8();
    size_t len = 0;
    switch ((sel >> 1) & 3) {
      case 0: len = in.u8() % 8; break;
      case 1: len = in.u8(); break;
      case 2: len = in.u16() % (layout.txCap + 1); break;
      default: len = in.u16(); break;
    }
    if (len > sizeof payload) len = sizeof payload;
    memset(payload, sel, len);
    const uint32_t before = ep->unackedBytes();
    const uint32_t seq = ep->nextSeq();
    const Endpoint::SendResult r = ep->send(payload, len, (sel & 1) != 0);
    if (g_trace) fprintf(stderr, "  send %zu bytes: result %u\n", len, r);
    if (r == Endpoint::kSent) {
      FUZZ_CHECK(ep->peerSession() != 0);
      FUZZ_CHECK(ep->nextSeq() == seq + 1);
      FUZZ_CHECK(ep->unackedBytes() == before + wsock::kFrameOverhead + len);
      FUZZ_CHECK(len <= ep->peerMaxMessage());
    } else {
      FUZZ_CHECK(ep->nextSeq() == seq && ep->unackedBytes() == before);
      if (r == Endpoint::kNoPeer) FUZZ_CHECK(ep->peerSession() == 0);
      if (len + wsock::kFrameOverhead > layout.txCap) FUZZ_CHECK(r != Endpoint::kNoRoom);
    }
  }
};

uint8_t Harness::frame[wsock::kFrameOverhead + 8192 + wsock::kTagSize];
uint8_t Harness::payload[8192];
uint8_t Harness::inbox[8192 + 16];

void closeHook(void* ctx, int slot, uint8_t kind, uint8_t code, const char* reason) {
  if (g_trace) fprintf(stderr, "  close hook: slot %d kind %u code %u %s\n", slot, kind, code, reason);
  FUZZ_CHECK(ctx != nullptr);
  FUZZ_CHECK(slot >= 0 && slot < kSlots);
  FUZZ_CHECK(kind <= wsock::kConnectionLost);
  FUZZ_CHECK(reason != nullptr && strlen(reason) <= wsock::kCloseMaxReason);
  if (kind == wsock::kClosedLocally) {
    FUZZ_CHECK(code <= wsock::kBadTag);
    FUZZ_CHECK(reason[0] != 0);
  }
}

uint8_t* exactly(size_t n) {
  uint8_t* p = static_cast<uint8_t*>(malloc(n));
  FUZZ_CHECK(p != nullptr);
  memset(p, 0xA5, n);
  return p;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  FUZZ_CHECK(__sanitizer_install_malloc_and_free_hooks(onMalloc, onFree) != 0);
  g_trace = getenv("FUZZ_TRACE") != nullptr;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Cursor in(data, size);
  const uint8_t cfg = in.u8();
  const Layout& layout = kLayouts[cfg & 3];
  wsock::EndpointConfig config;
  config.maxMessage = layout.maxMessage;
  config.keepaliveMs = kKeepalives[(cfg >> 2) & 3];
  config.handshakeMs = kHandshakes[(cfg >> 4) & 3];
  config.deadFactor = kDeadFactors[(cfg >> 6) & 3];
  const uint32_t start = in.u16() * 65537U;  // 0, ..., 0xFFFFFFFF: the clock may wrap soon
  const uint8_t id = in.u8();

  // Setup may allocate (as the firmware's setup() may); from start() on, nothing may.
  uint8_t* decoder = exactly(layout.decoderCap);
  uint8_t* rx = exactly(layout.rxCap);
  uint8_t* tx = exactly(layout.txCap);
  static Harness h;
  h.ep = new Endpoint(config, wsock::EndpointBuffers{decoder, layout.decoderCap, rx,
                                                     layout.rxCap, tx, layout.txCap});
  h.layout = layout;
  h.now = start;
  h.fragment = 0;
  h.peerNext = 1;
  h.lastPingNonce = 0;
  h.sessionCounter = 0;
  for (bool& t : h.tracked) t = false;
  h.ep->setCloseHook(closeHook, &h);
  h.authFailures = h.tagFailures = 0;
  g_key = KeyMirror{};
  g_nonceCounter = 0;
  if (kKeyed) {
    h.ep->setRandom(counterRandom, nullptr);
    FUZZ_CHECK(h.ep->setKey(kFuzzKey, sizeof kFuzzKey));
    g_key = KeyMirror{kFuzzKey, sizeof kFuzzKey};
  }

  g_allocations = 0;
  g_watching = true;
  h.ep->start(id);  // 0 too: the endpoint must not use a zero session id
#ifdef FUZZ_SELFTEST
  // Built with -DFUZZ_SELFTEST an allocation happens inside the watched window, so every
  // input must fail: proof that the allocation watch works.
  void* volatile planted = malloc(1);
  free(planted);
#endif
  FUZZ_CHECK(h.ep->sessionId() != 0);
  h.run(in);
  g_watching = false;
  FUZZ_CHECK(g_allocations == 0);

  delete h.ep;
  h.ep = nullptr;
  free(decoder);
  free(rx);
  free(tx);
  return 0;
}
