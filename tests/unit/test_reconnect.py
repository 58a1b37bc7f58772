"""The reconnecting WiFiSocket over loopback TCP: against Python peers and through netem.

Both topologies: the host dials (and dials again), and the host serves (and accepts the
peer dialling back in). Every wait here is bounded by ``WAIT``.
"""

from __future__ import annotations

import itertools
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from harness import ConnectionLost, ProtocolError, SessionLost, Timeout, WiFiSocket
from harness.netem import CutAfter, LimitData, Proxy, ResetPeer
from harness.wifisocket import Backoff, Reconnect, ReconnectFailed
from harness.wifisocket.frame import CloseCode, FrameDecoder, FrameType
from harness.wifisocket.session import Session
from tests.helpers.net import free_port
from tests.helpers.peer import Peer
from tests.helpers.wait import wait_until

LOCAL = "127.0.0.1"
WAIT = 10.0  # every wait in this file is bounded by this
# Quick reconnects for tests (the defaults are for WiFi).
FAST: dict[str, Any] = {
    "backoff_initial": 0.01,
    "backoff_max": 0.05,
    "keepalive_ms": 50,
    "dead_after": 1.0,
    "connect_timeout": 1.0,
    "reconnect_timeout": WAIT,
}


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4) as ex:
        yield ex


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server((LOCAL, 0)) as lst:
        lst.settimeout(WAIT)
        yield lst


def accept_peer(listener: socket.socket, session: Session | None = None, **kw: Any) -> Peer:
    """Accept one connection as a Python device (a fresh Session unless one is given)."""
    conn, _ = listener.accept()
    peer = Peer(conn, **kw)
    if session is not None:
        peer.s = session
    return peer


# --- the backoff schedule (pure) ---------------------------------------------------------------


