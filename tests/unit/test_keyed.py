"""Keyed links (protocol v2, docs/protocol.md §6) in the sans-IO core: the shared vectors
(tests/vectors/keyed.json) byte for byte, codec properties, and the handshake's rules."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import AuthenticationFailed, ProtocolError
from harness.wifisocket.frame import (
    HEADER_SIZE,
    TAG_SIZE,
    CloseCode,
    Frame,
    FrameDecoder,
    FrameType,
    Hello,
    encode_frame,
)
from harness.wifisocket.keyed import ACCEPTOR, DIALER, Key, KeyedConnection, Sealer, TagCheck
from harness.wifisocket.session import (
    Connected,
    Failed,
    Message,
    PeerClosed,
    Session,
    State,
    close_frame,
)

V: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "vectors" / "keyed.json").read_text()
)
KEY = bytes.fromhex(V["key"])
K_CONN = bytes.fromhex(V["k_conn"])


def _b(h: str) -> bytes:
    return bytes.fromhex(h)


def _name(v: dict[str, Any]) -> str:
    return v["name"]


# --- the vectors ---------------------------------------------------------------------------

def _vector_handshake() -> tuple[KeyedConnection, KeyedConnection]:
    """Both sides' handshake state with the vectors' nonces, HELLOs exchanged."""
    d = KeyedConnection(Key(KEY), DIALER, _b(V["dialer"]["nonce"]))
    a = KeyedConnection(Key(KEY), ACCEPTOR, _b(V["acceptor"]["nonce"]))
    h_d, h_a = _b(V["dialer"]["hello"]), _b(V["acceptor"]["hello"])
    d.sent_hello(h_d)
    a.sent_hello(h_a)
    d.peer_hello(h_a, 0x5555666677778888, 0x1111222233334444)
    a.peer_hello(h_d, 0x1111222233334444, 0x5555666677778888)
    return d, a


def test_hellos_encode_as_the_vectors() -> None:
    for side, fields in (("dialer", (1 << 20, 2 << 20, 1000, 0x1111222233334444)),
                         ("acceptor", (1024, 3200, 1000, 0x5555666677778888))):
        hello = Hello(*fields, 0, 2, _b(V[side]["nonce"]))
        assert hello.encode().hex() == V[side]["hello"]
        assert Hello.decode(hello.encode(), keyed=True) == hello
        assert encode_frame(FrameType.HELLO, hello.encode()).hex() == V[side]["hello_frame"]


def test_proofs_k_conn_and_auth_frames_are_the_vectors() -> None:
    d, a = _vector_handshake()
    assert d.proof.hex() == V["dialer"]["proof"]
    assert a.proof.hex() == V["acceptor"]["proof"]
    assert d.k_conn == a.k_conn == K_CONN
    assert encode_frame(FrameType.AUTH, d.proof).hex() == V["dialer"]["auth_frame"]
    assert encode_frame(FrameType.AUTH, a.proof).hex() == V["acceptor"]["auth_frame"]
    d.verify(a.proof)
    a.verify(d.proof)
    assert d.verified and a.verified


def test_wrong_key_proofs_differ_and_fail() -> None:
    wrong = V["wrong_key_proofs"]
    assert wrong["dialer"] != V["dialer"]["proof"]
    assert wrong["acceptor"] != V["acceptor"]["proof"]
    d, a = _vector_handshake()
    with pytest.raises(AuthenticationFailed, match="authentication failed"):
        a.verify(_b(wrong["dialer"]))
    with pytest.raises(AuthenticationFailed):
        d.verify(_b(wrong["acceptor"]))
    # A proof reflected back to its sender is the wrong role's.
    with pytest.raises(AuthenticationFailed):
        d.verify(d.proof)
    other = KeyedConnection(Key(_b(wrong["key"])), DIALER, _b(V["dialer"]["nonce"]))
    other.sent_hello(_b(V["dialer"]["hello"]))
    other.peer_hello(_b(V["acceptor"]["hello"]), 0x5555666677778888, 0x1111222233334444)
    assert other.proof.hex() == wrong["dialer"]


@pytest.mark.parametrize("direction", ["d_to_a", "a_to_d"])
def test_tagged_frames_seal_and_decode_as_the_vectors(direction: str) -> None:
    role = DIALER if direction == "d_to_a" else ACCEPTOR
    stream = V[direction]
    sealer = Sealer(K_CONN, role)
    for v in stream:
        raw = encode_frame(v["type"], _b(v["payload"]), seq=v["seq"], ack=v["ack"])
        assert sealer.seal(raw).hex() == v["bytes"], v["n"]
    # Whole, and a byte at a time: each frame decodes, tagged mode from the first byte.
    data = b"".join(_b(v["bytes"]) for v in stream)
    for chunks in ([data], [data[i:i + 1] for i in range(len(data))]):
        dec = FrameDecoder(4096)
        dec.expect_tags(TagCheck(K_CONN, role))
        got = [f for c in chunks for f in dec.feed(c)]
        assert [(f.type, f.seq, f.ack, f.payload.hex()) for f in got] == [
            (v["type"], v["seq"], v["ack"], v["payload"]) for v in stream]
        assert dec.buffered == 0


@pytest.mark.parametrize("v", V["rejected"], ids=_name)
def test_rejected_vector(v: dict[str, Any]) -> None:
    check = TagCheck(K_CONN, v["dir"].encode())
    check.n = v["n"]
    dec = FrameDecoder(4096)
    dec.expect_tags(check)
    frames, error = dec.decode(_b(v["bytes"]))
    assert frames == []
    assert error is not None and error.code == v["code"], error


@pytest.mark.parametrize("v", V["invalid_hellos_keyed_side"], ids=_name)
def test_invalid_hello_on_the_keyed_side(v: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as info:
        Hello.decode(_b(v["payload"]), keyed=True)
    assert info.value.code == v["code"]
    assert isinstance(info.value, AuthenticationFailed) == (v["code"] == CloseCode.AUTH)


def test_the_decoder_switches_to_tags_exactly_after_auth() -> None:
    """HELLO, AUTH and tagged frames in one read: the decoder stops after the AUTH."""
    d, _ = _vector_handshake()
    data = (_b(V["acceptor"]["hello_frame"]) + _b(V["acceptor"]["auth_frame"])
            + b"".join(_b(v["bytes"]) for v in V["a_to_d"]))
    dec = FrameDecoder(4096)
    frames, error = dec.decode(data)
    assert error is None and [f.type for f in frames] == [FrameType.HELLO, FrameType.AUTH]
    assert dec.paused and dec.buffered == len(data) - 68 - 52
    assert dec.decode(b"more") == ([], None)  # still waiting to be told
    dec.expect_tags(d.tag_check())
    frames, error = dec.decode(b"")
    assert error is not None and error.code == CloseCode.PROTOCOL  # the "more" is garbage
    assert [f.payload.hex() for f in frames] == [v["payload"] for v in V["a_to_d"]]


# --- keys ------------------------------------------------------------------------------------

def test_key_forms_and_their_errors_never_show_the_key() -> None:
    assert Key(KEY.hex()).proof(b"D", b"x", b"y") == Key(KEY).proof(b"D", b"x", b"y")
    assert Key(bytearray(16)).connection_key(bytes(16), bytes(16))
    for bad in (bytes(15), bytes(33), b"", "ab" * 15, "ab" * 33):
        with pytest.raises(ValueError, match="16 to 32 bytes"):
            Key(bad)
    with pytest.raises(ValueError) as info:
        Key("zz" * 16)
    assert "zz" not in str(info.value)
    with pytest.raises(TypeError):
        Key(16)  # type: ignore[arg-type]
    secret = bytes(range(0xA0, 0xC0))
    k = Key(secret)
    assert secret.hex() not in repr(k) and str(secret) not in repr(k)
    with pytest.raises(TypeError):
        pickle.dumps(k)
    s = Session(key=secret)
    assert s.keyed and secret.hex() not in repr(vars(s)) and repr(secret) not in repr(vars(s))
    with pytest.raises(ValueError, match="16 to 32 bytes, got 8"):
        Session(key=bytes(8))


def test_authentication_failed_is_a_picklable_protocol_error() -> None:
    exc = AuthenticationFailed("peer has no key")
    assert isinstance(exc, ProtocolError) and exc.code == CloseCode.AUTH == 12
    again = pickle.loads(pickle.dumps(exc))
    assert type(again) is AuthenticationFailed and again.reason == "peer has no key"
    assert str(again) == str(exc) == "AUTH (12): peer has no key"


# --- codec properties -------------------------------------------------------------------------

_CONTROL = {
    FrameType.ACK: st.just(b""),
    FrameType.PING: st.binary(min_size=8, max_size=8),
    FrameType.PONG: st.binary(min_size=8, max_size=8),
    FrameType.CLOSE: st.binary(min_size=1, max_size=124),
}
MAX = 300


@st.composite
def tagged_frames(draw: st.DrawFn) -> Frame:
    ftype = draw(st.sampled_from([FrameType.TEXT, FrameType.BINARY, *_CONTROL]))
    if ftype in (FrameType.TEXT, FrameType.BINARY):
        return Frame(ftype, draw(st.integers(1, 2**32 - 1)), draw(st.integers(0, 2**32 - 1)),
                     draw(st.binary(max_size=MAX)))
    return Frame(ftype, 0, draw(st.integers(0, 2**32 - 1)), draw(_CONTROL[ftype]))


def _seal(frames: list[Frame], k_conn: bytes, role: bytes) -> list[bytes]:
    sealer = Sealer(k_conn, role)
    return [sealer.seal(encode_frame(f.type, f.payload, seq=f.seq, ack=f.ack)) for f in frames]


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[lo:hi] for lo, hi in itertools.pairwise(bounds)]


@given(
    k_conn=st.binary(min_size=32, max_size=32),
    direction=st.sampled_from([DIALER, ACCEPTOR]),
    covered=st.lists(st.binary(max_size=300), max_size=6),
)
def test_tags_are_the_hmac_of_direction_counter_and_frame(
    k_conn: bytes, direction: bytes, covered: list[bytes]
) -> None:
    # The tagger builds HMAC from hashlib's midstates itself (speed): it must be hmac's.
    sealer = Sealer(k_conn, direction)
    check = TagCheck(k_conn, direction)
    for n, head_and_payload in enumerate(covered):
        expected = hmac.new(
            k_conn, direction + n.to_bytes(8, "big") + head_and_payload, hashlib.sha256
        ).digest()[:TAG_SIZE]
        raw = head_and_payload + b"crc!"
        assert sealer.seal(raw) == raw + expected
        assert check.check(memoryview(head_and_payload), memoryview(expected)) is None


@given(st.lists(tagged_frames(), max_size=10), st.lists(st.integers(0, 10**6), max_size=20),
       st.binary(min_size=32, max_size=32), st.sampled_from([DIALER, ACCEPTOR]))
def test_keyed_round_trip_any_chunking(frames: list[Frame], cuts: list[int], k_conn: bytes,
                                       role: bytes) -> None:
    """AUTH, then tagged frames: every frame comes out as sent, whatever the chunking."""
    auth = encode_frame(FrameType.AUTH, bytes(32))
    wire = _seal(frames, k_conn, role)
    assert all(len(w) == HEADER_SIZE + len(f.payload) + 4 + TAG_SIZE
               for w, f in zip(wire, frames, strict=True))
    dec = FrameDecoder(MAX)
    out: list[Frame] = []
    for chunk in _chunks(auth + b"".join(wire), cuts):
        got = dec.feed(chunk)
        if got and got[-1].type == FrameType.AUTH:
            dec.expect_tags(TagCheck(k_conn, role))
            got = got[:-1] + dec.feed(b"")
        out.extend(got)
    assert out == frames and dec.buffered == 0


@given(st.lists(tagged_frames(), min_size=1, max_size=6), st.data())
def test_any_single_byte_change_in_a_tagged_stream_is_rejected(frames: list[Frame],
                                                               data: st.DataObject) -> None:
    """No altered byte is ever delivered: the frames before it come out, nothing after;
    an altered payload, CRC or tag is BAD_CRC or BAD_TAG."""
    wire = _seal(frames, K_CONN, DIALER)
    stream = bytearray(b"".join(wire))
    pos = data.draw(st.integers(0, len(stream) - 1), label="pos")
    stream[pos] ^= data.draw(st.integers(1, 255), label="xor")
    starts = list(itertools.accumulate(len(w) for w in wire))
    index = next(i for i, end in enumerate(starts) if pos < end)  # the frame hit
    in_header = pos - (starts[index] - len(wire[index])) < HEADER_SIZE
    dec = FrameDecoder(MAX)
    dec.expect_tags(TagCheck(K_CONN, DIALER))
    got: list[Frame] = []
    error = None
    for chunk in _chunks(bytes(stream), data.draw(st.lists(st.integers(0, 10**6)), "cuts")):
        frames_, error = dec.decode(chunk)
        got.extend(frames_)
        if error is not None:
            break
    assert got == frames[:index]
    if not in_header:
        assert error is not None and error.code in (CloseCode.BAD_CRC, CloseCode.BAD_TAG)
    # A header change may also be a header error, or a longer length still waiting.


# --- the handshake in the Session -------------------------------------------------------------

def mk(key: bytes | None = KEY, **kw: Any) -> Session:
    kw.setdefault("keepalive_ms", 0)
    kw.setdefault("dead_after", 0)
    return Session(key=key, **kw)


def frames_of(data: bytes) -> list[Frame]:
    dec = FrameDecoder(1 << 20)
    out, error = dec.decode(data)
    while error is None and out and out[-1].type == FrameType.AUTH and dec.buffered:
        dec.expect_tags(_Skip())  # tags are not checked here
        more, error = dec.decode(b"")
        out += more
    return out


class _Skip:
    def check(self, covered: memoryview, tag: memoryview) -> None:
        return None


def connect(d: Session, a: Session, now: float = 0.0) -> tuple[list, list]:
    """``d`` dials ``a``; everything exchanged until both are open (§6's order: HELLO d,
    HELLO a, AUTH d, AUTH a)."""
    hello_d = d.connection_made(now)
    (f,) = frames_of(hello_d)
    hello_a = a.connection_made(now, dialer=Hello.decode(f.payload, keyed=True))
    ev_a = a.receive_data(hello_d, now)
    assert a.data_to_send() == b""  # no AUTH of the acceptor's before the dialer's
    ev_d = d.receive_data(hello_a, now)
    ev_a += a.receive_data(d.data_to_send(), now)
    ev_d += d.receive_data(a.data_to_send(), now)
    return ev_d, ev_a


def test_the_handshake_goes_hello_hello_auth_auth() -> None:
    """The acceptor answers the dialer's HELLO with its HELLO alone, and proves the key
    only after it verified the dialer's proof; the dialer proves it on the acceptor's
    HELLO and is connected only on the acceptor's AUTH."""
    d, a = mk(), mk()
    hello_d = d.connection_made(0.0)
    (f,) = frames_of(hello_d)
    hello_a = a.connection_made(0.0, dialer=Hello.decode(f.payload, keyed=True))
    assert [fr.type for fr in frames_of(hello_a)] == [FrameType.HELLO]
    assert a.receive_data(hello_d, 0.0) == [] and a.data_to_send() == b""
    assert d.receive_data(hello_a, 0.0) == [] and d.state == State.PROVING
    auth_d = d.data_to_send()
    assert [fr.type for fr in frames_of(auth_d)] == [FrameType.AUTH]
    assert [type(e) for e in a.receive_data(auth_d, 0.0)] == [Connected]
    auth_a = a.data_to_send()
    assert [fr.type for fr in frames_of(auth_a)] == [FrameType.AUTH]
    assert [type(e) for e in d.receive_data(auth_a, 0.0)] == [Connected]


