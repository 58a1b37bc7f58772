"""A peer that breaks the protocol is cut off with a reason; the device keeps serving."""

from __future__ import annotations

import os
import struct
import zlib

import pytest

from harness.device.base import Device
from harness.wifisocket.frame import CloseCode, FrameType, Hello, encode_frame
from tests.helpers.rawpeer import RawPeer, close_code


def _bad_crc(frame: bytes) -> bytes:
    return frame[:-4] + struct.pack(">I", (zlib.crc32(frame[:-4]) ^ 1) & 0xFFFFFFFF)


def _header(ftype: int, length: int, seq: int = 1, flags: int = 0) -> bytes:
    return b"WS" + struct.pack(">BBIII", ftype, flags, length, seq, 0)


CASES = {
    "garbage": (b"GET / HTTP/1.1\r\nHost: esp\r\n\r\n", CloseCode.PROTOCOL),
    "oversized-length": (_header(FrameType.BINARY, 0x7FFFFFF0), CloseCode.TOO_LARGE),
    "bad-crc": (_bad_crc(encode_frame(FrameType.TEXT, b"hello", seq=1)), CloseCode.BAD_CRC),
    "unknown-type": (_header(0x42, 0), CloseCode.UNKNOWN_TYPE),
    "flags-set": (_header(FrameType.TEXT, 4, flags=0x80), CloseCode.PROTOCOL),
    "seq-skips-ahead": (encode_frame(FrameType.TEXT, b"x", seq=5), CloseCode.SEQUENCE),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_after_hello_closes_with_reason(device: Device, name: str) -> None:
    data, code = CASES[name]
    mark = device.console.mark()
    with RawPeer(device.ip, device.port, key=device.key) as peer:
        # A short keepalive: after a recoverable close (BAD_CRC) the device holds this
        # session for its dead bound (docs/protocol.md §2), 1.5 s instead of 10.
        peer.hello(keepalive_ms=500)
        peer.send(peer.seal(data))
        frames = peer.until_closed()
    assert close_code(frames) == code
    line = device.console.expect(rf"^WS CLOSE code={int(code)} reason=\S", timeout=5, since=mark)
    assert line
    _device_still_serves(device)


@pytest.mark.parametrize("name", ["garbage", "oversized-length", "bad-crc"])
def test_bad_input_instead_of_hello(device: Device, name: str) -> None:
    data, code = CASES[name]
    mark = device.console.mark()
    with RawPeer(device.ip, device.port, key=device.key) as peer:
        peer.send(data)
        frames = peer.until_closed()
    # The device sends no HELLO before the dialer's (docs/protocol.md §2): only its CLOSE.
    assert close_code(frames) == code
    device.console.expect(rf"^WS CLOSE code={int(code)} ", timeout=5, since=mark)
    _device_still_serves(device)


def test_wrong_version_is_refused(device: Device) -> None:
    hello = bytearray(Hello(max_message=1024, window=4096, keepalive_ms=0, session=7).encode())
    hello[0] = 3
    with RawPeer(device.ip, device.port) as peer:
        peer.send(encode_frame(FrameType.HELLO, bytes(hello) + os.urandom(16)))
        frames = peer.until_closed()
    assert close_code(frames) == CloseCode.VERSION
    # The other version than the device's configuration: AUTH, never answered in it
    # (docs/protocol.md §6): a v1 HELLO to a keyed device, a v2 one to an unkeyed device.
    hello[0] = 1 if device.key is not None else 2
    with RawPeer(device.ip, device.port) as peer:
        peer.send(encode_frame(FrameType.HELLO, bytes(hello) + os.urandom(16)))
        frames = peer.until_closed()
    assert close_code(frames) == CloseCode.AUTH
    _device_still_serves(device)


def test_data_before_hello_is_refused(device: Device) -> None:
    with RawPeer(device.ip, device.port, key=device.key) as peer:
        peer.send(encode_frame(FrameType.TEXT, b"too early", seq=1))
        frames = peer.until_closed()
    assert close_code(frames) == CloseCode.PROTOCOL
    _device_still_serves(device)


def test_device_serves_while_a_bad_peer_lingers(device: Device) -> None:
    # A connection that never says HELLO must not block a legitimate one meanwhile.
    with RawPeer(device.ip, device.port, key=device.key) as idle, device.connect() as good:
        good.send("served")
        assert good.receive(timeout=5) == "served"
        assert idle.sock.fileno() >= 0


def _device_still_serves(device: Device) -> None:
    with device.connect() as sock:
        sock.send(b"\x00after")
        assert sock.receive(timeout=5) == b"\x00after"
