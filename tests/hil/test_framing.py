"""The device decodes frames however TCP slices them."""

from __future__ import annotations

import itertools
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.device.base import Device
from harness.wifisocket.frame import FrameType, encode_frame
from tests.helpers.rawpeer import RawPeer


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    payloads=st.lists(st.binary(max_size=600), min_size=1, max_size=4),
    cuts=st.lists(st.integers(min_value=1, max_value=3000), max_size=12),
    pause_ms=st.integers(min_value=0, max_value=15),
)
def test_frames_split_at_random_points(
    device: Device, payloads: list[bytes], cuts: list[int], pause_ms: int
) -> None:
    with RawPeer(device.ip, device.port, key=device.key) as peer:
        peer.hello()
        stream = b"".join(
            peer.seal(encode_frame(FrameType.BINARY, p, seq=i + 1)) for i, p in enumerate(payloads)
        )
        points = sorted({c % len(stream) for c in cuts} | {0, len(stream)})
        for a, b in itertools.pairwise(points):
            peer.send(stream[a:b])
            time.sleep(pause_ms / 1000)
        for i, p in enumerate(payloads):
            frame = peer.next_data()
            assert (frame.type, frame.seq, frame.payload) == (FrameType.BINARY, i + 1, p)


def test_byte_at_a_time(device: Device) -> None:
    with RawPeer(device.ip, device.port, key=device.key) as peer:
        peer.hello()
        for byte in peer.seal(encode_frame(FrameType.TEXT, b"slow but whole", seq=1)):
            peer.send(bytes([byte]))
        frame = peer.next_data()
        assert frame.type == FrameType.TEXT and frame.payload == b"slow but whole"
