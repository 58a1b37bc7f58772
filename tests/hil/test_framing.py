"""The device decodes frames however TCP slices them, and writes each small frame whole."""

from __future__ import annotations

import itertools
import socket
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


def test_small_replies_go_out_whole_with_their_tags(device: Device) -> None:
    # A frame and its tag (keyed links) written separately are two TCP segments and two
    # wake-ups of the host per message. Catch the first bytes of each reply as soon as
    # they are readable: they must end on a frame boundary.
    with RawPeer(device.ip, device.port, key=device.key) as peer:
        peer.hello()
        sock = peer.sock
        for seq in range(1, 301):
            peer.send(peer.seal(encode_frame(FrameType.BINARY, bytes(64), seq=seq, ack=seq - 1)))
            got = b""
            deadline = time.monotonic() + peer.timeout
            while not got:
                assert time.monotonic() < deadline, f"no reply to message {seq}"
                try:
                    got = sock.recv(65536, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    continue
                assert got, "the device closed the connection"
            peer.frames.extend(peer.decoder.feed(got))
            assert peer.decoder.buffered == 0, (
                f"reply to message {seq}: the first {len(got)} bytes end inside a frame"
            )
            frame = peer.next_data()
            assert (frame.seq, frame.payload) == (seq, bytes(64))
