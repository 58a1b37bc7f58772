// WiFiSocket session core for the device (docs/protocol.md sections 2-4; keyed links, §6).
//
// Sans-IO, like h11: the caller owns the sockets and the clock. It opens a slot per TCP
// connection, feeds the bytes it reads, writes what peekOutput() offers (as much as the
// socket takes) and reports what was written with consumeOutput(), calls tick() with the
// time, and stops a connection when closing() says so. All memory is given at
// construction; nothing is allocated afterwards.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "keyed.h"

namespace wsock {

/// Unacknowledged data frames, stored byte-for-byte as first encoded, in a circular buffer.
class TxRing {
 public:
  void init(uint8_t* buf, size_t cap);
  size_t capacity() const { return cap_; }
  size_t used() const { return used_; }
  size_t freeBytes() const { return cap_ - used_; }
  uint32_t frames() const { return frames_; }
  /// Encodes a data frame at the end. The caller has checked that 20 + len fits.
  void append(uint8_t type, uint32_t seq, uint32_t ack, const uint8_t* payload, size_t len);
  /// Byte `offset` from the oldest frame's first byte.
  uint8_t at(size_t offset) const { return buf_[(tail_ + offset) % cap_]; }
  uint32_t u32At(size_t offset) const;
  /// Size on the wire of the frame starting at `offset`.
  size_t frameSizeAt(size_t offset) const { return kFrameOverhead + u32At(offset + 4); }
  /// Pointer to byte `offset` and how many bytes follow it before the buffer wraps.
  size_t contiguous(size_t offset, const uint8_t** p) const;
  /// Forgets the oldest frame; returns its size.
  size_t dropFront();
  void clear();

 private:
  uint8_t* buf_ = nullptr;
  size_t cap_ = 0;
  size_t tail_ = 0;
  size_t used_ = 0;
  uint32_t frames_ = 0;
};

/// Received messages as records [type u8][length u32][payload]. Records stay after the
/// application took them until the ack that covers them has gone out, so the window the
/// peer may fill is accounted exactly (docs/protocol.md §3).
class RxRing {
 public:
  static constexpr size_t kRecordHeader = 5;
  void init(uint8_t* buf, size_t cap);
  size_t capacity() const { return cap_; }
  size_t freeBytes() const { return cap_ - used_; }
  /// False if the record does not fit (the caller's window check should prevent that).
  bool push(uint8_t type, const uint8_t* payload, size_t len);
  uint32_t pending() const { return pending_; }       // delivered, not yet taken
  uint32_t takenHeld() const { return takenHeld_; }   // taken, ack not yet sent
  /// Length and type of the next message; only when pending() > 0.
  uint32_t nextLength() const;
  uint8_t nextType() const { return buf_[take_]; }
  /// Copies the next message out (the caller checked the size) and marks it taken.
  void take(uint8_t* out);
  /// Frees the oldest taken record; returns its payload length.
  uint32_t releaseOldest();
  void clear();

