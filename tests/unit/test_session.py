"""The sans-IO Session: handshake, seq/ack, windows, keepalive, close, resume."""

from __future__ import annotations

import random

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from harness.errors import ConnectionLost, MessageTooLarge
from harness.wifisocket.frame import (
    CloseCode,
    Frame,
    FrameDecoder,
    FrameType,
    Hello,
    encode_frame,
)
from harness.wifisocket.session import (
    Connected,
    Dead,
    Failed,
    Message,
    PeerClosed,
    Pong,
    Session,
    SessionReset,
    State,
    WindowFull,
)

_seeds = iter(range(1, 10**6))


def mk(**kw) -> Session:
    kw.setdefault("keepalive_ms", 0)
    kw.setdefault("dead_after", 0)
    kw.setdefault("rng", random.Random(next(_seeds)))
    return Session(**kw)


def handshake(a: Session, b: Session, now: float = 0.0) -> tuple[list, list]:
    ha = a.connection_made(now)
    hb = b.connection_made(now)
    return a.receive_data(hb, now), b.receive_data(ha, now)


def frames_of(data: bytes) -> list[Frame]:
    return FrameDecoder(1 << 20).feed(data)


def fail_code(events: list) -> int:
    assert events and isinstance(events[-1], Failed), events
    return events[-1].error.code


def test_handshake() -> None:
    a, b = mk(max_message=100, window=500, keepalive_ms=250), mk(max_message=64, window=200)
    ea, eb = handshake(a, b)
    assert ea == [Connected(a.peer_hello, resumed=False)]  # type: ignore[arg-type]
    assert eb == [Connected(b.peer_hello, resumed=False)]  # type: ignore[arg-type]
    assert a.peer_hello is not None and a.peer_hello.session == b.session_id
    assert a.is_open and b.is_open
    assert a.peer_max_message == 64 and b.peer_max_message == 100
    assert b.peer_hello is not None and b.peer_hello.keepalive_ms == 250
    assert b.peer_hello.window == 500 and b.peer_hello.resume == 0
    assert a.peer_session_id == b.session_id and b.peer_session_id == a.session_id
    assert a.session_id != b.session_id and a.session_id != 0


def test_hello_is_the_first_frame_and_carries_resume() -> None:
    a = mk()
    (f,) = frames_of(a.connection_made(0.0))
    assert f.type == FrameType.HELLO and f.seq == 0 and f.ack == 0
    assert a.state == State.HANDSHAKE


def test_message_ack_and_no_duplicate_ack() -> None:
    a, b = mk(), mk()
    handshake(a, b)
    raw = a.send_message("hi ✓", 1.0)
    (f,) = frames_of(raw)
    assert (f.type, f.seq, f.ack, f.payload) == (FrameType.TEXT, 1, 0, "hi ✓".encode())
    assert a.unacked_bytes == len(raw) and a.unacked_messages == ["hi ✓"]
    assert b.receive_data(raw, 1.0) == [Message("hi ✓")]
    ack = b.data_to_send()
    (f,) = frames_of(ack)
    assert (f.type, f.ack) == (FrameType.ACK, 1)
    assert b.data_to_send() == b""  # already acknowledged
    assert a.receive_data(ack, 1.0) == []
    assert a.unacked_bytes == 0 and a.unacked_messages == []


def test_binary_keeps_type_and_bytes_like_inputs() -> None:
    a, b = mk(), mk()
    handshake(a, b)
    for msg in (b"", bytearray(b"\x00\xff"), memoryview(b"mv")):
        (ev,) = b.receive_data(a.send_message(msg, 0.0), 0.0)
        assert ev == Message(bytes(msg)) and type(ev.data) is bytes
    (ev,) = b.receive_data(a.send_message("", 0.0), 0.0)
    assert ev == Message("")


def test_ack_piggybacks_on_data() -> None:
    a, b = mk(), mk()
    handshake(a, b)
    b.receive_data(a.send_message(b"ping", 0.0), 0.0)
    (f,) = frames_of(b.send_message(b"pong", 0.0))
    assert f.ack == 1
    assert b.data_to_send() == b""  # the data frame carried the ack


