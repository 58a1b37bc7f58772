"""The session state machine of the WiFiSocket protocol (docs/protocol.md §2-4, §6). Sans-IO.

A :class:`Session` takes bytes and the current time and returns events and bytes; it
never touches a socket, a thread or a clock, so tests can drive two of them over a
simulated wire. One Session lives as long as one logical conversation: it outlives a TCP
connection (``connection_lost`` keeps the resend window and ``delivered``) so that a later
``connection_made`` resumes it.

Who calls what, in an I/O layer::

    sock.sendall(s.connection_made(now))           # our HELLO
    events = s.receive_data(chunk, now)            # Connected, Message, Pong, ...
    sock.sendall(s.data_to_send())                 # ACK/PONG/resends/CLOSE, after reading
    if s.can_send(size): sock.sendall(s.send_message(msg, now))
    events += s.tick(now)  # at s.next_timer(now): PING when idle, Dead when silent

Keyed (``key=``, §6): the same calls; the session adds the AUTH exchange between the
peer's HELLO and :class:`Connected`, tags what it returns and checks what it is fed. The
bytes it returns must be written in the order it returned them (each tag counts frames).
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from harness.errors import AuthenticationFailed, ConnectionLost, MessageTooLarge, ProtocolError
from harness.wifisocket.frame import (
    FRAME_OVERHEAD,
    KEYED_VERSION,
    PROTOCOL_VERSION,
    U32_MAX,
    CloseCode,
    Frame,
    FrameDecoder,
    FrameType,
    Hello,
    encode_frame,
)
from harness.wifisocket.keyed import ACCEPTOR, DIALER, Key, KeyedConnection, Sealer

__all__ = [
    "RECOVERABLE",
    "TRANSITIONS",
    "Connected",
    "Dead",
    "Event",
    "Failed",
    "Handshake",
    "Message",
    "PeerClosed",
    "Pong",
    "Session",
    "SessionReset",
    "State",
    "WindowFull",
    "close_frame",
]

# Host defaults (docs/protocol.md §4). The window must be >= max_message + 20.
DEFAULT_MAX_MESSAGE = 1 << 20
DEFAULT_WINDOW = 2 << 20
DEFAULT_KEEPALIVE_MS = 1000
DEFAULT_DEAD_AFTER = 3.0
CLOSE_REASON_MAX = 123

_TEXT = FrameType.TEXT
_AUTH = FrameType.AUTH
_BINARY = FrameType.BINARY
_DATA = (_TEXT, _BINARY)


class _Random(Protocol):
    def getrandbits(self, k: int, /) -> int: ...


# --- events -------------------------------------------------------------------------------


# Events are plain (not frozen) slots dataclasses: one is built per message.
@dataclass(slots=True)
class Connected:
    """The peer's HELLO arrived (on a keyed link: and its AUTH was verified); data may flow.
    ``resumed``: both directions carried on."""

    peer_hello: Hello
    resumed: bool


@dataclass(slots=True)
class Message:
    """A message from the peer: ``str`` for TEXT, ``bytes`` for BINARY."""

    data: str | bytes


@dataclass(slots=True)
class Pong:
    """The answer to our latest PING; ``rtt`` in seconds."""

    rtt: float


@dataclass(slots=True)
class SessionReset:
    """The peer we knew came back without our stream (e.g. a reboot).

    ``unconfirmed`` are our messages it never acknowledged, in order; they are dropped and
    our sequence numbers restart at 1.
    """

    unconfirmed: list[str | bytes]


@dataclass(slots=True)
class PeerClosed:
    """The peer sent CLOSE. The connection is over (the session may resume unless NORMAL)."""

    code: int
    reason: str


@dataclass(slots=True)
class Dead:
    """Nothing arrived for ``dead_after`` seconds; a CLOSE TIMEOUT is queued."""


@dataclass(slots=True)
class Failed:
    """We found a protocol error; a CLOSE with its code is queued. Always the last event."""

    error: ProtocolError


Event = Connected | Message | Pong | SessionReset | PeerClosed | Dead | Failed


class WindowFull(Exception):
    """``send_message`` would exceed the peer's window or our resend buffer: wait for acks."""