def _redial_with_one_unconfirmed(d: Session, a: Session) -> bytes:
    """Connect, leave one message unconfirmed, lose the connection, redial: the acceptor's
    HELLO of the new connection (its AUTH not sent yet)."""
    connect(d, a)
    d.send_message("unconfirmed", 0.0)
    d.connection_lost()
    a.connection_lost()
    (f,) = frames_of(d.connection_made(1.0))
    return a.connection_made(1.0, dialer=Hello.decode(f.payload, keyed=True))


def test_a_dialer_refused_before_the_acceptors_auth_is_not_connected() -> None:
    """A CLOSE (untagged: the acceptor sent no AUTH) instead of the acceptor's AUTH ends
    the attempt as a CLOSE instead of a HELLO does on an unkeyed link: the dialer never
    counted itself connected, and the CLOSE's ack is not acted on."""
    d, a = mk(), mk()
    hello_a = _redial_with_one_unconfirmed(d, a)
    assert d.receive_data(hello_a, 1.0) == []
    assert [fr.type for fr in frames_of(d.data_to_send())] == [FrameType.AUTH]
    busy = close_frame(CloseCode.BUSY, "another peer's session is live", ack=1)
    assert d.receive_data(busy, 1.0) == [PeerClosed(CloseCode.BUSY,
                                                    "another peer's session is live")]
    assert d.state == State.IDLE and not d.is_open
    assert d.unacked_messages == ["unconfirmed"] and d.peer_ack == 0


