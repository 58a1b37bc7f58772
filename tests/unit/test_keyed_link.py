"""Attacks on a keyed link between two host WiFiSockets over loopback (docs/security.md).

A keyed ``WiFiSocket.serve`` echoes; a keyed client talks to it, directly or through a
frame-aware TCP proxy that plays the on-path attacker. Each attack must be rejected and the
legitimate session must go on delivering every message exactly once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from harness import WiFiSocket, aio
from harness.errors import (
    AuthenticationFailed,
    ConnectionLost,
    PeerClosedNormally,
    ProtocolError,
)
from harness.wifisocket.frame import CloseCode, FrameType, encode_frame
from harness.wifisocket.session import Handshake, Message, Session, close_frame
from tests.helpers.net import free_port
from tests.helpers.onpath import ATTACKS, FrameProxy, attack

LOCAL = "127.0.0.1"
KEY = bytes(range(0x40, 0x60))
WAIT = 10.0
FAST = {"backoff_initial": 0.02, "backoff_max": 0.2, "connect_timeout": 2.0}


def _echo_server(port: int, n: int, key: bytes | None = KEY,
                 **options) -> tuple[list, WiFiSocket | None]:
    """Serve once: echo ``n`` messages, then wait for the peer's CLOSE."""
    got: list = []
    with WiFiSocket.serve(port, LOCAL, timeout=WAIT, key=key, **FAST, **options) as s:
        for _ in range(n):
            msg = s.receive(WAIT)
            got.append(msg)
            s.send(msg)
        with pytest.raises(PeerClosedNormally):
            s.receive(WAIT)
        return got, s


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=3) as ex:
        yield ex


def _serve(pool: ThreadPoolExecutor, n: int, **kw) -> tuple[int, Future]:
    port = free_port()
    fut = pool.submit(_echo_server, port, n, **kw)
    return port, fut


def _dial_when_listening(port: int, **kw) -> WiFiSocket:
    # serve() may not listen yet: retry the refused TCP connect only.
    for _ in range(100):
        try:
            return WiFiSocket(LOCAL, port, timeout=WAIT, **FAST, **kw)
        except Exception as exc:
            if "refused" not in str(exc):
                raise
        threading.Event().wait(0.05)
    raise AssertionError("the server never listened")


def _talk(ws: WiFiSocket, msgs: list) -> None:
    for m in msgs:
        ws.send(m)
        assert ws.receive(WAIT) == m


MSGS = ["one", b"\x00two", "three" * 300, b"four" * 1024, "five"]


# --- handshake failures ----------------------------------------------------------------------

@pytest.mark.parametrize(("client_key", "server_key", "reason"), [
    (None, KEY, "peer has no key"),
    (KEY, None, "no key on this side"),
    (bytes(16), KEY, "authentication failed"),
])
def test_a_failed_handshake_raises_at_once_and_the_server_serves_on(
        pool: ThreadPoolExecutor, client_key, server_key, reason: str) -> None:
    port, fut = _serve(pool, len(MSGS), key=server_key)
    with pytest.raises(AuthenticationFailed) as info:
        _dial_when_listening(port, key=client_key)
    assert reason in info.value.reason and info.value.code == CloseCode.AUTH
    for secret in (KEY.hex(), bytes(16).hex(), repr(KEY), repr(bytes(16))):
        assert secret not in str(info.value)
    # The server was not disturbed: the right client is served.
    with WiFiSocket(LOCAL, port, timeout=WAIT, key=server_key, **FAST) as good:
        _talk(good, MSGS)
        assert good.reconnects == 0
    got, server = fut.result(WAIT)
    assert got == MSGS
    assert server is not None and server.stats.auth_failures == 1


def test_a_wrong_key_is_not_retried(pool: ThreadPoolExecutor) -> None:
    """No hammering: one connection, one refusal, one exception."""
    accepted = []
    with socket.create_server((LOCAL, 0)) as lst:
        lst.settimeout(WAIT)
        port = lst.getsockname()[1]

        def refuse() -> None:
            while True:
                try:
                    conn, _ = lst.accept()
                except OSError:
                    return
                accepted.append(conn)
                conn.recv(4096)
                conn.sendall(encode_frame(FrameType.CLOSE, b"\x0cauthentication failed"))

        t = threading.Thread(target=refuse, daemon=True)
        t.start()
        with pytest.raises(AuthenticationFailed, match="peer closed"):
            WiFiSocket(LOCAL, port, timeout=3, key=KEY)
        threading.Event().wait(0.3)
    assert len(accepted) == 1
    for c in accepted:
        c.close()


def test_a_reflected_hello_is_refused() -> None:
    """The attacker answers our HELLO with our own HELLO (and would reflect our AUTH)."""
    with socket.create_server((LOCAL, 0)) as lst:
        lst.settimeout(WAIT)
        port = lst.getsockname()[1]

        def mirror() -> None:
            conn, _ = lst.accept()
            with conn:
                conn.settimeout(WAIT)
                while data := conn.recv(4096):
                    conn.sendall(data)

        t = threading.Thread(target=mirror, daemon=True)
        t.start()
        with pytest.raises(AuthenticationFailed, match="reflected HELLO"):
            WiFiSocket(LOCAL, port, timeout=3, key=KEY)
        t.join(WAIT)


