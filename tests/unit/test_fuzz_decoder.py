"""Hypothesis fuzzing of the host's frame decoder (``harness.wifisocket.frame.FrameDecoder``).

``tests/unit/test_frame.py`` covers round trips, plain random garbage (which almost always
fails on its first byte), single corruptions and a few fixed oversize headers. This file
adds what those leave open:

- *adversarial streams*: valid frames mixed with headers whose every field sits on or next
  to a limit, wrong CRCs, cut frames and garbage, fed in any chunking. Compared with a
  one-shot reference decoder written here from docs/protocol.md §1: the same frames, the
  same error code, and the error raised by the very call that delivered its evidence
  (bad magic on its byte, header errors on the 16th byte, CRC on the last), so the decoder
  never sits waiting on bytes that already doom the frame;
- only ``ProtocolError`` (or its subclass ``MessageTooLarge``) ever escapes ``feed()``, and
  ``decode()`` never raises;
- what is buffered is exactly the frame in progress, never more than one frame: 16 +
  max(max_message, 124) + 4 - 1 bytes (control frames may carry up to 124 bytes even when
  max_message is smaller);
- memory follows the bytes received, not the length a header claims (tracemalloc).
"""

from __future__ import annotations

import itertools
import struct
import tracemalloc
import zlib
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import MessageTooLarge, ProtocolError
from harness.wifisocket.frame import (
    CRC_SIZE,
    FRAME_OVERHEAD,
    HEADER_SIZE,
    Frame,
    FrameDecoder,
    FrameType,
)

CLOSE_MAX = 124  # longest control payload (a CLOSE): docs/protocol.md §1
_CONTROL_RANGE = {1: (32, 64), 4: (0, 0), 5: (8, 8), 6: (8, 8), 7: (1, CLOSE_MAX), 8: (32, 32)}
U32_MAX = 0xFFFFFFFF


# --- reference decoder ------------------------------------------------------------------

def _header_code(header: bytes, max_message: int) -> int | None:
    """Close code of a complete 16-byte header with good magic, or None if it is legal."""
    ftype, flags, length, seq = header[2], header[3], *struct.unpack(">II", header[4:12])
    if not 1 <= ftype <= 8:
        return 4  # UNKNOWN_TYPE
    if flags:
        return 1  # PROTOCOL
    data = ftype in (2, 3)
    if data:
        if length > max_message:
            return 3  # TOO_LARGE
    else:
        low, high = _CONTROL_RANGE[ftype]
        if not low <= length <= high:
            return 3 if length > 64 else 1
    if data == (seq == 0):
        return 1  # data frame with seq 0, control frame with seq
    return None


@dataclass
class Expected:
    """What the reference makes of a whole stream."""

    frames: list[Frame]
    code: int | None  # close code of the error, None if there is none
    at: int  # stream offset just past the byte that proves the error
    tail: int  # bytes of an incomplete last frame (no error)


def reference(stream: bytes, max_message: int) -> Expected:
    """Decode the whole stream at once, by the rules of docs/protocol.md §1."""
    frames: list[Frame] = []
    pos = 0
    while True:
        avail = len(stream) - pos
        if avail == 0:
            return Expected(frames, None, 0, 0)
        if stream[pos] != 0x57:
            return Expected(frames, 1, pos + 1, 0)
        if avail >= 2 and stream[pos + 1] != 0x53:
            return Expected(frames, 1, pos + 2, 0)
        if avail < HEADER_SIZE:
            return Expected(frames, None, 0, avail)
        header = stream[pos : pos + HEADER_SIZE]
        code = _header_code(header, max_message)
        if code is not None:
            return Expected(frames, code, pos + HEADER_SIZE, 0)
        ftype, _, length, seq, ack = struct.unpack(">xxBBIII", header)
        end = pos + HEADER_SIZE + length
        if len(stream) < end + CRC_SIZE:
            return Expected(frames, None, 0, avail)
        (crc,) = struct.unpack(">I", stream[end : end + CRC_SIZE])
        if zlib.crc32(stream[pos:end]) != crc:
            return Expected(frames, 2, end + CRC_SIZE, 0)
        frames.append(Frame(FrameType(ftype), seq, ack, stream[pos + HEADER_SIZE : end]))
        pos = end + CRC_SIZE
        if ftype == 8:  # AUTH: the decoder waits to be told whether tags follow (§6)
            return Expected(frames, None, 0, len(stream) - pos)


# --- adversarial streams -----------------------------------------------------------------

MAX_MESSAGES = st.one_of(
    st.sampled_from([1, 7, 8, 9, 31, 32, 63, 64, 65, 123, 124, 125, 300]),
    st.integers(1, U32_MAX),
)