def test_keyed_handshake_opens_both_sides() -> None:
    d, a = mk(), mk()
    ev_d, ev_a = connect(d, a)
    assert [type(e) for e in ev_d] == [Connected] and [type(e) for e in ev_a] == [Connected]
    assert d.state == a.state == State.OPEN
    assert d.peer_hello is not None and d.peer_hello.version == 2
    assert a.receive_data(d.send_message("hi", 1.0), 1.0) == [Message("hi")]
    wire = a.send_message(b"yo", 1.0)
    assert len(wire) == 20 + 2 + TAG_SIZE
    assert d.receive_data(wire, 1.0) == [Message(b"yo")]


def test_nothing_of_the_hello_acts_before_the_auth() -> None:
    """A peer that sent a good HELLO but no AUTH changed nothing: no Connected, no
    resume decision, no ack taken, no data or PING accepted."""
    d, a = mk(), mk()
    hello_a = _redial_with_one_unconfirmed(d, a)
    # The acceptor's HELLO (acking seq 1) reaches the dialer; its AUTH has not come.
    assert d.receive_data(hello_a, 1.0) == []
    assert d.state == State.PROVING
    assert d.unacked_messages == ["unconfirmed"] and d.peer_ack == 0
    # Anything but AUTH or CLOSE now is a protocol error.
    ev = d.receive_data(encode_frame(FrameType.PING, bytes(8)), 1.0)
    assert isinstance(ev[-1], Failed) and ev[-1].error.code == CloseCode.PROTOCOL
    assert d.unacked_messages == ["unconfirmed"]


