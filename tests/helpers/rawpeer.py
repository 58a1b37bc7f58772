"""A hand-driven protocol peer over a plain TCP socket.

For contract tests that must put on the wire what :class:`harness.WiFiSocket` never would:
split frames, garbage, lies about lengths, bad CRCs. Given the device's key it speaks the
keyed protocol (docs/protocol.md §6) through the library's own crypto: HELLO v2, AUTH, and
:meth:`RawPeer.seal` to tag what it sends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import time

from harness.errors import ProtocolError
from harness.wifisocket.frame import (
    KEYED_VERSION,
    CloseCode,
    Frame,
    FrameDecoder,
    FrameType,
    Hello,
    encode_frame,
)
from harness.wifisocket.keyed import DIALER, Key, KeyedConnection, Sealer


class RawPeer:
    """One TCP connection to a device service, frames encoded and decoded by hand."""

    def __init__(
        self, host: str, port: int, *, key: bytes | None = None, timeout: float = 5.0
    ) -> None:
        self.address = (host, port)
        self.timeout = timeout
        self.key = Key(key) if key is not None else None
        self._sealer: Sealer | None = None
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
                self.sock.sendall(
                    self.seal(encode_frame(FrameType.CLOSE, bytes([CloseCode.NORMAL])))
                )
        self.sock.close()

    def __enter__(self) -> RawPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def seal(self, frame: bytes) -> bytes:
        """``frame`` as this connection must send it: with its tag once a keyed handshake is
        done (tags count frames in the order they are sealed), else as it is."""
        return self._sealer.seal(frame) if self._sealer is not None else frame

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
            keyed = KeyedConnection(self.key, DIALER) if self.key is not None else None
            if keyed is not None:
                ours = dataclasses.replace(ours, version=KEYED_VERSION, nonce=keyed.nonce)
                keyed.sent_hello(ours.encode())
            payload = ours.encode()
            self.send(encode_frame(FrameType.HELLO, payload))
            hello = frame = self.next_frame()
            if keyed is not None and hello.type == FrameType.HELLO:
                # Keyed (§6): we prove the key first; the device answers with its AUTH, or
                # refuses us (BUSY included) with an untagged CLOSE before it.
                peer = Hello.decode(hello.payload, keyed=True)
                keyed.peer_hello(hello.payload, peer.session, ours.session)
                self.send(encode_frame(FrameType.AUTH, keyed.proof))
                frame = self.next_frame()
            busy = frame.type == FrameType.CLOSE and frame.payload[:1] == bytes([CloseCode.BUSY])
            if not busy or time.monotonic() >= deadline:
                break
            self.sock.close()
            time.sleep(0.05)
            self.sock = self._dial()
            self.decoder = FrameDecoder(1 << 20)
            self.frames.clear()
        assert hello.type == FrameType.HELLO, hello
        if keyed is not None:
            assert frame.type == FrameType.AUTH, frame
            keyed.verify(frame.payload)
            self._sealer = keyed.sealer()
            self.decoder.expect_tags(keyed.tag_check())
            self.frames.extend(self.decoder.feed(b""))  # what came with the AUTH, tagged
        self.peer_hello = Hello.decode(hello.payload, keyed=keyed is not None)
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
