"""SLIP codec properties, checked against esptool's own framing on both sides."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st

from harness.sim.chip.slip import SlipDecoder, encode

payloads = st.binary(min_size=1, max_size=300)
# Bytes that exercise the escapes far more often than uniform bytes would.
tricky = st.lists(st.sampled_from([0xC0, 0xDB, 0xDC, 0xDD, 0x00, 0x55]), min_size=1).map(bytes)
any_payload = st.one_of(payloads, tricky)


class _Port:
    """Just enough of a serial port for esptool's write/slip_reader."""

    def __init__(self, data: bytes = b"") -> None:
        self.rx = io.BytesIO(data)
        self.tx = bytearray()
        self.timeout = 0.0

    def write(self, data: bytes) -> int:
        self.tx += data
        return len(data)

    def inWaiting(self) -> int:
        return len(self.rx.getbuffer()) - self.rx.tell()

    def read(self, n: int = 1) -> bytes:
        return self.rx.read(n)


def _esptool_encode(payload: bytes) -> bytes:
    from esptool.loader import ESPLoader

    port = _Port()
    fake = ESPLoader.__new__(ESPLoader)
    fake._port = port
    fake._trace_enabled = False
    ESPLoader.write(fake, payload)
    return bytes(port.tx)


def _esptool_decode(wire: bytes, count: int) -> list[bytes]:
    from esptool.loader import slip_reader

    reader = slip_reader(_Port(wire), lambda *a, **k: None)
    return [next(reader) for _ in range(count)]


@given(any_payload)
def test_encode_matches_esptool(payload: bytes) -> None:
    assert encode(payload) == _esptool_encode(payload)


@given(st.lists(any_payload, min_size=1, max_size=5))
def test_esptool_reads_what_we_encode(frames: list[bytes]) -> None:
    wire = b"".join(encode(f) for f in frames)
    assert _esptool_decode(wire, len(frames)) == frames


@given(st.lists(any_payload, min_size=1, max_size=5), st.data())
def test_round_trip_under_any_chunking(frames: list[bytes], data: st.DataObject) -> None:
    wire = b"".join(_esptool_encode(f) for f in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    decoder = SlipDecoder()
    out: list[bytes] = []
    last = 0
    for cut in [*cuts, len(wire)]:
        out += decoder.feed(wire[last:cut])
        last = cut
    assert out == frames


@given(st.binary(max_size=50).filter(lambda b: 0xC0 not in b), payloads)
def test_noise_before_a_frame_is_ignored(noise: bytes, payload: bytes) -> None:
    assert SlipDecoder().feed(noise + encode(payload)) == [payload]


# Neither a valid escape (0xDC, 0xDD) nor END: an END after ESC ends the frame, see below.
bad_escapes = st.integers(0, 255).filter(lambda b: b not in (0xC0, 0xDC, 0xDD))


@given(payloads, bad_escapes, payloads)
def test_bad_escape_drops_only_that_frame(before: bytes, bad: int, after: bytes) -> None:
    decoder = SlipDecoder()
    wire = encode(before) + b"\xc0\x01\xdb" + bytes([bad]) + b"\x02\xc0" + encode(after)
    assert decoder.feed(wire) == [before, after]
    assert decoder.dropped == 1


@given(payloads, payloads, payloads)
def test_end_after_escape_ends_the_frame_and_drops_it(
    before: bytes, tail: bytes, after: bytes
) -> None:
    # ESC END is a truncated escape: the END still delimits, so what follows is a new frame.
    decoder = SlipDecoder()
    wire = encode(before) + b"\xc0\x01\xdb\xc0" + encode(tail)[1:] + encode(after)
    assert decoder.feed(wire) == [before, tail, after]
    assert decoder.dropped == 1


def test_empty_frames_are_not_reported() -> None:
    assert SlipDecoder().feed(b"\xc0\xc0\xc0\xc0") == []


def test_oversize_frame_is_dropped() -> None:
    decoder = SlipDecoder(max_frame=16)
    assert decoder.feed(encode(b"x" * 17) + encode(b"ok")) == [b"ok"]
    assert decoder.dropped == 1