class State:
    """Connection states of a :class:`Session` (plain string constants)."""

    IDLE = "idle"  # no connection (before the first, or after one ended)
    HANDSHAKE = "handshake"  # our HELLO is out, the peer's is not in yet
    PROVING = "proving"  # keyed: the peer's HELLO is in, its AUTH not (verified) yet
    OPEN = "open"
    CLOSED = "closed"  # closed by the application: final


_IDLE, _HANDSHAKE, _PROVING, _OPEN, _CLOSED = (
    State.IDLE, State.HANDSHAKE, State.PROVING, State.OPEN, State.CLOSED)
_CONNECTED_STATES = (_HANDSHAKE, _PROVING, _OPEN)

#: Every state change of a :class:`Session`: (state, what happened) -> next state. A pair
#: that is not here is a bug of the caller (e.g. ``connection_made`` after ``close``).
TRANSITIONS: dict[tuple[str, str], str] = {
    # A new transport (possibly replacing a live one): our HELLO goes out.
    (_IDLE, "connection_made"): _HANDSHAKE,
    (_HANDSHAKE, "connection_made"): _HANDSHAKE,
    (_PROVING, "connection_made"): _HANDSHAKE,
    (_OPEN, "connection_made"): _HANDSHAKE,
    (_HANDSHAKE, "hello"): _OPEN,
    # Keyed: nothing of the peer's HELLO is acted on until its AUTH is verified.
    (_HANDSHAKE, "keyed_hello"): _PROVING,
    (_PROVING, "auth"): _OPEN,
    # The end of a connection, not of the session: it may resume on the next one.
    **{(s, ev): _IDLE for s in _CONNECTED_STATES
       for ev in ("peer_closed", "failed", "dead", "connection_lost")},
    (_IDLE, "connection_lost"): _IDLE,
    (_CLOSED, "connection_lost"): _CLOSED,
    # The application ends the session: final.
    **{(s, "close"): _CLOSED for s in (_IDLE, *_CONNECTED_STATES, _CLOSED)},
}

#: Close codes after which the session resumes on a new connection (a peer that found the
#: link silent, a corrupted frame, a device holding another peer's live session for it: try
#: again later). Every other code, and REPLACED (someone else took the session over), ends
#: the link for good; so does AUTH (a wrong key stays wrong: no hammering). A bad tag is
#: handled like a bad CRC (§6). The device's Endpoint applies the same policy.
RECOVERABLE = frozenset({int(CloseCode.TIMEOUT), int(CloseCode.BAD_CRC), int(CloseCode.BUSY),
                         int(CloseCode.BAD_TAG)})


def close_frame(code: int, reason: str, ack: int = 0) -> bytes:
    """A CLOSE frame with ``code`` and ``reason`` cut to 123 bytes of whole characters."""
    raw = reason.encode("utf-8")[:CLOSE_REASON_MAX].decode("utf-8", "ignore").encode("utf-8")
    return encode_frame(FrameType.CLOSE, bytes((int(code),)) + raw, ack=ack)


# A HELLO frame is at most 20 + 64 bytes: a first frame not complete by then is not one.
_HELLO_FRAME_MAX = 84


