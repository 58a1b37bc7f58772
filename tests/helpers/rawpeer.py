"""A hand-driven protocol peer over a plain TCP socket.

For contract tests that must put on the wire what :class:`harness.WiFiSocket` never would:
split frames, garbage, lies about lengths, bad CRCs.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time

from harness.errors import ProtocolError
from harness.wifisocket.frame import (
    CloseCode,
    Frame,
    FrameDecoder,
    FrameType,
    Hello,
    encode_frame,
)


class RawPeer:
    """One TCP connection to a device service, frames encoded and decoded by hand."""

    def __init__(self, host: str, port: int, *, timeout: float = 5.0) -> None:
        self.address = (host, port)
        self.timeout = timeout
        self.sock = self._dial()
        self.decoder = FrameDecoder(1 << 20)
        self.frames: list[Frame] = []
        self.peer_hello: Hello | None = None

    def _dial(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def close(self) -> None:
        """Say CLOSE NORMAL (after a HELLO exchange) and hang up: the device then holds no
        session for us and serves the next peer at once (docs/protocol.md §2, Strangers)."""
        if self.peer_hello is not None:
            with contextlib.suppress(OSError):
                self.sock.sendall(encode_frame(FrameType.CLOSE, bytes([CloseCode.NORMAL])))
        self.sock.close()

    def __enter__(self) -> RawPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def hello(self, *, max_message: int = 1 << 20, keepalive_ms: int = 0) -> Hello:
        """Send our HELLO and wait for the device's.

        A device still holding the previous peer's session (its CLOSE not yet processed)
        answers ``BUSY``: dial again until ``timeout``, as the host library's constructor does.
        """
        ours = Hello(
            max_message=max_message,
            window=2 * max_message + 64,
            keepalive_ms=keepalive_ms,
            session=int.from_bytes(os.urandom(8), "big") | 1,
        )
        deadline = time.monotonic() + self.timeout
        while True:
            self.send(encode_frame(FrameType.HELLO, ours.encode()))
            frame = self.next_frame()
            busy = frame.type == FrameType.CLOSE and frame.payload[:1] == bytes([CloseCode.BUSY])
            if not busy or time.monotonic() >= deadline:
                break
            self.sock.close()
            time.sleep(0.05)
            self.sock = self._dial()
            self.decoder = FrameDecoder(1 << 20)
            self.frames.clear()
        assert frame.type == FrameType.HELLO, frame
        self.peer_hello = Hello.decode(frame.payload)
        return self.peer_hello

    def next_frame(self, timeout: float | None = None) -> Frame:
        """The next frame from the device (PINGs and ACKs included)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.frames:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no frame from the device")
            self.sock.settimeout(remaining)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the device closed the connection")
            self.frames.extend(self.decoder.feed(data))
        return self.frames.pop(0)

    def next_data(self, timeout: float | None = None) -> Frame:
        """The next TEXT or BINARY frame, skipping control frames."""
        while True:
            frame = self.next_frame(timeout)
            if frame.is_data:
                return frame

    def until_closed(self, timeout: float | None = None) -> list[Frame]:
        """Every frame until the device closes the connection; raise if it does not."""
        deadline = time.monotonic() + (timeout or self.timeout)
        got = list(self.frames)
        self.frames.clear()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"the device did not close the connection; got {got}")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                return got
            if not data:
                return got
            try:
                got.extend(self.decoder.feed(data))
            except ProtocolError:
                return got


def close_code(frames: list[Frame]) -> int | None:
    """The code of the CLOSE frame among ``frames``, if any."""
    for frame in frames:
        if frame.type == FrameType.CLOSE and frame.payload:
            return frame.payload[0]
    return None