@pytest.mark.parametrize("mutate", ["nonce", "session"])
def test_a_reflected_hello_is_refused(mutate: str) -> None:
    d = mk()
    hello = d.connection_made(0.0)
    (f,) = frames_of(hello)
    payload = bytearray(f.payload)
    if mutate == "session":  # our session id, another nonce
        payload[32:48] = bytes(16)
    else:  # our nonce, another session id
        payload[16:24] = (12345).to_bytes(8, "big")
    ev = d.receive_data(encode_frame(FrameType.HELLO, bytes(payload)), 0.0)
    assert isinstance(ev[-1], Failed) and isinstance(ev[-1].error, AuthenticationFailed)
    assert ev[-1].error.reason == "reflected HELLO"
    (close,) = frames_of(d.data_to_send())
    assert close.type == FrameType.CLOSE and close.payload[0] == CloseCode.AUTH


def test_wrong_key_fails_on_both_sides_with_auth_and_the_acceptor_proves_nothing() -> None:
    d, a = mk(), mk(key=bytes(16))
    hello_d = d.connection_made(0.0)
    (f,) = frames_of(hello_d)
    hello_a = a.connection_made(0.0, dialer=Hello.decode(f.payload, keyed=True))
    a.receive_data(hello_d, 0.0)
    d.receive_data(hello_a, 0.0)
    ev_a = a.receive_data(d.data_to_send(), 0.0)
    assert isinstance(ev_a[-1], Failed) and ev_a[-1].error.reason == "authentication failed"
    # The dialer gets an untagged CLOSE AUTH and no proof it could learn from.
    refusal = a.data_to_send()
    (close,) = frames_of(refusal)
    assert close.type == FrameType.CLOSE and len(refusal) == 20 + len(close.payload)
    assert d.receive_data(refusal, 0.0) == [PeerClosed(CloseCode.AUTH,
                                                       "authentication failed")]


