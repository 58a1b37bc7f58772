// Device-side session core of WiFiSocket protocol v1. See session.h.
#include "session.h"

#include <string.h>

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

int Endpoint::open(uint32_t now, Role role) {
  for (int i = 0; i < kMaxSlots; ++i) {
    Slot& s = slots_[i];
    if (s.state != Slot::kFree) continue;
    s.state = Slot::kHandshake;
    s.cursor = Slot::kNone;
    s.pingDue = s.pongDue = false;
    s.accepted = role == kAccepted;
    s.openedAt = s.lastRx = s.lastTx = now;
    s.openOrder = ++opens_;
    s.small.reset();
    s.helloAck = 0;
    // A dialler names the session it resumes at once (it chose whom to dial).
    if (!s.accepted) queueHello(s, peerSession_, peerSession_ != 0 ? taken_ : 0);
    return i;
  }
  return -1;
}

void Endpoint::queueHello(Slot& s, uint64_t resume, uint32_t ack) {
  Hello h;
  h.maxMessage = config_.maxMessage;
  h.window = window();
  h.keepaliveMs = config_.keepaliveMs;
  h.session = session_;
  h.resume = resume;
  uint8_t payload[kHelloPayloadSize];
  encodeHello(h, payload, sizeof payload);
  s.helloAck = ack;
  s.curLen = encodeFrame(s.scratch, sizeof s.scratch, kHello, 0, ack, payload, sizeof payload);
  s.curPos = 0;
  s.cursor = Slot::kScratch;
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
  s.state = Slot::kClosing;
  if (active_ == slot) {
    active_ = -1;
    // A close after which the owner does not come back (NORMAL, a protocol error either
    // way: every code but the recoverable ones) ends the hold; a lost connection, a dead
    // bound, a corrupt frame or its own newer connection does not (docs/protocol.md §2).
    const bool comesBack = kind == kConnectionLost || code == kTimeout || code == kBadCrc ||
                           code == kReplaced || code == kBusy;
    if (!comesBack) held_ = false;
  }
  if (kind == kClosedLocally) {
    // Best effort CLOSE, only at a frame boundary: half a frame cannot be taken back.
    const bool midFrame = s.cursor != Slot::kNone &&
                          (s.cursor == Slot::kRing || s.curPos > 0);
    if (!midFrame) {
      uint8_t payload[kCloseMaxPayload];
      payload[0] = code;
      size_t n = strlen(reason);
      if (n > kCloseMaxReason) n = kCloseMaxReason;
      memcpy(payload + 1, reason, n);
      queueScratch(s, kClose, payload, n + 1);
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

void Endpoint::queueScratch(Slot& s, uint8_t type, const uint8_t* payload, size_t len) {
  // Control frames carry the current cumulative ack like every frame.
  const uint32_t ack = taken_;
  s.curLen = encodeFrame(s.scratch, sizeof s.scratch, type, 0, ack, payload, len);
  s.curPos = 0;
  s.cursor = s.curLen > 0 ? Slot::kScratch : Slot::kNone;
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

bool Endpoint::selectOutput(Slot& s, uint32_t now) {
  if (s.state != Slot::kActive) return false;
  if (s.pongDue) {
    s.pongDue = false;
    queueScratch(s, kPong, s.pongNonce, kNoncePayload);
    return true;
  }
  if (txSent_ < tx_.used()) {
    s.cursor = Slot::kRing;
    s.curLen = tx_.frameSizeAt(txSent_);
    noteAckSent(tx_.u32At(txSent_ + 12));
    return true;
  }
  if (taken_ > ackSent_) {
    queueScratch(s, kAck, nullptr, 0);
    return true;
  }
  if (s.pingDue) {
    s.pingDue = false;
    uint8_t nonce[kNoncePayload];
    ++pingNonce_;
    putU64(nonce, pingNonce_);
    pingSentAt_ = now;
    pingOutstanding_ = true;
    queueScratch(s, kPing, nonce, sizeof nonce);
    return true;
  }
  return false;
}

size_t Endpoint::peekOutput(int slot, const uint8_t** data, uint32_t now) {
  *data = nullptr;
  if (!inUse(slot)) return 0;
  Slot& s = slots_[slot];
  if (s.cursor == Slot::kNone && !selectOutput(s, now)) return 0;
  if (s.cursor == Slot::kScratch) {
    *data = s.scratch + s.curPos;
    return s.curLen - s.curPos;
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
    if (s.curPos >= s.curLen) s.cursor = Slot::kNone;
  } else if (s.cursor == Slot::kRing) {
    txSent_ += n;
    s.curLen -= n;
    if (s.curLen == 0) {
      s.cursor = Slot::kNone;
      dropAcked();  // an ack may have arrived while this frame was half written
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
      closeSlot(i, kClosedLocally, kTimeout,
                s.small.buffered() > 0 ? "HELLO incomplete within the handshake bound"
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
  const uint8_t type = dec.frame().type;
  if (slots_[slot].state == Slot::kHandshake && type != kHello && type != kClose) {
    dec.discardPayload();
  }
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
    if (f.type == kHello) {
      onHello(slot, f, now);
    } else {
      closeSlot(slot, kClosedLocally, kProtocol, "frame before HELLO");
    }
    return;
  }
  if (!applyAck(slot, f.ack)) return;
  switch (f.type) {
    case kHello:
      closeSlot(slot, kClosedLocally, kProtocol, "second HELLO");
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

void Endpoint::onHello(int slot, const FrameView& f, uint32_t now) {
  Slot& s = slots_[slot];
  Hello h;
  const char* reason = "";
  const uint8_t code = decodeHello(f.payload, f.length, &h, &reason);
  if (code != kNormal) {
    closeSlot(slot, kClosedLocally, code, reason);
    return;
  }
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
  if (s.accepted && !known && sessionHeld(now)) {
    closeSlot(slot, kClosedLocally, kBusy, "another peer's session is live");
    return;
  }
  if (resumesUs && f.ack >= nextSeq_) {
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
  // peer that named itself; a new peer learns nothing of its predecessor.
  if (s.accepted) queueHello(s, known ? h.session : 0, known ? taken_ : 0);
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
  s.lastRx = now;
  big_.reset();
  ackSent_ = 0;
  noteAckSent(s.helloAck);
  // Send direction: resend what the peer has not acknowledged, or start over if it lost us.
  txSent_ = 0;
  if (resumesUs) {
    if (f.ack > peerAcked_) peerAcked_ = f.ack;
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