 private:
  void copyOut(size_t pos, uint8_t* out, size_t n) const;
  uint32_t lengthAt(size_t pos) const;
  uint8_t* buf_ = nullptr;
  size_t cap_ = 0;
  size_t tail_ = 0;  // oldest taken-but-unacknowledged record
  size_t take_ = 0;  // next record for the application
  size_t used_ = 0;
  uint32_t pending_ = 0;
  uint32_t takenHeld_ = 0;
};

/// Compile-time-free configuration of an Endpoint.
struct EndpointConfig {
  uint32_t maxMessage = 4096;     // largest data payload accepted (decoder limit)
  uint32_t keepaliveMs = 1000;    // announced; a PING goes out after this much silence
  uint32_t handshakeMs = 2000;    // a connection without HELLO this long is closed (TIMEOUT)
  uint32_t deadFactor = 3;        // dead bound = deadFactor x the peer's keepalive_ms ...
  uint32_t deadDefaultMs = 10000; // ... or this if the peer announced 0 ...
  uint32_t deadMaxMs = 30000;     // ... and never more than this (our PINGs get PONGs)
};

/// Memory of an Endpoint. The decoder buffer must hold maxMessage + 20 bytes (and at
/// least a largest control frame), 16 more for the tag of keyed links (a frame that does
/// not fit is TOO_LARGE); the receive ring's size is the announced window.
struct EndpointBuffers {
  uint8_t* decoder;
  size_t decoderCap;
  uint8_t* rx;
  size_t rxCap;
  uint8_t* tx;
  size_t txCap;
};

/// What a close hook is told.
enum CloseKind : uint8_t {
  kClosedLocally = 0,  // this side closed it with `code` (error, timeout, replaced, app)
  kClosedByPeer = 1,   // the peer sent CLOSE with `code`
  kConnectionLost = 2, // the transport went away without a CLOSE
};
using CloseHook = void (*)(void* ctx, int slot, uint8_t kind, uint8_t code, const char* reason);
/// Fills `out` with `len` bytes from the platform's CSPRNG (the nonces of keyed HELLOs).
using RandomHook = void (*)(void* ctx, uint8_t* out, size_t len);

/// One device-side WiFiSocket session served over up to kMaxSlots connections.
class Endpoint {
 public:
  static constexpr int kMaxSlots = 4;
  enum SendResult : uint8_t { kSent, kNoRoom, kTooLarge, kNoPeer };
  /// Who opened a connection. A dialled one says HELLO at once; an accepted one waits for
  /// the dialer's HELLO, so that what this side remembers of a session (the peer's id, its
  /// ack) goes only to the peer that named that session (docs/protocol.md §2).
  enum Role : uint8_t { kDialled, kAccepted };

  Endpoint(const EndpointConfig& config, const EndpointBuffers& buffers);

  void setCloseHook(CloseHook hook, void* ctx) {
    hook_ = hook;
    hookCtx_ = ctx;
  }
  /// Where HELLO nonces come from; a keyed endpoint without one opens no connection.
  void setRandom(RandomHook hook, void* ctx) {
    random_ = hook;
    randomCtx_ = ctx;
  }
  /// The pre-shared key of keyed links (docs/protocol.md §6): 16..32 bytes, or len 0 to
  /// clear it (unkeyed, protocol version 1). Anything else returns false and keeps the old
  /// key. Takes effect for the next connection: the live one keeps its own; a handshake
  /// that already sent its AUTH under the old key (a dialer's), or that awaits an AUTH when
  /// the key is cleared, is closed (TIMEOUT "key changed"). An acceptor awaiting the
  /// dialer's AUTH has proven nothing yet: it goes on under the new key.
  bool setKey(const uint8_t* key, size_t len);
  bool keyed() const { return keyLen_ > 0; }
  /// Starts a fresh session with this id (non-zero; new at every start). Drops all state.
  void start(uint64_t sessionId);
  uint64_t sessionId() const { return session_; }

  // --- connections -------------------------------------------------------------------
  /// A new TCP connection is up: returns its slot, or -1 if none is free. Dialled: our
  /// HELLO is queued now; accepted: once the peer's HELLO is in (and was not refused).
  int open(uint32_t now, Role role = kDialled);
  /// Every slot is busy and a new connection waits: closes the oldest connection that has
  /// not completed HELLO (TIMEOUT, "evicted ..."), so abusers cannot hold the slots. Returns
  /// that slot (flush, stop and release() it, then open() again) or -1 if there is none.
  int evict();
  /// Bytes read from the slot's connection.
  void feed(int slot, const uint8_t* data, size_t len, uint32_t now);
  /// The slot's transport went away (EOF, reset): frees the slot, keeps the session.
  void transportLost(int slot);
  /// Timeouts and keepalive.
  void tick(uint32_t now);
  /// Next bytes to write on the slot (a contiguous piece of the current frame); 0 if none.
  size_t peekOutput(int slot, const uint8_t** data, uint32_t now);
  /// `n` bytes of what peekOutput() offered were written.
  void consumeOutput(int slot, size_t n, uint32_t now);
  /// The slot is finished: flush peekOutput() if there is room, then stop it and release().
  bool closing(int slot) const { return valid(slot) && slots_[slot].state == Slot::kClosing; }
  void release(int slot);
  bool inUse(int slot) const { return valid(slot) && slots_[slot].state != Slot::kFree; }
  /// The slot's connection completed the handshake (HELLO, and AUTH on a keyed link) at
  /// some point; also true in the close hook of a connection that did.
  bool established(int slot) const { return valid(slot) && slots_[slot].established; }
  int activeSlot() const { return active_; }
  /// Closes every connection with NORMAL and forgets the session (start() begins anew).
  void close();
  /// Closes the active connection with `code` and `reason` (e.g. the application cannot
  /// serve this peer); the session is no longer held for it.
  void drop(uint8_t code, const char* reason);