@pytest.mark.parametrize("keyed_side", ["dialer", "acceptor"])
def test_keyed_meets_unkeyed_with_auth(keyed_side: str) -> None:
    d = mk(None if keyed_side == "acceptor" else KEY)
    a = mk(None if keyed_side == "dialer" else KEY)
    hello_d = d.connection_made(0.0)
    a.connection_made(0.0)
    ev = a.receive_data(hello_d, 0.0)
    assert isinstance(ev[-1], Failed) and ev[-1].error.code == CloseCode.AUTH
    want = "peer has no key" if keyed_side == "acceptor" else "no key on this side"
    assert ev[-1].error.reason == want


def test_auth_out_of_place_is_protocol() -> None:
    d, a = mk(), mk()
    connect(d, a)
    # A second AUTH on an open keyed link (tagged properly by the peer).
    a_auth = encode_frame(FrameType.AUTH, bytes(32))
    ev = d.receive_data(a._wire([a_auth]), 1.0)
    assert isinstance(ev[-1], Failed) and ev[-1].error.code == CloseCode.PROTOCOL
    # An AUTH before the HELLO, and an AUTH on an unkeyed link.
    s = mk()
    s.connection_made(0.0)
    ev = s.receive_data(a_auth, 0.0)
    assert isinstance(ev[-1], Failed) and ev[-1].error.code == CloseCode.PROTOCOL
    u, v = mk(None), mk(None)
    u.connection_made(0.0)
    assert isinstance(u.receive_data(v.connection_made(0.0), 0.0)[0], Connected)
    ev = u.receive_data(a_auth, 0.0)
    assert isinstance(ev[-1], Failed) and "unkeyed" in ev[-1].error.reason