def _limits(max_message: int, ftype: int | None = None) -> list[int]:
    """Lengths on and next to every limit; those of ``ftype``'s own range first."""
    near = [0, 1, 7, 8, 9, 31, 32, 33, 63, 64, 65, 123, 124, 125, 126, 255, U32_MAX, 1 << 31]
    near += [max_message - 1, max_message, max_message + 1]
    if ftype in _CONTROL_RANGE:
        low, high = _CONTROL_RANGE[ftype]
        near = [low - 1, low, high, high + 1, *near]
    return [n for n in dict.fromkeys(near) if 0 <= n <= U32_MAX]


def _frame(ftype: int, flags: int, length: int, seq: int, ack: int, payload: bytes,
           good_crc: bool, crc_noise: int) -> bytes:
    body = b"WS" + struct.pack(">BBIII", ftype, flags, length, seq, ack) + payload
    crc = zlib.crc32(body) if good_crc else (zlib.crc32(body) ^ (crc_noise or 1))
    return body + struct.pack(">I", crc)


@st.composite
def pieces(draw: st.DrawFn, max_message: int) -> bytes:
    """One piece of a stream: mostly frames, some of them subtly broken."""
    kind = draw(st.sampled_from(["valid", "valid", "valid", "field", "crc", "cut", "garbage",
                                 "magic"]))
    if kind == "garbage":
        return draw(st.binary(min_size=1, max_size=40))
    if kind == "magic":  # good magic, then anything
        return b"WS" + draw(st.binary(max_size=30))
    ftype = draw(st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8]))
    if ftype in (2, 3):
        length = draw(st.integers(0, min(max_message, 200)))
        seq = draw(st.integers(1, U32_MAX))
    else:
        low, high = _CONTROL_RANGE[ftype]
        length = draw(st.integers(low, high))
        seq = 0
    flags, ack = 0, draw(st.integers(0, U32_MAX))
    payload = draw(st.binary(min_size=length, max_size=length))
    good_crc = True
    if kind == "field":  # one header field on or next to a limit, payload as it was
        field = draw(st.sampled_from(["type", "flags", "length", "seq"]))
        if field == "type":
            ftype = draw(st.sampled_from([0, 8, 9, 127, 255, 1, 2, 3, 4, 5, 6, 7]))
        elif field == "flags":
            flags = draw(st.integers(1, 255))
        elif field == "length":
            limits = _limits(max_message, ftype)
            # Half the time one of the type's own boundaries (the first four).
            length = draw(st.sampled_from(limits[:4] if draw(st.booleans()) else limits))
        else:
            seq = draw(st.sampled_from([0, 1, U32_MAX]))
    elif kind == "crc":
        good_crc = False
    raw = _frame(ftype, flags, length, seq, ack, payload, good_crc,
                 draw(st.integers(0, U32_MAX)))
    if kind == "cut":
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    return raw


@st.composite
def streams(draw: st.DrawFn) -> tuple[int, bytes]:
    max_message = draw(MAX_MESSAGES)
    parts = draw(st.lists(pieces(max_message), max_size=8))
    return max_message, b"".join(parts)


def _chunks(data: bytes, cuts: list[int], one_byte: bool) -> list[bytes]:
    if one_byte:
        return [data[i : i + 1] for i in range(len(data))]
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[lo:hi] for lo, hi in itertools.pairwise(bounds)]


def _largest_frame(max_message: int) -> int:
    return FRAME_OVERHEAD + max(max_message, CLOSE_MAX)


# --- properties ----------------------------------------------------------------------------

@settings(max_examples=400)
@given(case=streams(), cuts=st.lists(st.integers(0, 10**6), max_size=12),
       one_byte=st.booleans())
def test_any_chunking_matches_the_reference(case: tuple[int, bytes], cuts: list[int],
                                            one_byte: bool) -> None:
    max_message, stream = case
    want = reference(stream, max_message)
    dec = FrameDecoder(max_message)
    got: list[Frame] = []
    fed = 0
    last_frame_end = 0
    raised: ProtocolError | None = None
    for chunk in _chunks(stream, cuts, one_byte):
        frames, error = dec.decode(chunk)  # decode() reports, never raises
        got.extend(frames)
        last_frame_end += sum(f.size for f in frames)
        if error is not None:
            # Raised by the call that delivered the evidence, not one later.
            assert fed < want.at <= fed + len(chunk), (want, fed, len(chunk))
            raised = error
            break
        fed += len(chunk)
        # Held back: exactly the frame in progress, never more than the largest frame.
        assert dec.buffered == fed - last_frame_end
        # (Stopped after an AUTH, it keeps what follows until the session decides.)
        assert dec.paused or dec.buffered < _largest_frame(max_message)
    assert got == want.frames
    if want.code is None:
        assert raised is None
        assert dec.buffered == want.tail
    else:
        assert raised is not None and raised.code == want.code
        assert isinstance(raised, MessageTooLarge) == (want.code == 3)
        assert dec.buffered == 0
        assert dec.error is raised