  // --- application ---------------------------------------------------------------------
  bool connected() const { return active_ >= 0; }
  /// Length of the next received message, -1 if none.
  int available() const;
  /// Whole messages received and not yet taken.
  uint32_t waiting() const { return rx_.pending(); }
  /// The next received message is TEXT (false if none waits).
  bool nextIsText() const { return rx_.pending() > 0 && rx_.nextType() == kText; }
  /// Copies the next message out; -1 none, -2 `cap` too small (the message stays).
  int receive(uint8_t* buf, size_t cap, bool* isText);
  /// Queues a message: kNoRoom until acks free the resend window, kTooLarge if it can never
  /// fit, kNoPeer before the first HELLO of a session.
  SendResult send(const uint8_t* data, size_t len, bool isText);

  // --- figures -------------------------------------------------------------------------
  uint32_t maxMessage() const { return config_.maxMessage; }
  /// Current bound on peer silence of the active connection (docs/protocol.md §4).
  uint32_t deadBoundMs() const;
  uint32_t handshakeBoundMs() const { return config_.handshakeMs; }
  uint32_t evictions() const { return evictions_; }
  /// Keyed handshakes that failed: a wrong proof, a keyed side met an unkeyed one (either
  /// way), a reflected HELLO, no AUTH within the handshake bound.
  uint32_t authFailures() const { return authFailures_; }
  /// Frames of a keyed link whose CRC was right but whose tag was not (BAD_TAG).
  uint32_t tagFailures() const { return tagFailures_; }
  uint32_t window() const { return static_cast<uint32_t>(rx_.capacity()); }
  uint32_t messagesIn() const { return messagesIn_; }
  uint32_t messagesOut() const { return messagesOut_; }
  uint32_t bytesIn() const { return bytesIn_; }
  uint32_t bytesOut() const { return bytesOut_; }
  uint32_t lostMessages() const { return lost_; }        // unacked when the peer restarted
  uint32_t duplicatesDropped() const { return duplicates_; }
  uint32_t lastRttMs() const { return rttMs_; }
  uint64_t peerSession() const { return peerSession_; }
  uint32_t peerMaxMessage() const { return peerMax_; }
  uint32_t unackedBytes() const { return static_cast<uint32_t>(tx_.used()); }
  uint32_t nextSeq() const { return nextSeq_; }

 private:
  struct Slot {
    enum State : uint8_t { kFree, kHandshake, kActive, kClosing };
    // kTag: the tag of the ring frame just written (keyed links). It waits in `scratch`,
    // which is idle while a ring frame goes out (nothing is queued mid-frame).
    enum Cursor : uint8_t { kNone, kScratch, kRing, kTag };
    State state = kFree;
    Cursor cursor = kNone;
    bool pingDue = false;
    bool pongDue = false;
    bool accepted = false;  // Role kAccepted: our HELLO waits for the peer's
    bool established = false;  // was the active connection
    // Keyed links (docs/protocol.md §6). While the peer's AUTH is awaited (still kHandshake:
    // not past HELLO for eviction and the handshake bound), both HELLO payloads stay where
    // they are, ours in `scratch` (our AUTH goes after it: a dialer's on the acceptor's
    // HELLO, an acceptor's once the dialer's AUTH is verified) and the peer's in `smallBuf`,
    // whose decoder then continues after it: the transcript and the connection key are
    // computed from them, and no other memory per slot is needed.
    bool keyed = false;          // opened while the endpoint had a key: speaks version 2
    bool awaitAuth = false;      // the peer's HELLO is in, its AUTH is not
    bool tagOut = false;         // our AUTH is queued: every later frame gets a tag
    bool scratchTagged = false;  // the frame in `scratch` ends with a tag (counts when done)
    bool helloKnown = false;     // accepted: our HELLO named the dialer as the session's peer
    uint8_t helloLen = 0;        // the peer's HELLO payload in smallBuf (awaitAuth)
    size_t curPos = 0;  // scratch: bytes already written
    size_t curLen = 0;  // scratch: frame size; ring: bytes left of the current frame
    uint32_t openedAt = 0;
    uint32_t openOrder = 0;  // opens_ when this connection was opened
    uint32_t lastRx = 0;
    uint32_t lastTx = 0;
    uint32_t helloAck = 0;
    uint8_t pongNonce[kNoncePayload] = {};
    FrameDecoder small;  // until HELLO: only HELLO/CLOSE are legal, so control-sized
    uint8_t smallBuf[kMaxControlFrame] = {};
    uint8_t scratch[kMaxControlFrame] = {};
  };

