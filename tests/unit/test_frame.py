"""Properties of the frame codec: round trips, chunking, garbage, buffering bounds."""

from __future__ import annotations

import itertools
import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import MessageTooLarge, ProtocolError
from harness.wifisocket.frame import (
    FRAME_OVERHEAD,
    HEADER_SIZE,
    CloseCode,
    Frame,
    FrameDecoder,
    FrameType,
    Hello,
    encode_frame,
)

MAX = 300
U32 = st.integers(0, 0xFFFFFFFF)
_CONTROL_PAYLOADS = {
    FrameType.HELLO: st.binary(min_size=32, max_size=64),
    FrameType.ACK: st.just(b""),
    FrameType.PING: st.binary(min_size=8, max_size=8),
    FrameType.PONG: st.binary(min_size=8, max_size=8),
    FrameType.CLOSE: st.binary(min_size=1, max_size=124),
}
# AUTH is left out: the decoder stops after it until the session says whether tags follow
# (tests/unit/test_keyed.py covers keyed streams).
_V1_TYPES = [t for t in FrameType if t != FrameType.AUTH]


@st.composite
def valid_frames(draw: st.DrawFn, max_message: int = MAX) -> Frame:
    ftype = draw(st.sampled_from(_V1_TYPES))
    if ftype in (FrameType.TEXT, FrameType.BINARY):
        payload = draw(st.binary(max_size=max_message))
        seq = draw(st.integers(1, 0xFFFFFFFF))
    else:
        payload = draw(_CONTROL_PAYLOADS[ftype])
        seq = 0
    return Frame(ftype, seq, draw(U32), payload)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[lo:hi] for lo, hi in itertools.pairwise(bounds)]


@given(st.lists(valid_frames(), max_size=12), st.lists(st.integers(0, 10**6), max_size=30))
def test_round_trip_any_chunking(frames: list[Frame], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(f.type, f.payload, seq=f.seq, ack=f.ack) for f in frames)
    assert len(stream) == sum(FRAME_OVERHEAD + len(f.payload) for f in frames)
    dec = FrameDecoder(MAX)
    out: list[Frame] = []
    for chunk in _chunks(stream, cuts):
        out.extend(dec.feed(chunk))
        # Only the tail of one incomplete frame is ever held back.
        assert dec.buffered <= HEADER_SIZE + MAX + 4
    assert out == frames
    assert dec.buffered == 0


@given(st.lists(valid_frames(), max_size=8), st.lists(st.integers(0, 10**6), max_size=10))
def test_round_trip_from_memoryview_chunks(frames: list[Frame], cuts: list[int]) -> None:
    """The I/O layer feeds slices of one reused receive buffer: frames must not alias it."""
    stream = b"".join(encode_frame(f.type, f.payload, seq=f.seq, ack=f.ack) for f in frames)
    scratch = bytearray(len(stream) + 1)
    dec = FrameDecoder(MAX)
    out: list[Frame] = []
    for chunk in _chunks(stream, cuts):
        scratch[: len(chunk)] = chunk
        out.extend(dec.feed(memoryview(scratch)[: len(chunk)]))
        scratch[:] = b"\xee" * len(scratch)  # clobber: decoded payloads must be copies
    assert out == frames


@given(st.lists(st.binary(max_size=64), max_size=20), st.integers(1, 200))
def test_garbage_raises_only_protocol_error(chunks: list[bytes], max_message: int) -> None:
    dec = FrameDecoder(max_message)
    error = None
    for chunk in chunks:
        try:
            dec.feed(chunk)
        except ProtocolError as exc:
            error = exc
            break
        # A CLOSE may carry 124 bytes however small max_message is.
        assert dec.buffered < HEADER_SIZE + max(max_message, 124) + 4
    if error is not None:
        assert error.code in {c.value for c in CloseCode}
        # Dead after an error: the same error again, even for valid bytes.
        with pytest.raises(ProtocolError) as again:
            dec.feed(encode_frame(FrameType.ACK))
        assert again.value is error
        assert dec.buffered == 0


@given(st.binary(min_size=1, max_size=400), st.lists(st.integers(0, 10**6), max_size=10))
def test_corrupted_frame_never_yields_a_wrong_frame(noise: bytes, cuts: list[int]) -> None:
    """Flip bytes of a valid frame: either it decodes to itself (no change) or errors."""
    payload = bytes(range(200))
    raw = bytearray(encode_frame(FrameType.BINARY, payload, seq=7, ack=3))
    for i, b in enumerate(noise[: len(raw)]):
        raw[i] ^= b if i % 3 == 0 else 0
    dec = FrameDecoder(MAX)
    got: list[Frame] = []
    try:
        for chunk in _chunks(bytes(raw), cuts):
            got.extend(dec.feed(chunk))
    except ProtocolError:
        return
    # CRC-32 catches these flips unless nothing changed (or the length grew: waiting).
    assert got in ([], [Frame(FrameType.BINARY, 7, 3, payload)])
    if got:
        assert bytes(raw) == encode_frame(FrameType.BINARY, payload, seq=7, ack=3)