@settings(max_examples=300)
@given(case=streams(), cuts=st.lists(st.integers(0, 10**6), max_size=12))
def test_feed_raises_only_protocol_errors_and_stays_dead(case: tuple[int, bytes],
                                                         cuts: list[int]) -> None:
    max_message, stream = case
    want = reference(stream, max_message)
    dec = FrameDecoder(max_message)
    got: list[Frame] = []
    error: ProtocolError | None = None
    for chunk in _chunks(stream, cuts, one_byte=False):
        try:
            got.extend(dec.feed(chunk))  # anything but ProtocolError fails the test
        except ProtocolError as exc:
            error = exc
            break
    assert (error.code if error else None) == want.code
    # feed() loses the frames of the failing call (decode() keeps them): a prefix.
    assert got == want.frames[: len(got)]
    if error is not None:
        assert error.code in range(11)
        assert error.reason
        for more in (b"", b"W", b"WS" + bytes(18)):
            with pytest.raises(ProtocolError) as again:
                dec.feed(more)
            assert again.value is error


def test_small_max_message_still_buffers_a_whole_control_frame() -> None:
    """The buffering bound is one *frame*: a CLOSE may carry 124 bytes whatever max_message."""
    reason = b"\x01" + b"r" * 123
    raw = _frame(7, 0, len(reason), 0, 0, reason, True, 0)
    dec = FrameDecoder(1)
    assert dec.feed(raw[:-1]) == []
    assert dec.buffered == len(raw) - 1 == HEADER_SIZE + CLOSE_MAX + CRC_SIZE - 1
    assert dec.buffered > HEADER_SIZE + 1 + CRC_SIZE  # more than 16 + max_message + 4
    assert dec.feed(raw[-1:]) == [Frame(FrameType.CLOSE, 0, 0, reason)]
    assert dec.buffered == 0


@settings(max_examples=40)
@given(length=st.integers(1 << 20, U32_MAX), body=st.binary(max_size=3000),
       cuts=st.lists(st.integers(0, 10**6), max_size=8))
def test_memory_follows_received_bytes_not_claimed_length(length: int, body: bytes,
                                                          cuts: list[int]) -> None:
    """A header that passes the checks and claims up to 4 GiB: only what arrived is held."""
    dec = FrameDecoder(U32_MAX)
    stream = b"WS" + struct.pack(">BBIII", 3, 0, length, 1, 0) + body
    tracemalloc.start()
    try:
        for chunk in _chunks(stream, cuts, one_byte=False):
            assert dec.feed(chunk) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert dec.buffered == len(stream)
    # A decoder that reserved `length` bytes would need at least 1 MiB here.
    assert peak < 64 * 1024 + 4 * len(stream), peak


def test_every_header_near_the_limits_judged_at_once() -> None:
    """Exhaustive: each type x length near a limit x flags x seq, for several max_message."""
    checked = 0
    for max_message in (1, 8, 64, 123, 124, 125, 4096, U32_MAX):
        for ftype in (0, 1, 2, 3, 4, 5, 6, 7, 8, 255):
            for length in _limits(max_message, ftype):
                for flags, seq in itertools.product((0, 1), (0, 1, U32_MAX)):
                    raw = b"WS" + struct.pack(">BBIII", ftype, flags, length, seq, 7)
                    dec = FrameDecoder(max_message)
                    assert dec.feed(raw[:-1]) == []
                    frames, error = dec.decode(raw[-1:])
                    assert frames == []
                    code = _header_code(raw, max_message)
                    assert (error.code if error else None) == code, (max_message, raw.hex())
                    assert dec.buffered == (HEADER_SIZE if code is None else 0)
                    checked += 1
    assert checked > 5000


@st.composite
def headers(draw: st.DrawFn) -> tuple[int, bytes]:
    """A max_message and 16 header bytes after good magic: fields on and next to limits."""
    max_message = draw(MAX_MESSAGES)
    if draw(st.integers(0, 9)) == 0:
        return max_message, b"WS" + draw(st.binary(min_size=14, max_size=14))
    ftype = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 255]))
    flags = draw(st.sampled_from([0, 0, 0, 1, 0x80]))
    length = draw(st.sampled_from(_limits(max_message, ftype)))
    seq = draw(st.sampled_from([0, 0, 1, U32_MAX]))
    return max_message, b"WS" + struct.pack(">BBIII", ftype, flags, length, seq, 0)


@settings(max_examples=500)
@given(case=headers(), rest=st.binary(max_size=50))
def test_header_verdict_on_its_16th_byte(case: tuple[int, bytes], rest: bytes) -> None:
    """Any 16 bytes after good magic: the decoder judges them at once, as the rules say."""
    max_message, raw = case
    dec = FrameDecoder(max_message)
    assert dec.feed(raw[:-1]) == []
    frames, error = dec.decode(raw[-1:] + rest)
    code = _header_code(raw, max_message)
    if code is not None:
        assert error is not None and error.code == code
        assert frames == []
    else:
        # Legal header: it waits for its payload and CRC (or finishes within `rest`).
        want = reference(raw + rest, max_message)
        assert frames == want.frames
        assert (error.code if error else None) == want.code
