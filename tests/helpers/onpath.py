"""An on-path attacker for keyed links (docs/security.md): a frame-aware TCP proxy.

It forwards a client's connections to a target, frame by frame on the client's side, and
lets a test modify, replay, inject or drop the client's frames; the target's side is copied
as it is. Used against a host ``WiFiSocket.serve`` (tests/unit/test_keyed_link.py) and
against the device (tests/hil/test_tamper.py).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import zlib
from collections.abc import Callable

from harness.wifisocket.frame import FrameType, encode_frame

Hook = Callable[[int, int, bytes], list[bytes]]


class FrameProxy:
    """Forwards TCP between a client and ``target`` (host, port), frame by frame on the
    client's side; ``port`` is where clients connect (on 127.0.0.1).

    ``hook(connection, index, frame)`` returns what to forward instead of each client
    frame (index 0 the HELLO, 1 the AUTH, then the tagged frames); the server's side is
    copied as it is.
    """

    def __init__(self, target: tuple[str, int], hook: Hook) -> None:
        self.target = target
        self.hook = hook
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._run(self._accept)

    def _run(self, fn: Callable[..., None], *args) -> None:
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        self._threads.append(t)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self._socks += [client, server]
            n = self.connections
            self.connections += 1
            self._run(self._frames, n, client, server)
            self._run(self._copy, server, client)

    def _frames(self, conn: int, src: socket.socket, dst: socket.socket) -> None:
        buf = b""
        index = 0
        try:
            while data := src.recv(65536):
                buf += data
                while len(buf) >= 16:
                    (length,) = struct.unpack_from(">I", buf, 4)
                    size = 20 + length + (16 if index >= 2 else 0)
                    if len(buf) < size:
                        break
                    frame, buf = buf[:size], buf[size:]
                    for out in self.hook(conn, index, frame):
                        dst.sendall(out)
                    index += 1
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def _copy(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        """Break the current connections (a reset, as a network fault would)."""
        for s in self._socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self._socks.clear()

    def close(self) -> None:
        self.listener.close()
        self.cut()


def _text_frame(frame: bytes) -> bool:
    return frame[2] == FrameType.TEXT


def _tamper(frame: bytes) -> bytes:
    """Change the payload's first byte and fix the CRC: only the tag can tell."""
    body = bytearray(frame[:-20])
    body[16] ^= 0x01
    return bytes(body) + struct.pack(">I", zlib.crc32(body)) + frame[-16:]


def _forged(seq: int) -> bytes:
    """A TEXT frame with a right CRC and a made-up tag: what an attacker without the key sends."""
    return encode_frame(FrameType.TEXT, b"forged", seq=seq) + os.urandom(16)


_ATTACKS: dict[str, Callable[[bytes], list[bytes]]] = {
    "modified": lambda f: [_tamper(f)],
    "replayed": lambda f: [f, f],
    "injected": lambda f: [_forged(struct.unpack_from(">I", f, 8)[0]), f],
    "dropped": lambda f: [],
}
#: The attacks on a live stream, by name (``attack(name)`` makes one).
ATTACKS = tuple(_ATTACKS)


def attack(name: str) -> Hook:
    """A fresh hook that applies the attack ``name`` once, to the first TEXT frame the
    client sends (on whichever connection: a first attempt refused with BUSY has none)."""
    done = []
    act = _ATTACKS[name]

    def hook(conn: int, index: int, frame: bytes) -> list[bytes]:
        if index >= 2 and _text_frame(frame) and not done:
            done.append(index)
            return act(frame)
        return [frame]

    return hook