def test_backoff_is_immediate_then_doubles_up_to_the_cap() -> None:
    b = Backoff(0.1, 1.0, 0.0)
    assert [b.delay(n) for n in range(7)] == [0.0, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert b.delay(10_000) == 1.0  # no overflow


def test_backoff_jitter_stays_within_bounds_and_replays_from_its_seed() -> None:
    a = Backoff(0.05, 2.0, 0.5, random.Random(42))
    b = Backoff(0.05, 2.0, 0.5, random.Random(42))
    delays = [a.delay(n) for n in range(1, 30)]
    assert delays == [b.delay(n) for n in range(1, 30)]
    for n, d in enumerate(delays, start=1):
        assert a.base(n) * 0.5 <= d <= a.base(n)
    assert len(set(delays[10:])) > 1  # the capped waits still spread out
    other = Backoff(0.05, 2.0, 0.5, random.Random(43))
    assert [other.delay(n) for n in range(1, 30)] != delays


@pytest.mark.parametrize(
    "kwargs",
    [
        {"backoff_initial": 0},
        {"backoff_max": 0.01, "backoff_initial": 0.1},
        {"backoff_jitter": 1.5},
        {"reconnect_timeout": -1},
        {"connect_timeout": 0},
        {"on_reconnect": 3},
    ],
)
def test_bad_reconnect_options_fail_before_connecting(kwargs: dict[str, Any]) -> None:
    with pytest.raises((ValueError, TypeError)):
        WiFiSocket(LOCAL, 9, timeout=WAIT, **kwargs)


# --- host connects: the host dials again ---------------------------------------------------


def test_a_dropped_connection_resumes_and_nothing_is_lost_or_repeated(pool, listener) -> None:
    session = Session(max_message=4096, window=8192, keepalive_ms=0, dead_after=0)

    def device() -> list[str | bytes]:
        got: list[str | bytes] = []
        inbox = None
        for cut_at in (10, 20, 30):  # three connections, one session
            peer = accept_peer(listener, session)
            if inbox is not None:
                peer.inbox = inbox  # delivered (and acknowledged) before the drop
            inbox = peer.inbox
            peer.open()
            while len(got) < cut_at:
                got.append(peer.recv())
                peer.send(got[-1])  # echo
            if cut_at < 30:
                peer.conn.close()  # drop the connection in the middle of the stream
        peer.echo_until_closed()
        return got

    fut = pool.submit(device)
    seen: list[Reconnect] = []
    port = listener.getsockname()[1]
    with WiFiSocket(LOCAL, port, timeout=WAIT, on_reconnect=seen.append, **FAST) as ws:
        msgs = [f"m{i}" if i % 2 else f"m{i}".encode() for i in range(30)]
        for m in msgs:
            ws.send(m)
        echoed = [ws.receive() for _ in msgs]
        assert echoed == msgs
        assert ws.reconnects == 2
    assert fut.result(WAIT) == msgs
    assert len(seen) == 2 and all(r.resumed and not r.session_lost for r in seen)
    assert [r.count for r in seen] == [1, 2]
    assert all(r.downtime >= 0 and r.attempts >= 1 and r.cause for r in seen)


def test_send_blocks_while_the_peer_is_away_then_goes_through(pool) -> None:
    port = free_port()
    session = Session(max_message=4096, window=8192, keepalive_ms=0, dead_after=0)
    listening, away, back = threading.Event(), threading.Event(), threading.Event()

    def device() -> list[str | bytes]:
        with socket.create_server((LOCAL, port)) as lst:
            lst.settimeout(WAIT)
            listening.set()
            peer = accept_peer(lst, session)
            peer.open()
            first = peer.recv()
            peer.conn.close()
        away.set()
        assert back.wait(WAIT)  # meanwhile nobody listens: connections are refused
        with socket.create_server((LOCAL, port)) as lst:
            lst.settimeout(WAIT)
            peer = accept_peer(lst, session)
            peer.open()
            return [first, peer.recv(), peer.recv()]

    fut = pool.submit(device)
    assert listening.wait(WAIT)
    with WiFiSocket(LOCAL, port, timeout=WAIT, **FAST) as ws:
        ws.send("before")
        assert away.wait(WAIT)
        wait_until(lambda: poke(ws), "the loss to be noticed", WAIT)
        # The link is down: a short send times out and its message is not sent...
        with pytest.raises(Timeout, match="link stayed down"):
            ws.send("not sent", timeout=0.05)
        assert ws.unconfirmed == []
        back.set()
        # ...and a patient one waits for the reconnect.
        ws.send("during")
        ws.send("after")
        assert fut.result(WAIT) == ["before", "during", "after"]
        ws.flush(timeout=WAIT)
        assert ws.unconfirmed == []


def poke(ws: WiFiSocket) -> bool:
    """Let the socket do its I/O for a moment; True once it knows the link is down."""
    with pytest.raises(Timeout):
        ws.receive(timeout=0.01)
    return not ws.connected


def test_peer_reboot_raises_session_lost_with_exactly_the_unconfirmed(pool, listener) -> None:
    def device() -> list[str | bytes]:
        peer = accept_peer(listener)
        peer.open()
        peer.send("old 1")
        peer.send("old 2")
        confirmed = [peer.recv(), peer.recv()]  # delivered and acknowledged
        # From here on the device reads raw bytes and never acknowledges: its app is stuck.
        frames: list = []
        decoder = FrameDecoder(1 << 20)
        while sum(f.type == FrameType.BINARY for f in frames) < 3:
            data = peer.conn.recv(65536)
            assert data
            got, _ = decoder.decode(data)
            frames += got
        peer.conn.close()  # the reboot
        new = accept_peer(listener)  # a new Session: a new session id
        new.open()
        new.send("new 1")
        return [*confirmed, new.recv()]

    fut = pool.submit(device)
    port = listener.getsockname()[1]
    with WiFiSocket(LOCAL, port, timeout=WAIT, **FAST) as ws:
        old_peer = ws.peer_session_id
        ws.send("c1")
        ws.send("c2")
        ws.flush(timeout=WAIT)
        unconfirmed = [b"u1", b"u2", b"u3"]
        for m in unconfirmed:
            ws.send(m)
        # What arrived before the reboot comes first, then the loss, then the new session.
        assert ws.receive() == "old 1"
        assert ws.receive() == "old 2"
        with pytest.raises(SessionLost) as info:
            ws.receive()
        assert info.value.unconfirmed == unconfirmed
        assert ws.receive() == "new 1"
        assert ws.peer_session_id not in (0, old_peer)
        assert ws.last_reconnect is not None and ws.last_reconnect.session_lost
        ws.send("after")
        assert fut.result(WAIT) == ["c1", "c2", "after"]


def test_session_lost_is_raised_by_send_too_and_only_once(pool, listener) -> None:
    def device() -> str | bytes:
        peer = accept_peer(listener)
        peer.open()
        peer.recv()
        peer.conn.close()
        new = accept_peer(listener)
        new.open()
        return new.recv()

    fut = pool.submit(device)
    port = listener.getsockname()[1]
    with WiFiSocket(LOCAL, port, timeout=WAIT, **FAST) as ws:
        ws.send("x")
        # The application is idle: the keepalive thread notices the drop and reconnects.
        wait_until(lambda: ws.last_reconnect is not None, "the reconnect", WAIT)
        with pytest.raises(SessionLost) as info:
            ws.send("not sent")
        # "x" was delivered, and its ack may or may not have made it before the reboot.
        assert info.value.unconfirmed in ([], ["x"])
        ws.send("to the new session")
        assert fut.result(WAIT) == "to the new session"
        with pytest.raises(Timeout):
            ws.receive(timeout=0.05)  # raised once only: nothing left to report


def test_gives_up_after_reconnect_timeout_with_a_clear_error(pool, listener) -> None:
    def device() -> None:
        peer = accept_peer(listener)
        peer.open()
        peer.recv()  # acknowledged
        frames = b""
        while FrameType.BINARY not in [f.type for f in FrameDecoder(4096).decode(frames)[0]]:
            data = peer.conn.recv(4096)
            assert data
            frames += data
        listener.close()  # the device is gone for good: connections are refused
        peer.conn.close()

    fut = pool.submit(device)
    port = listener.getsockname()[1]
    with WiFiSocket(LOCAL, port, timeout=WAIT, **{**FAST, "reconnect_timeout": 0.3}) as ws:
        ws.send("confirmed")
        ws.flush(timeout=WAIT)
        ws.send(b"never confirmed")
        fut.result(WAIT)
        with pytest.raises(ReconnectFailed) as info:
            ws.receive(timeout=WAIT)
        err = info.value
        assert isinstance(err, ConnectionLost)
        assert "gave up reconnecting" in str(err) and "reconnect_timeout=0.3" in str(err)
        assert "refused" in err.last_error
        assert err.attempts >= 2 and err.elapsed >= 0.3
        assert err.unconfirmed == [b"never confirmed"]
        with pytest.raises(ReconnectFailed):
            ws.send("later")  # the link is gone for good


def test_backoff_schedule_with_seeded_jitter(listener) -> None:
    """Attempts against a peer that hangs up on every connection follow the schedule."""
    accepted: list[float] = []
    stop = threading.Event()

    def device() -> None:
        peer = accept_peer(listener)
        peer.open()
        peer.send("hi")  # traffic: the next attempt is immediate, then the backoff starts
        peer.conn.close()
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(time.monotonic())
            conn.close()  # each attempt fails before HELLO

    th = threading.Thread(target=device)
    th.start()
    opts = {**FAST, "backoff_initial": 0.02, "backoff_max": 0.16, "backoff_jitter": 0.5,
            "backoff_seed": 1234, "reconnect_timeout": 1.0}
    try:
        with WiFiSocket(LOCAL, listener.getsockname()[1], timeout=WAIT, **opts) as ws:
            assert ws.receive() == "hi"
            with pytest.raises(ReconnectFailed):
                ws.receive(timeout=WAIT)
    finally:
        stop.set()
        th.join(WAIT)
    expected = Backoff(0.02, 0.16, 0.5, random.Random(1234))
    gaps = [b - a for a, b in itertools.pairwise(accepted)]
    assert len(gaps) >= 4, accepted
    for n, gap in enumerate(gaps, start=1):
        # Never earlier than the schedule (lateness is the machine's business).
        assert gap >= expected.delay(n) - 0.002, (n, gap, gaps)


def test_dead_peer_is_detected_and_the_link_reconnects(pool, listener) -> None:
    session = Session(max_message=4096, window=8192, keepalive_ms=0, dead_after=0)

    def device() -> list[str | bytes]:
        peer = accept_peer(listener, session)
        peer.open()
        got = [peer.recv()]
        # Mute: the connection stays open, nothing is read or answered any more.
        second = accept_peer(listener, session)
        peer.conn.close()
        second.open()
        got.append(second.recv())
        return got

    fut = pool.submit(device)
    seen: list[Reconnect] = []
    opts = {**FAST, "dead_after": 0.3}
    with WiFiSocket(LOCAL, listener.getsockname()[1], timeout=WAIT, on_reconnect=seen.append,
                    **opts) as ws:
        ws.send("one")
        ws.flush(timeout=WAIT)
        ws.send("two")  # into the mute connection: resent after the reconnect
        assert fut.result(WAIT) == ["one", "two"]
        ws.flush(timeout=WAIT)
    assert len(seen) == 1 and "silent" in seen[0].cause and seen[0].resumed


def test_peer_close_timeout_reconnects_but_replaced_is_final(pool, listener) -> None:
    session = Session(max_message=4096, window=8192, keepalive_ms=0, dead_after=0)

    def device() -> None:
        peer = accept_peer(listener, session)
        peer.open()
        peer.conn.sendall(session.drop_connection(CloseCode.TIMEOUT, "you were silent"))
        peer.conn.close()
        peer = accept_peer(listener, session)
        peer.open()
        peer.conn.sendall(session.drop_connection(CloseCode.REPLACED, "someone else"))
        peer.conn.close()

    fut = pool.submit(device)
    with WiFiSocket(LOCAL, listener.getsockname()[1], timeout=WAIT, **FAST) as ws:
        with pytest.raises(ProtocolError) as info:
            ws.receive(timeout=WAIT)
        assert info.value.code == CloseCode.REPLACED
        assert ws.reconnects == 1 and "you were silent" in ws.last_reconnect.cause  # type: ignore[union-attr]
    fut.result(WAIT)


def test_on_reconnect_may_use_the_socket(pool, listener) -> None:
    session = Session(max_message=4096, window=8192, keepalive_ms=0, dead_after=0)

    def device() -> list[str | bytes]:
        peer = accept_peer(listener, session)
        peer.open()
        peer.conn.close()
        peer = accept_peer(listener, session)
        peer.open()
        return [peer.recv()]

    fut = pool.submit(device)
    ws_box: list[WiFiSocket] = []
    threads: list[str] = []

    def hello_again(info: Reconnect) -> None:
        threads.append(threading.current_thread().name)
        ws_box[0].send(f"reconnect {info.count}")  # no deadlock: called without the lock

    ws = WiFiSocket(LOCAL, listener.getsockname()[1], timeout=WAIT, on_reconnect=hello_again,
                    **FAST)
    ws_box.append(ws)
    try:
        # The application does nothing: the keepalive thread reconnects and calls back.
        assert fut.result(WAIT) == ["reconnect 1"]
        assert threads and threads[0].startswith("wifisocket-keepalive")
    finally:
        ws.close()


def test_a_failing_on_reconnect_is_logged_and_the_link_goes_on(pool, listener, caplog) -> None:
    session = Session(max_message=4096, window=8192, keepalive_ms=0, dead_after=0)

    def device() -> str | bytes:
        peer = accept_peer(listener, session)
        peer.open()
        peer.conn.close()
        peer = accept_peer(listener, session)
        peer.open()
        return peer.recv()

    def broken(info: Reconnect) -> None:
        raise RuntimeError("bug in the application's callback")

    fut = pool.submit(device)
    with WiFiSocket(LOCAL, listener.getsockname()[1], timeout=WAIT, on_reconnect=broken,
                    **FAST) as ws:
        wait_until(lambda: ws.reconnects == 1, "the reconnect", WAIT)
        wait_until(lambda: "on_reconnect callback failed" in caplog.text, "the log record", WAIT)
        assert "bug in the application's callback" in caplog.text
        ws.send("still fine")
        assert fut.result(WAIT) == "still fine"


def test_reconnect_false_makes_a_drop_final(pool, listener) -> None:
    def device() -> None:
        peer = accept_peer(listener)
        peer.open()
        peer.conn.close()

    fut = pool.submit(device)
    with WiFiSocket(LOCAL, listener.getsockname()[1], timeout=WAIT, reconnect=False) as ws:
        fut.result(WAIT)
        with pytest.raises(ConnectionLost) as info:
            ws.receive(timeout=WAIT)
        assert not isinstance(info.value, ReconnectFailed)
        assert ws.reconnects == 0


# --- host serves: the device dials back in ----------------------------------------------------


def dial_as_device(port: int, session: Session) -> Peer:
    conn = socket.create_connection((LOCAL, port), timeout=WAIT)
    peer = Peer(conn)
    peer.s = session
    peer.open()
    return peer


def test_serve_accepts_the_device_dialling_back_in(pool, listener) -> None:
    port = listener.getsockname()[1]
    session = Session(max_message=4096, window=8192, keepalive_ms=0, dead_after=0)

    def device() -> list[str | bytes]:
        peer = dial_as_device(port, session)
        got = [peer.recv()]
        peer.send("d1")
        peer.conn.close()
        peer = dial_as_device(port, session)  # redial: the session resumes
        got.append(peer.recv())
        peer.send("d2")
        got.append(peer.recv())
        return got

    fut = pool.submit(device)
    with WiFiSocket.accept(listener, timeout=WAIT, **FAST) as ws:
        ws.send("h1")
        assert ws.receive() == "d1"
        ws.send("h2")  # maybe into the dropped connection: resent on the new one
        assert ws.receive() == "d2"
        ws.send("h3")
        assert fut.result(WAIT) == ["h1", "h2", "h3"]
        assert ws.reconnects == 1 and ws.last_reconnect is not None
        assert ws.last_reconnect.resumed


def test_serve_ignores_connections_that_never_say_hello(pool, listener) -> None:
    port = listener.getsockname()[1]
    with socket.create_connection((LOCAL, port), timeout=WAIT) as idle, \
            socket.create_connection((LOCAL, port), timeout=WAIT) as garbage:
        garbage.sendall(b"GET / HTTP/1.1\r\n\r\n")
        fut = pool.submit(dial_as_device, port, Session(keepalive_ms=0, dead_after=0))
        with WiFiSocket.accept(listener, timeout=WAIT, **FAST) as ws:
            peer = fut.result(WAIT)
            ws.send("served")
            assert peer.recv() == "served"
            garbage.settimeout(WAIT)
            reply = garbage.recv(4096)
            frames, _ = FrameDecoder(4096).decode(reply)
            assert frames and frames[0].type == FrameType.CLOSE
            assert frames[0].payload[0] == CloseCode.PROTOCOL
            idle.settimeout(WAIT)
            # The silent one is closed after connect_timeout, with TIMEOUT.
            frames, _ = FrameDecoder(4096).decode(_read_to_eof(idle))
            assert frames[-1].type == FrameType.CLOSE
            assert frames[-1].payload[0] == CloseCode.TIMEOUT
            ws.send("still served")
            assert peer.recv() == "still served"


def _read_to_eof(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def test_serve_gives_up_when_the_device_never_dials_back(pool, listener) -> None:
    port = listener.getsockname()[1]
    fut = pool.submit(dial_as_device, port, Session(keepalive_ms=0, dead_after=0))
    with WiFiSocket.accept(listener, timeout=WAIT, **{**FAST, "reconnect_timeout": 0.2}) as ws:
        fut.result(WAIT).conn.close()  # the device goes away and never dials again
        with pytest.raises(ReconnectFailed, match="waiting for the peer to dial back in"):
            ws.receive(timeout=WAIT)
    assert listener.fileno() != -1  # the caller's listener is the caller's


def test_serve_without_reconnect_stops_listening() -> None:
    port = free_port()
    with ThreadPoolExecutor(max_workers=1) as ex:
        fut: Future[Peer] = ex.submit(_dial_retrying, port)
        with WiFiSocket.serve(port, LOCAL, timeout=WAIT, reconnect=False) as ws:
            peer = fut.result(WAIT)
            ws.send("x")
            assert peer.recv() == "x"
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((LOCAL, port), timeout=WAIT)


def _dial_retrying(port: int) -> Peer:
    deadline = time.monotonic() + WAIT
    while True:
        try:
            return dial_as_device(port, Session(keepalive_ms=0, dead_after=0))
        except ConnectionRefusedError:
            assert time.monotonic() < deadline
            time.sleep(0.01)


def test_serve_replaces_a_connection_by_a_newer_one_that_says_hello(pool, listener) -> None:
    port = listener.getsockname()[1]
    session = Session(max_message=4096, window=8192, keepalive_ms=0, dead_after=0)
    fut = pool.submit(dial_as_device, port, session)
    with WiFiSocket.accept(listener, timeout=WAIT, **FAST) as ws:
        first = fut.result(WAIT)
        ws.send("a")
        assert first.recv() == "a"
        # The device found the connection dead (the host did not) and dials again.
        second = dial_as_device(port, session)
        # (the old connection's bytes are not fed to the session the new one uses)
        frames, _ = FrameDecoder(4096).decode(_read_to_eof(first.conn))
        assert frames[-1].type == FrameType.CLOSE
        assert frames[-1].payload[0] == CloseCode.REPLACED
        ws.send("b")
        assert second.recv() == "b"
        assert ws.reconnects == 1 and ws.last_reconnect is not None
        assert "replaced by a newer connection" in ws.last_reconnect.cause
        assert ws.last_reconnect.resumed


# --- both topologies through netem: two reconnecting WiFiSockets -----------------------------

SMALL = {**FAST, "max_message": 1024, "window": 4096}


@pytest.fixture
def pair(listener) -> Iterator[tuple[WiFiSocket, WiFiSocket, Proxy]]:
    """(dialler, server, proxy): a WiFiSocket dialling through netem to one that serves."""
    with Proxy(upstream=listener.getsockname(), seed=4) as proxy, \
            ThreadPoolExecutor(max_workers=1) as ex:
        fut = ex.submit(WiFiSocket.accept, listener, timeout=WAIT, **SMALL)
        dialler = WiFiSocket(*proxy.address, timeout=WAIT, **SMALL)
        server = fut.result(WAIT)
        try:
            yield dialler, server, proxy
        finally:
            dialler.close()
            server.close()


def _message(tag: str, i: int) -> str | bytes:
    return f"{tag}{i}:" + "x" * (i % 97) if i % 3 else f"{tag}{i}".encode()


def _exchange(a: WiFiSocket, b: WiFiSocket, n: int, on_progress: Callable[[int], None]) -> None:
    """Both send ``n`` messages and receive the other's, at once; check every one.

    ``on_progress(i)`` is called as ``a`` sends its message ``i``: its sends are paced by
    the peer's window, so traffic is in flight both ways then.
    """

    def run(ws: WiFiSocket, tag: str, other: str, progress: bool) -> None:
        for i in range(n):
            if progress:
                on_progress(i)
            ws.send(_message(tag, i))
        for i in range(n):
            got = ws.receive(timeout=WAIT)
            want = _message(other, i)
            assert got == want, f"{tag} received {got!r}, expected {want!r}"

    with ThreadPoolExecutor(max_workers=1) as ex:
        fut = ex.submit(run, b, "b", "a", False)
        run(a, "a", "b", True)
        fut.result(WAIT)


def remove_after_reconnect(proxy: Proxy, name: str, connections_before: int) -> None:
    """Take a toxic out once it cut a connection (it would cut the new ones too)."""
    wait_until(lambda: proxy.connections_total > connections_before, "a new connection", WAIT)
    proxy.remove(name)


FAULTS: dict[str, Callable[[int], Any]] = {
    "reset": lambda i: ResetPeer(after_ms=0),
    "limit_data": lambda i: LimitData(bytes=random.Random(i).randrange(1, 3000)),
    "cut_after": lambda i: CutAfter(seconds=0.0),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_both_topologies_carry_everything_across_cuts(pair, fault: str) -> None:
    dialler, server, proxy = pair
    removers: list[threading.Thread] = []

    def cut(i: int) -> None:
        if i in (300, 900, 1500):
            direction = ("upstream", "downstream", "both")[len(removers)]
            before = proxy.connections_total
            name = proxy.add(FAULTS[fault](i), direction=direction)  # type: ignore[arg-type]
            removers.append(threading.Thread(target=remove_after_reconnect,
                                             args=(proxy, name, before)))
            removers[-1].start()

    try:
        _exchange(dialler, server, 2000, cut)
    finally:
        for t in removers:
            t.join(WAIT)
    assert dialler.reconnects >= 1 and server.reconnects >= 1
    dialler.flush(timeout=WAIT)
    server.flush(timeout=WAIT)