def test_message_too_large_changes_nothing() -> None:
    a, b = mk(), mk(max_message=100, window=300)
    handshake(a, b)
    with pytest.raises(MessageTooLarge) as info:
        a.send_message(b"x" * 101, 0.0)
    assert (info.value.size, info.value.limit, info.value.code) == (101, 100, 3)
    with pytest.raises(MessageTooLarge):
        a.send_message("é" * 51, 0.0)  # 102 bytes of UTF-8
    assert a.next_seq == 1 and a.unacked_bytes == 0
    (f,) = frames_of(a.send_message(b"x" * 100, 0.0))
    assert f.seq == 1


def test_window_full_until_acked() -> None:
    a, b = mk(), mk(max_message=60, window=200)
    handshake(a, b)
    r1 = a.send_message(b"x" * 60, 0.0)
    r2 = a.send_message(b"y" * 60, 0.0)  # 160 bytes of frames in flight
    assert not a.can_send(60) and a.can_send(20) and not a.can_send(21)
    with pytest.raises(WindowFull):
        a.send_message(b"z" * 60, 0.0)
    assert a.next_seq == 3
    assert b.receive_data(r1 + r2, 0.0) == [Message(b"x" * 60), Message(b"y" * 60)]
    a.receive_data(b.data_to_send(), 0.0)
    assert a.can_send(60) and a.unacked_bytes == 0


def test_own_resend_buffer_bounds_in_flight_but_one_message_always_fits() -> None:
    a, b = mk(resend_buffer=50), mk()
    handshake(a, b)
    a.send_message(b"x" * 100, 0.0)  # bigger than the buffer, nothing in flight: allowed
    assert not a.can_send(0)
    with pytest.raises(WindowFull):
        a.send_message(b"", 0.0)


def test_send_requires_open() -> None:
    a = mk()
    with pytest.raises(ConnectionLost):
        a.send_message("x", 0.0)
    a.connection_made(0.0)
    with pytest.raises(ConnectionLost):
        a.send_message("x", 0.0)


def _opened(**kw) -> tuple[Session, int]:
    """A session that has seen a peer HELLO from a fake peer; returns it and the peer id."""
    s = mk(**kw)
    s.connection_made(0.0)
    from harness.wifisocket.frame import Hello

    peer = Hello(max_message=1000, window=5000, keepalive_ms=0, session=77)
    (ev,) = s.receive_data(encode_frame(FrameType.HELLO, peer.encode()), 0.0)
    assert isinstance(ev, Connected)
    return s, 77


@pytest.mark.parametrize(
    "frame",
    [
        encode_frame(FrameType.TEXT, b"x", seq=1),
        encode_frame(FrameType.ACK),
        encode_frame(FrameType.PING, bytes(8)),
    ],
    ids=["data", "ack", "ping"],
)
def test_frames_before_hello_are_protocol_errors(frame: bytes) -> None:
    s = mk()
    s.connection_made(0.0)
    assert fail_code(s.receive_data(frame, 0.0)) == CloseCode.PROTOCOL
    (close,) = frames_of(s.data_to_send())
    assert close.type == FrameType.CLOSE and close.payload[0] == CloseCode.PROTOCOL
    assert s.state == State.IDLE
    assert s.receive_data(encode_frame(FrameType.ACK), 0.0) == []  # ignored once failed


def test_close_before_hello_is_reported() -> None:
    s = mk()
    s.connection_made(0.0)
    events = s.receive_data(encode_frame(FrameType.CLOSE, b"\x05bad version"), 0.0)
    assert events == [PeerClosed(5, "bad version")]


def test_second_hello_is_a_protocol_error() -> None:
    a, b = mk(), mk()
    handshake(a, b)
    hello = b.connection_made(0.0)  # b says HELLO again on the same connection
    assert fail_code(a.receive_data(hello, 0.0)) == CloseCode.PROTOCOL


def test_invalid_hello_version() -> None:
    s = mk()
    s.connection_made(0.0)
    payload = bytearray(32)
    payload[0] = 3
    assert fail_code(s.receive_data(encode_frame(FrameType.HELLO, bytes(payload)), 0.0)) == 5
    # Version 2 is the keyed protocol: refused with AUTH by a side without a key (§6).
    s.connection_made(0.0)
    payload[0] = 2
    assert fail_code(s.receive_data(encode_frame(FrameType.HELLO, bytes(payload)), 0.0)) == 12


def test_ack_of_unsent_seq_is_protocol_error() -> None:
    s, _ = _opened()
    s.send_message(b"a", 0.0)
    assert s.receive_data(encode_frame(FrameType.ACK, ack=1), 0.0) == []
    assert fail_code(s.receive_data(encode_frame(FrameType.ACK, ack=2), 0.0)) == 1