class Handshake:
    """Serve side: a new connection's first bytes, until they make a valid HELLO. Sans-IO.

    The acceptor keeps one per connection that has not said HELLO yet; only a connection
    that passes becomes the session's transport (so a stray client cannot disturb it).
    On a keyed link (``session`` has a key) it goes on until the dialer's AUTH is verified:
    after the dialer's HELLO, :attr:`reply` holds our HELLO (only: our AUTH goes out once
    the dialer proved the key and the acceptor took it, §6), and only a dialer that proves
    the key is handed to the session (nothing of an unverified HELLO is acted on, the
    current connection is never replaced for it). A dialer refused at any point gets an
    untagged CLOSE (:func:`close_frame`): it has no AUTH of ours.
    """

    def __init__(self, max_message: int, session: Session | None = None) -> None:
        self._decoder = FrameDecoder(max_message)
        self._session = session if session is not None and session.keyed else None
        #: Everything received so far (the HELLO and what followed it), for the Session.
        self.data = bytearray()
        #: The dialer's HELLO, once valid.
        self.hello: Hello | None = None
        #: Keyed: this connection's handshake state, and the bytes to send now (our HELLO).
        self.keyed: KeyedConnection | None = None
        self.reply = b""
        #: Keyed: the ack our HELLO carried, and the peer session we knew when we sent it.
        self.ack = 0
        self.known_peer = 0
        #: The dialer's CLOSE, if it sent one (it refused us: nothing to answer).
        self.peer_closed: ProtocolError | None = None

    def feed(self, data: bytes) -> bool:
        """Take bytes; True once a valid HELLO (keyed: and a verified AUTH) is complete.

        Raises:
            ProtocolError: the first frame is not a (valid) HELLO, or (keyed) the dialer
                failed the handshake (:class:`~harness.errors.AuthenticationFailed`) or
                closed (:attr:`peer_closed`); close with its code.
        """
        self.data += data
        frames, error = self._decoder.decode(data)
        session = self._session
        for frame in frames:
            ftype = frame.type
            if self.hello is None:
                if ftype != FrameType.HELLO:
                    name = getattr(ftype, "name", str(ftype))
                    raise ProtocolError(CloseCode.PROTOCOL, f"{name} frame before HELLO")
                self.hello = Hello.decode(frame.payload, session is not None)
                if session is None:
                    return True
                self.keyed, self.reply, self.ack = session.accepting(self.hello, frame.payload)
                self.known_peer = session.peer_session_id
            elif ftype == FrameType.AUTH:
                assert self.keyed is not None
                self.keyed.verify(frame.payload)
                return True
            elif ftype == FrameType.CLOSE:
                self.peer_closed = _peer_close_error(frame)
                raise self.peer_closed
            else:
                raise ProtocolError(CloseCode.PROTOCOL, f"{ftype.name} frame before AUTH")
        if error is not None:
            raise error
        if self.hello is None and len(self.data) >= _HELLO_FRAME_MAX:
            raise ProtocolError(CloseCode.PROTOCOL, "first frame is not a HELLO")
        return False


def _peer_close_error(frame: Frame) -> ProtocolError:
    code = frame.payload[0]
    reason = f"peer closed: {frame.payload[1:].decode('utf-8', 'replace')}"
    if code == CloseCode.AUTH:
        return AuthenticationFailed(reason)
    return ProtocolError(code, reason)