class BusyDevice:
    """A keyed acceptor that holds its session for another host, as the device does
    (docs/protocol.md §2 Strangers, §6): it verifies each dialer's AUTH and refuses it with
    an untagged CLOSE BUSY, ``busy`` times; then it takes the next dialer (sends its AUTH)
    and echoes. Built on the serve side's own sans-IO steps (Handshake, then the Session)."""

    def __init__(self, busy: int) -> None:
        self.busy = busy
        self.refused = 0  # dialers that proved the key and got BUSY
        self.listener = socket.create_server((LOCAL, 0))
        self.listener.settimeout(WAIT)
        self.port = self.listener.getsockname()[1]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        session = Session(key=KEY, keepalive_ms=0, dead_after=0)
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(WAIT)
                try:
                    if self._serve(conn, session):
                        return
                except (OSError, ProtocolError):
                    pass  # the dialer gave up on this connection

    def _serve(self, conn: socket.socket, session: Session) -> bool:
        hs = Handshake(session.max_message, session)
        done = False
        while not done:
            data = conn.recv(4096)
            if not data:
                return False
            done = hs.feed(data)
            conn.sendall(hs.reply)  # our HELLO, once
            hs.reply = b""
        if self.refused < self.busy:
            self.refused += 1
            conn.sendall(close_frame(CloseCode.BUSY, "another peer's session is live"))
            return False
        now = 0.0  # no timers here: keepalive and dead bound are off
        conn.sendall(session.connection_made(now, hs))
        events = session.receive_data(bytes(hs.data), now)
        while True:
            for ev in events:
                if isinstance(ev, Message):
                    conn.sendall(session.send_message(ev.data, now))
            conn.sendall(session.data_to_send())
            if not session.is_open:
                return True
            data = conn.recv(65536)
            if not data:
                return True
            events = session.receive_data(data, now)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (Linux)
        self.listener.close()
        self._thread.join(WAIT)
        assert not self._thread.is_alive()


@pytest.mark.parametrize("facade", ["blocking", "asyncio"])
def test_a_device_holding_its_session_refuses_a_keyed_dialer_with_busy(facade: str) -> None:
    """BUSY comes after the dialer's AUTH and before the device's: the constructor never
    counts itself connected, tries again within its timeout and raises ProtocolError BUSY
    (not AuthenticationFailed), as on an unkeyed link."""
    device = BusyDevice(busy=1 << 30)
    try:
        with pytest.raises(ProtocolError) as info:
            if facade == "blocking":
                WiFiSocket(LOCAL, device.port, timeout=1.0, key=KEY)
            else:
                asyncio.run(aio.WiFiSocket.connect(LOCAL, device.port, timeout=1.0, key=KEY))
        assert info.value.code == CloseCode.BUSY
        assert not isinstance(info.value, AuthenticationFailed)
        assert "another peer's session is live" in str(info.value)
        assert device.refused >= 2  # it dialled again (and proved the key each time)
    finally:
        device.close()


def test_a_keyed_constructor_gets_the_device_once_it_stops_answering_busy() -> None:
    device = BusyDevice(busy=2)
    try:
        with WiFiSocket(LOCAL, device.port, timeout=WAIT, key=KEY) as ws:
            _talk(ws, MSGS)
            assert ws.reconnects == 0
        assert device.refused == 2
    finally:
        device.close()


# --- the on-path attacker (tests/helpers/onpath.py) ---------------------------------------


@pytest.mark.parametrize("name", ATTACKS)
def test_an_attacked_stream_is_rejected_and_still_delivered_exactly_once(
        pool: ThreadPoolExecutor, name: str) -> None:
    port, fut = _serve(pool, len(MSGS))
    threading.Event().wait(0.2)
    proxy = FrameProxy((LOCAL, port), attack(name))
    try:
        with _dial_when_listening(proxy.port, key=KEY) as ws:
            _talk(ws, MSGS)
            reconnects = ws.reconnects
        got, server = fut.result(WAIT)
    finally:
        proxy.close()
    assert got == MSGS  # exactly once, in order, nothing forged
    assert server is not None
    if name == "dropped":
        # A dropped frame: the next one fails its tag (n skipped) or the link goes silent.
        assert reconnects >= 1 or server.stats.bad_tags >= 1
    else:
        assert server.stats.bad_tags >= 1  # counted, and the link came back
        assert reconnects >= 1
    assert proxy.connections >= 2