def test_lower_ack_is_ignored() -> None:
    s, _ = _opened()
    s.send_message(b"a", 0.0)
    s.send_message(b"b", 0.0)
    s.receive_data(encode_frame(FrameType.ACK, ack=2), 0.0)
    assert s.receive_data(encode_frame(FrameType.ACK, ack=1), 0.0) == []
    assert s.unacked_bytes == 0


def test_sequence_skip_duplicate_and_order() -> None:
    s, _ = _opened()
    t = FrameType.BINARY
    assert s.receive_data(encode_frame(t, b"1", seq=1), 0.0) == [Message(b"1")]
    assert s.receive_data(encode_frame(t, b"1 again", seq=1), 0.0) == []  # duplicate
    assert s.receive_data(encode_frame(t, b"2", seq=2), 0.0) == [Message(b"2")]
    assert fail_code(s.receive_data(encode_frame(t, b"4", seq=4), 0.0)) == CloseCode.SEQUENCE


def test_invalid_utf8_text() -> None:
    s, _ = _opened()
    events = s.receive_data(encode_frame(FrameType.TEXT, b"ok\xff", seq=1), 0.0)
    assert fail_code(events) == CloseCode.INVALID_TEXT
    assert s.delivered == 0


def test_receive_window_enforced() -> None:
    s, _ = _opened(max_message=40, window=100)
    f1 = encode_frame(FrameType.BINARY, b"x" * 40, seq=1)  # 60 bytes each
    f2 = encode_frame(FrameType.BINARY, b"y" * 40, seq=2)
    f3 = encode_frame(FrameType.BINARY, b"z" * 40, seq=3)
    assert s.receive_data(f1, 0.0) == [Message(b"x" * 40)]
    s.data_to_send()  # the ack goes out: f1 no longer counts
    events = s.receive_data(f2 + f3, 0.0)
    assert events[0] == Message(b"y" * 40)
    assert fail_code(events) == CloseCode.WINDOW


def test_frames_before_garbage_are_delivered() -> None:
    s, _ = _opened()
    events = s.receive_data(encode_frame(FrameType.TEXT, b"ok", seq=1) + b"GET /", 0.0)
    assert events[0] == Message("ok")
    assert fail_code(events) == CloseCode.PROTOCOL


def test_ping_pong_and_rtt() -> None:
    a, b = mk(keepalive_ms=100), mk()
    handshake(a, b, now=0.0)
    assert a.tick(0.05) == [] and a.data_to_send() == b""
    assert a.next_timer(0.05) == pytest.approx(0.05)
    assert a.tick(0.1) == []
    ping = a.data_to_send()
    (f,) = frames_of(ping)
    assert f.type == FrameType.PING and len(f.payload) == 8
    assert b.receive_data(ping, 0.12) == []
    pong = b.data_to_send()
    (g,) = frames_of(pong)
    assert g.type == FrameType.PONG and g.payload == f.payload
    assert a.receive_data(pong, 0.13) == [Pong(pytest.approx(0.03))]
    assert a.rtt == pytest.approx(0.03)
    # A PONG with another nonce (late or forged) is ignored.
    assert a.receive_data(encode_frame(FrameType.PONG, b"\x01" * 8), 0.2) == []


def test_sending_postpones_the_ping() -> None:
    a, b = mk(keepalive_ms=100), mk()
    handshake(a, b)
    a.send_message(b"x", 0.09)
    assert a.tick(0.15) == [] and a.data_to_send() == b""
    assert a.next_timer(0.15) == pytest.approx(0.04)


def test_dead_peer() -> None:
    a, b = mk(dead_after=1.0), mk()
    handshake(a, b)
    b_ping = encode_frame(FrameType.PING, bytes(8))
    a.receive_data(b_ping, 0.8)  # anything received resets the bound
    assert a.tick(1.5) == []
    assert a.next_timer(1.5) == pytest.approx(0.3)
    assert a.tick(1.8) == [Dead()]
    out = frames_of(a.data_to_send())
    assert out[-1].type == FrameType.CLOSE and out[-1].payload[0] == CloseCode.TIMEOUT
    assert a.state == State.IDLE and a.next_timer(2.0) is None


def test_dead_during_handshake() -> None:
    a = mk(dead_after=2.0)
    a.connection_made(0.0)
    assert a.tick(1.9) == []
    assert a.tick(2.0) == [Dead()]