  bool valid(int slot) const { return slot >= 0 && slot < kMaxSlots; }
  void closeSlot(int slot, uint8_t kind, uint8_t code, const char* reason);
  void queueScratch(int slot, bool active, uint8_t type, const uint8_t* payload, size_t len);
  void queueHello(Slot& s, uint64_t resume, uint32_t ack);
  void appendAuth(Slot& s);
  void slotConnKey(const Slot& s, uint8_t out[kConnKeySize]) const;
  void onAuth(int slot, const FrameView& f, uint32_t now);
  bool checkTag(int slot, const FrameDecoder& dec);
  void establish(int slot, const Hello& h, uint32_t helloAck, uint32_t now);
  void authFailed(int slot, const char* reason);
  bool sessionHeld(uint32_t now) const;
  bool selectOutput(int slot, uint32_t now);
  void onHeader(int slot, FrameDecoder& dec);
  void onFrame(int slot, const FrameView& f, uint32_t now);
  void onHello(int slot, const FrameView& f, uint32_t now);
  bool applyAck(int slot, uint32_t ack);
  void dropAcked();
  void onData(int slot, const FrameView& f);
  void noteAckSent(uint32_t ack);
  void resetReceive();
  void resetSend();

  EndpointConfig config_;
  FrameDecoder big_;
  RxRing rx_;
  TxRing tx_;
  Slot slots_[kMaxSlots];
  int active_ = -1;
  uint32_t opens_ = 0;  // connections opened so far (wraps; only differences matter)
  CloseHook hook_ = nullptr;
  void* hookCtx_ = nullptr;
  RandomHook random_ = nullptr;
  void* randomCtx_ = nullptr;
  // Keyed links: the pre-shared key, and the connection key and tag counters of the active
  // connection (if it is keyed).
  uint8_t key_[kKeyMax] = {};
  uint8_t keyLen_ = 0;
  TagKey connKey_ = {};
  uint64_t txN_ = 0;  // tagged frames written completely on the active connection
  uint64_t rxN_ = 0;  // tagged frames verified on it

  uint64_t session_ = 0;
  uint64_t peerSession_ = 0;  // 0: no peer yet in this session
  // The peer's session is held for it (a stranger's HELLO is refused with BUSY) while it
  // is connected or was heard from within the dead bound, until it closes NORMAL.
  bool held_ = false;
  uint32_t ownerRx_ = 0;  // when the owner's connection last delivered a frame
  uint32_t peerMax_ = 0;
  uint32_t peerWindow_ = 0;
  uint32_t peerKeepalive_ = 0;
  // Send direction.
  uint32_t nextSeq_ = 1;
  size_t txSent_ = 0;       // bytes of tx_ written on the active connection
  uint32_t peerAcked_ = 0;  // highest ack the peer sent for our stream
  // Receive direction.
  uint32_t delivered_ = 0;   // highest seq put into rx_
  uint32_t taken_ = 0;       // highest seq the application took (what we acknowledge)
  uint32_t ackSent_ = 0;     // highest ack written on the active connection
  uint32_t rxInflight_ = 0;  // frame bytes (20 + L) of records not yet covered by ackSent_
  // Keepalive.
  uint64_t pingNonce_ = 0;
  uint32_t pingSentAt_ = 0;
  bool pingOutstanding_ = false;
  // Figures.
  uint32_t messagesIn_ = 0, messagesOut_ = 0, bytesIn_ = 0, bytesOut_ = 0;
  uint32_t lost_ = 0, duplicates_ = 0, rttMs_ = 0, evictions_ = 0;
  uint32_t authFailures_ = 0, tagFailures_ = 0;
};

}  // namespace wsock
