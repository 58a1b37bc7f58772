// Host-compiled tests of the device session core (wifisocket/session.h): two endpoints over
// an in-memory wire, and one endpoint against scripted frames. Prints "PASS <name>" per
// test and "FAIL ..." per failed check; exits non-zero on any failure.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>
#include <vector>

#include "check.h"
#include "wifisocket/frame.h"
#include "wifisocket/session.h"

using namespace wsock;

namespace {

struct CloseRecord {
  int slot;
  uint8_t kind;
  uint8_t code;
  std::string reason;
};

// Keys of keyed links (docs/protocol.md §6): keyed.json's, and another.
const uint8_t kKey[32] = {0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a,
                          0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35,
                          0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f};
const uint8_t kOtherKey[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

// The tests' nonce source: deterministic per side (xorshift), never the same twice.
void testRandom(void* ctx, uint8_t* out, size_t len) {
  uint64_t& st = *static_cast<uint64_t*>(ctx);
  for (size_t i = 0; i < len; ++i) {
    st ^= st << 13;
    st ^= st >> 7;
    st ^= st << 17;
    out[i] = static_cast<uint8_t>(st >> 56);
  }
}

// One endpoint with its memory and a log of its closes.
struct Side {
  std::vector<uint8_t> dec, rx, tx;
  Endpoint ep;
  std::vector<CloseRecord> closes;
  uint64_t rng;

  Side(uint64_t id, uint32_t maxMessage, size_t rxCap, size_t txCap, uint32_t keepalive = 1000)
      : dec(maxMessage + kMaxControlFrame), rx(rxCap), tx(txCap),
        ep(makeConfig(maxMessage, keepalive),
           EndpointBuffers{dec.data(), dec.size(), rx.data(), rx.size(), tx.data(), tx.size()}) {
    ep.setCloseHook(&Side::hook, this);
    ep.start(id);
    rng = 0x9E3779B97F4A7C15ULL ^ id;
  }
  // A keyed endpoint (with its nonce source); returns itself for chaining.
  Side& keyed(const uint8_t* key = kKey, size_t len = sizeof kKey) {
    ep.setRandom(testRandom, &rng);
    CHECK(ep.setKey(key, len));
    return *this;
  }
  size_t closesWith(uint8_t kind, uint8_t code) const {
    size_t n = 0;
    for (const auto& c : closes) n += c.kind == kind && c.code == code;
    return n;
  }
  static EndpointConfig makeConfig(uint32_t maxMessage, uint32_t keepalive) {
    EndpointConfig c;
    c.maxMessage = maxMessage;
    c.keepaliveMs = keepalive;
    return c;
  }
  static void hook(void* ctx, int slot, uint8_t kind, uint8_t code, const char* reason) {
    if (getenv("WS_TRACE")) printf("  close slot=%d kind=%u code=%u reason=%s\n", slot, kind, code, reason);
    static_cast<Side*>(ctx)->closes.push_back(CloseRecord{slot, kind, code, reason});
  }
  bool sendText(const std::string& s) {
    return ep.send(reinterpret_cast<const uint8_t*>(s.data()), s.size(), true) == Endpoint::kSent;
  }
  // Takes the next message as a string; "<none>" if there is none.
  std::string take(bool* isText = nullptr) {
    uint8_t buf[8192];
    const int n = ep.receive(buf, sizeof buf, isText);
    return n < 0 ? std::string("<none>") : std::string(reinterpret_cast<char*>(buf), n);
  }
  bool closedWith(uint8_t code) const {
    for (const auto& c : closes) {
      if (c.kind == kClosedLocally && c.code == code) return true;
    }
    return false;
  }
};

// Moves bytes one way: what `from` offers on slot fs is fed to `to` on slot ts. `budget`
// bounds the bytes moved (a socket with little room, or a cut mid-stream). Returns bytes moved.
size_t flow(Side& from, int fs, Side& to, int ts, uint32_t now, size_t budget = SIZE_MAX,
            std::vector<uint8_t>* capture = nullptr) {
  size_t moved = 0;
  while (moved < budget) {
    const uint8_t* p = nullptr;
    size_t n = from.ep.peekOutput(fs, &p, now);
    if (n == 0) break;
    if (n > budget - moved) n = budget - moved;
    std::vector<uint8_t> chunk(p, p + n);
    from.ep.consumeOutput(fs, n, now);
    if (capture) capture->insert(capture->end(), chunk.begin(), chunk.end());
    to.ep.feed(ts, chunk.data(), chunk.size(), now);
    moved += n;
  }
  return moved;
}

// Both ways until quiet.
void pump(Side& a, int as, Side& b, int bs, uint32_t now) {
  for (int i = 0; i < 1000; ++i) {
    const size_t n = flow(a, as, b, bs, now) + flow(b, bs, a, as, now);
    if (n == 0) return;
  }
  CHECK(!"pump did not settle");
}

// Drops both ends of a connection as a TCP reset would.
void cut(Side& a, int as, Side& b, int bs) {
  a.ep.transportLost(as);
  b.ep.transportLost(bs);
}

// Decodes everything the endpoint offers on a slot into frames (a scripted peer's view).
struct Frame {
  uint8_t type;
  uint32_t seq, ack;
  std::vector<uint8_t> payload;
};

std::vector<Frame> drain(Side& s, int slot, uint32_t now, std::vector<uint8_t>* raw = nullptr) {
  std::vector<uint8_t> bytes;
  const uint8_t* p = nullptr;
  size_t n;
  while ((n = s.ep.peekOutput(slot, &p, now)) > 0) {
    bytes.insert(bytes.end(), p, p + n);
    s.ep.consumeOutput(slot, n, now);
  }
  if (raw) *raw = bytes;
  std::vector<uint8_t> buf(70000);
  FrameDecoder dec(buf.data(), buf.size(), 65536);
  std::vector<Frame> out;
  size_t pos = 0;
  while (pos < bytes.size()) {
    size_t used = 0;
    const auto st = dec.feed(bytes.data() + pos, bytes.size() - pos, &used);
    pos += used;
    if (st == FrameDecoder::kFrame) {
      const FrameView& f = dec.frame();
      out.push_back(Frame{f.type, f.seq, f.ack,
                          std::vector<uint8_t>(f.payload, f.payload + f.length)});
    } else if (st == FrameDecoder::kError) {
      CHECK(!"device produced an undecodable stream");
      break;
    }
  }
  CHECK(dec.buffered() == 0);
  return out;
}

std::vector<uint8_t> frameBytes(uint8_t type, uint32_t seq, uint32_t ack,
                                const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> out(payload.size() + kFrameOverhead);
  encodeFrame(out.data(), out.size(), type, seq, ack, payload.data(), payload.size());
  return out;
}

std::vector<uint8_t> helloPayload(uint64_t session, uint64_t resume, uint32_t maxMessage = 1024,
                                  uint32_t window = 8192, uint32_t keepalive = 1000) {
  Hello h;
  h.maxMessage = maxMessage;
  h.window = window;
  h.keepaliveMs = keepalive;
  h.session = session;
  h.resume = resume;
  std::vector<uint8_t> p(kHelloPayloadSize);
  encodeHello(h, p.data(), p.size());
  return p;
}

void feedFrame(Side& s, int slot, uint8_t type, uint32_t seq, uint32_t ack,
               const std::vector<uint8_t>& payload, uint32_t now = 0) {
  const auto b = frameBytes(type, seq, ack, payload);
  s.ep.feed(slot, b.data(), b.size(), now);
}

std::vector<uint8_t> bytesOf(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

// A device endpoint with a scripted peer that has completed HELLO on slot 0.
struct Scripted {
  Side dev;
  int slot;
  std::vector<Frame> hello;
  Scripted(uint32_t maxMessage = 256, size_t rxCap = 1024, size_t txCap = 1024)
      : dev(0xD0D0, maxMessage, rxCap, txCap) {
    slot = dev.ep.open(0);
    hello = drain(dev, slot, 0);
    feedFrame(dev, slot, kHello, 0, 0, helloPayload(0xAAAA, 0));
  }
};

// --------------------------------------------------------------------------------- tests

void test_hello_exchange_and_echo() {
  Side a(0xA1, 4096, 8192, 8192), b(0xB1, 4096, 8192, 8192);
  const int as = a.ep.open(0), bs = b.ep.open(0);
  CHECK(!a.ep.connected());
  CHECK(a.ep.send(reinterpret_cast<const uint8_t*>("x"), 1, true) == Endpoint::kNoPeer);
  pump(a, as, b, bs, 0);
  CHECK(a.ep.connected() && b.ep.connected());
  CHECK(a.ep.peerSession() == 0xB1 && b.ep.peerSession() == 0xA1);
  CHECK(a.sendText("Hi"));
  pump(a, as, b, bs, 1);
  CHECK(b.ep.available() == 2);
  CHECK(b.ep.waiting() == 1 && b.ep.nextIsText());
  bool isText = false;
  CHECK(b.take(&isText) == "Hi" && isText);
  CHECK(b.ep.waiting() == 0 && !b.ep.nextIsText());
  const uint8_t bin[3] = {0, 0xFF, 7};
  CHECK(b.ep.send(bin, 3, false) == Endpoint::kSent);
  pump(a, as, b, bs, 2);
  CHECK(a.ep.waiting() == 1 && !a.ep.nextIsText());
  uint8_t got[8];
  CHECK(a.ep.receive(got, sizeof got, &isText) == 3 && !isText && memcmp(got, bin, 3) == 0);
  pump(a, as, b, bs, 3);
  // Everything taken has been acknowledged: nothing left to resend on either side.
  CHECK(a.ep.unackedBytes() == 0 && b.ep.unackedBytes() == 0);
  CHECK(a.ep.messagesOut() == 1 && a.ep.messagesIn() == 1 && b.ep.bytesIn() == 2);
  CHECK(a.closes.empty() && b.closes.empty());
}

void test_window_full_and_ack_frees_room() {
  // b announces a 100-byte window with max_message 40: two 30-byte messages (50 each) fit.
  Side a(0xA2, 1024, 4096, 4096), b(0xB2, 40, 100, 4096);
  const int as = a.ep.open(0), bs = b.ep.open(0);
  pump(a, as, b, bs, 0);
  const std::string m(30, 'm');
  CHECK(a.sendText(m + "1"));  // 31 bytes: 51
  CHECK(!a.sendText(m));       // 51 + 50 > 100
  CHECK(a.ep.send(reinterpret_cast<const uint8_t*>(m.data()), 41, false) == Endpoint::kTooLarge);
  CHECK(a.sendText(std::string(29, 'k')));  // 51 + 49 = 100: exactly the window
  pump(a, as, b, bs, 1);
  CHECK(!a.sendText("x"));  // b holds both, unacknowledged until its application takes them
  CHECK(b.take() == m + "1");
  pump(a, as, b, bs, 2);
  CHECK(a.sendText(m));  // the ack freed 51 bytes
  pump(a, as, b, bs, 3);
  CHECK(b.take() == std::string(29, 'k'));
  CHECK(b.take() == m);
  CHECK(b.take() == "<none>");
  CHECK(b.closes.empty());
}

void test_resume_after_cut_drops_duplicates() {
  Side a(0xA3, 1024, 8192, 8192), b(0xB3, 1024, 8192, 8192);
  int as = a.ep.open(0), bs = b.ep.open(0);
  pump(a, as, b, bs, 0);
  for (int i = 0; i < 5; ++i) CHECK(a.sendText("msg" + std::to_string(i)));
  // Two and a half frames get through, then the link is cut.
  const size_t frame = kFrameOverhead + 4;
  flow(a, as, b, bs, 1, 2 * frame + frame / 2);
  CHECK(b.ep.available() == 4);
  CHECK(b.take() == "msg0");  // its ACK never makes it
  cut(a, as, b, bs);
  CHECK(!a.ep.connected() && !b.ep.connected());
  // Sending goes on while disconnected: it is queued for the resume.
  CHECK(a.sendText("msg5"));
  as = a.ep.open(10);
  bs = b.ep.open(10);
  pump(a, as, b, bs, 10);
  CHECK(a.ep.connected() && b.ep.connected());
  for (int i = 1; i < 6; ++i) CHECK(b.take() == "msg" + std::to_string(i));
  CHECK(b.take() == "<none>");
  CHECK(b.ep.duplicatesDropped() == 1);  // msg1 arrived twice
  CHECK(a.ep.lostMessages() == 0);
  pump(a, as, b, bs, 11);
  CHECK(a.ep.unackedBytes() == 0);
}

void test_resend_is_byte_for_byte() {
  Side a(0xA4, 1024, 8192, 8192), b(0xB4, 1024, 8192, 8192);
  int as = a.ep.open(0), bs = b.ep.open(0);
  pump(a, as, b, bs, 0);
  CHECK(a.sendText("first"));
  CHECK(a.sendText("second"));
  std::vector<uint8_t> before, after;
  flow(a, as, b, bs, 1, SIZE_MAX, &before);
  cut(a, as, b, bs);
  as = a.ep.open(2);
  bs = b.ep.open(2);
  // a's HELLO, then b's HELLO (ack 0: nothing taken), then a resends.
  flow(a, as, b, bs, 2);
  flow(b, bs, a, as, 2);
  flow(a, as, b, bs, 2, SIZE_MAX, &after);
  CHECK(before.size() == 2 * kFrameOverhead + 11);
  CHECK(after == before);
  CHECK(b.take() == "first" && b.take() == "second" && b.take() == "<none>");
}

void test_new_peer_session_resets_state() {
  Side a(0xA5, 1024, 8192, 8192);
  Side* b = new Side(0xB5, 1024, 8192, 8192);
  int as = a.ep.open(0), bs = b->ep.open(0);
  pump(a, as, *b, bs, 0);
  CHECK(a.sendText("one") && a.sendText("two") && a.sendText("three"));
  CHECK(b->sendText("for a"));
  pump(a, as, *b, bs, 1);
  CHECK(a.ep.available() == 5);  // delivered, not taken
  CHECK(a.ep.waiting() == 1 && a.ep.nextIsText());
  cut(a, as, *b, bs);
  delete b;  // the peer reboots: a new session id, no memory
  Side b2(0xB6, 1024, 8192, 8192);
  as = a.ep.open(5);
  bs = b2.ep.open(5);
  pump(a, as, b2, bs, 5);
  CHECK(a.ep.connected());
  CHECK(a.ep.lostMessages() == 3);  // never confirmed by the old peer
  CHECK(a.ep.available() == -1);    // the old peer's stream is gone
  CHECK(a.ep.waiting() == 0);
  CHECK(a.ep.nextSeq() == 1);
  CHECK(a.sendText("fresh"));
  pump(a, as, b2, bs, 6);
  CHECK(b2.take() == "fresh");
  CHECK(b2.closes.empty());
}

void test_peer_that_never_got_our_hello_gets_a_resend() {
  Side dev(0xDE, 1024, 4096, 4096);
  int c = dev.ep.open(0);
  feedFrame(dev, c, kHello, 0, 0, helloPayload(0x5151, 0));  // its HELLO arrives ...
  CHECK(dev.sendText("early"));
  dev.ep.transportLost(c);  // ... ours never does: cut before we wrote anything
  c = dev.ep.open(1);
  feedFrame(dev, c, kHello, 0, 0, helloPayload(0x5151, 0), 1);  // same peer, resume 0
  auto out = drain(dev, c, 1);
  CHECK(out.size() == 2 && out[0].type == kHello);
  CHECK(out.size() == 2 && out[1].type == kText && out[1].seq == 1 &&
        out[1].payload == bytesOf("early"));
  CHECK(dev.ep.lostMessages() == 0);
  // Once the peer has acked something, resume 0 from it means it lost our stream.
  feedFrame(dev, c, kAck, 0, 1, {}, 2);
  CHECK(dev.sendText("later"));
  dev.ep.transportLost(c);
  c = dev.ep.open(3);
  feedFrame(dev, c, kHello, 0, 0, helloPayload(0x5151, 0), 3);
  CHECK(dev.ep.lostMessages() == 1 && dev.ep.nextSeq() == 1);
}

// Found by the host's state machine (tests/unit/test_session.py has the same case): our
// unacked frame carries an ack in the seq space of peer session A1. A1 restarts as A2; A2
// learns our id from our HELLO on a connection that drops before its own HELLO reaches us,
// and on the next connection says resume = us. A2 never had our stream: resending it would
// hand A2 an ack of a seq it never sent. The stream is lost (counted), numbering restarts.
void test_restarted_peer_that_learned_our_id_does_not_get_the_old_stream() {
  Side* a1 = new Side(0xA1A1, 1024, 8192, 8192);
  Side dev(0xDEDE, 1024, 8192, 8192);
  int as = a1->ep.open(0), ds = dev.ep.open(0);
  pump(*a1, as, dev, ds, 0);
  CHECK(a1->sendText("to dev"));
  flow(*a1, as, dev, ds, 1);
  CHECK(dev.take() == "to dev");  // taken: our frames now carry ack 1 (A1's seq space)
  CHECK(dev.sendText("to a1"));   // queued, never delivered
  std::vector<Frame> out = drain(dev, ds, 1);  // written, lost on the wire
  CHECK(out.size() == 1 && out[0].type == kText && out[0].ack == 1);
  cut(*a1, as, dev, ds);
  delete a1;
  Side a2(0xA2A2, 1024, 8192, 8192);
  as = a2.ep.open(2);
  ds = dev.ep.open(2);
  flow(dev, ds, a2, as, 2);  // our HELLO reaches A2 ...
  CHECK(a2.ep.peerSession() == 0xDEDE);
  cut(a2, as, dev, ds);      // ... A2's never reaches us
  as = a2.ep.open(3);
  ds = dev.ep.open(3);
  std::vector<uint8_t> a2Hello;
  flow(a2, as, dev, ds, 3, SIZE_MAX, &a2Hello);
  Hello h;
  const char* why = "";
  CHECK(a2Hello.size() > kFrameOverhead &&
        decodeHello(a2Hello.data() + kHeaderSize, a2Hello.size() - kFrameOverhead, &h,
                    &why) == kNormal &&
        h.session == 0xA2A2 && h.resume == 0xDEDE);
  const std::vector<Frame> after = drain(dev, ds, 3);
  CHECK(after.size() == 1 && after[0].type == kHello);  // HELLO only: nothing resent
  for (const Frame& f : after) feedFrame(a2, as, f.type, f.seq, f.ack, f.payload, 3);
  CHECK(dev.ep.connected() && a2.ep.connected());
  CHECK(dev.ep.lostMessages() == 1 && dev.ep.nextSeq() == 1 && dev.ep.unackedBytes() == 0);
  CHECK(dev.sendText("fresh"));
  pump(a2, as, dev, ds, 4);
  CHECK(a2.take() == "fresh" && a2.take() == "<none>");
  for (const auto& c : a2.closes) CHECK(c.kind != kClosedLocally);
  for (const auto& c : dev.closes) CHECK(c.kind != kClosedLocally);
}

// The same peer session naming us still gets the stream: only a new session loses it.
void test_same_peer_resuming_us_gets_the_stream() {
  Side dev(0xDF, 1024, 4096, 4096);
  int c = dev.ep.open(0);
  drain(dev, c, 0);
  feedFrame(dev, c, kHello, 0, 0, helloPayload(0x7777, 0));
  CHECK(dev.sendText("one") && dev.sendText("two"));
  drain(dev, c, 0);
  dev.ep.transportLost(c);
  c = dev.ep.open(1);
  feedFrame(dev, c, kHello, 0, 1, helloPayload(0x7777, 0xDF), 1);  // has seq 1 already
  const auto out = drain(dev, c, 1);
  CHECK(out.size() == 2 && out[0].type == kHello);
  CHECK(out.size() == 2 && out[1].seq == 2 && out[1].payload == bytesOf("two"));
  CHECK(dev.ep.lostMessages() == 0 && dev.ep.nextSeq() == 3);
  // A HELLO of a new session acking a seq we sent to its predecessor is no error: the ack
  // belongs to another seq space, and the stream is lost instead.
  dev.ep.transportLost(c);
  c = dev.ep.open(2);
  feedFrame(dev, c, kHello, 0, 5, helloPayload(0x8888, 0xDF), 2);
  CHECK(dev.ep.connected() && !dev.closedWith(kProtocol));
  CHECK(dev.ep.lostMessages() == 1 && dev.ep.nextSeq() == 1);
}

void test_garbage_closes_only_that_connection() {
  Side a(0xA6, 1024, 8192, 8192), b(0xB7, 1024, 8192, 8192);
  const int as = a.ep.open(0), bs = b.ep.open(0);
  pump(a, as, b, bs, 0);
  const int c = b.ep.open(1);
  CHECK(c >= 0 && c != bs);
  drain(b, c, 1);  // its HELLO
  const char* http = "GET / HTTP/1.1\r\n\r\n";
  b.ep.feed(c, reinterpret_cast<const uint8_t*>(http), strlen(http), 1);
  CHECK(b.ep.closing(c));
  CHECK(b.closes.size() == 1 && b.closes[0].code == kProtocol && b.closes[0].slot == c &&
        b.closes[0].reason == "bad magic");
  auto frames = drain(b, c, 1);
  CHECK(frames.size() == 1 && frames[0].type == kClose && frames[0].payload[0] == kProtocol);
  b.ep.release(c);
  CHECK(b.ep.connected() && b.ep.activeSlot() == bs);
  CHECK(a.sendText("still here"));
  pump(a, as, b, bs, 2);
  CHECK(b.take() == "still here");
}

void test_handshake_timeout() {
  Side b(0xB8, 1024, 8192, 8192);
  const int c = b.ep.open(100);
  b.ep.tick(2099);
  CHECK(!b.ep.closing(c));
  b.ep.tick(2100);
  CHECK(b.ep.closing(c) && b.closedWith(kTimeout));
  auto frames = drain(b, c, 2100);  // HELLO was never written: the CLOSE replaces it
  CHECK(frames.size() == 1 && frames[0].type == kClose && frames[0].payload[0] == kTimeout);
}

void test_full_slots_evict_the_oldest_without_hello() {
  Side b(0xBE, 1024, 8192, 8192);
  Side a(0xAE, 1024, 8192, 8192);
  // One legitimate session is up; the other slots fill with connections that never HELLO.
  const int as = a.ep.open(0), bs = b.ep.open(0);
  pump(a, as, b, bs, 0);
  int idle[Endpoint::kMaxSlots] = {};
  int n = 0;
  for (uint32_t t = 1;; ++t) {
    const int c = b.ep.open(t);
    if (c < 0) break;
    idle[n++] = c;
    drain(b, c, t);  // its HELLO
  }
  CHECK(n == Endpoint::kMaxSlots - 1);
  // A partial frame on one of them makes no difference: it is still without HELLO.
  const auto half = frameBytes(kHello, 0, 0, helloPayload(0x5555, 0));
  b.ep.feed(idle[1], half.data(), 10, 5);
  // Full: the oldest one without HELLO (opened at t=1) goes, never the active connection.
  const int victim = b.ep.evict();
  CHECK(victim == idle[0]);
  CHECK(b.ep.closing(victim) && b.closedWith(kTimeout) && b.ep.evictions() == 1);
  CHECK(!b.closes.empty() && b.closes.back().reason.find("evicted") == 0);
  const auto out = drain(b, victim, 10);
  CHECK(out.size() == 1 && out[0].type == kClose && out[0].payload[0] == kTimeout);
  b.ep.release(victim);
  const int fresh = b.ep.open(10);
  CHECK(fresh == victim);
  // The next eviction takes the next oldest (idle[1], with its partial frame).
  CHECK(b.ep.evict() == idle[1]);
  b.ep.release(idle[1]);
  CHECK(b.ep.activeSlot() == bs && b.ep.connected());
  // The newcomer completes HELLO: it replaces the older active connection as usual.
  Side c(0xAE, 1024, 8192, 8192);  // the same host session resuming on a new connection
  const int cs = c.ep.open(12);
  pump(c, cs, b, fresh, 12);
  CHECK(b.ep.activeSlot() == fresh && b.closedWith(kReplaced));
  // With no connection left in the handshake, there is nothing to evict.
  b.ep.release(bs);
  for (int i = 0; i < Endpoint::kMaxSlots; ++i) {
    if (i != fresh) {
      if (b.ep.inUse(i)) b.ep.release(i);
    }
  }
  CHECK(b.ep.evict() == -1);
}

void test_eviction_goes_by_order_of_opening() {
  // Connections that open within the same millisecond still go oldest first, also after
  // a slot was reused.
  Side b(0xBF, 1024, 8192, 8192);
  int order[Endpoint::kMaxSlots + 3];
  for (int i = 0; i < Endpoint::kMaxSlots; ++i) order[i] = b.ep.open(7);
  for (int i = Endpoint::kMaxSlots; i < Endpoint::kMaxSlots + 3; ++i) {
    CHECK(b.ep.open(7) == -1);
    const int victim = b.ep.evict();
    CHECK(victim == order[i - Endpoint::kMaxSlots]);
    b.ep.release(victim);
    order[i] = b.ep.open(7);
    CHECK(order[i] == victim);
  }
  CHECK(b.ep.evictions() == 3);
}

void test_slow_senders_are_bounded_by_whole_frames() {
  // Before HELLO: a trickle of one byte per second never completes HELLO in time.
  {
    Side b(0xC1, 1024, 8192, 8192);
    const int c = b.ep.open(0);
    drain(b, c, 0);
    const auto hello = frameBytes(kHello, 0, 0, helloPayload(0x6666, 0));
    uint32_t t = 0;
    for (; t < 5000 && !b.ep.closing(c); t += 1000) {
      b.ep.feed(c, &hello[t / 1000], 1, t);
      b.ep.tick(t);
    }
    CHECK(b.ep.closing(c) && t == 3000);  // closed at the tick of t = 2000
    CHECK(b.closes.size() == 1 && b.closes[0].code == kTimeout &&
          b.closes[0].reason == "HELLO incomplete within the handshake bound");
  }
  // After HELLO: bytes that never complete a frame do not count as signs of life.
  {
    Scripted s;  // the scripted peer announced keepalive 1000: dead bound 3000 ms
    CHECK(s.dev.ep.deadBoundMs() == 3000);
    const auto data = frameBytes(kText, 1, 0, bytesOf("slow"));
    for (uint32_t t = 0; t < 2999; t += 100) {
      s.dev.ep.feed(s.slot, &data[t / 100 % data.size()], t / 100 < data.size() - 1 ? 1 : 0, t);
      s.dev.ep.tick(t);
    }
    CHECK(!s.dev.ep.closing(s.slot));
    s.dev.ep.tick(3000);
    CHECK(s.dev.ep.closing(s.slot) && s.dev.closedWith(kTimeout));
    CHECK(!s.dev.closes.empty() &&
          s.dev.closes.back().reason == "frame incomplete past the dead bound");
    CHECK(s.dev.take() == "<none>");
  }
  // A peer that announces a huge keepalive still gets the device's ceiling.
  {
    Side b(0xC2, 1024, 8192, 8192);
    const int c = b.ep.open(0);
    drain(b, c, 0);
    feedFrame(b, c, kHello, 0, 0, helloPayload(0x6767, 0, 1024, 8192, 0xFFFFFFFF), 0);
    CHECK(b.ep.connected() && b.ep.deadBoundMs() == 30000);
    b.ep.tick(29999);
    CHECK(b.ep.connected());
    b.ep.tick(30000);
    CHECK(!b.ep.connected() && b.closedWith(kTimeout) &&
          b.closes.back().reason == "peer silent past the dead bound");
  }
}

void test_newer_connection_replaces_older() {
  Side a(0xA7, 1024, 8192, 8192), b(0xB9, 1024, 8192, 8192);
  const int as = a.ep.open(0), bs = b.ep.open(0);
  pump(a, as, b, bs, 0);
  CHECK(a.sendText("before"));
  pump(a, as, b, bs, 1);
  const int as2 = a.ep.open(2), bs2 = b.ep.open(2);
  pump(a, as2, b, bs2, 2);
  CHECK(b.ep.activeSlot() == bs2 && b.ep.closing(bs) && b.closedWith(kReplaced));
  CHECK(a.ep.activeSlot() == as2 && a.closedWith(kReplaced));
  CHECK(a.sendText("after"));
  pump(a, as2, b, bs2, 3);
  CHECK(b.take() == "before" && b.take() == "after" && b.take() == "<none>");
}

void test_accepted_connection_reveals_nothing_to_a_stranger() {
  // The device accepts: it says HELLO only after the dialer's, and names the session it
  // remembers (resume, ack) only to the peer that named itself as that session's peer.
  Side dev(0xD5, 1024, 8192, 8192);
  int hs = dev.ep.open(0, Endpoint::kAccepted);
  CHECK(drain(dev, hs, 0).empty());  // nothing before the dialer's HELLO
  feedFrame(dev, hs, kHello, 0, 0, helloPayload(0x4057, 0), 0);
  auto hello = drain(dev, hs, 0);
  CHECK(hello.size() == 1 && hello[0].type == kHello);
  feedFrame(dev, hs, kText, 1, 0, bytesOf("from the host"), 1);
  CHECK(dev.take() == "from the host");
  drain(dev, hs, 1);  // the ack
  // A stranger replays what it could observe: a fresh session, or the device's id as resume.
  const int st = dev.ep.open(2, Endpoint::kAccepted);
  CHECK(drain(dev, st, 2).empty());
  feedFrame(dev, st, kHello, 0, 1, helloPayload(0x5742, 0xD5), 2);
  auto refused = drain(dev, st, 2);
  CHECK(refused.size() == 1 && refused[0].type == kClose && refused[0].payload[0] == kBusy);
  CHECK(dev.ep.activeSlot() == hs && dev.ep.peerSession() == 0x4057);
  dev.ep.release(st);
  // The host's session survives; it stays held past a lost connection for the dead bound
  // (3 x the host's 1000 ms keepalive) from its last frame (at 1).
  dev.ep.transportLost(hs);
  const int st2 = dev.ep.open(3000, Endpoint::kAccepted);
  feedFrame(dev, st2, kHello, 0, 0, helloPayload(0x5743, 0), 3000);
  CHECK(drain(dev, st2, 3000).back().payload[0] == kBusy);
  dev.ep.release(st2);
  // Its owner resumes and is told what the device kept.
  hs = dev.ep.open(3000, Endpoint::kAccepted);
  feedFrame(dev, hs, kHello, 0, 0, helloPayload(0x4057, 0xD5), 3000);
  Hello h;
  const char* why;
  hello = drain(dev, hs, 3000);
  CHECK(!hello.empty() && hello[0].type == kHello);
  CHECK(decodeHello(hello[0].payload.data(), hello[0].payload.size(), &h, &why) == kNormal);
  CHECK(h.resume == 0x4057 && hello[0].ack == 1);
  // Once the owner closes NORMAL, a newcomer starts a new session and learns nothing.
  feedFrame(dev, hs, kClose, 0, 0, std::vector<uint8_t>{kNormal}, 3001);
  dev.ep.release(hs);
  const int nc = dev.ep.open(3002, Endpoint::kAccepted);
  feedFrame(dev, nc, kHello, 0, 0, helloPayload(0x5744, 0), 3002);
  hello = drain(dev, nc, 3002);
  CHECK(!hello.empty() && hello[0].type == kHello && hello[0].ack == 0);
  CHECK(decodeHello(hello[0].payload.data(), hello[0].payload.size(), &h, &why) == kNormal);
  CHECK(h.resume == 0 && dev.ep.peerSession() == 0x5744);
  // The application drops its owner (e.g. an echo it can never send): no longer held.
  dev.ep.drop(kTooLarge, "too large for the peer");
  CHECK(dev.closedWith(kTooLarge) && !dev.ep.connected());
  dev.ep.release(nc);
  const int nc2 = dev.ep.open(3003, Endpoint::kAccepted);
  feedFrame(dev, nc2, kHello, 0, 0, helloPayload(0x5745, 0), 3003);
  CHECK(dev.ep.connected() && dev.ep.peerSession() == 0x5745);
  // An owner that closes for good (any code but the recoverable ones) releases it too.
  feedFrame(dev, nc2, kClose, 0, 0, std::vector<uint8_t>{kProtocol}, 3004);
  dev.ep.release(nc2);
  const int nc3 = dev.ep.open(3005, Endpoint::kAccepted);
  feedFrame(dev, nc3, kHello, 0, 0, helloPayload(0x5746, 0), 3005);
  CHECK(dev.ep.connected() && dev.ep.peerSession() == 0x5746);
}

void test_keepalive_and_dead_bound() {
  Side a(0xAA, 1024, 8192, 8192, 1000), b(0xBA, 1024, 8192, 8192, 0);
  const int as = a.ep.open(0), bs = b.ep.open(0);
  pump(a, as, b, bs, 0);
  a.ep.tick(999);
  const uint8_t* p;
  CHECK(a.ep.peekOutput(as, &p, 999) == 0);
  a.ep.tick(1000);
  auto ping = drain(a, as, 1000);
  CHECK(ping.size() == 1 && ping[0].type == kPing);
  feedFrame(b, bs, kPing, 0, 0, ping[0].payload, 1000);
  auto pong = drain(b, bs, 1000);
  CHECK(pong.size() == 1 && pong[0].type == kPong && pong[0].payload == ping[0].payload);
  feedFrame(a, as, kPong, 0, 0, pong[0].payload, 1012);
  CHECK(a.ep.lastRttMs() == 12);
  // b announced keepalive 0: a's dead bound is the 10 s default from the last frame (1012).
  a.ep.tick(11011);
  CHECK(a.ep.connected());
  a.ep.tick(11012);
  CHECK(!a.ep.connected() && a.closedWith(kTimeout));
  // b's dead bound is 3 x a's 1000 ms from its last frame (the PING at 1000).
  b.ep.tick(3999);
  CHECK(b.ep.connected());
  b.ep.tick(4000);
  CHECK(!b.ep.connected() && b.closedWith(kTimeout));
}

void test_scripted_hello_fields() {
  Scripted s(256, 1024, 1024);
  CHECK(s.hello.size() == 1 && s.hello[0].type == kHello && s.hello[0].ack == 0);
  Hello h;
  const char* why;
  CHECK(decodeHello(s.hello[0].payload.data(), s.hello[0].payload.size(), &h, &why) == kNormal);
  CHECK(h.maxMessage == 256 && h.window == 1024 && h.keepaliveMs == 1000);
  CHECK(h.session == 0xD0D0 && h.resume == 0);
  CHECK(s.dev.ep.connected());
}

void test_ack_when_application_takes() {
  Scripted s;
  feedFrame(s.dev, s.slot, kText, 1, 0, bytesOf("abc"));
  CHECK(drain(s.dev, s.slot, 0).empty());  // not taken yet: no ack
  CHECK(s.dev.take() == "abc");
  auto out = drain(s.dev, s.slot, 0);
  CHECK(out.size() == 1 && out[0].type == kAck && out[0].ack == 1);
  // A reply piggy-backs the ack; no separate ACK needed.
  feedFrame(s.dev, s.slot, kBinary, 2, 0, bytesOf("de"));
  CHECK(s.dev.take() == "de");
  CHECK(s.dev.sendText("re"));
  out = drain(s.dev, s.slot, 0);
  CHECK(out.size() == 1 && out[0].type == kText && out[0].seq == 1 && out[0].ack == 2);
}

void test_sequence_gap_is_rejected() {
  Scripted s;
  feedFrame(s.dev, s.slot, kText, 1, 0, bytesOf("a"));
  feedFrame(s.dev, s.slot, kText, 1, 0, bytesOf("a"));  // duplicate: dropped silently
  CHECK(!s.dev.ep.closing(s.slot));
  feedFrame(s.dev, s.slot, kText, 3, 0, bytesOf("c"));
  CHECK(s.dev.ep.closing(s.slot) && s.dev.closedWith(kSequence));
  CHECK(s.dev.take() == "a" && s.dev.take() == "<none>");
}

void test_window_overrun_is_rejected() {
  Scripted s(256, 300, 1024);  // window 300
  const std::vector<uint8_t> p(120, 'w');  // 140 per frame
  feedFrame(s.dev, s.slot, kBinary, 1, 0, p);
  feedFrame(s.dev, s.slot, kBinary, 2, 0, p);
  CHECK(!s.dev.ep.closing(s.slot));
  CHECK(s.dev.take().size() == 120);  // taken, but the ack has not gone out yet
  feedFrame(s.dev, s.slot, kBinary, 3, 0, p);
  CHECK(s.dev.ep.closing(s.slot) && s.dev.closedWith(kWindow));
}

void test_window_reopens_after_ack_goes_out() {
  Scripted s(256, 300, 1024);
  const std::vector<uint8_t> p(120, 'w');
  feedFrame(s.dev, s.slot, kBinary, 1, 0, p);
  feedFrame(s.dev, s.slot, kBinary, 2, 0, p);
  CHECK(s.dev.take().size() == 120);
  auto out = drain(s.dev, s.slot, 0);
  CHECK(out.size() == 1 && out[0].type == kAck && out[0].ack == 1);
  feedFrame(s.dev, s.slot, kBinary, 3, 0, p);
  CHECK(!s.dev.ep.closing(s.slot));
  CHECK(s.dev.take().size() == 120 && s.dev.take().size() == 120);
}

void test_bad_acks_and_hellos() {
  {
    Scripted s;
    feedFrame(s.dev, s.slot, kAck, 0, 1, {});  // nothing was ever sent
    CHECK(s.dev.closedWith(kProtocol));
  }
  {
    Scripted s;
    feedFrame(s.dev, s.slot, kHello, 0, 0, helloPayload(0xAAAA, 0));
    CHECK(s.dev.closedWith(kProtocol) && s.dev.closes[0].reason == "second HELLO");
  }
  {
    Side dev(0xD1, 256, 1024, 1024);
    const int c = dev.ep.open(0);
    feedFrame(dev, c, kText, 1, 0, bytesOf("early"));
    CHECK(dev.closedWith(kProtocol) && dev.closes[0].reason == "frame before HELLO");
  }
  {
    // Larger than the handshake decoder's buffer: checked by CRC without being stored.
    Side dev(0xD3, 1024, 2048, 1024);
    const int c = dev.ep.open(0);
    feedFrame(dev, c, kBinary, 1, 0, std::vector<uint8_t>(1000, 0x5A));
    CHECK(dev.closes.size() == 1 && dev.closedWith(kProtocol) &&
          dev.closes[0].reason == "frame before HELLO");
  }
  {
    // A corrupt frame before HELLO is reported as corrupt, not as out of order.
    Side dev(0xD4, 1024, 2048, 1024);
    const int c = dev.ep.open(0);
    auto b = frameBytes(kText, 1, 0, bytesOf("hello"));
    b.back() ^= 1;
    dev.ep.feed(c, b.data(), b.size(), 0);
    CHECK(dev.closes.size() == 1 && dev.closedWith(kBadCrc));
  }
  {
    Side dev(0xD2, 256, 1024, 1024);
    const int c = dev.ep.open(0);
    auto hp = helloPayload(0xAAAA, 0);
    hp[0] = 3;
    feedFrame(dev, c, kHello, 0, 0, hp);
    CHECK(dev.closedWith(kVersion) && !dev.ep.connected());
    CHECK(dev.ep.authFailures() == 0);
  }
  {
    // A keyed (version 2) HELLO to a side without a key: AUTH, never answered unkeyed.
    Side dev(0xD5, 256, 1024, 1024);
    const int c = dev.ep.open(0, Endpoint::kAccepted);
    auto hp = helloPayload(0xAAAA, 0);
    hp[0] = 2;
    hp.resize(kKeyedHelloPayloadSize, 0x11);
    feedFrame(dev, c, kHello, 0, 0, hp);
    CHECK(dev.closedWith(kAuthFailed) && dev.closes[0].reason == "no key on this side");
    CHECK(dev.ep.authFailures() == 1 && !dev.ep.connected());
    const auto out = drain(dev, c, 0);
    CHECK(out.size() == 1 && out[0].type == kClose && out[0].payload[0] == kAuthFailed);
  }
  {
    // A data header larger than max_message fails at once, before any payload arrives.
    Scripted s(256);
    uint8_t header[kHeaderSize];
    writeHeader(header, kBinary, 257, 1, 0);
    s.dev.ep.feed(s.slot, header, sizeof header, 0);
    CHECK(s.dev.closedWith(kTooLarge));
  }
}

void test_peer_close_and_app_close() {
  {
    Scripted s;
    const std::vector<uint8_t> p = {0, 'b', 'y', 'e', 0x01};
    feedFrame(s.dev, s.slot, kClose, 0, 0, p);
    CHECK(s.dev.closes.size() == 1 && s.dev.closes[0].kind == kClosedByPeer &&
          s.dev.closes[0].reason == "bye?");
    CHECK(drain(s.dev, s.slot, 0).empty());  // no CLOSE answers a CLOSE
  }
  {
    Scripted s;
    s.dev.ep.close();
    auto out = drain(s.dev, s.slot, 0);
    CHECK(out.size() == 1 && out[0].type == kClose && out[0].payload[0] == kNormal);
    CHECK(!s.dev.ep.connected() && s.dev.ep.peerSession() == 0);
  }
}

void test_receive_buffer_too_small_keeps_message() {
  Scripted s;
  feedFrame(s.dev, s.slot, kBinary, 1, 0, bytesOf("0123456789"));
  uint8_t small[4];
  CHECK(s.dev.ep.receive(small, sizeof small, nullptr) == -2);
  CHECK(s.dev.ep.available() == 10);
  CHECK(s.dev.take() == "0123456789");
}

void test_partial_writes_interleave_safely() {
  // A socket that takes 7 bytes at a time must still carry whole, in-order frames.
  Side a(0xAB, 1024, 4096, 600), b(0xBB, 1024, 4096, 4096);
  const int as = a.ep.open(0), bs = b.ep.open(0);
  pump(a, as, b, bs, 0);
  int sent = 0, got = 0;
  for (int round = 0; round < 5000 && got < 40; ++round) {
    while (sent < 40 && a.sendText("message number " + std::to_string(sent))) ++sent;
    flow(a, as, b, bs, round, 7);
    flow(b, bs, a, as, round, 7);
    std::string m;
    while ((m = b.take()) != "<none>") {
      CHECK(m == "message number " + std::to_string(got));
      ++got;
    }
  }
  CHECK(sent == 40 && got == 40);
  CHECK(a.closes.empty() && b.closes.empty());
}

// Deterministic random schedule: sends, takes, partial flows and cuts; every message must
// arrive exactly once and in order in both directions.
void randomScheduleExactlyOnce(bool keyed) {
  uint64_t state = 0x9E3779B97F4A7C15ULL;
  auto rnd = [&state](uint32_t n) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return static_cast<uint32_t>(state % n);
  };
  Side a(0xAC, 512, 2048, 1500), b(0xBC, 300, 1200, 2048);
  // Keyed: b accepts (a keyed link has a dialer and an acceptor; unkeyed, both dial).
  const Endpoint::Role roleB = keyed ? Endpoint::kAccepted : Endpoint::kDialled;
  if (keyed) {
    a.keyed();
    b.keyed();
  }
  int as = a.ep.open(0), bs = b.ep.open(0, roleB);
  int sentA = 0, sentB = 0, gotA = 0, gotB = 0, cuts = 0;
  for (uint32_t t = 1; t < 4000; ++t) {
    switch (rnd(10)) {
      case 0:
      case 1: {
        std::string m = "a" + std::to_string(sentA) + std::string(rnd(200), '.');
        if (a.sendText(m)) ++sentA;
        break;
      }
      case 2: {
        std::string m = "b" + std::to_string(sentB) + std::string(rnd(250), ',');
        if (b.sendText(m)) ++sentB;
        break;
      }
      case 3:
      case 4: {
        std::string m = b.take();
        if (m != "<none>") {
          CHECK(m.compare(0, m.find('.'), "a" + std::to_string(gotB)) == 0);
          ++gotB;
        }
        m = a.take();
        if (m != "<none>") {
          CHECK(m.compare(0, m.find(','), "b" + std::to_string(gotA)) == 0);
          ++gotA;
        }
        break;
      }
      case 5:
      case 6:
      case 7:
        if (as >= 0 && bs >= 0) {
          flow(a, as, b, bs, t, 1 + rnd(300));
          flow(b, bs, a, as, t, 1 + rnd(300));
        }
        break;
      case 8:
        if (rnd(8) == 0 && as >= 0) {
          cut(a, as, b, bs);
          as = bs = -1;
          ++cuts;
        }
        break;
      default:
        if (as < 0) {
          as = a.ep.open(t);
          bs = b.ep.open(t, roleB);
        }
        break;
    }
    if (!a.closes.empty() && a.closes.back().kind == kClosedLocally) break;
  }
  // Drain: reconnect and deliver everything.
  if (as < 0) {
    as = a.ep.open(5000);
    bs = b.ep.open(5000, roleB);
  }
  for (int i = 0; i < 500; ++i) {
    pump(a, as, b, bs, 5000);
    std::string m;
    while ((m = b.take()) != "<none>") ++gotB;
    while ((m = a.take()) != "<none>") ++gotA;
  }
  pump(a, as, b, bs, 5000);
  for (const auto& c : a.closes) CHECK(c.kind != kClosedLocally);
  for (const auto& c : b.closes) CHECK(c.kind != kClosedLocally);
  CHECK(cuts > 3);
  CHECK(sentA > 50 && sentB > 50);
  CHECK(gotB == sentA && gotA == sentB);
  CHECK(a.ep.unackedBytes() == 0 && b.ep.unackedBytes() == 0);
  printf("INFO random schedule%s: %d/%d messages, %d cuts, %u+%u duplicates dropped\n",
         keyed ? " (keyed)" : "", sentA, sentB, cuts, a.ep.duplicatesDropped(),
         b.ep.duplicatesDropped());
}

void test_random_schedule_exactly_once() { randomScheduleExactlyOnce(false); }

// Deterministic random schedules with reboots of either side (a new session id, no
// memory), partial flows and cuts. For every sender incarnation, what any receiver took is
// strictly increasing (in order, never twice), and every message of a surviving sender that
// nobody took is counted in its lostMessages(): never a silent loss. The C++ counterpart of
// the host's RuleBasedStateMachine (tests/unit/test_session_machine.py).
struct Incarnation {
  Side* side = nullptr;
  uint32_t sent = 0;
};

void randomScheduleWithReboots(bool keyed) {
  uint64_t state = 0xC0FFEE1234567ULL;
  auto rnd = [&state](uint32_t n) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return static_cast<uint32_t>(state % n);
  };
  uint64_t nextId = 0x1000;
  // Highest index taken so far from each sender incarnation (by id), across receivers.
  std::vector<std::pair<uint64_t, int64_t>> lastTaken;
  auto lastOf = [&lastTaken](uint64_t id) -> int64_t& {
    for (auto& e : lastTaken) {
      if (e.first == id) return e.second;
    }
    lastTaken.push_back({id, -1});
    return lastTaken.back().second;
  };
  std::vector<std::pair<uint64_t, uint32_t>> takenCount;  // per sender id
  auto countOf = [&takenCount](uint64_t id) -> uint32_t& {
    for (auto& e : takenCount) {
      if (e.first == id) return e.second;
    }
    takenCount.push_back({id, 0});
    return takenCount.back().second;
  };
  Incarnation side[2];
  auto boot = [&](int k) {
    delete side[k].side;
    side[k].side = new Side(nextId++, k == 0 ? 512 : 300, k == 0 ? 2048 : 1200,
                            k == 0 ? 1500 : 2048);
    if (keyed) side[k].side->keyed();
    side[k].sent = 0;
  };
  boot(0);
  boot(1);
  int slot[2] = {-1, -1};
  const Endpoint::Role role1 = keyed ? Endpoint::kAccepted : Endpoint::kDialled;
  int reboots = 0, cuts = 0, takes = 0, protocolErrors = 0, busy = 0;
  auto takeAll = [&](int k) {
    Side& r = *side[k].side;
    std::string m;
    while ((m = r.take()) != "<none>") {
      // "<sender id hex>:<index>:<padding>"
      const size_t c1 = m.find(':');
      const size_t c2 = m.find(':', c1 + 1);
      const uint64_t id = strtoull(m.substr(0, c1).c_str(), nullptr, 16);
      const int64_t idx = strtoll(m.substr(c1 + 1, c2 - c1 - 1).c_str(), nullptr, 10);
      int64_t& last = lastOf(id);
      CHECK(idx > last);
      if (idx <= last) printf("  taken %llx:%lld after %lld\n", (unsigned long long)id,
                              (long long)idx, (long long)last);
      last = idx;
      ++countOf(id);
      ++takes;
    }
  };
  auto cutNow = [&]() {
    if (slot[0] >= 0) cut(*side[0].side, slot[0], *side[1].side, slot[1]);
    slot[0] = slot[1] = -1;
  };
  for (uint32_t t = 1; t < 30000; ++t) {
    const uint32_t op = rnd(20);
    if (op < 5) {
      const int k = static_cast<int>(rnd(2));
      Incarnation& in = side[k];
      char head[40];
      snprintf(head, sizeof head, "%llx:%u:", (unsigned long long)in.side->ep.sessionId(),
               in.sent);
      if (in.side->sendText(head + std::string(rnd(120), '.'))) ++in.sent;
    } else if (op < 9) {
      takeAll(static_cast<int>(rnd(2)));
    } else if (op < 16) {
      if (slot[0] >= 0) {
        flow(*side[0].side, slot[0], *side[1].side, slot[1], t, 1 + rnd(200));
        flow(*side[1].side, slot[1], *side[0].side, slot[0], t, 1 + rnd(200));
        for (int k = 0; k < 2; ++k) {
          // A side that closed the connection (it found an error) ends it for both.
          if (side[k].side->ep.closing(slot[k])) {
            // An acceptor holds its session for the owner: a rebooted dialer is refused
            // with BUSY until the dead bound passes (docs/protocol.md §2). Anything else is
            // a protocol error.
            if (side[k].side->closes.back().code == kBusy) {
              ++busy;
            } else {
              ++protocolErrors;
              printf("  protocol error: side %d code %u %s\n", k,
                     side[k].side->closes.back().code, side[k].side->closes.back().reason.c_str());
            }
            side[k].side->ep.release(slot[k]);
            side[1 - k].side->ep.transportLost(slot[1 - k]);
            slot[0] = slot[1] = -1;
            break;
          }
        }
      }
    } else if (op < 18) {
      if (slot[0] >= 0 && rnd(4) == 0) {
        cutNow();
        ++cuts;
      } else if (slot[0] < 0) {
        slot[0] = side[0].side->ep.open(t);
        slot[1] = side[1].side->ep.open(t, role1);
      }
    } else if (rnd(10) == 0) {
      cutNow();
      boot(static_cast<int>(rnd(2)));
      ++reboots;
    }
  }
  // Drain: connect and deliver everything still queued.
  cutNow();
  slot[0] = side[0].side->ep.open(40000);
  slot[1] = side[1].side->ep.open(40000, role1);
  for (int i = 0; i < 200; ++i) {
    pump(*side[0].side, slot[0], *side[1].side, slot[1], 40000);
    takeAll(0);
    takeAll(1);
  }
  pump(*side[0].side, slot[0], *side[1].side, slot[1], 40000);
  for (int k = 0; k < 2; ++k) {
    Side& s = *side[k].side;
    const uint32_t got = countOf(s.ep.sessionId());
    // Every message of the surviving incarnation was taken, or it is counted lost.
    CHECK(s.ep.unackedBytes() == 0);
    CHECK(got <= side[k].sent);
    CHECK(side[k].sent - got <= s.ep.lostMessages());
    for (const auto& c : s.closes) CHECK(c.kind != kClosedLocally || c.code == kBusy);
  }
  CHECK(protocolErrors == 0);
  CHECK(keyed || busy == 0);
  CHECK(reboots >= 5 && cuts >= 5 && takes > 200);
  printf("INFO reboots schedule%s: %d takes, %d reboots, %d cuts, lost %u+%u\n",
         keyed ? " (keyed)" : "", takes, reboots, cuts, side[0].side->ep.lostMessages(),
         side[1].side->ep.lostMessages());
  delete side[0].side;
  delete side[1].side;
}

void test_random_schedule_with_reboots() { randomScheduleWithReboots(false); }

// --------------------------------------------------------------------------- keyed links

// Everything the endpoint offers on a slot, as bytes (a keyed stream: frames and tags).
std::vector<uint8_t> output(Side& s, int slot, uint32_t now) {
  std::vector<uint8_t> bytes;
  const uint8_t* p = nullptr;
  size_t n;
  while ((n = s.ep.peekOutput(slot, &p, now)) > 0) {
    bytes.insert(bytes.end(), p, p + n);
    s.ep.consumeOutput(slot, n, now);
  }
  return bytes;
}

// A keyed dialer a and acceptor b with a completed handshake on (as, bs).
struct KeyedPair {
  Side a, b;
  int as, bs;
  KeyedPair() : a(0xA11, 1024, 8192, 8192), b(0xB11, 1024, 8192, 8192) {
    a.keyed();
    b.keyed();
    as = a.ep.open(0);
    bs = b.ep.open(0, Endpoint::kAccepted);
    pump(a, as, b, bs, 0);
  }
};

void test_set_key_contract() {
  Side s(0x5E7, 256, 1024, 1024);
  CHECK(!s.ep.keyed());
  CHECK(!s.ep.setKey(kKey, 15) && !s.ep.setKey(kKey, 33) && !s.ep.setKey(nullptr, 16));
  CHECK(!s.ep.keyed());
  CHECK(s.ep.setKey(kKey, 16) && s.ep.keyed());
  CHECK(!s.ep.setKey(kKey, 8) && s.ep.keyed());  // refused: the old key stays
  CHECK(s.ep.open(0) == -1);  // keyed without a nonce source: no connection
  s.ep.setRandom(testRandom, &s.rng);
  const int c = s.ep.open(0);
  CHECK(c >= 0);
  const auto hello = output(s, c, 0);
  CHECK(hello.size() == kFrameOverhead + kKeyedHelloPayloadSize && hello[kHeaderSize] == 2);
  // Cleared: the next connection is unkeyed (version 1); the open one keeps speaking v2.
  CHECK(s.ep.setKey(nullptr, 0) && !s.ep.keyed());
  const int d = s.ep.open(0);
  const auto plain = output(s, d, 0);
  CHECK(plain.size() == kFrameOverhead + kHelloPayloadSize && plain[kHeaderSize] == 1);
  {
    // An acceptor awaiting the dialer's AUTH has proven nothing yet: it checks the AUTH under
    // the new key (and then decides: BUSY, the session is held for its live owner). The live
    // keyed connection keeps its own key and goes on.
    KeyedPair p;
    Side other(0x5A5B, 1024, 8192, 8192);
    other.keyed(kOtherKey, sizeof kOtherKey);
    const int oc = other.ep.open(0);
    const int c2 = p.b.ep.open(0, Endpoint::kAccepted);
    flow(other, oc, p.b, c2, 0);
    flow(p.b, c2, other, oc, 0);  // only its HELLO
    CHECK(p.b.ep.setKey(kOtherKey, sizeof kOtherKey) && !p.b.ep.closing(c2));
    flow(other, oc, p.b, c2, 0);  // the AUTH, right under the new key
    CHECK(p.b.ep.closing(c2) && p.b.closes.back().code == kBusy && p.b.ep.authFailures() == 0);
    CHECK(p.a.sendText("same key"));
    pump(p.a, p.as, p.b, p.bs, 1);
    CHECK(p.b.take() == "same key" && p.b.ep.tagFailures() == 0);
    // Cleared, it has nothing to check an AUTH with: the handshake ends.
    const int oc2 = other.ep.open(2);
    const int c3 = p.b.ep.open(2, Endpoint::kAccepted);
    flow(other, oc2, p.b, c3, 2);
    CHECK(p.b.ep.setKey(nullptr, 0));
    CHECK(p.b.ep.closing(c3) && p.b.closes.back().reason == "key changed");
    CHECK(p.b.closes.back().code == kTimeout && p.b.ep.authFailures() == 0);
  }
  {
    // A new key ends a dialled handshake whose AUTH went out under the old one; its CLOSE
    // is tagged under the old key, and the acceptor verifies it.
    Side d(0xD1A, 1024, 8192, 8192), acc(0xACC, 1024, 8192, 8192);
    d.keyed();
    acc.keyed();
    const int dc = d.ep.open(0), ac = acc.ep.open(0, Endpoint::kAccepted);
    flow(d, dc, acc, ac, 0);
    flow(acc, ac, d, dc, 0);
    const auto auth = output(d, dc, 0);
    CHECK(auth.size() == kFrameOverhead + kAuthPayload && auth[2] == kAuth);
    CHECK(d.ep.setKey(kOtherKey, sizeof kOtherKey));
    CHECK(d.ep.closing(dc) && d.closes.back().reason == "key changed");
    CHECK(d.closes.back().code == kTimeout && d.ep.authFailures() == 0);
    const auto close = output(d, dc, 0);
    CHECK(close.size() == kFrameOverhead + 1 + strlen("key changed") + kTagSize);
    acc.ep.feed(ac, auth.data(), auth.size(), 0);
    acc.ep.feed(ac, close.data(), close.size(), 0);
    CHECK(acc.closesWith(kClosedByPeer, kTimeout) == 1 && acc.ep.tagFailures() == 0);
  }
}

void test_keyed_handshake_and_echo() {
  Side a(0xA10, 1024, 8192, 8192), b(0xB10, 1024, 8192, 8192);
  a.keyed();
  b.keyed();
  const int as = a.ep.open(0), bs = b.ep.open(0, Endpoint::kAccepted);
  // The dialer's HELLO v2; the acceptor answers with its HELLO only, the dialer with its
  // AUTH; the acceptor verifies it and only then sends its own AUTH (docs/protocol.md §6).
  const auto helloD = output(a, as, 0);
  CHECK(helloD.size() == 68 && helloD[2] == kHello && helloD[kHeaderSize] == 2);
  b.ep.feed(bs, helloD.data(), helloD.size(), 0);
  CHECK(!b.ep.connected());
  const auto helloA = output(b, bs, 0);
  CHECK(helloA.size() == 68 && helloA[2] == kHello && helloA[kHeaderSize] == 2);
  a.ep.feed(as, helloA.data(), helloA.size(), 0);
  CHECK(!a.ep.connected() && a.ep.peerSession() == 0);
  const auto authD = output(a, as, 0);
  CHECK(authD.size() == 52 && authD[2] == kAuth);
  b.ep.feed(bs, authD.data(), authD.size(), 0);
  CHECK(b.ep.connected() && b.ep.peerSession() == 0xA10 && !a.ep.connected());
  CHECK(b.sendText("x"));  // queued: it goes out after b's AUTH, tagged
  const auto authA = output(b, bs, 0);
  CHECK(authA.size() == 52 + kFrameOverhead + 1 + kTagSize && authA[2] == kAuth);
  CHECK(authA[52 + 2] == kText);
  a.ep.feed(as, authA.data(), authA.size(), 0);
  CHECK(a.ep.connected() && a.ep.peerSession() == 0xB10 && a.take() == "x");
  pump(a, as, b, bs, 1);
  CHECK(b.ep.unackedBytes() == 0 && a.closes.empty() && b.closes.empty());
  // A data frame is 20 + L + 16 bytes on the wire; flow control counts 20 + L.
  CHECK(a.sendText("Hi"));
  CHECK(a.ep.unackedBytes() == kFrameOverhead + 2);
  const auto frame = output(a, as, 2);
  CHECK(frame.size() == kFrameOverhead + 2 + kTagSize);
  b.ep.feed(bs, frame.data(), frame.size(), 2);
  CHECK(b.take() == "Hi");
  const uint8_t bin[3] = {0, 0xFF, 7};
  CHECK(b.ep.send(bin, 3, false) == Endpoint::kSent);
  pump(a, as, b, bs, 3);
  uint8_t got[8];
  bool isText = true;
  CHECK(a.ep.receive(got, sizeof got, &isText) == 3 && !isText && memcmp(got, bin, 3) == 0);
  pump(a, as, b, bs, 4);
  CHECK(a.ep.unackedBytes() == 0 && b.ep.unackedBytes() == 0);
  CHECK(a.closes.empty() && b.closes.empty());
  CHECK(a.ep.authFailures() == 0 && b.ep.tagFailures() == 0);
  // Keepalive frames are tagged too: a PING and its PONG pass the tag checks.
  a.ep.tick(2000);
  pump(a, as, b, bs, 2000);
  CHECK(a.closes.empty() && b.closes.empty() && a.ep.lastRttMs() == 0);
  // An orderly close is a tagged CLOSE the peer verifies and reports as NORMAL.
  a.ep.close();
  flow(a, as, b, bs, 2001);
  CHECK(b.closesWith(kClosedByPeer, kNormal) == 1 && b.ep.tagFailures() == 0);
}

void test_keyed_resume_across_reconnect() {
  KeyedPair p;
  Side& a = p.a;
  Side& b = p.b;
  CHECK(a.ep.connected() && b.ep.connected());
  for (int i = 1; i <= 4; ++i) CHECK(a.sendText("msg" + std::to_string(i)));
  CHECK(b.sendText("back1"));
  // Part of the stream gets through, then the connection drops mid-frame.
  flow(a, p.as, b, p.bs, 1, 100);
  flow(b, p.bs, a, p.as, 1, 10);
  cut(a, p.as, b, p.bs);
  CHECK(a.sendText("msg5"));
  const int as = a.ep.open(10), bs = b.ep.open(10, Endpoint::kAccepted);
  pump(a, as, b, bs, 10);
  CHECK(a.ep.connected() && b.ep.connected());
  for (int i = 1; i <= 5; ++i) CHECK(b.take() == "msg" + std::to_string(i));
  CHECK(b.take() == "<none>" && a.take() == "back1" && a.take() == "<none>");
  pump(a, as, b, bs, 11);
  CHECK(a.ep.unackedBytes() == 0 && b.ep.unackedBytes() == 0);
  CHECK(a.ep.lostMessages() == 0 && b.ep.lostMessages() == 0);
  CHECK(a.ep.tagFailures() == 0 && b.ep.tagFailures() == 0);
  for (const auto& c : a.closes) CHECK(c.kind != kClosedLocally);
  for (const auto& c : b.closes) CHECK(c.kind != kClosedLocally);
}

void test_keyed_wrong_key() {
  for (const bool dialerWrong : {false, true}) {
    // The acceptor checks the dialer's proof first, whichever side has the other key: it
    // refuses with an untagged CLOSE AUTH and never sends a proof of its own.
    Side a(0xA12, 1024, 8192, 8192), b(0xB12, 1024, 8192, 8192);
    a.keyed(dialerWrong ? kOtherKey : kKey, dialerWrong ? sizeof kOtherKey : sizeof kKey);
    b.keyed(dialerWrong ? kKey : kOtherKey, dialerWrong ? sizeof kKey : sizeof kOtherKey);
    const int as = a.ep.open(0), bs = b.ep.open(0, Endpoint::kAccepted);
    flow(a, as, b, bs, 0);
    flow(b, bs, a, as, 0);
    flow(a, as, b, bs, 0);
    CHECK(b.closesWith(kClosedLocally, kAuthFailed) == 1);
    CHECK(b.closes[0].reason == "authentication failed" && b.ep.authFailures() == 1);
    const auto close = output(b, bs, 0);
    CHECK(close.size() == kFrameOverhead + 1 + strlen("authentication failed") &&
          close[2] == kClose);
    a.ep.feed(as, close.data(), close.size(), 0);
    CHECK(a.closesWith(kClosedByPeer, kAuthFailed) == 1 && a.ep.authFailures() == 0);
    CHECK(!a.ep.connected() && !b.ep.connected());
    CHECK(a.ep.peerSession() == 0 && b.ep.peerSession() == 0);  // nothing acted on
  }
  {
    // A dialer finds the acceptor's proof wrong (a forged AUTH): AUTH, its CLOSE tagged (its
    // own AUTH went out), nothing acted on.
    Side a(0xA13, 1024, 8192, 8192), b(0xB13, 1024, 8192, 8192);
    a.keyed();
    b.keyed();
    const int as = a.ep.open(0), bs = b.ep.open(0, Endpoint::kAccepted);
    flow(a, as, b, bs, 0);
    flow(b, bs, a, as, 0);
    CHECK(output(a, as, 0).size() == 52);  // its AUTH
    const auto forged = frameBytes(kAuth, 0, 0, std::vector<uint8_t>(kAuthPayload, 0x5F));
    a.ep.feed(as, forged.data(), forged.size(), 0);
    CHECK(a.closesWith(kClosedLocally, kAuthFailed) == 1 && a.ep.authFailures() == 1);
    CHECK(a.closes[0].reason == "authentication failed" && !a.ep.connected());
    CHECK(a.ep.peerSession() == 0);
    CHECK(output(a, as, 0).size() == kFrameOverhead + 1 + strlen("authentication failed") +
                                         kTagSize);
  }
}

void test_keyed_busy_before_the_dialer_counts_itself_connected() {
  // The session is held for its live owner: a second keyed host proves the key, is refused
  // with an untagged CLOSE BUSY and never gets the device's AUTH, so it never counted itself
  // connected (docs/protocol.md §6). The owner's own newer connection replaces the old one.
  KeyedPair p;
  Side other(0x0711, 1024, 8192, 8192);
  other.keyed();
  const int oc = other.ep.open(1), bc = p.b.ep.open(1, Endpoint::kAccepted);
  flow(other, oc, p.b, bc, 1);
  flow(p.b, bc, other, oc, 1);
  flow(other, oc, p.b, bc, 1);  // its AUTH, verified
  CHECK(p.b.closesWith(kClosedLocally, kBusy) == 1 && p.b.ep.authFailures() == 0);
  const auto busy = output(p.b, bc, 1);
  CHECK(busy[2] == kClose && busy[kHeaderSize] == kBusy);
  CHECK(busy.size() == kFrameOverhead + 1 + strlen("another peer's session is live"));
  other.ep.feed(oc, busy.data(), busy.size(), 1);
  CHECK(other.closesWith(kClosedByPeer, kBusy) == 1 && !other.ep.connected());
  CHECK(other.ep.peerSession() == 0 && other.ep.tagFailures() == 0);
  p.b.ep.release(bc);
  // The owner, redialling while its old connection still looks live: REPLACED, resumed.
  CHECK(p.a.sendText("again"));
  const int as = p.a.ep.open(2), bs = p.b.ep.open(2, Endpoint::kAccepted);
  pump(p.a, as, p.b, bs, 2);
  CHECK(p.b.closesWith(kClosedLocally, kReplaced) == 1 && p.b.ep.activeSlot() == bs);
  CHECK(p.a.ep.connected() && p.b.take() == "again" && p.b.take() == "<none>");
  // Dropped after it verified the dialer's AUTH but before its own AUTH is written: the
  // CLOSE takes the AUTH's place, untagged, and the dialer never counts itself connected.
  Side d(0xD2A, 1024, 8192, 8192), acc(0xACD, 1024, 8192, 8192);
  d.keyed();
  acc.keyed();
  const int dc = d.ep.open(3), ac = acc.ep.open(3, Endpoint::kAccepted);
  flow(d, dc, acc, ac, 3);
  flow(acc, ac, d, dc, 3);
  flow(d, dc, acc, ac, 3);
  CHECK(acc.ep.connected());
  acc.ep.drop(kBusy, "not now");
  const auto refused = output(acc, ac, 3);
  CHECK(refused.size() == kFrameOverhead + 1 + strlen("not now") && refused[2] == kClose);
  d.ep.feed(dc, refused.data(), refused.size(), 3);
  CHECK(d.closesWith(kClosedByPeer, kBusy) == 1 && !d.ep.connected());
  CHECK(d.ep.tagFailures() == 0 && d.ep.peerSession() == 0);
}

void test_keyed_meets_unkeyed() {
  {
    Side a(0xA14, 1024, 8192, 8192), b(0xB14, 1024, 8192, 8192);
    a.keyed();
    const int as = a.ep.open(0), bs = b.ep.open(0, Endpoint::kAccepted);
    pump(a, as, b, bs, 0);
    CHECK(b.closesWith(kClosedLocally, kAuthFailed) == 1);
    CHECK(b.closes[0].reason == "no key on this side" && b.ep.authFailures() == 1);
    CHECK(a.closesWith(kClosedByPeer, kAuthFailed) == 1);
  }
  {
    Side a(0xA15, 1024, 8192, 8192), b(0xB15, 1024, 8192, 8192);
    b.keyed();
    const int as = a.ep.open(0), bs = b.ep.open(0, Endpoint::kAccepted);
    pump(a, as, b, bs, 0);
    CHECK(b.closesWith(kClosedLocally, kAuthFailed) == 1);
    CHECK(b.closes[0].reason == "peer has no key" && b.ep.authFailures() == 1);
    CHECK(a.closesWith(kClosedByPeer, kAuthFailed) == 1 && !a.ep.connected());
  }
}

void test_keyed_reflection_is_refused() {
  {
    // A dialer's own HELLO sent back to it.
    Side a(0xA16, 1024, 8192, 8192);
    a.keyed();
    const int as = a.ep.open(0);
    const auto hello = output(a, as, 0);
    a.ep.feed(as, hello.data(), hello.size(), 0);
    CHECK(a.closesWith(kClosedLocally, kAuthFailed) == 1);
    CHECK(a.closes[0].reason == "reflected HELLO" && a.ep.authFailures() == 1);
  }
  {
    // Another session, but the dialer's own nonce: reflected as well.
    Side a(0xA17, 1024, 8192, 8192);
    a.keyed();
    const int as = a.ep.open(0);
    auto hello = output(a, as, 0);
    putU64(hello.data() + kHeaderSize + 16, 0x0BADULL);
    putU32(hello.data() + hello.size() - kCrcSize, crc32(hello.data(), hello.size() - kCrcSize));
    a.ep.feed(as, hello.data(), hello.size(), 0);
    CHECK(a.closesWith(kClosedLocally, kAuthFailed) == 1 && a.closes[0].reason == "reflected HELLO");
  }
  {
    // A dialer's own AUTH (proof D) sent back as the acceptor's: the role is in the proof.
    Side a(0xA18, 1024, 8192, 8192), b(0xB18, 1024, 8192, 8192);
    a.keyed();
    b.keyed();
    const int as = a.ep.open(0), bs = b.ep.open(0, Endpoint::kAccepted);
    flow(a, as, b, bs, 0);
    flow(b, bs, a, as, 0);
    const auto auth = output(a, as, 0);
    a.ep.feed(as, auth.data(), auth.size(), 0);  // a's AUTH, reflected
    CHECK(a.closesWith(kClosedLocally, kAuthFailed) == 1);
    CHECK(a.closes[0].reason == "authentication failed" && !a.ep.connected());
  }
}

void test_keyed_stranger_cannot_replay_replace_or_hold_slots() {
  Side a(0xA19, 1024, 8192, 8192), b(0xB19, 1024, 8192, 8192);
  a.keyed();
  b.keyed();
  int as = a.ep.open(0), bs = b.ep.open(0, Endpoint::kAccepted);
  // The owner's handshake, recorded by an observer.
  std::vector<uint8_t> recorded;
  flow(a, as, b, bs, 0, SIZE_MAX, &recorded);
  flow(b, bs, a, as, 0);
  flow(a, as, b, bs, 0, SIZE_MAX, &recorded);
  pump(a, as, b, bs, 0);
  CHECK(b.ep.connected() && b.ep.activeSlot() == bs && recorded.size() >= 68 + 52);
  // Replayed on new connections (the owner's session id, so "known"): new nonces, so the
  // old AUTH is wrong. The owner's connection is neither replaced nor disturbed.
  for (uint32_t t = 1; t <= 3; ++t) {
    const int c = b.ep.open(t, Endpoint::kAccepted);
    CHECK(c >= 0 && c != bs);
    b.ep.feed(c, recorded.data(), 68 + 52, t);
    CHECK(b.ep.closing(c) && b.closes.back().code == kAuthFailed);
    output(b, c, t);
    b.ep.release(c);
  }
  CHECK(b.ep.authFailures() == 3 && b.closesWith(kClosedLocally, kReplaced) == 0);
  CHECK(b.ep.activeSlot() == bs && b.ep.peerSession() == 0xA19);
  // Strangers that send a HELLO and never an AUTH fill the other slots: they count as not
  // past HELLO, so eviction takes them (oldest first), never the owner ...
  Side s(0x5A5A, 1024, 8192, 8192);
  s.keyed();
  std::vector<int> strangers;
  for (uint32_t t = 10;; ++t) {
    const int c = b.ep.open(t, Endpoint::kAccepted);
    if (c < 0) break;
    const int sc = s.ep.open(t);
    const auto hello = output(s, sc, t);
    s.ep.release(sc);
    s.ep.transportLost(sc);
    b.ep.feed(c, hello.data(), hello.size(), t);
    CHECK(b.ep.inUse(c) && !b.ep.closing(c));
    CHECK(output(b, c, t).size() == 68);  // its HELLO: no AUTH before the stranger's
    strangers.push_back(c);
  }
  CHECK(strangers.size() == Endpoint::kMaxSlots - 1);
  const int victim = b.ep.evict();
  CHECK(victim == strangers[0] && victim != bs && b.ep.evictions() == 1);
  output(b, victim, 20);
  b.ep.release(victim);
  // ... and the handshake bound closes the rest: "no AUTH within the handshake bound".
  b.ep.tick(10 + 2000 + 5);
  for (size_t i = 1; i < strangers.size(); ++i) CHECK(b.ep.closing(strangers[i]));
  CHECK(b.ep.authFailures() == 3 + strangers.size() - 1);
  CHECK(b.closes.back().reason == "no AUTH within the handshake bound");
  for (size_t i = 1; i < strangers.size(); ++i) {
    // Its CLOSE is untagged (it sent no AUTH): header, 1 + reason, CRC.
    const auto close = output(b, strangers[i], 2020);
    CHECK(close.size() == kFrameOverhead + 1 + strlen("no AUTH within the handshake bound"));
    b.ep.release(strangers[i]);
  }
  // The owner was never touched and still delivers exactly once.
  CHECK(b.ep.connected() && b.ep.activeSlot() == bs);
  CHECK(a.sendText("still mine"));
  pump(a, as, b, bs, 30);
  CHECK(b.take() == "still mine" && b.take() == "<none>");
  CHECK(a.closes.empty());
}

// Rewrites the CRC of the frame at the start of `f` after an edit (the tag stays).
void fixCrc(std::vector<uint8_t>& f) {
  const size_t len = kHeaderSize + getU32(f.data() + 4);
  putU32(f.data() + len, crc32(f.data(), len));
}

void test_keyed_tampered_replayed_or_injected_frames_are_bad_tag() {
  // Altered payload (CRC fixed up): BAD_TAG, nothing delivered, then a resume delivers the
  // real message exactly once.
  {
    KeyedPair p;
    CHECK(p.a.sendText("one"));
    auto f = output(p.a, p.as, 1);
    CHECK(f.size() == kFrameOverhead + 3 + kTagSize);
    f[kHeaderSize] ^= 0x20;  // "One"
    fixCrc(f);
    p.b.ep.feed(p.bs, f.data(), f.size(), 1);
    CHECK(p.b.closesWith(kClosedLocally, kBadTag) == 1 && p.b.ep.tagFailures() == 1);
    CHECK(p.b.closes.back().reason == "tag mismatch" && p.b.take() == "<none>");
    p.b.ep.release(p.bs);
    p.a.ep.transportLost(p.as);
    const int as = p.a.ep.open(2), bs = p.b.ep.open(2, Endpoint::kAccepted);
    pump(p.a, as, p.b, bs, 2);
    CHECK(p.b.take() == "one" && p.b.take() == "<none>");
  }
  // A recorded frame replayed on the same connection: its counter has passed.
  {
    KeyedPair p;
    CHECK(p.a.sendText("two"));
    const auto f = output(p.a, p.as, 1);
    p.b.ep.feed(p.bs, f.data(), f.size(), 1);
    CHECK(p.b.take() == "two");
    p.b.ep.feed(p.bs, f.data(), f.size(), 1);
    CHECK(p.b.closesWith(kClosedLocally, kBadTag) == 1 && p.b.take() == "<none>");
  }
  // Injected: a frame made up by a stranger (right CRC, made-up tag), and a frame without a
  // tag at all (the next frame's header is read as its tag).
  {
    KeyedPair p;
    auto forged = frameBytes(kText, 1, 0, bytesOf("evil"));
    forged.insert(forged.end(), kTagSize, 0xEE);
    p.b.ep.feed(p.bs, forged.data(), forged.size(), 1);
    CHECK(p.b.closesWith(kClosedLocally, kBadTag) == 1 && p.b.take() == "<none>");
  }
  {
    KeyedPair p;
    auto bare = frameBytes(kText, 1, 0, bytesOf("bare"));
    const auto ack = frameBytes(kAck, 0, 0, {});
    bare.insert(bare.end(), ack.begin(), ack.end());
    p.b.ep.feed(p.bs, bare.data(), bare.size(), 1);
    CHECK(p.b.closesWith(kClosedLocally, kBadTag) == 1 && p.b.take() == "<none>");
  }
  // A tag from the other direction (a frame reflected back to its sender).
  {
    KeyedPair p;
    CHECK(p.a.sendText("mirror"));
    const auto f = output(p.a, p.as, 1);
    p.a.ep.feed(p.as, f.data(), f.size(), 1);
    CHECK(p.a.closesWith(kClosedLocally, kBadTag) == 1 && p.a.ep.tagFailures() == 1);
  }
}

void test_keyed_random_schedule_exactly_once() { randomScheduleExactlyOnce(true); }
void test_keyed_random_schedule_with_reboots() { randomScheduleWithReboots(true); }

}  // namespace