def test_close_both_ways() -> None:
    a, b = mk(), mk()
    handshake(a, b)
    raw = a.close(CloseCode.NORMAL, "bye")
    assert a.state == State.CLOSED
    assert b.receive_data(raw, 0.0) == [PeerClosed(0, "bye")]
    with pytest.raises(ConnectionLost):
        a.connection_made(1.0)


def test_close_reason_is_truncated_on_a_character_boundary() -> None:
    a, b = mk(), mk()
    handshake(a, b)
    (f,) = frames_of(a.close(CloseCode.PROTOCOL, "é" * 100))
    assert len(f.payload) <= 124
    assert f.payload[1:].decode("utf-8") == "é" * 61


def test_close_carries_pending_control_bytes_first() -> None:
    a, b = mk(), mk()
    handshake(a, b)
    a.receive_data(b.send_message(b"m", 0.0), 0.0)
    a.receive_data(encode_frame(FrameType.PING, b"12345678"), 0.0)
    out = frames_of(a.close())
    # The PONG owed first; the CLOSE carries the ack, so no standalone ACK is needed.
    assert [f.type for f in out] == [FrameType.PONG, FrameType.CLOSE]
    assert out[-1].ack == 1


# --- resume ---------------------------------------------------------------------------


def test_resume_resends_unacked_byte_for_byte() -> None:
    a, b = mk(), mk()
    handshake(a, b)
    r1 = a.send_message("one", 0.0)
    r2 = a.send_message(b"two", 0.0)
    r3 = a.send_message("three", 0.0)
    assert b.receive_data(r1, 0.0) == [Message("one")]
    b.data_to_send()  # this ACK is lost with the connection; r2, r3 never arrive
    a.connection_lost()
    b.connection_lost()
    ha, hb = a.connection_made(1.0), b.connection_made(1.0)
    (fb,) = frames_of(hb)
    assert Frame(FrameType.HELLO, 0, 1, fb.payload) == fb  # b says: delivered up to 1
    ea = a.receive_data(hb, 1.0)
    assert ea == [Connected(a.peer_hello, resumed=True)]  # type: ignore[arg-type]
    resend = a.data_to_send()
    assert resend == r2 + r3
    eb = b.receive_data(ha + resend, 1.0)
    assert eb[1:] == [Message(b"two"), Message("three")]
    assert isinstance(eb[0], Connected) and eb[0].resumed


def test_resume_drops_duplicates_of_delivered_frames() -> None:
    a, b = mk(), mk()
    handshake(a, b)
    r1 = a.send_message("one", 0.0)
    b.receive_data(r1, 0.0)
    assert b.receive_data(r1, 0.0) == []  # a resend of something delivered
    assert b.delivered == 1


def test_resume_with_bogus_ack_is_protocol_error() -> None:
    a, b = mk(), mk()
    handshake(a, b)
    a.connection_lost()
    a.connection_made(1.0)
    from harness.wifisocket.frame import Hello

    hello = Hello(1000, 5000, 0, b.session_id, resume=a.session_id)
    events = a.receive_data(encode_frame(FrameType.HELLO, hello.encode(), ack=5), 1.0)
    assert fail_code(events) == CloseCode.PROTOCOL


def test_peer_restart_reports_unconfirmed_messages() -> None:
    a, b = mk(), mk()
    handshake(a, b)
    b.receive_data(a.send_message("confirmed", 0.0), 0.0)
    a.receive_data(b.data_to_send(), 0.0)
    a.send_message("lost 1", 0.0)
    a.send_message(b"lost 2", 0.0)
    a.connection_lost()
    b2 = mk()  # the device rebooted: a new session that never heard of a
    events, _ = handshake(a, b2, now=2.0)
    assert events == [
        Connected(a.peer_hello, resumed=False),  # type: ignore[arg-type]
        SessionReset(["lost 1", b"lost 2"]),
    ]
    assert a.next_seq == 1 and a.unacked_bytes == 0 and a.delivered == 0
    (f,) = frames_of(a.send_message("fresh", 2.0))
    assert f.seq == 1
    assert b2.receive_data(encode_frame(f.type, f.payload, seq=f.seq), 2.0) == [Message("fresh")]
    assert b2.receive_data(a.send_message("fresh 2", 2.0), 2.0) == [Message("fresh 2")]


