"""A scripted WiFiSocket peer for the host library's tests: the other end of a loopback
link, built from :class:`~harness.wifisocket.session.Session` and driven step by step by a
test script in a thread (blocking I/O)."""

from __future__ import annotations

import socket
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from harness.wifisocket.frame import FrameDecoder
from harness.wifisocket.session import Message, PeerClosed, Session

LOCAL = "127.0.0.1"
WAIT = 5.0  # every wait of the peer and of its tests is bounded by this


class Peer:
    """The other end, driven step by step by a test script in a thread (blocking I/O)."""

    def __init__(self, conn: socket.socket, **session: Any) -> None:
        session.setdefault("max_message", 4096)
        session.setdefault("window", 8192)
        session.setdefault("keepalive_ms", 0)
        session.setdefault("dead_after", 0)
        self.conn = conn
        conn.settimeout(WAIT)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.s = Session(**session)
        self.inbox: deque[str | bytes] = deque()
        self.closed: PeerClosed | None = None
        self.raw_log = bytearray()  # everything received, for checking the host's frames

    def hello(self) -> None:
        self.conn.sendall(self.s.connection_made(time.monotonic()))

    def pump(self) -> bool:
        """Read once, handle events, send what is owed. False at EOF."""
        data = self.conn.recv(65536)
        if not data:
            return False
        self.raw_log += data
        for ev in self.s.receive_data(data, time.monotonic()):
            if isinstance(ev, Message):
                self.inbox.append(ev.data)
            elif isinstance(ev, PeerClosed):
                self.closed = ev
        out = self.s.data_to_send()
        if out:
            self.conn.sendall(out)
        return True

    def open(self) -> None:
        self.hello()
        # The host may say HELLO and CLOSE in one segment: stop at either.
        while not self.s.is_open and self.closed is None:
            assert self.pump(), "EOF during handshake"

    def recv(self) -> str | bytes:
        while not self.inbox:
            assert self.pump(), "EOF"
        return self.inbox.popleft()

    def send(self, msg: str | bytes) -> None:
        self.conn.sendall(self.s.send_message(msg, time.monotonic()))

    def echo_until_closed(self) -> PeerClosed | None:
        """Echo every message back (waiting for window as needed) until CLOSE or EOF."""
        while True:
            while self.inbox:
                msg = self.inbox[0]
                size = len(msg.encode() if isinstance(msg, str) else msg)
                if not self.s.can_send(size):
                    break
                self.send(self.inbox.popleft())
            if self.closed is not None or not self.pump():
                return self.closed

    def frames_received(self) -> list:
        """Every frame the host sent us (re-decoded from the raw log)."""
        frames, _ = FrameDecoder(1 << 20).decode(bytes(self.raw_log))
        return frames


Script = Callable[[Peer], Any]


def device(pool: ThreadPoolExecutor, listener: socket.socket, script: Script,
           **session: Any) -> tuple[int, Future]:
    """Run ``script`` as a listening device; returns its port and the script's future."""

    def run() -> Any:
        conn, _ = listener.accept()
        with conn:
            peer = Peer(conn, **session)
            return script(peer)

    return listener.getsockname()[1], pool.submit(run)


def echo(peer: Peer) -> PeerClosed | None:
    peer.open()
    return peer.echo_until_closed()


def dial(port: int, script: Script, **session: Any) -> Any:
    """Act as a device that dials in to ``port`` (retrying until the host listens)."""
    deadline = time.monotonic() + WAIT
    while True:
        try:
            conn = socket.create_connection((LOCAL, port), timeout=WAIT)
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    with conn:
        return script(Peer(conn, **session))