def test_replayed_transcript_fails_on_a_new_connection() -> None:
    """A recorded dialer HELLO + AUTH, replayed to the acceptor later: its nonce is new,
    so the old proof is wrong."""
    d, a = mk(), mk()
    hello_d = d.connection_made(0.0)
    (f,) = frames_of(hello_d)
    hello_a = a.connection_made(0.0, dialer=Hello.decode(f.payload, keyed=True))
    a.receive_data(hello_d, 0.0)
    d.receive_data(hello_a, 0.0)
    auth_d = d.data_to_send()
    assert isinstance(a.receive_data(auth_d, 0.0)[-1], Connected)
    recorded = hello_d + auth_d
    a.connection_lost()
    a.connection_made(1.0, dialer=Hello.decode(f.payload, keyed=True))
    ev = a.receive_data(recorded, 1.0)
    assert isinstance(ev[-1], Failed) and ev[-1].error.reason == "authentication failed"


@given(
    payloads=st.lists(st.binary(max_size=200), min_size=1, max_size=6),
    bad=st.integers(0, 10),
    flip=st.integers(1, 255),
)
def test_tagged_reads_of_one_frame_each_take_the_shortcut_and_keep_the_count(
    payloads: list[bytes], bad: int, flip: int
) -> None:
    """A keyed read of exactly one data frame and its tag is taken whole; the tag count goes
    on as it does frame by frame, and a wrong tag kills the decoder with BAD_TAG."""
    sealer = Sealer(K_CONN, DIALER)
    dec = FrameDecoder(200)
    dec.expect_tags(TagCheck(K_CONN, DIALER))
    for n, payload in enumerate(payloads):
        wire = bytearray(sealer.seal(encode_frame(FrameType.BINARY, payload, seq=n + 1)))
        if n == bad:
            wire[-1 - flip % TAG_SIZE] ^= flip
            assert dec.whole_data_frame(wire) is None
            assert dec.error is not None and dec.error.code == CloseCode.BAD_TAG
            assert dec.decode(b"")[1] is dec.error
            return
        frame = dec.whole_data_frame(wire)
        assert frame is not None and frame.payload == payload and frame.seq == n + 1