def test_peer_restart_is_reported_even_with_nothing_unconfirmed() -> None:
    a, b = mk(), mk()
    handshake(a, b)
    a.connection_lost()
    events, _ = handshake(a, mk(), now=1.0)
    assert events[-1] == SessionReset([])


def test_new_host_session_resets_the_receive_direction() -> None:
    """The peer side: a new host session (resume 0) starts its seq at 1 again."""
    a, b = mk(), mk()
    handshake(a, b)
    b.receive_data(a.send_message(b"x", 0.0), 0.0)
    assert b.delivered == 1
    b.connection_lost()
    a2 = mk()
    _, eb = handshake(a2, b)
    assert b.delivered == 0
    assert eb[-1] == SessionReset([])  # b knew a: it is told a is gone
    assert b.receive_data(a2.send_message(b"y", 0.0), 0.0) == [Message(b"y")]


# --- two sessions over a simulated wire -------------------------------------------------


class Sim:
    """Two sessions joined by an in-memory wire with arbitrary delivery chunking and cuts."""

    def __init__(self, a: Session, b: Session) -> None:
        self.s = (a, b)
        self.wire = [bytearray(), bytearray()]  # wire[i]: bytes on their way to s[i]
        self.outbox: tuple[list, list] = ([], [])  # messages waiting for window
        self.sent: tuple[list, list] = ([], [])
        self.got: tuple[list, list] = ([], [])
        self.now = 0.0
        self.connect()

    def connect(self) -> None:
        for i in (0, 1):
            self.wire[i].clear()
            self.s[i].connection_lost()
        if self.s[0].keyed:
            # Keyed links have roles (§6): s[0] dials, s[1] accepts after its HELLO.
            self.wire[1] += self.s[0].connection_made(self.now)
            (hello,) = frames_of(bytes(self.wire[1]))
            dialer = Hello.decode(hello.payload, keyed=True)
            self.wire[0] += self.s[1].connection_made(self.now, dialer=dialer)
            return
        for i in (0, 1):
            self.wire[1 - i] += self.s[i].connection_made(self.now)

    def send(self, i: int) -> None:
        s = self.s[i]
        while self.outbox[i] and s.is_open:
            msg = self.outbox[i][0]
            size = len(msg.encode() if isinstance(msg, str) else msg)
            if not s.can_send(size):
                with pytest.raises(WindowFull):
                    s.send_message(msg, self.now)
                event("window full")
                break
            self.wire[1 - i] += s.send_message(msg, self.now)
            self.sent[i].append(self.outbox[i].pop(0))
            hello = s.peer_hello
            assert hello is not None
            # The window bound: never more in flight than the peer's window (or one frame).
            assert s.unacked_bytes <= hello.window or len(s.unacked_messages) == 1
            assert s.unacked_bytes <= s.resend_buffer or len(s.unacked_messages) == 1

    def deliver(self, i: int, n: int) -> None:
        wire = self.wire[i]
        chunk = bytes(wire[:n])
        del wire[:n]
        for ev in self.s[i].receive_data(chunk, self.now):
            assert not isinstance(ev, (Failed, SessionReset, Dead, PeerClosed)), ev
            if isinstance(ev, Message):
                self.got[i].append(ev.data)
            elif isinstance(ev, Connected) and ev.resumed:
                event("resumed")
        self.wire[1 - i] += self.s[i].data_to_send()

    def tick(self, dt: float) -> None:
        self.now += dt
        for i in (0, 1):
            assert self.s[i].tick(self.now) == []
            self.wire[1 - i] += self.s[i].data_to_send()

    def settle(self) -> None:
        for _ in range(100_000):
            if not (self.wire[0] or self.wire[1] or self.outbox[0] or self.outbox[1]):
                break
            for i in (0, 1):
                self.send(i)
                self.deliver(i, len(self.wire[i]))
        else:
            raise AssertionError("the simulation did not settle")