int main() {
  setvbuf(stdout, nullptr, _IOLBF, 0);  // lines survive a sanitizer abort
  const check::Test tests[] = {
      {"hello_exchange_and_echo", test_hello_exchange_and_echo},
      {"window_full_and_ack_frees_room", test_window_full_and_ack_frees_room},
      {"resume_after_cut_drops_duplicates", test_resume_after_cut_drops_duplicates},
      {"resend_is_byte_for_byte", test_resend_is_byte_for_byte},
      {"new_peer_session_resets_state", test_new_peer_session_resets_state},
      {"peer_that_never_got_our_hello_gets_a_resend",
       test_peer_that_never_got_our_hello_gets_a_resend},
      {"restarted_peer_that_learned_our_id_does_not_get_the_old_stream",
       test_restarted_peer_that_learned_our_id_does_not_get_the_old_stream},
      {"same_peer_resuming_us_gets_the_stream", test_same_peer_resuming_us_gets_the_stream},
      {"garbage_closes_only_that_connection", test_garbage_closes_only_that_connection},
      {"handshake_timeout", test_handshake_timeout},
      {"full_slots_evict_the_oldest_without_hello",
       test_full_slots_evict_the_oldest_without_hello},
      {"eviction_goes_by_order_of_opening", test_eviction_goes_by_order_of_opening},
      {"slow_senders_are_bounded_by_whole_frames", test_slow_senders_are_bounded_by_whole_frames},
      {"newer_connection_replaces_older", test_newer_connection_replaces_older},
      {"accepted_connection_reveals_nothing_to_a_stranger",
       test_accepted_connection_reveals_nothing_to_a_stranger},
      {"keepalive_and_dead_bound", test_keepalive_and_dead_bound},
      {"scripted_hello_fields", test_scripted_hello_fields},
      {"ack_when_application_takes", test_ack_when_application_takes},
      {"sequence_gap_is_rejected", test_sequence_gap_is_rejected},
      {"window_overrun_is_rejected", test_window_overrun_is_rejected},
      {"window_reopens_after_ack_goes_out", test_window_reopens_after_ack_goes_out},
      {"bad_acks_and_hellos", test_bad_acks_and_hellos},
      {"peer_close_and_app_close", test_peer_close_and_app_close},
      {"receive_buffer_too_small_keeps_message", test_receive_buffer_too_small_keeps_message},
      {"partial_writes_interleave_safely", test_partial_writes_interleave_safely},
      {"random_schedule_exactly_once", test_random_schedule_exactly_once},
      {"random_schedule_with_reboots", test_random_schedule_with_reboots},
      {"set_key_contract", test_set_key_contract},
      {"keyed_handshake_and_echo", test_keyed_handshake_and_echo},
      {"keyed_resume_across_reconnect", test_keyed_resume_across_reconnect},
      {"keyed_wrong_key", test_keyed_wrong_key},
      {"keyed_busy_before_the_dialer_counts_itself_connected",
       test_keyed_busy_before_the_dialer_counts_itself_connected},
      {"keyed_meets_unkeyed", test_keyed_meets_unkeyed},
      {"keyed_reflection_is_refused", test_keyed_reflection_is_refused},
      {"keyed_stranger_cannot_replay_replace_or_hold_slots",
       test_keyed_stranger_cannot_replay_replace_or_hold_slots},
      {"keyed_tampered_replayed_or_injected_frames_are_bad_tag",
       test_keyed_tampered_replayed_or_injected_frames_are_bad_tag},
      {"keyed_random_schedule_exactly_once", test_keyed_random_schedule_exactly_once},
      {"keyed_random_schedule_with_reboots", test_keyed_random_schedule_with_reboots},
  };
  return check::runTests(tests);
}