def test_a_replayed_handshake_does_not_touch_the_session(pool: ThreadPoolExecutor) -> None:
    """The dialer's HELLO + AUTH, recorded and replayed on a new connection while the
    legitimate client is connected: refused (the proof is for another nonce), and the
    legitimate connection is neither replaced nor slowed."""
    recorded: list[bytes] = []

    def record(conn: int, index: int, frame: bytes) -> list[bytes]:
        if conn == 0 and index < 2:
            recorded.append(frame)
        return [frame]

    port, fut = _serve(pool, len(MSGS))
    threading.Event().wait(0.2)
    proxy = FrameProxy((LOCAL, port), record)
    try:
        with _dial_when_listening(proxy.port, key=KEY) as ws:
            _talk(ws, MSGS[:2])
            with socket.create_connection((LOCAL, port), timeout=WAIT) as replay:
                # As the dialer would: HELLO, the server's HELLO (alone), then AUTH.
                replay.sendall(recorded[0])
                answer = b""
                while len(answer) < 68:
                    answer += replay.recv(4096)
                assert answer[2] == FrameType.HELLO
                replay.sendall(recorded[1])
                while chunk := replay.recv(4096):
                    answer += chunk
            # Then CLOSE AUTH, untagged (20 + 1 + reason): the server proved nothing.
            close = answer[68:]
            assert close[2] == FrameType.CLOSE and close[16] == CloseCode.AUTH
            assert len(close) == 20 + struct.unpack_from(">I", close, 4)[0]
            _talk(ws, MSGS[2:])
            assert ws.reconnects == 0
        got, server = fut.result(WAIT)
    finally:
        proxy.close()
    assert got == MSGS
    assert server is not None and server.stats.auth_failures == 1


def test_asyncio_keyed_link(pool: ThreadPoolExecutor) -> None:
    port, fut = _serve(pool, len(MSGS))

    async def main() -> None:
        for _ in range(100):  # serve() may not listen yet
            try:
                await aio.WiFiSocket.connect(LOCAL, port, timeout=WAIT, key=bytes(16))
            except AuthenticationFailed:
                break
            except ConnectionLost:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("no AuthenticationFailed")
        async with await aio.WiFiSocket.connect(LOCAL, port, timeout=WAIT, key=KEY.hex()) as ws:
            assert ws.keyed
            for m in MSGS:
                await ws.send(m)
                assert await ws.receive(WAIT) == m
            assert ws.stats.auth_failures == 0

    asyncio.run(main())
    got, _ = fut.result(WAIT)
    assert got == MSGS


def test_asyncio_keyed_serve_refuses_a_wrong_key_and_serves_the_right_one(
        pool: ThreadPoolExecutor) -> None:
    port = free_port()

    def clients() -> None:
        with pytest.raises(AuthenticationFailed, match="authentication failed"):
            _dial_when_listening(port, key=bytes(16))
        with _dial_when_listening(port, key=KEY) as ws:
            _talk(ws, MSGS)
            assert ws.reconnects == 0

    async def main() -> None:
        dialling = asyncio.get_running_loop().run_in_executor(pool, clients)
        async with await aio.WiFiSocket.serve(port, LOCAL, timeout=WAIT, key=KEY,
                                              **FAST) as s:
            for _ in MSGS:
                await s.send(await s.receive(WAIT))
            await asyncio.wait_for(dialling, WAIT)
            assert s.stats.auth_failures == 1

    asyncio.run(main())


def test_a_refused_key_during_an_outage_ends_the_link_without_redialling(
        pool: ThreadPoolExecutor) -> None:
    """The address now answers with another key: one attempt, AuthenticationFailed, stop."""
    other_key = bytes(16)
    first = pool.submit(_hold, p1 := free_port(), KEY)
    other = pool.submit(_hold, p2 := free_port(), other_key)
    threading.Event().wait(0.3)
    proxy = FrameProxy((LOCAL, p1), lambda conn, index, frame: [frame])
    try:
        ws = _dial_when_listening(proxy.port, key=KEY)
        _talk(ws, ["before"])
        proxy.target = (LOCAL, p2)
        proxy.cut()
        with pytest.raises(AuthenticationFailed, match="authentication failed"):
            ws.receive(WAIT)
        attempts = proxy.connections
        threading.Event().wait(1.0)  # the backoff would have tried again by now
        assert proxy.connections == attempts == 2
        assert ws.stats.auth_failures == 1
        ws.close()
    finally:
        proxy.close()
    # The other server refused that one dialer and still serves its own peer.
    with WiFiSocket(LOCAL, p2, timeout=WAIT, key=other_key) as own:
        _talk(own, ["after"])
    assert first.result(WAIT) == (["before"], 0)
    assert other.result(WAIT) == (["after"], 1)


def _hold(port: int, key: bytes) -> tuple[list, int]:
    """Serve with ``key``: echo until the link breaks; what came, and refused handshakes."""
    got: list = []
    with WiFiSocket.serve(port, LOCAL, timeout=WAIT, key=key, reconnect=False) as s:
        while True:
            try:
                msg = s.receive(WAIT)
            except (ConnectionLost, ProtocolError):
                return got, s.stats.auth_failures
            got.append(msg)
            s.send(msg)