def _messages(max_message: int) -> st.SearchStrategy[list[str | bytes]]:
    return st.lists(
        st.one_of(st.text(max_size=max_message // 4), st.binary(max_size=max_message)),
        max_size=40,
    )


ACTIONS = st.lists(
    st.tuples(st.sampled_from(["send", "deliver", "tick"]), st.integers(0, 1),
              st.integers(1, 300)),
    max_size=150,
)


def _run(data: st.DataObject, cuts: bool, key: bytes | None = None) -> None:
    a = mk(max_message=60, window=150, keepalive_ms=20, key=key)
    b = mk(max_message=100, window=400, resend_buffer=data.draw(st.integers(100, 600)),
           key=key)
    sim = Sim(a, b)
    sim.outbox[0].extend(data.draw(_messages(100), label="a sends"))
    sim.outbox[1].extend(data.draw(_messages(60), label="b sends"))
    actions = data.draw(ACTIONS, label="actions")
    if cuts:
        actions = [*actions]
        for pos in data.draw(st.lists(st.integers(0, len(actions)), min_size=1, max_size=4),
                             label="cuts"):
            actions.insert(pos, ("cut", 0, 0))
    for what, i, n in actions:
        if what == "send":
            sim.send(i)
        elif what == "deliver":
            sim.deliver(i, n)
        elif what == "tick":
            sim.tick(n / 1000)
        else:
            sim.connect()
    sim.settle()
    # Exactly once, in order, with its type; and everything acknowledged in the end.
    assert sim.got[1] == sim.sent[0] and sim.got[0] == sim.sent[1]
    assert [type(m) for m in sim.got[1]] == [type(m) for m in sim.sent[0]]
    assert len(sim.sent[0]) + len(sim.outbox[0]) > 0 or sim.got[1] == []
    assert a.unacked_bytes == 0 and b.unacked_bytes == 0


@given(st.data())
def test_two_sessions_exchange_everything_exactly_once(data: st.DataObject) -> None:
    _run(data, cuts=False)


@given(st.data())
def test_two_sessions_survive_connection_cuts(data: st.DataObject) -> None:
    _run(data, cuts=True)


@given(st.data())
def test_two_keyed_sessions_survive_connection_cuts(data: st.DataObject) -> None:
    """The same promise on a keyed link: handshakes with AUTH, every frame tagged."""
    _run(data, cuts=True, key=bytes(range(16)))


def test_restarted_peer_that_learned_our_id_does_not_get_the_old_stream() -> None:
    """Found by the state machine: B's unacked frame carries an ack from A1's seq space.

    A1 restarts as A2; A2 learns B's id from a HELLO on a connection that drops before
    B sees A2's HELLO; on the next connection A2 says resume=B. B must not resend its A1
    stream to A2 (A2 would see "ack of a seq never sent"): it reports it unconfirmed.
    """
    a1, b = mk(), mk()
    handshake(a1, b)
    b.receive_data(a1.send_message("to b", 0.0), 0.0)  # delivered, ack never sent
    b_frame = b.send_message(b"to a1", 0.0)  # carries ack=1 (A1's seq space)
    assert frames_of(b_frame)[0].ack == 1
    b.connection_lost()
    a2 = mk()
    a2.connection_made(1.0)
    hb = b.connection_made(1.0)
    a2.receive_data(hb, 1.0)  # A2 now knows B; its own HELLO never reaches B
    a2.connection_lost()
    b.connection_lost()
    ea, eb = handshake(a2, b, now=2.0)
    assert not any(isinstance(e, Failed) for e in ea + eb)
    assert eb[-1] == SessionReset([b"to a1"])
    assert b.data_to_send() == b""  # nothing resent
    assert a2.receive_data(b.send_message("fresh", 2.0), 2.0) == [Message("fresh")]


def test_peer_that_never_got_our_hello_gets_our_stream_resent() -> None:
    """The resume = 0 exception: data sent right after the peer's HELLO is not lost."""
    a, b = mk(), mk()
    a.connection_made(0.0)
    hb = b.connection_made(0.0)
    a.receive_data(hb, 0.0)  # a is open; b never gets a's HELLO
    r1 = a.send_message("early", 0.0)
    a.connection_lost()
    b.connection_lost()
    ea, eb = handshake(a, b, now=1.0)
    assert ea == [Connected(a.peer_hello, resumed=False)]  # type: ignore[arg-type]
    assert eb == [Connected(b.peer_hello, resumed=False)]  # type: ignore[arg-type]
    assert a.data_to_send() == r1  # resent as it was
    assert b.receive_data(r1, 1.0) == [Message("early")]


def test_drop_connection_says_why_and_keeps_the_session_resumable() -> None:
    a, b = mk(), mk()
    handshake(a, b)
    b.receive_data(a.send_message("kept", 1.0), 1.0)
    a.receive_data(b.data_to_send(), 1.0)  # b's ACK
    assert a.peer_ack == 1
    a.send_message("unacked", 1.0)
    frames = frames_of(a.drop_connection(CloseCode.REPLACED, "a newer connection"))
    assert [f.type for f in frames] == [FrameType.CLOSE]
    assert frames[0].payload == bytes([CloseCode.REPLACED]) + b"a newer connection"
    assert a.state == State.IDLE and a.unacked_messages == ["unacked"]
    # The next connection resumes: the unacked message is resent, nothing else.
    events_a, _ = handshake(a, b, 2.0)
    assert any(isinstance(e, Connected) and e.resumed for e in events_a)
    raw = a.data_to_send()
    assert [(f.type, f.seq) for f in frames_of(raw)] == [(FrameType.TEXT, 2)]
    assert b.receive_data(raw, 2.0) == [Message("unacked")]
    # Dropping a connection that is already gone says nothing.
    assert a.drop_connection(CloseCode.NORMAL, "") != b""
    assert a.drop_connection(CloseCode.NORMAL, "") == b""


def test_a_ping_flood_owes_one_pong_for_the_newest_nonce() -> None:
    # A peer that floods PINGs must not grow our output: only the newest PONG matters.
    a, b = mk(), mk()
    handshake(a, b)
    flood = b"".join(encode_frame(FrameType.PING, n.to_bytes(8, "big")) for n in range(1000))
    assert a.receive_data(flood, 0.0) == []
    (pong,) = frames_of(a.data_to_send())
    assert pong.type == FrameType.PONG and pong.payload == (999).to_bytes(8, "big")
    assert a.data_to_send() == b""


def test_an_acceptor_reveals_the_session_only_to_its_peer() -> None:
    # docs/protocol.md §2, Strangers: the acceptor's HELLO names the remembered session
    # (resume, ack) only to a dialer whose HELLO named itself as that session's peer.
    host, device = mk(), mk()
    handshake(host, device)
    host.receive_data(device.send_message(b"m", 0.0), 0.0)
    host.connection_lost()
    owner = Hello(4096, 8192, 0, device.session_id, host.session_id)
    stranger = Hello(4096, 8192, 0, 0x5742, host.session_id)
    (f,) = frames_of(host.connection_made(1.0, dialer=stranger))
    assert Hello.decode(f.payload).resume == 0 and f.ack == 0
    host.connection_lost()
    (f,) = frames_of(host.connection_made(2.0, dialer=owner))
    assert Hello.decode(f.payload).resume == device.session_id and f.ack == 1


def _summary(events: list) -> list:
    return [(type(e).__name__, getattr(e, "data", None),
             e.error.code if isinstance(e, Failed) else None) for e in events]


@given(st.data())
def test_a_read_of_one_data_frame_is_handled_as_in_a_stream(data: st.DataObject) -> None:
    """The session's shortcut for a read that is exactly one data frame gives the events,
    answers and state the general path gives for the same bytes split in two reads,
    also for duplicates, skipped seqs, acks of unsent frames, bad UTF-8 and a full window."""
    seed = data.draw(st.integers(1, 10**6))
    earlier = data.draw(st.lists(st.binary(max_size=20), max_size=3), label="b sent")
    sides = []
    for _ in range(2):
        a = mk(max_message=100, window=300, rng=random.Random(seed))
        b = mk(max_message=100, window=300, rng=random.Random(seed + 1))
        handshake(a, b)
        for msg in earlier:
            a.receive_data(b.send_message(msg, 0.0), 0.0)  # unacked by a until a sends
        sides.append(a)
    fast, general = sides
    frames = data.draw(st.lists(st.tuples(
        st.sampled_from([FrameType.TEXT, FrameType.BINARY]),
        st.integers(1, 8),  # seq
        st.integers(0, 5),  # ack
        st.one_of(st.binary(max_size=100), st.text(max_size=25).map(str.encode)),
    ), max_size=12), label="frames")
    for ftype, seq, ack, payload in frames:
        raw = encode_frame(ftype, payload, seq=seq, ack=ack)
        got_fast = fast.receive_data(raw, 1.0)
        got_general = general.receive_data(raw[:1], 1.0) + general.receive_data(raw[1:], 1.0)
        assert _summary(got_fast) == _summary(got_general)
        assert fast.data_to_send() == general.data_to_send()
        assert fast.state == general.state
        assert fast.delivered == general.delivered
        assert fast.unacked_bytes == general.unacked_bytes
        if fast.state != State.OPEN:
            break
