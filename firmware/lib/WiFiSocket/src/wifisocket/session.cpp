// Device-side session core of the WiFiSocket protocol. See session.h.
#include "session.h"

#include <string.h>

#include "hmac.h"

namespace wsock {

namespace {

// Copies len bytes into the ring buf[cap] at head, wrapping; returns the new head.
size_t ringWrite(uint8_t* buf, size_t cap, size_t head, const uint8_t* p, size_t len) {
  while (len > 0) {
    size_t n = cap - head;
    if (n > len) n = len;
    memcpy(buf + head, p, n);
    p += n;
    len -= n;
    head = (head + n) % cap;
  }
  return head;
}

// Where the parts of a keyed handshake sit in a slot's scratch buffer: our HELLO frame
// (version 2), then our AUTH frame.
constexpr size_t kKeyedHelloFrame = kFrameOverhead + kKeyedHelloPayloadSize;
constexpr size_t kAuthFrame = kFrameOverhead + kAuthPayload;
static_assert(kKeyedHelloFrame + kAuthFrame <= kMaxControlFrame, "HELLO and AUTH share scratch");
// A tagged CLOSE must fit the scratch buffer too: its reason is cut 16 bytes shorter.
constexpr size_t kTaggedCloseMaxReason = kCloseMaxReason - kTagSize;

}  // namespace

// ---------------------------------------------------------------------------- TxRing

void TxRing::init(uint8_t* buf, size_t cap) {
  buf_ = buf;
  cap_ = cap;
  clear();
}

void TxRing::clear() {
  tail_ = 0;
  used_ = 0;
  frames_ = 0;
}

uint32_t TxRing::u32At(size_t offset) const {
  uint8_t b[4] = {at(offset), at(offset + 1), at(offset + 2), at(offset + 3)};
  return getU32(b);
}

void TxRing::append(uint8_t type, uint32_t seq, uint32_t ack, const uint8_t* payload,
                    size_t len) {
  uint8_t header[kHeaderSize];
  writeHeader(header, type, static_cast<uint32_t>(len), seq, ack);
  uint8_t crc[kCrcSize];
  putU32(crc, crc32Update(crc32(header, sizeof header), payload, len));
  size_t head = (tail_ + used_) % cap_;
  head = ringWrite(buf_, cap_, head, header, sizeof header);
  head = ringWrite(buf_, cap_, head, payload, len);
  ringWrite(buf_, cap_, head, crc, sizeof crc);
  used_ += kFrameOverhead + len;
  ++frames_;
}

size_t TxRing::contiguous(size_t offset, const uint8_t** p) const {
  const size_t pos = (tail_ + offset) % cap_;
  *p = buf_ + pos;
  const size_t toEnd = cap_ - pos;
  const size_t left = used_ - offset;
  return left < toEnd ? left : toEnd;
}

size_t TxRing::dropFront() {
  if (frames_ == 0) return 0;
  const size_t size = frameSizeAt(0);
  tail_ = (tail_ + size) % cap_;
  used_ -= size;
  --frames_;
  return size;
}

// ---------------------------------------------------------------------------- RxRing

void RxRing::init(uint8_t* buf, size_t cap) {
  buf_ = buf;
  cap_ = cap;
  clear();
}

void RxRing::clear() {
  tail_ = 0;
  take_ = 0;
  used_ = 0;
  pending_ = 0;
  takenHeld_ = 0;
}

bool RxRing::push(uint8_t type, const uint8_t* payload, size_t len) {
  if (len > cap_ || kRecordHeader + len > freeBytes()) return false;
  uint8_t header[kRecordHeader];
  header[0] = type;
  putU32(header + 1, static_cast<uint32_t>(len));
  const size_t head = ringWrite(buf_, cap_, (tail_ + used_) % cap_, header, sizeof header);
  ringWrite(buf_, cap_, head, payload, len);
  used_ += kRecordHeader + len;
  ++pending_;
  return true;
}

void RxRing::copyOut(size_t pos, uint8_t* out, size_t n) const {
  while (n > 0) {
    size_t chunk = cap_ - pos;
    if (chunk > n) chunk = n;
    memcpy(out, buf_ + pos, chunk);
    out += chunk;
    n -= chunk;
    pos = (pos + chunk) % cap_;
  }
}

uint32_t RxRing::lengthAt(size_t pos) const {
  uint8_t b[4];
  copyOut((pos + 1) % cap_, b, 4);
  return getU32(b);
}

uint32_t RxRing::nextLength() const { return lengthAt(take_); }

void RxRing::take(uint8_t* out) {
  const uint32_t len = lengthAt(take_);
  copyOut((take_ + kRecordHeader) % cap_, out, len);
  take_ = (take_ + kRecordHeader + len) % cap_;
  --pending_;
  ++takenHeld_;
}

uint32_t RxRing::releaseOldest() {
  const uint32_t len = lengthAt(tail_);
  tail_ = (tail_ + kRecordHeader + len) % cap_;
  used_ -= kRecordHeader + len;
  --takenHeld_;
  return len;
}

// ---------------------------------------------------------------------------- Endpoint

Endpoint::Endpoint(const EndpointConfig& config, const EndpointBuffers& buffers)
    : config_(config) {
  // The window we announce is the receive ring; HELLO requires window >= max_message + 20,
  // and the decoder must hold a whole data frame.
  size_t limit = buffers.rxCap > kFrameOverhead ? buffers.rxCap - kFrameOverhead : 0;
  if (buffers.decoderCap > kFrameOverhead && buffers.decoderCap - kFrameOverhead < limit) {
    limit = buffers.decoderCap - kFrameOverhead;
  }
  if (config_.maxMessage > limit) config_.maxMessage = static_cast<uint32_t>(limit);
  big_ = FrameDecoder(buffers.decoder, buffers.decoderCap, config_.maxMessage);
  rx_.init(buffers.rx, buffers.rxCap);
  tx_.init(buffers.tx, buffers.txCap);
  for (Slot& s : slots_) s.small = FrameDecoder(s.smallBuf, sizeof s.smallBuf, config_.maxMessage);
}

void Endpoint::start(uint64_t sessionId) {
  session_ = sessionId != 0 ? sessionId : 1;
  peerSession_ = 0;
  held_ = false;
  peerMax_ = peerWindow_ = peerKeepalive_ = 0;
  resetReceive();
  resetSend();
  pingNonce_ = session_;
  pingOutstanding_ = false;
}

void Endpoint::resetReceive() {
  rx_.clear();
  delivered_ = taken_ = ackSent_ = rxInflight_ = 0;
}

void Endpoint::resetSend() {
  tx_.clear();
  nextSeq_ = 1;
  txSent_ = 0;
  peerAcked_ = 0;
}

bool Endpoint::setKey(const uint8_t* key, size_t len) {
  if (len != 0 && (key == nullptr || len < kKeyMin || len > kKeyMax)) return false;
  // A dialled handshake whose AUTH went out under the old key cannot finish under the new
  // one, nor an accepted one awaiting an AUTH once there is no key to check it with: it ends
  // now (a dialer's CLOSE still tagged under the old key), and the peer comes back. An
  // acceptor has sent nothing made with the key before it verified the AUTH: it checks it,
  // and proves itself, under the new key (docs/protocol.md §6).
  for (int i = 0; i < kMaxSlots; ++i) {
    const Slot& s = slots_[i];
    if (s.state == Slot::kHandshake && (s.tagOut || (len == 0 && s.awaitAuth))) {
      closeSlot(i, kClosedLocally, kTimeout, "key changed");
    }
  }
  secureZero(key_, sizeof key_);
  if (len > 0) memcpy(key_, key, len);
  keyLen_ = static_cast<uint8_t>(len);
  return true;
}

int Endpoint::open(uint32_t now, Role role) {
  // Without fresh nonces a keyed handshake would be replayable: refuse rather than guess.
  if (keyLen_ > 0 && random_ == nullptr) return -1;
  for (int i = 0; i < kMaxSlots; ++i) {
    Slot& s = slots_[i];
    if (s.state != Slot::kFree) continue;
    s.state = Slot::kHandshake;
    s.cursor = Slot::kNone;
    s.pingDue = s.pongDue = false;
    s.accepted = role == kAccepted;
    s.openedAt = s.lastRx = s.lastTx = now;
    s.openOrder = ++opens_;
    // The whole buffer again: a keyed handshake moved the decoder past the peer's HELLO.
    s.small = FrameDecoder(s.smallBuf, sizeof s.smallBuf, config_.maxMessage);
    s.keyed = keyLen_ > 0;
    s.awaitAuth = s.tagOut = s.scratchTagged = s.established = false;
    s.helloLen = 0;
    s.helloAck = 0;
    // A dialler names the session it resumes at once (it chose whom to dial).
    if (!s.accepted) queueHello(s, peerSession_, peerSession_ != 0 ? taken_ : 0);
    return i;
  }
  return -1;
}

void Endpoint::queueHello(Slot& s, uint64_t resume, uint32_t ack) {
  Hello h;
  if (s.keyed) {
    h.version = kKeyedProtocolVersion;
    random_(randomCtx_, h.nonce, sizeof h.nonce);
  }
  h.maxMessage = config_.maxMessage;
  h.window = window();
  h.keepaliveMs = config_.keepaliveMs;
  h.session = session_;
  h.resume = resume;
  uint8_t payload[kKeyedHelloPayloadSize];
  const size_t n = encodeHello(h, payload, sizeof payload);
  s.helloAck = ack;
  s.curLen = encodeFrame(s.scratch, sizeof s.scratch, kHello, 0, ack, payload, n);
  s.curPos = 0;
  s.cursor = Slot::kScratch;
  s.scratchTagged = false;
}

// Our AUTH right after our HELLO in the scratch buffer (the HELLO may be written already,
// in part or whole): proof(our role) over both HELLOs (docs/protocol.md §6). A dialer sends
// it on the acceptor's HELLO, an acceptor once it verified the dialer's AUTH.
void Endpoint::appendAuth(Slot& s) {
  const uint8_t* own = s.scratch + kHeaderSize;
  const uint8_t* peer = s.smallBuf + kHeaderSize;
  uint8_t proof[kAuthPayload];
  if (s.accepted) {
    authProof(key_, keyLen_, kRoleAcceptor, peer, s.helloLen, own, kKeyedHelloPayloadSize, proof);
  } else {
    authProof(key_, keyLen_, kRoleDialer, own, kKeyedHelloPayloadSize, peer, s.helloLen, proof);
  }
  if (s.cursor == Slot::kNone) s.curPos = kKeyedHelloFrame;  // the HELLO is out
  encodeFrame(s.scratch + kKeyedHelloFrame, sizeof s.scratch - kKeyedHelloFrame, kAuth, 0,
              s.helloAck, proof, sizeof proof);
  s.curLen = kKeyedHelloFrame + kAuthFrame;
  s.cursor = Slot::kScratch;
  s.tagOut = true;
}

// K_conn of a slot whose two HELLOs are in place (awaiting or just verified the AUTH).
void Endpoint::slotConnKey(const Slot& s, uint8_t out[kConnKeySize]) const {
  const uint8_t* own = s.scratch + kHeaderSize + kHelloPayloadSize;
  const uint8_t* peer = s.smallBuf + kHeaderSize + kHelloPayloadSize;
  connectionKey(key_, keyLen_, s.accepted ? peer : own, s.accepted ? own : peer, out);
}

bool Endpoint::sessionHeld(uint32_t now) const {
  return held_ && peerSession_ != 0 && (active_ >= 0 || now - ownerRx_ < deadBoundMs());
}

int Endpoint::evict() {
  int oldest = -1;
  for (int i = 0; i < kMaxSlots; ++i) {
    const Slot& s = slots_[i];
    if (s.state != Slot::kHandshake) continue;
    // By order of opening, not by time: many connections open within one millisecond.
    if (oldest < 0 || opens_ - s.openOrder > opens_ - slots_[oldest].openOrder) oldest = i;
  }
  if (oldest < 0) return -1;
  ++evictions_;
  closeSlot(oldest, kClosedLocally, kTimeout, "evicted: no HELLO yet and every slot busy");
  return oldest;
}

void Endpoint::closeSlot(int slot, uint8_t kind, uint8_t code, const char* reason) {
  Slot& s = slots_[slot];
  if (s.state == Slot::kFree || s.state == Slot::kClosing) return;
  const bool wasActive = active_ == slot;
  // Our HELLO and AUTH wait in scratch (the only untagged frames after tagOut) and nothing
  // of the AUTH is written: a frame boundary, and the CLOSE takes the AUTH's place.
  const bool authUnsent = s.tagOut && s.cursor == Slot::kScratch && !s.scratchTagged &&
                          (s.curPos == 0 || s.curPos == kKeyedHelloFrame);
  s.state = Slot::kClosing;
  if (wasActive) {
    active_ = -1;
    // A close after which the owner does not come back (NORMAL, a protocol error either
    // way: every code but the recoverable ones) ends the hold; a lost connection, a dead
    // bound, a corrupt frame or its own newer connection does not (docs/protocol.md §2).
    const bool comesBack = kind == kConnectionLost || code == kTimeout || code == kBadCrc ||
                           code == kBadTag || code == kReplaced || code == kBusy;
    if (!comesBack) held_ = false;
  }
  if (kind == kClosedLocally) {
    // Best effort CLOSE, only at a frame boundary: half a frame cannot be taken back.
    const bool midFrame = s.cursor != Slot::kNone &&
                          (s.cursor != Slot::kScratch || s.curPos > 0) && !authUnsent;
    if (!midFrame) {
      // The peer never gets our AUTH, so it expects no tag.
      if (authUnsent) s.tagOut = false;
      uint8_t payload[kCloseMaxPayload];
      payload[0] = code;
      size_t n = strlen(reason);
      const size_t max = s.tagOut ? kTaggedCloseMaxReason : kCloseMaxReason;
      if (n > max) n = max;
      memcpy(payload + 1, reason, n);
      queueScratch(slot, wasActive, kClose, payload, n + 1);
    } else {
      s.cursor = Slot::kNone;
    }
  } else {
    s.cursor = Slot::kNone;
  }
  if (hook_ != nullptr) hook_(hookCtx_, slot, kind, code, reason);
}

void Endpoint::release(int slot) {
  if (!valid(slot)) return;
  Slot& s = slots_[slot];
  if (active_ == slot) active_ = -1;
  s.state = Slot::kFree;
  s.cursor = Slot::kNone;
}

void Endpoint::transportLost(int slot) {
  if (!inUse(slot)) return;
  closeSlot(slot, kConnectionLost, kNormal, "connection lost");
  release(slot);
}

void Endpoint::close() {
  for (int i = 0; i < kMaxSlots; ++i) closeSlot(i, kClosedLocally, kNormal, "closed by application");
  start(session_);
  peerSession_ = 0;
}

void Endpoint::drop(uint8_t code, const char* reason) {
  if (active_ >= 0) closeSlot(active_, kClosedLocally, code, reason);
}

void Endpoint::queueScratch(int slot, bool active, uint8_t type, const uint8_t* payload,
                            size_t len) {
  Slot& s = slots_[slot];
  // On a keyed link after our AUTH the frame gets its tag: under the active connection's
  // key and counter, or, on a handshake that never became active (only its CLOSE is
  // tagged, as frame 0), under the key of its two HELLOs, taken before the scratch that
  // holds ours is overwritten.
  uint8_t handshakeKey[kConnKeySize];
  if (s.tagOut && !active) slotConnKey(s, handshakeKey);  // one tag: no TagKey kept
  // Control frames carry the current cumulative ack like every frame.
  const uint32_t ack = taken_;
  s.curLen = encodeFrame(s.scratch, sizeof s.scratch - (s.tagOut ? kTagSize : 0), type, 0, ack,
                         payload, len);
  s.curPos = 0;
  s.cursor = s.curLen > 0 ? Slot::kScratch : Slot::kNone;
  s.scratchTagged = s.tagOut && s.curLen > 0;
  if (s.scratchTagged) {
    const uint8_t dir = s.accepted ? kRoleAcceptor : kRoleDialer;
    if (active) {
      frameTag(connKey_, dir, txN_, s.scratch, s.curLen - kCrcSize, nullptr, 0,
               s.scratch + s.curLen);
    } else {
      frameTag(handshakeKey, dir, 0, s.scratch, s.curLen - kCrcSize, nullptr, 0,
               s.scratch + s.curLen);
    }
    s.curLen += kTagSize;
  }
  if (s.tagOut && !active) secureZero(handshakeKey, sizeof handshakeKey);
  if (s.cursor == Slot::kScratch && s.state == Slot::kActive) noteAckSent(ack);
}

void Endpoint::noteAckSent(uint32_t ack) {
  if (ack > taken_) ack = taken_;  // a stale resent frame from before a receive reset
  if (ack > ackSent_) ackSent_ = ack;
  // The peer may now refill the window these records occupied.
  while (rx_.takenHeld() > 0 && taken_ - rx_.takenHeld() + 1 <= ackSent_) {
    rxInflight_ -= static_cast<uint32_t>(kFrameOverhead + rx_.releaseOldest());
  }
}

bool Endpoint::selectOutput(int slot, uint32_t now) {
  Slot& s = slots_[slot];
  if (s.state != Slot::kActive) return false;
  if (s.pongDue) {
    s.pongDue = false;
    queueScratch(slot, true, kPong, s.pongNonce, kNoncePayload);
    return true;
  }
  if (txSent_ < tx_.used()) {
    s.cursor = Slot::kRing;
    s.curLen = tx_.frameSizeAt(txSent_);
    noteAckSent(tx_.u32At(txSent_ + 12));
    if (s.tagOut) {
      // Tagged as it is about to go out on this connection, header and payload in up to
      // two pieces (the ring may wrap inside the frame).
      const uint8_t* a = nullptr;
      const uint8_t* b = nullptr;
      const size_t covered = s.curLen - kCrcSize;
      size_t aLen = tx_.contiguous(txSent_, &a);
      if (aLen > covered) aLen = covered;
      size_t bLen = 0;
      if (aLen < covered) bLen = tx_.contiguous(txSent_ + aLen, &b);
      if (bLen > covered - aLen) bLen = covered - aLen;
      frameTag(connKey_, s.accepted ? kRoleAcceptor : kRoleDialer, txN_, a, aLen, b, bLen,
               s.scratch);
    }
    return true;
  }
  if (taken_ > ackSent_) {
    queueScratch(slot, true, kAck, nullptr, 0);
    return true;
  }
  if (s.pingDue) {
    s.pingDue = false;
    uint8_t nonce[kNoncePayload];
    ++pingNonce_;
    putU64(nonce, pingNonce_);
    pingSentAt_ = now;
    pingOutstanding_ = true;
    queueScratch(slot, true, kPing, nonce, sizeof nonce);
    return true;
  }
  return false;
}

size_t Endpoint::peekOutput(int slot, const uint8_t** data, uint32_t now) {
  *data = nullptr;
  if (!inUse(slot)) return 0;
  Slot& s = slots_[slot];
  if (s.cursor == Slot::kNone && !selectOutput(slot, now)) return 0;
  if (s.cursor == Slot::kScratch) {
    *data = s.scratch + s.curPos;
    return s.curLen - s.curPos;
  }
  if (s.cursor == Slot::kTag) {
    *data = s.scratch + s.curPos;
    return kTagSize - s.curPos;
  }
  const size_t n = tx_.contiguous(txSent_, data);
  return n < s.curLen ? n : s.curLen;
}

void Endpoint::consumeOutput(int slot, size_t n, uint32_t now) {
  if (!inUse(slot) || n == 0) return;
  Slot& s = slots_[slot];
  s.lastTx = now;
  if (s.cursor == Slot::kScratch) {
    s.curPos += n;
    if (s.curPos >= s.curLen) {
      s.cursor = Slot::kNone;
      if (s.scratchTagged && slot == active_) ++txN_;
    }
  } else if (s.cursor == Slot::kRing) {
    txSent_ += n;
    s.curLen -= n;
    if (s.curLen == 0) {
      s.cursor = Slot::kNone;
      if (s.tagOut) {  // the frame's tag follows
        s.cursor = Slot::kTag;
        s.curPos = 0;
      }
      dropAcked();  // an ack may have arrived while this frame was half written
    }
  } else if (s.cursor == Slot::kTag) {
    s.curPos += n;
    if (s.curPos >= kTagSize) {
      s.cursor = Slot::kNone;
      ++txN_;
    }
  }
}

uint32_t Endpoint::deadBoundMs() const {
  uint64_t bound = peerKeepalive_ == 0
                       ? config_.deadDefaultMs
                       : static_cast<uint64_t>(peerKeepalive_) * config_.deadFactor;
  // A peer cannot buy itself a longer life by announcing a huge keepalive: our own PINGs
  // (every keepaliveMs of our silence) must be answered, so a live peer is heard from
  // anyway. Also keeps the bound below half the clock's range for (now - lastRx).
  if (config_.deadMaxMs > 0 && bound > config_.deadMaxMs) bound = config_.deadMaxMs;
  return bound > 0x7FFFFFFFULL ? 0x7FFFFFFFU : static_cast<uint32_t>(bound);
}

void Endpoint::tick(uint32_t now) {
  for (int i = 0; i < kMaxSlots; ++i) {
    Slot& s = slots_[i];
    // Both bounds count whole frames, not bytes: a peer trickling a frame byte by byte is
    // as dead as a silent one, so a slow sender cannot hold a slot (docs/protocol.md §4).
    if (s.state == Slot::kHandshake && now - s.openedAt >= config_.handshakeMs) {
      if (s.awaitAuth) ++authFailures_;  // §6: the bound runs until the AUTH is verified
      closeSlot(i, kClosedLocally, kTimeout,
                s.awaitAuth               ? "no AUTH within the handshake bound"
                : s.small.buffered() > 0 ? "HELLO incomplete within the handshake bound"
                                         : "no HELLO within the handshake bound");
    } else if (s.state == Slot::kActive) {
      if (now - s.lastRx >= deadBoundMs()) {
        closeSlot(i, kClosedLocally, kTimeout,
                  big_.buffered() > 0 ? "frame incomplete past the dead bound"
                                      : "peer silent past the dead bound");
      } else if (config_.keepaliveMs > 0 && now - s.lastTx >= config_.keepaliveMs) {
        s.pingDue = true;
      }
    }
  }
}

void Endpoint::feed(int slot, const uint8_t* data, size_t len, uint32_t now) {
  if (!inUse(slot)) return;
  size_t pos = 0;
  while (pos < len) {
    Slot& s = slots_[slot];
    if (s.state != Slot::kHandshake && s.state != Slot::kActive) return;
    FrameDecoder& dec = s.state == Slot::kActive ? big_ : s.small;
    size_t used = 0;
    const FrameDecoder::Status st = dec.feed(data + pos, len - pos, &used);
    pos += used;
    switch (st) {
      case FrameDecoder::kNeedMore:
        break;
      case FrameDecoder::kHeader:
        onHeader(slot, dec);
        break;
      case FrameDecoder::kFrame:
        if (dec.tagged() && !checkTag(slot, dec)) return;
        onFrame(slot, dec.frame(), now);
        break;
      case FrameDecoder::kError:
        closeSlot(slot, kClosedLocally, dec.errorCode(), dec.errorReason());
        return;
    }
  }
}

void Endpoint::onHeader(int slot, FrameDecoder& dec) {
  // Before HELLO only HELLO (or a CLOSE) is legal. Anything else is refused once its CRC is
  // checked (a corrupt frame is BAD_CRC, not out of order), without storing its payload:
  // the handshake decoder has room for control frames only.
  // While a keyed handshake awaits the AUTH, the decoder has the room after the peer's
  // HELLO: enough for an AUTH (or a CLOSE of up to 60 bytes of reason; a longer one fails
  // as TOO_LARGE, the peer is closing anyway). A second HELLO is refused likewise.
  const Slot& s = slots_[slot];
  const uint8_t type = dec.frame().type;
  if (s.state == Slot::kHandshake && type != kClose &&
      !(type == kHello && !s.awaitAuth) && !(type == kAuth && s.awaitAuth)) {
    dec.discardPayload();
  }
}

bool Endpoint::checkTag(int slot, const FrameDecoder& dec) {
  const Slot& s = slots_[slot];
  const uint8_t* bytes = dec.frameBytes();
  const uint8_t* tag = dec.tag();
  bool ok = false;
  if (bytes != nullptr && tag != nullptr) {
    uint8_t expect[kTagSize];
    frameTag(connKey_, s.accepted ? kRoleDialer : kRoleAcceptor, rxN_, bytes,
             kHeaderSize + dec.frame().length, nullptr, 0, expect);
    ok = constantTimeEqual(expect, tag, kTagSize);
  }
  if (!ok) {
    // Tampering (an injected, altered, replayed or reordered frame): dropped like a corrupt
    // one, and the session resumes on a new connection (docs/protocol.md §6).
    ++tagFailures_;
    closeSlot(slot, kClosedLocally, kBadTag, "tag mismatch");
    return false;
  }
  ++rxN_;
  return true;
}

void Endpoint::onFrame(int slot, const FrameView& f, uint32_t now) {
  Slot& s = slots_[slot];
  s.lastRx = now;
  if (slot == active_) ownerRx_ = now;
  if (f.type == kClose) {
    // Reasons are shown on a console line: keep them printable and bounded.
    char reason[kCloseMaxPayload];
    size_t n = f.length - 1;
    for (size_t i = 0; i < n; ++i) {
      const uint8_t c = f.payload[1 + i];
      reason[i] = (c >= 0x20 && c < 0x7F) ? static_cast<char>(c) : '?';
    }
    reason[n] = 0;
    closeSlot(slot, kClosedByPeer, f.payload[0], reason);
    return;
  }
  if (s.state == Slot::kHandshake) {
    if (f.type == kHello && !s.awaitAuth) {
      onHello(slot, f, now);
    } else if (f.type == kAuth && s.awaitAuth) {
      onAuth(slot, f, now);
    } else {
      closeSlot(slot, kClosedLocally, kProtocol,
                s.awaitAuth ? "frame before AUTH" : "frame before HELLO");
    }
    return;
  }
  if (!applyAck(slot, f.ack)) return;
  switch (f.type) {
    case kHello:
      closeSlot(slot, kClosedLocally, kProtocol, "second HELLO");
      return;
    case kAuth:  // on a v1 link, or a second one on a keyed link
      closeSlot(slot, kClosedLocally, kProtocol, "AUTH out of place");
      return;
    case kText:
    case kBinary:
      onData(slot, f);
      return;
    case kPing:
      memcpy(s.pongNonce, f.payload, kNoncePayload);
      s.pongDue = true;
      return;
    case kPong:
      if (pingOutstanding_ && getU64(f.payload) == pingNonce_) {
        pingOutstanding_ = false;
        rttMs_ = now - pingSentAt_;
      }
      return;
    default:  // ACK: its header's ack field was the message
      return;
  }
}

bool Endpoint::applyAck(int slot, uint32_t ack) {
  if (ack >= nextSeq_) {
    closeSlot(slot, kClosedLocally, kProtocol, "ack of a seq never sent");
    return false;
  }
  if (ack > peerAcked_) {  // a lower ack than one already seen is stale: ignore it
    peerAcked_ = ack;
    dropAcked();
  }
  return true;
}

void Endpoint::dropAcked() {
  while (tx_.frames() > 0 && nextSeq_ - tx_.frames() <= peerAcked_) {
    const size_t size = tx_.frameSizeAt(0);
    if (txSent_ >= size) {
      txSent_ -= size;
    } else if (txSent_ == 0) {
      // Acked before it was resent on this connection (the peer had it from an earlier
      // one): no need to send it again. Nothing of it is written yet, so the cursor can go.
      if (active_ >= 0 && slots_[active_].cursor == Slot::kRing) {
        slots_[active_].cursor = Slot::kNone;
      }
    } else {
      break;  // half written: finish it first; consumeOutput() comes back here
    }
    tx_.dropFront();
  }
}

void Endpoint::onData(int slot, const FrameView& f) {
  if (f.seq <= delivered_) {
    ++duplicates_;  // a resend of what we already have
    return;
  }
  if (f.seq != delivered_ + 1) {
    closeSlot(slot, kClosedLocally, kSequence, "data frame skips ahead");
    return;
  }
  const uint64_t inflight = static_cast<uint64_t>(rxInflight_) + kFrameOverhead + f.length;
  if (inflight > window() || !rx_.push(f.type, f.payload, f.length)) {
    closeSlot(slot, kClosedLocally, kWindow, "peer exceeded the receive window");
    return;
  }
  rxInflight_ = static_cast<uint32_t>(inflight);
  delivered_ = f.seq;
}

void Endpoint::authFailed(int slot, const char* reason) {
  ++authFailures_;
  closeSlot(slot, kClosedLocally, kAuthFailed, reason);
}

void Endpoint::onHello(int slot, const FrameView& f, uint32_t now) {
  Slot& s = slots_[slot];
  Hello h;
  const char* reason = "";
  const uint8_t code = decodeHello(f.payload, f.length, &h, &reason, s.keyed);
  if (code == kAuthFailed) {
    authFailed(slot, reason);
    return;
  }
  if (code != kNormal) {
    closeSlot(slot, kClosedLocally, code, reason);
    return;
  }
  if (!s.keyed) {
    establish(slot, h, f.ack, now);
    return;
  }
  // Keyed (docs/protocol.md §6): nothing of this HELLO is acted on before its AUTH is
  // verified; only our answer goes out now: an acceptor's HELLO (its AUTH waits for the
  // dialer's), a dialer's AUTH.
  if (keyLen_ == 0) {  // cleared since the connection opened: nothing to prove with
    closeSlot(slot, kClosedLocally, kTimeout, "key changed");
    return;
  }
  if (h.session == session_ ||
      (!s.accepted && memcmp(h.nonce, s.scratch + kHeaderSize + kHelloPayloadSize,
                             kHelloNonceSize) == 0)) {
    authFailed(slot, "reflected HELLO");
    return;
  }
  s.helloLen = static_cast<uint8_t>(f.length);
  if (s.accepted) {
    // What we kept of the peer's stream, only for the peer that named itself (§2).
    const bool known = peerSession_ != 0 && h.session == peerSession_;
    s.helloKnown = known;
    queueHello(s, known ? h.session : 0, known ? taken_ : 0);
    if (memcmp(h.nonce, s.scratch + kHeaderSize + kHelloPayloadSize, kHelloNonceSize) == 0) {
      s.cursor = Slot::kNone;  // our HELLO never goes out: the CLOSE takes its place
      authFailed(slot, "reflected HELLO");
      return;
    }
  } else {
    appendAuth(s);
  }
  s.awaitAuth = true;
  // The peer's HELLO (payload and header, for its ack) stays in smallBuf: the decoder goes on
  // after it.
  const size_t keep = kHeaderSize + f.length;
  s.small = FrameDecoder(s.smallBuf + keep, sizeof s.smallBuf - keep, config_.maxMessage);
}

void Endpoint::onAuth(int slot, const FrameView& f, uint32_t now) {
  Slot& s = slots_[slot];
  // (A dialer's key is the one its AUTH was made with: setKey() ends such handshakes.)
  const uint8_t* own = s.scratch + kHeaderSize;
  const uint8_t* peer = s.smallBuf + kHeaderSize;
  uint8_t expect[kAuthPayload];
  if (s.accepted) {
    authProof(key_, keyLen_, kRoleDialer, peer, s.helloLen, own, kKeyedHelloPayloadSize, expect);
  } else {
    authProof(key_, keyLen_, kRoleAcceptor, own, kKeyedHelloPayloadSize, peer, s.helloLen, expect);
  }
  const bool ok = constantTimeEqual(expect, f.payload, kAuthPayload);
  secureZero(expect, sizeof expect);
  if (!ok) {
    authFailed(slot, "authentication failed");
    return;
  }
  Hello h;
  const char* reason = nullptr;
  decodeHello(peer, s.helloLen, &h, &reason, true);  // valid: it passed in onHello
  establish(slot, h, getU32(s.smallBuf + 12), now);
}

// The peer's HELLO takes effect: unkeyed at once, keyed once its AUTH is verified (§6).
void Endpoint::establish(int slot, const Hello& h, uint32_t helloAck, uint32_t now) {
  Slot& s = slots_[slot];
  // Our stream belongs to the peer session it was sent to. A new peer session that names
  // us merely learned our id (from our HELLO on a connection that then dropped): it never
  // had our stream, whose frames carry acks of its predecessor's seq space, so for it the
  // stream is lost like for any new peer (docs/protocol.md, Resume).
  const bool resumesUs =
      h.resume == session_ && (peerSession_ == 0 || h.session == peerSession_);
  // The known peer that names no session and never acked us never got our HELLO (the
  // connection dropped first): it has delivered nothing and expects seq 1, so our queued
  // frames are resent as they are rather than declared lost (docs/protocol.md, Resume).
  const bool neverHeardUs =
      peerSession_ != 0 && h.session == peerSession_ && h.resume == 0 && peerAcked_ == 0;
  // A peer that does not name itself as the session's peer must not take a session that
  // is still held for its owner: without a key, naming the owner's session id (never
  // revealed to anyone else) is the proof of being it (docs/protocol.md §2, Strangers).
  const bool known = peerSession_ != 0 && h.session == peerSession_;
  // (Keyed: our HELLO went out before the AUTH; if another peer took the session meanwhile,
  // what it said of the session no longer holds: refuse, the peer comes back.)
  if (s.accepted && ((!known && sessionHeld(now)) || (s.keyed && s.helloKnown != known))) {
    closeSlot(slot, kClosedLocally, kBusy, "another peer's session is live");
    return;
  }
  if (resumesUs && helloAck >= nextSeq_) {
    closeSlot(slot, kClosedLocally, kProtocol, "HELLO acks a seq never sent");
    return;
  }
  // Receive direction: the same peer session keeps its numbering, a new one starts over.
  if (!known) {
    resetReceive();
    peerSession_ = h.session;
    s.helloAck = 0;
  }
  // Our HELLO on an accepted connection: what we kept of the peer's stream only for the
  // peer that named itself; a new peer learns nothing of its predecessor. Keyed, it went
  // out already and our AUTH follows it now that the dialer's is verified and not refused.
  if (s.accepted && !s.keyed) queueHello(s, known ? h.session : 0, known ? taken_ : 0);
  if (s.accepted && s.keyed) appendAuth(s);
  peerMax_ = h.maxMessage;
  peerWindow_ = h.window;
  peerKeepalive_ = h.keepaliveMs;
  if (active_ >= 0 && active_ != slot) {
    closeSlot(active_, kClosedLocally, kReplaced, "replaced by a newer connection");
  }
  active_ = slot;
  held_ = true;
  ownerRx_ = now;
  s.state = Slot::kActive;
  s.established = true;
  s.awaitAuth = false;
  s.lastRx = now;
  big_.reset();
  if (s.keyed) {
    uint8_t connKey[kConnKeySize];
    slotConnKey(s, connKey);
    tagKey(connKey, &connKey_);
    secureZero(connKey, sizeof connKey);
    txN_ = rxN_ = 0;
    big_.setTagged(true);  // from the frame after the peer's AUTH on
  }
  ackSent_ = 0;
  noteAckSent(s.helloAck);
  // Send direction: resend what the peer has not acknowledged, or start over if it lost us.
  txSent_ = 0;
  if (resumesUs) {
    if (helloAck > peerAcked_) peerAcked_ = helloAck;
    dropAcked();
  } else if (neverHeardUs) {
    // Resend everything from the start of the ring; A names no stream of ours.
  } else {
    lost_ += tx_.frames();
    resetSend();
  }
  pingOutstanding_ = false;
}

int Endpoint::available() const {
  return rx_.pending() > 0 ? static_cast<int>(rx_.nextLength()) : -1;
}

int Endpoint::receive(uint8_t* buf, size_t cap, bool* isText) {
  if (rx_.pending() == 0) return -1;
  const uint32_t len = rx_.nextLength();
  if (len > cap) return -2;
  if (isText != nullptr) *isText = rx_.nextType() == kText;
  rx_.take(buf);
  ++taken_;
  ++messagesIn_;
  bytesIn_ += len;
  return static_cast<int>(len);
}

Endpoint::SendResult Endpoint::send(const uint8_t* data, size_t len, bool isText) {
  if (peerSession_ == 0) return kNoPeer;
  const uint64_t frame = static_cast<uint64_t>(len) + kFrameOverhead;
  if (len > peerMax_ || frame > tx_.capacity() || frame > peerWindow_) return kTooLarge;
  if (tx_.used() + frame > peerWindow_ || frame > tx_.freeBytes()) return kNoRoom;
  tx_.append(isText ? kText : kBinary, nextSeq_, taken_, data, len);
  ++nextSeq_;
  ++messagesOut_;
  bytesOut_ += static_cast<uint32_t>(len);
  return kSent;
}

}  // namespace wsock