class Session:
    """One side of a WiFiSocket conversation.

    Args:
        max_message: largest data payload we accept (announced in our HELLO).
        window: bytes of unacknowledged data frames we accept in flight (>= max_message+20).
        keepalive_ms: send a PING after this long without sending anything (0 = never).
        dead_after: declare the connection dead after this many seconds without receiving
            anything (0 = never).
        resend_buffer: most bytes of our own unacknowledged frames we keep (default:
            ``window``). One message is always allowed when nothing is in flight.
        session_id: our session id (default: random, non-zero).
        rng: source of session ids and PING nonces (``random.Random`` for tests).
        key: the pre-shared key of a keyed link (protocol version 2, docs/protocol.md
            §6): 16 to 32 bytes, or a hex str of them. None: unkeyed (version 1).
    """

    def __init__(
        self,
        *,
        max_message: int = DEFAULT_MAX_MESSAGE,
        window: int = DEFAULT_WINDOW,
        keepalive_ms: int = DEFAULT_KEEPALIVE_MS,
        dead_after: float = DEFAULT_DEAD_AFTER,
        resend_buffer: int | None = None,
        session_id: int | None = None,
        rng: _Random | None = None,
        key: bytes | bytearray | str | None = None,
    ) -> None:
        self._key = None if key is None else Key(key)
        if not 1 <= max_message <= U32_MAX - FRAME_OVERHEAD:
            raise ValueError(f"max_message out of range: {max_message}")
        if not max_message + FRAME_OVERHEAD <= window <= U32_MAX:
            raise ValueError(f"window must be in max_message+20..2**32-1, got {window}")
        if not 0 <= keepalive_ms <= U32_MAX:
            raise ValueError(f"keepalive_ms out of range: {keepalive_ms}")
        if dead_after < 0:
            raise ValueError(f"dead_after must be >= 0, got {dead_after}")
        self.max_message = max_message
        self.window = window
        self.keepalive_ms = keepalive_ms
        self.dead_after = dead_after
        self.resend_buffer = window if resend_buffer is None else resend_buffer
        self._rng: _Random = rng if rng is not None else random.SystemRandom()
        if session_id is None:
            session_id = 0
            while session_id == 0:
                session_id = self._rng.getrandbits(64)
        if not 1 <= session_id < 1 << 64:
            raise ValueError("session_id must be a non-zero u64")
        self.session_id = session_id

        self.state = State.IDLE
        self._decoder = FrameDecoder(max_message)
        self._peer: Hello | None = None
        self._known_peer = 0  # the peer session id we last talked to
        # Send direction.
        self._next_seq = 1
        self._peer_ack = 0
        self._unacked: deque[tuple[int, bytes, str | bytes]] = deque()
        self._unacked_bytes = 0
        # Receive direction.
        self._delivered = 0
        self._ack_sent = 0  # the ack carried by the last frame we emitted
        self._rx_unacked = 0  # bytes of data frames delivered since then (window check)
        # Control frames waiting for data_to_send().
        self._out: list[bytes] = []
        # Keyed (§6), per connection: the handshake, our AUTH not returned yet, the tagger
        # of what we send (from our AUTH on) and the peer's HELLO until its AUTH is verified.
        self._keyed: KeyedConnection | None = None
        self._auth_out = b""
        self._sealer: Sealer | None = None
        self._unverified: tuple[Hello, int] | None = None
        # The nonce of the newest PING not answered yet: only the newest owed PONG matters
        # (the sender keeps one nonce), so a PING flood costs one PONG per write, not one
        # per PING.
        self._pong: bytes | None = None
        # Time.
        self._now = 0.0
        self._last_sent = 0.0
        self._last_recv = 0.0
        self._ping_nonce: int | None = None
        self._ping_at = 0.0
        self.rtt: float | None = None

    # --- introspection -----------------------------------------------------------------

    @property
    def keyed(self) -> bool:
        """True on a keyed link (a key was given)."""
        return self._key is not None

    @property
    def peer_hello(self) -> Hello | None:
        """The HELLO of the current (or last) connection's peer."""
        return self._peer

    @property
    def peer_session_id(self) -> int:
        """The peer's session id (0 before the first HELLO)."""
        return self._known_peer

    @property
    def peer_max_message(self) -> int:
        """The largest payload the peer accepts (0 before its HELLO)."""
        return self._peer.max_message if self._peer else 0

    @property
    def is_open(self) -> bool:
        """True between the peer's HELLO and the end of the connection."""
        return self.state == State.OPEN

    @property
    def unacked_bytes(self) -> int:
        """Bytes of our data frames the peer has not acknowledged."""
        return self._unacked_bytes

    @property
    def unacked_messages(self) -> list[str | bytes]:
        """Our messages the peer has not acknowledged, in order."""
        return [m for _, _, m in self._unacked]

    @property
    def delivered(self) -> int:
        """The highest seq delivered from the peer."""
        return self._delivered

    @property
    def next_seq(self) -> int:
        """The seq our next data frame gets."""
        return self._next_seq

    @property
    def peer_ack(self) -> int:
        """The highest of our seqs the peer has acknowledged (0 after a reset)."""
        return self._peer_ack

    # --- connection lifecycle --------------------------------------------------------

    def connection_made(self, now: float, dialer: Handshake | Hello | None = None) -> bytes:
        """A new transport is up: reset the decoder and return our HELLO frame.

        ``dialer``: we accepted the connection and this is its handshake, or its HELLO (the
        dialer spoke first; feed what it sent next). What we remember of a peer's session
        (its id as ``resume``, our ack) goes only to a dialer that named itself as that
        peer (docs/protocol.md §2, Strangers). Keyed, the handshake already sent our HELLO:
        nothing is returned; feed the handshake's :attr:`~Handshake.data` next, and our AUTH
        goes out (first, then everything tagged) once the dialer's AUTH in it is verified.
        """
        if self.state == State.CLOSED:
            raise ConnectionLost("session closed")
        self._now = now
        self._decoder = FrameDecoder(self.max_message)
        self._out.clear()  # control frames of the old connection mean nothing now
        self._pong = None
        self._peer = None
        self._ping_nonce = None
        self._auth_out = b""
        self._sealer = None
        self._unverified = None
        self._to("connection_made")
        self._last_recv = now
        if isinstance(dialer, Handshake):
            if dialer.keyed is not None:
                self._keyed = dialer.keyed
                self._last_sent = now
                self._ack_sent = dialer.ack
                self._rx_unacked = 0
                return b""
            dialer = dialer.hello
        key = self._key
        self._keyed = None if key is None else KeyedConnection(
            key, DIALER if dialer is None else ACCEPTOR)
        raw, _ = self._hello(dialer, self._keyed)
        return self._emit(raw)

    def accepting(self, dialer: Hello, payload: bytes) -> tuple[KeyedConnection, bytes, int]:
        """Keyed serve side, for a :class:`Handshake`: a (valid v2) dialer HELLO arrived on
        a connection that is not ours yet. Returns its handshake state, our HELLO to send
        (our AUTH waits for the dialer's, §6), and the ack our HELLO carries. Changes
        nothing here.

        Raises:
            AuthenticationFailed: a reflected HELLO.
        """
        assert self._key is not None
        keyed = KeyedConnection(self._key, ACCEPTOR)
        raw, ack = self._hello(dialer, keyed)
        keyed.peer_hello(payload, dialer.session, self.session_id)
        return keyed, raw, ack

    def _hello(self, dialer: Hello | None, keyed: KeyedConnection | None) -> tuple[bytes, int]:
        """Our HELLO frame for a connection (``dialer``: the HELLO of who dialled us), and
        the ack it carries."""
        known = dialer is None or dialer.session == self._known_peer
        hello = Hello(self.max_message, self.window, self.keepalive_ms, self.session_id,
                      self._known_peer if known else 0,
                      PROTOCOL_VERSION if keyed is None else KEYED_VERSION,
                      b"" if keyed is None else keyed.nonce)
        payload = hello.encode()
        if keyed is not None:
            keyed.sent_hello(payload)
        ack = self._delivered if known else 0
        return encode_frame(FrameType.HELLO, payload, ack=ack), ack

    def connection_lost(self) -> None:
        """The transport is gone; keep everything needed to resume on the next one."""
        self._to("connection_lost")

    def drop_connection(self, code: int, reason: str) -> bytes:
        """End the current connection, not the session: pending control bytes and a CLOSE.

        Used when the I/O layer abandons a connection (a newer one replaces it, or it is
        given up); the session stays resumable, like after :meth:`connection_lost`.
        """
        if self.state in _CONNECTED_STATES:
            self._queue_close(code, reason)
        data = self.data_to_send()
        self.connection_lost()
        return data

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> bytes:
        """End the session: returns pending control bytes and a CLOSE frame (if connected)."""
        if self.state in _CONNECTED_STATES:
            self._queue_close(code, reason)
        data = self.data_to_send()
        self._to("close")
        return data

    # --- receiving ---------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview, now: float) -> list[Event]:
        """Feed bytes from the transport; return what happened, in order.

        A protocol error does not raise: it ends the list with :class:`Failed` (after the
        events of the frames that were intact before it), queues a CLOSE and leaves the
        session IDLE (resumable, like any lost connection).
        """
        self._now = now
        state = self.state
        if state not in _CONNECTED_STATES:
            return []
        if data:
            self._last_recv = now
        decoder = self._decoder
        events: list[Event] = []
        if state is _OPEN:
            frame = decoder.whole_data_frame(data)
            if frame is not None:
                try:
                    self._on_data(frame, events)
                except ProtocolError as exc:
                    self._failed(exc, events)
                return events
        frames, error = decoder.decode(data)
        try:
            while True:
                for frame in frames:
                    self._handle(frame, now, events)
                    if self.state not in _CONNECTED_STATES:
                        return events
                if error is not None:
                    raise error
                # The decoder stops after an AUTH; once it was verified, decode what
                # followed it, tagged.
                if not (frames and frames[-1].type == _AUTH and decoder.buffered):
                    break
                frames, error = decoder.decode(b"")
        except ProtocolError as exc:
            self._failed(exc, events)
        return events

    def _failed(self, exc: ProtocolError, events: list[Event]) -> None:
        self._queue_close(exc.code, exc.reason)
        self._to("failed")
        events.append(Failed(exc))

    def _handle(self, frame: Frame, now: float, events: list[Event]) -> None:
        ftype = frame.type
        state = self.state
        if state != _OPEN:
            if ftype == FrameType.CLOSE:
                self._on_close(frame, events)
            elif state == _HANDSHAKE and ftype == FrameType.HELLO:
                self._on_hello(frame, events)
            elif state == _PROVING and ftype == _AUTH:
                self._on_auth(frame, events)
            else:
                after = "HELLO" if state == _HANDSHAKE else "AUTH"
                raise ProtocolError(CloseCode.PROTOCOL, f"{ftype.name} frame before {after}")
            return
        if ftype in _DATA:
            self._on_data(frame, events)
        elif ftype == FrameType.ACK:
            self._on_ack(frame.ack)
        elif ftype == FrameType.PING:
            self._on_ack(frame.ack)
            self._pong = frame.payload
        elif ftype == FrameType.PONG:
            self._on_ack(frame.ack)
            nonce = self._ping_nonce
            if nonce is not None and frame.payload == nonce.to_bytes(8, "big"):
                self.rtt = now - self._ping_at
                self._ping_nonce = None
                events.append(Pong(self.rtt))
        elif ftype == FrameType.CLOSE:
            self._on_close(frame, events)
        elif ftype == _AUTH:
            what = "second AUTH" if self._keyed is not None else "AUTH on an unkeyed link"
            raise ProtocolError(CloseCode.PROTOCOL, f"{what} on one connection")
        else:
            raise ProtocolError(CloseCode.PROTOCOL, "second HELLO on one connection")

    def _on_data(self, frame: Frame, events: list[Event]) -> None:
        if frame.ack > self._peer_ack:  # else old news: skip the call
            self._on_ack(frame.ack)
        seq = frame.seq
        if seq <= self._delivered:
            return  # a duplicate from a resend
        if seq != self._delivered + 1:
            raise ProtocolError(
                CloseCode.SEQUENCE, f"seq {seq} skips ahead of {self._delivered + 1}"
            )
        self._rx_unacked += FRAME_OVERHEAD + len(frame.payload)
        if self._rx_unacked > self.window:
            raise ProtocolError(
                CloseCode.WINDOW,
                f"{self._rx_unacked} bytes unacknowledged exceed the window {self.window}",
            )
        if frame.type == _TEXT:
            try:
                text = str(frame.payload, "utf-8")
            except UnicodeDecodeError as exc:
                raise ProtocolError(
                    CloseCode.INVALID_TEXT, f"TEXT seq {seq} is not UTF-8: {exc.reason}"
                ) from None
            self._delivered = seq
            events.append(Message(text))
        else:
            self._delivered = seq
            events.append(Message(frame.payload))

    def _on_hello(self, frame: Frame, events: list[Event]) -> None:
        keyed = self._keyed
        hello = Hello.decode(frame.payload, keyed is not None)
        if keyed is None:
            self._to("hello")
            self._apply_hello(hello, frame.ack, events)
            return
        keyed.peer_hello(frame.payload, hello.session, self.session_id)
        if keyed.role == DIALER:
            # The dialer proves the key first, right on the acceptor's HELLO (§6).
            self._auth_out = encode_frame(FrameType.AUTH, keyed.proof)
        self._unverified = (hello, frame.ack)
        self._to("keyed_hello")

    def _on_auth(self, frame: Frame, events: list[Event]) -> None:
        keyed = self._keyed
        assert keyed is not None and self._unverified is not None
        keyed.verify(frame.payload)
        self._decoder.expect_tags(keyed.tag_check())
        hello, ack = self._unverified
        self._unverified = None
        self._to("auth")
        self._apply_hello(hello, ack, events)
        if keyed.role == ACCEPTOR:
            # The dialer proved the key and was taken: only now do we prove ours (§6), in
            # front of whatever the HELLO queued (resends).
            self._auth_out = encode_frame(FrameType.AUTH, keyed.proof)

    def _apply_hello(self, hello: Hello, ack: int, events: list[Event]) -> None:
        """Act on the peer's HELLO (§2 Resume); ``ack``: its header's ack."""
        same_peer = self._known_peer != 0 and hello.session == self._known_peer
        # Our stream belongs to the peer session it was sent to: a new peer session that
        # merely learned our id (from a HELLO on a connection that then dropped) does not
        # have it, and our frames' acks refer to its predecessor's seq space.
        keeps_ours = hello.resume == self.session_id and (same_peer or self._known_peer == 0)
        lost: list[str | bytes] = []
        if not same_peer:
            # A new peer, or the peer restarted: its stream starts again at seq 1.
            self._delivered = 0
            self._ack_sent = 0
            self._rx_unacked = 0
        if keeps_ours:
            if ack >= self._next_seq:
                raise ProtocolError(
                    CloseCode.PROTOCOL,
                    f"HELLO acks seq {ack}, highest sent is {self._next_seq - 1}",
                )
            self._drop_acked(ack)
            # Resend the rest byte-for-byte; their stale ack fields are harmless.
            self._out.extend(raw for _, raw, _ in self._unacked)
        elif same_peer and hello.resume == 0 and self._peer_ack == 0:
            # The peer we knew never completed a HELLO (the connection dropped before
            # ours reached it), so it delivered nothing of ours and expects seq 1: our
            # whole stream is still valid, resend it as it is (nothing is lost).
            self._out.extend(raw for _, raw, _ in self._unacked)
        else:
            lost = self.unacked_messages
            self._unacked.clear()
            self._unacked_bytes = 0
            self._next_seq = 1
            self._peer_ack = 0
        # A rebooted peer is always reported; a peer that merely forgot our stream only
        # when something of ours is gone with it.
        reset = self._known_peer != 0 and (not same_peer or bool(lost))
        self._known_peer = hello.session
        self._peer = hello
        events.append(Connected(hello, resumed=same_peer and keeps_ours))
        if reset:
            events.append(SessionReset(lost))

    def _on_close(self, frame: Frame, events: list[Event]) -> None:
        # Keyed, a CLOSE before the peer's AUTH is unauthenticated: its ack means nothing.
        if (self._keyed is None or self.state == _OPEN) and frame.ack < self._next_seq:
            self._drop_acked(frame.ack)
        code = frame.payload[0]
        reason = frame.payload[1:].decode("utf-8", "replace")
        self._to("peer_closed")
        events.append(PeerClosed(code, reason))

    def _on_ack(self, ack: int) -> None:
        if ack <= self._peer_ack:
            return  # old news (acks are cumulative)
        if ack >= self._next_seq:
            raise ProtocolError(
                CloseCode.PROTOCOL, f"ack {ack} of a seq never sent (highest {self._next_seq - 1})"
            )
        self._drop_acked(ack)

    def _drop_acked(self, ack: int) -> None:
        if ack > self._peer_ack:
            self._peer_ack = ack
        unacked = self._unacked
        while unacked and unacked[0][0] <= ack:
            self._unacked_bytes -= len(unacked.popleft()[1])

    # --- sending -----------------------------------------------------------------------

    def can_send(self, size: int) -> bool:
        """Whether a message of ``size`` payload bytes fits the window right now."""
        if not self._unacked:
            return True
        limit = self._peer.window if self._peer is not None else 0
        limit = min(limit, self.resend_buffer)
        return self._unacked_bytes + FRAME_OVERHEAD + size <= limit

    def send_message(self, msg: str | bytes | bytearray | memoryview, now: float) -> bytes:
        """Frame one message (str → TEXT, bytes-like → BINARY) and return its bytes.

        Raises:
            MessageTooLarge: over the peer's ``max_message``; nothing changes.
            WindowFull: no room in the window; nothing changes, retry after acks.
            ConnectionLost: not connected.
        """
        if self.state is not _OPEN:
            raise ConnectionLost(f"cannot send: session is {self.state}")
        if isinstance(msg, str):
            payload = msg.encode("utf-8")
            ftype = _TEXT
            keep: str | bytes = msg
        else:
            payload = keep = bytes(msg)
            ftype = _BINARY
        size = len(payload)
        peer = self._peer
        assert peer is not None
        if size > peer.max_message:
            raise MessageTooLarge(size, peer.max_message)
        if self._unacked and not self.can_send(size):
            raise WindowFull(
                f"{self._unacked_bytes} bytes in flight, no room for {size + FRAME_OVERHEAD}"
            )
        seq = self._next_seq
        if seq > U32_MAX:
            # 4 billion messages on one session: the protocol has no wrap-around.
            raise ProtocolError(CloseCode.PROTOCOL, "sequence numbers exhausted")
        raw = encode_frame(ftype, payload, seq=seq, ack=self._delivered)
        self._next_seq = seq + 1
        self._unacked.append((seq, raw, keep))
        self._unacked_bytes += len(raw)
        self._now = now
        if self._keyed is None:
            return self._emit(raw)
        sealer = self._sealer
        if sealer is not None and not self._auth_out:
            return sealer.seal(self._emit(raw))  # the usual keyed send: one frame, its tag
        return self._wire([self._emit(raw)])

    def data_to_send(self, ack: bool = True) -> bytes:
        """Control bytes to write now: a PONG, resends, CLOSE, and an ACK if one is owed.

        Call it after draining the reads: the standalone ACK goes out only if no frame
        has carried the latest ``delivered`` yet, and one PONG answers the newest PING.
        """
        pong = self._pong
        if pong is not None:
            self._pong = None
            if self.state == State.OPEN:
                # Before a CLOSE queued by close(); it carries the latest ack.
                self._out.insert(0, self._emit(encode_frame(FrameType.PONG, pong,
                                                            ack=self._delivered)))
        if ack and self.state == State.OPEN and self._delivered != self._ack_sent:
            self._queue(FrameType.ACK)
        if not self._out and not self._auth_out:
            return b""
        data = self._wire(self._out) if self._keyed is not None else b"".join(self._out)
        self._out.clear()
        return data

    # --- time --------------------------------------------------------------------------

    def tick(self, now: float) -> list[Event]:
        """Advance time: queue a PING when idle, report :class:`Dead` when silent too long."""
        self._now = now
        if self.state not in _CONNECTED_STATES:
            return []
        if self.dead_after and now - self._last_recv >= self.dead_after:
            self._queue_close(
                CloseCode.TIMEOUT, f"nothing received for {now - self._last_recv:.1f} s"
            )
            self._to("dead")
            return [Dead()]
        if (
            self.state == State.OPEN
            and self.keepalive_ms
            and now - self._last_sent >= self.keepalive_ms / 1000
        ):
            nonce = self._rng.getrandbits(64)
            self._ping_nonce = nonce
            self._ping_at = now
            self._queue(FrameType.PING, nonce.to_bytes(8, "big"))
        return []

    def peer_alive(self, now: float) -> None:
        """The peer sent bytes the I/O layer has not fed yet (it paused reading): the
        dead bound restarts, as if they had arrived."""
        self._last_recv = now

    def next_timer(self, now: float) -> float | None:
        """Seconds until :meth:`tick` has something to do (None: nothing scheduled)."""
        state = self.state
        if state is not _OPEN and state is not _HANDSHAKE and state is not _PROVING:
            return None
        # On every wait of the I/O layer: no list, no min() of one.
        due = self._last_recv + self.dead_after if self.dead_after else math.inf
        if state is _OPEN and self.keepalive_ms:
            ping = self._last_sent + self.keepalive_ms / 1000
            if ping < due:
                due = ping
        if due == math.inf:
            return None
        return due - now if due > now else 0.0

    # --- helpers -----------------------------------------------------------------------

    def _emit(self, raw: bytes) -> bytes:
        """Note that a frame carrying the current ``delivered`` is on its way out."""
        self._last_sent = self._now
        self._ack_sent = self._delivered
        self._rx_unacked = 0
        return raw

    def _wire(self, frames: list[bytes]) -> bytes:
        """Keyed: the bytes of ``frames`` as they go out now: our AUTH first if it has not
        gone out yet, then each frame with its tag, counted in this order (§6)."""
        head = self._auth_out
        if head:
            self._auth_out = b""
            assert self._keyed is not None
            self._sealer = self._keyed.sealer()
        sealer = self._sealer
        if sealer is None:  # before our AUTH: only a CLOSE can be here
            return head + b"".join(frames)
        return head + b"".join([sealer.seal(raw) for raw in frames])

    def _queue(self, ftype: FrameType, payload: bytes = b"") -> None:
        self._out.append(self._emit(encode_frame(ftype, payload, ack=self._delivered)))

    def _queue_close(self, code: int, reason: str) -> None:
        self._out.append(self._emit(close_frame(code, reason, self._delivered)))

    def _to(self, event: str) -> None:
        self.state = TRANSITIONS[(self.state, event)]
