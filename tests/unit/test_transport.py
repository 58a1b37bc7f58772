"""The transport's output queue: whatever the kernel takes, bytes go out once and in order."""

from __future__ import annotations

import socket

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.wifisocket.transport import POLLIN, POLLOUT, Transport


def _drain(sock: socket.socket, into: bytearray) -> None:
    while True:
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            return
        if not chunk:
            return
        into += chunk


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=40_000), min_size=1, max_size=30))
def test_queued_writes_arrive_whole_and_in_order(chunks: list[bytes]) -> None:
    a, b = socket.socketpair()
    with a, b:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # the kernel takes little
        b.setblocking(False)
        t = Transport()
        t.sock, t.fd = a, a.fileno()  # attach() sets TCP options a socketpair lacks
        a.setblocking(False)
        t.watch(t.fd, POLLIN)
        got = bytearray()
        for chunk in chunks:
            t.write(chunk)
            _drain(b, got)
        for _ in range(10_000):
            if not t.outq:
                break
            t.sync_mask()
            assert t.watched[t.fd] == POLLIN | POLLOUT  # waits for room while queued
            t.write_some()
            _drain(b, got)
        assert not t.outq
        _drain(b, got)
        assert bytes(got) == b"".join(chunks)
        t.sync_mask()
        assert t.watched[t.fd] == POLLIN
