"""An on-path attacker against the device's keyed link (docs/security.md, protocol.md §6).

The harness's link goes through a frame-aware proxy that modifies, replays, injects or drops
one of its frames: the device rejects it (``BAD_TAG``, counted in ``info``), the link
reconnects and resumes, and every message comes back exactly once, in order, nothing forged.
A recorded handshake replayed on a new connection is refused without touching the live link.
"""

from __future__ import annotations

import socket
import struct

import pytest

from harness.device.base import Device
from harness.wifisocket.frame import CloseCode, FrameType
from tests.helpers.onpath import ATTACKS, FrameProxy, attack

MSGS = ["one", b"\x00two", "three" * 100, b"four" * 200, "five"]
WAIT = 10.0


@pytest.fixture
def keyed(device: Device) -> Device:
    if device.key is None:
        pytest.skip("the link runs keyless (--link-key none, or a firmware without onKey)")
    return device


def _talk(link: object, msgs: list) -> None:
    for m in msgs:
        link.send(m)  # type: ignore[attr-defined]
        assert link.receive(timeout=WAIT) == m  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ATTACKS)
def test_an_attacked_frame_is_rejected_and_the_stream_delivered_exactly_once(
    keyed: Device, name: str
) -> None:
    before = keyed.info()["tag_failures"]
    proxy = FrameProxy((keyed.ip, keyed.port), attack(name))
    try:
        with keyed.connect(proxy.port, host="127.0.0.1", timeout=WAIT,
                           backoff_initial=0.02, backoff_max=0.2) as link:
            _talk(link, MSGS)
            reconnects = link.reconnects
    finally:
        proxy.close()
    after = keyed.info()["tag_failures"]
    if name == "dropped":
        # The frame after the dropped one fails its tag (its counter is ahead), unless the
        # link went silent first and was redialled.
        assert after > before or reconnects >= 1, (before, after, reconnects, proxy.connections)
    else:
        assert after > before
        assert reconnects >= 1
    assert proxy.connections >= 2


def test_a_replayed_handshake_is_refused_and_the_live_link_untouched(keyed: Device) -> None:
    recorded: list[bytes] = []

    def record(conn: int, index: int, frame: bytes) -> list[bytes]:
        if conn == 0 and index < 2:
            recorded.append(frame)
        return [frame]

    proxy = FrameProxy((keyed.ip, keyed.port), record)
    try:
        with keyed.connect(proxy.port, host="127.0.0.1", timeout=WAIT) as link:
            _talk(link, MSGS[:2])
            with socket.create_connection((keyed.ip, keyed.port), timeout=WAIT) as replay:
                replay.sendall(recorded[0])  # the host's HELLO, then its AUTH
                answer = b""
                while len(answer) < 68:  # the device's HELLO v2 (20 + 48)
                    chunk = replay.recv(4096)
                    assert chunk, f"closed after {answer!r}"
                    answer += chunk
                assert answer[2] == FrameType.HELLO
                replay.sendall(recorded[1])
                while chunk := replay.recv(4096):
                    answer += chunk
            close = answer[68:]
            # An untagged CLOSE AUTH: the proof was for another nonce, the device proved nothing.
            assert close[2] == FrameType.CLOSE and close[16] == CloseCode.AUTH, close
            assert len(close) == 20 + struct.unpack_from(">I", close, 4)[0]
            _talk(link, MSGS[2:])
            assert link.reconnects == 0
    finally:
        proxy.close()