def test_oversize_length_fails_from_header_before_any_payload() -> None:
    dec = FrameDecoder(100)
    header = encode_frame(FrameType.BINARY, b"x" * 101, seq=1)[:HEADER_SIZE]
    with pytest.raises(MessageTooLarge) as info:
        dec.feed(header)
    assert (info.value.size, info.value.limit, info.value.code) == (101, 100, 3)


def test_huge_length_is_not_buffered() -> None:
    dec = FrameDecoder(1 << 20)
    # A length of 1 GiB: the decoder must refuse from the header, not wait for it.
    header = b"WS\x03\x00" + (1 << 30).to_bytes(4, "big") + (1).to_bytes(4, "big") + bytes(4)
    with pytest.raises(MessageTooLarge):
        dec.feed(header)


def test_bad_magic_detected_on_first_byte() -> None:
    with pytest.raises(ProtocolError) as info:
        FrameDecoder(10).feed(b"G")
    assert info.value.code == CloseCode.PROTOCOL
    dec = FrameDecoder(10)
    assert dec.feed(b"W") == []
    with pytest.raises(ProtocolError):
        dec.feed(b"T")


def test_frames_before_error_are_returned_by_decode() -> None:
    good = encode_frame(FrameType.TEXT, b"ok", seq=1)
    frames, err = FrameDecoder(10).decode(good + b"Wx")
    assert err is not None and err.code == CloseCode.PROTOCOL
    assert frames == [Frame(FrameType.TEXT, 1, 0, b"ok")]


def test_many_small_frames_in_one_chunk() -> None:
    stream = b"".join(encode_frame(FrameType.BINARY, bytes([i % 256]), seq=i + 1)
                      for i in range(5000))
    frames = FrameDecoder(16).feed(stream)
    assert [f.seq for f in frames] == list(range(1, 5001))


@given(
    st.integers(1, 0xFFFFFFFF - 20), st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF),
    st.integers(1, 2**64 - 1), st.integers(0, 2**64 - 1),
)
def test_hello_round_trip(max_message: int, extra: int, keepalive: int, session: int,
                          resume: int) -> None:
    window = min(0xFFFFFFFF, max_message + 20 + extra)
    hello = Hello(max_message, window, keepalive, session, resume)
    assert len(hello.encode()) == 32
    assert Hello.decode(hello.encode()) == hello
    assert Hello.decode(hello.encode() + b"\x99" * 32) == hello


def test_decoder_rejects_bad_limit() -> None:
    with pytest.raises(ValueError):
        FrameDecoder(0)


def _error_code(error: ProtocolError | None) -> int | None:
    return None if error is None else error.code


@st.composite
def any_header_frames(draw: st.DrawFn) -> bytes:
    """A frame with any magic, type, flags, seq and payload size (up to past MAX) and a
    right CRC: every header rule can be broken without the CRC giving it away."""
    payload = draw(st.one_of(st.binary(max_size=8), st.binary(min_size=MAX, max_size=MAX + 1)))
    ftype = draw(st.one_of(st.sampled_from([FrameType.TEXT, FrameType.BINARY]),
                           st.integers(0, 10)))
    flags = draw(st.one_of(st.just(0), st.integers(1, 255)))
    seq = draw(st.one_of(st.integers(1, 3), st.just(0)))
    magic = draw(st.one_of(st.just(b"WS"), st.binary(min_size=2, max_size=2)))
    header = struct.pack(">2sBBIII", magic, ftype, flags, len(payload), seq, draw(U32))
    return header + payload + struct.pack(">I", zlib.crc32(header + payload))


_ONE_READ = st.one_of(
    any_header_frames(),
    valid_frames().map(lambda f: encode_frame(f.type, f.payload, seq=f.seq, ack=f.ack)),
    st.binary(max_size=80),
)


def _check_whole_data_frame(raw: bytes | bytearray) -> None:
    fast, general = FrameDecoder(MAX), FrameDecoder(MAX)
    frame = fast.whole_data_frame(memoryview(raw))
    frames, error = general.decode(bytes(raw))
    one_data_frame = (error is None and general.buffered == 0 and len(frames) == 1
                      and frames[0].is_data)
    assert (frame is not None) == one_data_frame
    if frame is not None:
        assert [frame] == frames
    else:
        assert fast.error is None and fast.buffered == 0
        again, again_error = fast.decode(bytes(raw))
        assert again == frames and _error_code(again_error) == _error_code(error)


@given(any_header_frames())
def test_whole_data_frame_keeps_every_header_rule(raw: bytes) -> None:
    """The shortcut for a read of exactly one data frame takes only what decode() would
    take as a valid data frame, and gives the same frame; else it leaves the read alone."""
    _check_whole_data_frame(raw)


@given(st.lists(_ONE_READ, min_size=1, max_size=2).map(b"".join),
       st.one_of(st.just([]), st.lists(st.tuples(st.integers(0, 400), st.integers(1, 255)),
                                       min_size=1, max_size=2)),
       st.one_of(st.just(0), st.integers(1, 3)))
def test_whole_data_frame_agrees_with_decode(data: bytes, flips: list[tuple[int, int]],
                                             trim: int) -> None:
    """... and for several frames, cut frames, flipped bytes and garbage in one read."""
    raw = bytearray(data[: len(data) - trim])
    for at, x in flips:
        if raw:
            raw[at % len(raw)] ^= x
    _check_whole_data_frame(raw)
