"""Hostile peers against the host library over loopback (issue 17): what a peer can make
the host hold, and what it can make the host do."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from harness import WiFiSocket
from harness.wifisocket import link as link_module
from harness.wifisocket.frame import FrameDecoder, FrameType, Hello, encode_frame
from harness.wifisocket.link import OUTPUT_BACKLOG

LOCAL = "127.0.0.1"
WAIT = 10.0
MiB = 1 << 20

# The 4 M PINGs, scaled to what runs in CI in a few seconds; before PONGs coalesced
# this many moved the host's RSS by ~18 MiB (1 M: +37 MiB, 4 M: +150 MiB).
FLOOD_PINGS = 500_000


def rss() -> int:
    """This process's resident set size in bytes (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server((LOCAL, 0)) as lst:
        lst.settimeout(WAIT)
        yield lst


def _peer_hello(conn: socket.socket) -> FrameDecoder:
    """Read the host's HELLO, answer with ours (no keepalive: we only flood); returns the
    decoder of the host's stream."""
    decoder = FrameDecoder(1 << 20)
    frames: list = []
    while not frames:
        data = conn.recv(4096)
        assert data, "EOF before the host's HELLO"
        frames = decoder.feed(data)
    assert frames[0].type == FrameType.HELLO
    hello = Hello(4096, 8192, 0, 0x5EED)
    conn.sendall(encode_frame(FrameType.HELLO, hello.encode()))
    return decoder


def flood(conn: socket.socket, pings: int, chunk: int) -> bytes:
    """Send ``pings`` PINGs (nonces 1..pings), never reading; returns the last nonce."""
    n = 1
    while n <= pings:
        k = min(chunk, pings - n + 1)
        conn.sendall(b"".join(encode_frame(FrameType.PING, i.to_bytes(8, "big"))
                              for i in range(n, n + k)))
        n += k
    return pings.to_bytes(8, "big")


def read_frames_until(conn: socket.socket, decoder: FrameDecoder, want) -> list:
    """Read (the peer starts reading) until a frame satisfies ``want``; every frame read."""
    got: list = []
    deadline = time.monotonic() + WAIT
    while not any(want(f) for f in got):
        assert time.monotonic() < deadline, f"no such frame; got {len(got)} frames"
        conn.settimeout(max(0.01, deadline - time.monotonic()))
        data = conn.recv(1 << 16)
        assert data, "EOF"
        got += decoder.feed(data)
    return got


def test_a_ping_flood_without_reading_does_not_grow_host_memory(listener) -> None:
    port = listener.getsockname()[1]
    result: dict = {}
    flooded = threading.Event()
    go_read = threading.Event()

    def peer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(WAIT * 3)
            decoder = _peer_hello(conn)
            result["last"] = flood(conn, FLOOD_PINGS, 4096)
            flooded.set()
            assert go_read.wait(WAIT * 3)
            # Now read: the host's PONG for the newest PING comes through, then messages.
            frames = read_frames_until(
                conn, decoder, lambda f: f.type == FrameType.PONG and f.payload == result["last"])
            result["pongs"] = sum(f.type == FrameType.PONG for f in frames)
            conn.sendall(encode_frame(FrameType.TEXT, b"after the flood", seq=1))
            frames = read_frames_until(conn, decoder, lambda f: f.type == FrameType.TEXT)
            result["text"] = next(f.payload for f in frames if f.type == FrameType.TEXT)

    thread = threading.Thread(target=peer, daemon=True)
    thread.start()
    with WiFiSocket(LOCAL, port, timeout=WAIT) as ws:
        base = rss()
        peak = base
        queued = 0
        # The application leaves the socket idle (its keepalive thread serves the link).
        deadline = time.monotonic() + WAIT * 3
        while not flooded.is_set():
            assert time.monotonic() < deadline, "the flood did not get through"
            peak = max(peak, rss())
            queued = max(queued, ws._link.transport.queued)
            time.sleep(0.005)
        time.sleep(0.2)  # the host reads the rest of the flood
        peak = max(peak, rss())
        go_read.set()
        assert ws.receive(WAIT) == "after the flood"
        ws.send("still works")
        thread.join(WAIT)
    assert not thread.is_alive()
    assert result["text"] == b"still works"
    # Only the newest owed PONG is sent: far fewer PONGs than PINGs.
    assert result["pongs"] < FLOOD_PINGS // 100
    assert queued <= OUTPUT_BACKLOG + 1024
    assert peak - base <= 4 * MiB, f"RSS grew by {(peak - base) / MiB:.1f} MiB"


def test_backed_up_output_pauses_reading_and_the_link_survives(listener, monkeypatch) -> None:
    """One PING per segment and tiny socket buffers: each read owes a PONG the peer never
    takes. The host stops reading at the backlog bound (so the peer's sends block), is not
    fooled into calling the peer dead meanwhile, and carries on once the peer reads."""
    backlog = 4096  # the bound shrunk so that the test reaches it in a second or two
    monkeypatch.setattr(link_module, "OUTPUT_BACKLOG", backlog)
    port = listener.getsockname()[1]
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    blocked = threading.Event()
    go_read = threading.Event()
    result: dict = {}

    def peer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(WAIT)
            decoder = _peer_hello(conn)
            n = 0
            # Whole frames only: stop when the socket stays unwritable (the host stopped
            # reading and the buffers between us are full).
            while n < 2_000_000 and select.select([], [conn], [], 1.0)[1]:
                n += 1
                conn.sendall(encode_frame(FrameType.PING, n.to_bytes(8, "big")))
            result["sent"] = n
            blocked.set()
            assert go_read.wait(WAIT * 2)
            conn.settimeout(WAIT)
            read_frames_until(conn, decoder, lambda f: f.type == FrameType.PONG)
            conn.sendall(encode_frame(FrameType.TEXT, b"resumed", seq=1))
            frames = read_frames_until(conn, decoder, lambda f: f.type == FrameType.TEXT)
            result["text"] = next(f.payload for f in frames if f.type == FrameType.TEXT)

    thread = threading.Thread(target=peer, daemon=True)
    thread.start()
    with WiFiSocket(LOCAL, port, timeout=WAIT, dead_after=1.0, reconnect=False) as ws:
        sock = ws._link.transport.sock
        assert sock is not None
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        assert blocked.wait(WAIT * 2)
        assert result["sent"] < 2_000_000, "the host never stopped reading"
        queued = ws._link.transport.queued
        assert backlog < queued <= backlog + 128  # one read adds at most a PONG and an ACK
        time.sleep(1.5)  # longer than dead_after: the unread bytes show the peer is alive
        assert ws.connected
        # Paused: nothing more was read (only our own keepalive PINGs were added).
        assert ws._link.transport.queued <= queued + 2 * 28
        go_read.set()
        assert ws.receive(WAIT) == "resumed"
        ws.send("ok")
        thread.join(WAIT)
    assert result["text"] == b"ok"
