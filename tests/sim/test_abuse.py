"""The device keeps serving under abuse (docs/protocol.md §4, §5).

Connections that never send HELLO, half-open connections (the client vanished without a
FIN) and slow senders (a partial frame then silence, a trickle of one byte per second) are
dropped after their bound and cannot use up the echo service's connection slots: when every
slot is busy, a newcomer evicts the oldest connection that has not completed HELLO. A
legitimate host is served while the abusers are still open.

Bounds used here (device defaults): no HELLO within 2 s -> CLOSE TIMEOUT; after HELLO, no
complete frame for 3 x the peer's keepalive_ms -> CLOSE TIMEOUT. The peers below announce
keepalive_ms = 500, so their dead bound is 1.5 s. Timing checks only say "not before the
bound, and within the bound plus generous slack": they prove the rule, not the speed.

Marked ``twin``: a real ESP8266's lwIP has about five TCP control blocks in all, so opening
more idle connections than that tests lwIP rather than the firmware.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from harness.device.base import Device
from harness.netem import Blackhole, Proxy
from harness.wifisocket.frame import CloseCode, Frame, FrameDecoder, FrameType, Hello, encode_frame
from tests.helpers.rawpeer import RawPeer, close_code

pytestmark = pytest.mark.twin

SLOTS = 4  # the echo service's connection slots (docs/protocol.md §5)
HANDSHAKE_S = 2.0  # no HELLO within this: CLOSE TIMEOUT
KEEPALIVE_MS = 500  # what our abusive peers announce ...
DEAD_S = 3 * KEEPALIVE_MS / 1000  # ... so the device's dead bound for them is 1.5 s
EARLY = 0.75  # a drop before EARLY x bound would be a bug (clocks differ slightly)
SLACK = 3.0  # seconds past the bound we still accept on a loaded CI machine
TIMEOUT = 5.0

_EVICTED = r"^WS CLOSE code=6 reason=evicted: no HELLO yet and every slot busy"


def _echo(device: Device, payload: str = "legit") -> None:
    with device.connect(timeout=TIMEOUT) as sock:
        sock.send(payload)
        assert sock.receive(timeout=TIMEOUT) == payload


def _until_eof(
    sock: socket.socket, timeout: float, decoder: FrameDecoder | None = None
) -> tuple[list[Frame], float]:
    """Read frames until the device closes; return them and when the close was seen.
    ``decoder``: the connection's own (a keyed one checks tags), else a fresh one."""
    decoder = decoder or FrameDecoder(1 << 20)
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the device did not close the connection; got {frames}")
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return frames, time.monotonic()
        if not data:
            return frames, time.monotonic()
        frames.extend(decoder.feed(data))


def _first_frame(sock: socket.socket) -> Frame:
    decoder = FrameDecoder(1 << 20)
    deadline = time.monotonic() + TIMEOUT
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = sock.recv(1)
        assert data, "closed before the first frame"
        frames = decoder.feed(data)
        if frames:
            return frames[0]


def _hello_bytes() -> bytes:
    hello = Hello(max_message=1024, window=4096, keepalive_ms=KEEPALIVE_MS, session=0x5107)
    return encode_frame(FrameType.HELLO, hello.encode())


@pytest.fixture
def idle_sockets() -> Iterator[list[socket.socket]]:
    """Plain TCP connections that say nothing; closed at the end of the test."""
    socks: list[socket.socket] = []
    try:
        yield socks
    finally:
        for s in socks:
            s.close()


def test_idle_connections_cannot_lock_out_a_host(
    device: Device, idle_sockets: list[socket.socket]
) -> None:
    mark = device.console.mark()
    count = 2 * SLOTS
    for _ in range(count):
        idle_sockets.append(socket.create_connection((device.ip, device.port), timeout=TIMEOUT))
    # The device says nothing before a dialer's HELLO (docs/protocol.md §2): the oldest
    # ones hear only the CLOSE of their eviction when the newer ones arrive.
    assert _first_frame(idle_sockets[0]).type == FrameType.CLOSE
    t0 = time.monotonic()
    _echo(device)
    served_after = time.monotonic() - t0
    # Served while the newest idle connections are still open: by eviction, not by waiting
    # for the handshake bound (which would have closed every one of them first).
    for s in idle_sockets[-(SLOTS - 1) :]:
        s.setblocking(False)
        try:
            data = s.recv(4096)
        except BlockingIOError:
            data = b"still open"
        assert data, f"the newest idle connections were closed (echo after {served_after:.2f} s)"
    # The oldest ones were evicted with a reason, on the wire and on the console.
    frames, _ = _until_eof(idle_sockets[1], TIMEOUT)
    assert close_code(frames) == CloseCode.TIMEOUT
    reason = next(f.payload[1:] for f in frames if f.type == FrameType.CLOSE)
    assert reason.startswith(b"evicted")
    device.console.expect(_EVICTED, timeout=TIMEOUT, since=mark)
    # More of them in a row, and the service is still fine for the next host.
    _echo(device, "again")


def test_connection_flood_never_refuses_a_host(
    device: Device, idle_sockets: list[socket.socket]
) -> None:
    """Idle connections keep arriving while a host connects over and over."""
    stop = threading.Event()
    opened = 0

    def flood() -> None:
        nonlocal opened
        while not stop.is_set():
            try:
                idle_sockets.append(socket.create_connection((device.ip, device.port), 2.0))
                opened += 1
            except OSError:
                pass
            stop.wait(0.02)

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 10 * TIMEOUT
        hosts = 0
        while (hosts < 10 or opened < 3 * SLOTS) and time.monotonic() < deadline:
            _echo(device, f"host {hosts}")
            hosts += 1
    finally:
        stop.set()
        t.join(timeout=TIMEOUT)
    assert not t.is_alive()
    assert opened >= 3 * SLOTS


class _Dripper:
    """Sends ``data[start:stop]`` one byte per second on a thread, until stopped or refused."""

    def __init__(self, sock: socket.socket, data: bytes, start: int, stop: int) -> None:
        self._stop = threading.Event()
        self.sent = start
        self._thread = threading.Thread(
            target=self._run, args=(sock, data, stop), daemon=True, name="dripper"
        )
        self._thread.start()

    def _run(self, sock: socket.socket, data: bytes, stop: int) -> None:
        while self.sent < stop and not self._stop.wait(1.0):
            try:
                sock.send(data[self.sent : self.sent + 1])
            except OSError:
                return
            self.sent += 1

    def __enter__(self) -> _Dripper:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=TIMEOUT)
        assert not self._thread.is_alive()


def test_trickle_before_hello_is_dropped_at_the_handshake_bound(device: Device) -> None:
    """One byte per second of a HELLO: never complete, closed after 2 s, echo serves meanwhile."""
    mark = device.console.mark()
    hello = _hello_bytes()
    with socket.create_connection((device.ip, device.port), timeout=TIMEOUT) as sock:
        t0 = time.monotonic()
        sock.send(hello[:1])
        with _Dripper(sock, hello, 1, len(hello)) as dripper:
            _echo(device)  # a legitimate host is served while the trickle goes on
            frames, t_end = _until_eof(sock, HANDSHAKE_S + SLACK)
    elapsed = t_end - t0
    assert close_code(frames) == CloseCode.TIMEOUT
    assert dripper.sent < len(hello)
    assert EARLY * HANDSHAKE_S <= elapsed <= HANDSHAKE_S + SLACK, elapsed
    device.console.expect(
        r"^WS CLOSE code=6 reason=HELLO incomplete within the handshake bound",
        timeout=TIMEOUT,
        since=mark,
    )


def _trickle_after_hello(device: Device, *, trickle: bool) -> tuple[list[Frame], float]:
    with RawPeer(device.ip, device.port, key=device.key) as peer:
        peer.hello(keepalive_ms=KEEPALIVE_MS)
        t0 = time.monotonic()
        data = peer.seal(encode_frame(FrameType.TEXT, b"a slow message", seq=1))
        peer.send(data[:3])  # a partial frame, then silence or one more byte per second
        with _Dripper(peer.sock, data, 3, len(data) - 1 if trickle else 3):
            frames, t_end = _until_eof(peer.sock, DEAD_S + SLACK, peer.decoder)
    return frames, t_end - t0


@pytest.mark.parametrize("trickle", [False, True], ids=["partial-then-silence", "one-byte-per-s"])
def test_slow_sender_after_hello_is_dropped_at_the_dead_bound(
    device: Device, trickle: bool
) -> None:
    mark = device.console.mark()
    frames, elapsed = _trickle_after_hello(device, trickle=trickle)
    assert close_code(frames) == CloseCode.TIMEOUT
    # The device kept pinging the silent peer meanwhile (its keepalive is 1 s).
    assert FrameType.PING in [f.type for f in frames]
    assert EARLY * DEAD_S <= elapsed <= DEAD_S + SLACK, elapsed
    device.console.expect(
        r"^WS CLOSE code=6 reason=frame incomplete past the dead bound", TIMEOUT, since=mark
    )
    _echo(device)


class _StopsReading:
    """A peer that completed HELLO and then vanished: it never reads nor answers again.

    ``via_proxy``: the connection goes through a netem proxy whose Blackhole toxic swallows
    both directions (what a dead WiFi link looks like); otherwise the socket simply stops.
    """

    def __init__(self, device: Device, stack: ExitStack, *, via_proxy: bool) -> None:
        host, port = device.ip, device.port
        self.proxy: Proxy | None = None
        if via_proxy:
            self.proxy = stack.enter_context(Proxy(upstream=(host, port), seed=4))
            host, port = self.proxy.address
        self.peer = stack.enter_context(RawPeer(host, port, key=device.key))
        self.peer.hello(keepalive_ms=KEEPALIVE_MS)
        if self.proxy is not None:
            self.proxy.add(Blackhole(), direction="both")


@pytest.mark.parametrize("via_proxy", [False, True], ids=["stops-reading", "netem-blackhole"])
def test_half_open_connection_is_dropped_after_the_dead_bound(
    device: Device, via_proxy: bool
) -> None:
    mark = device.console.mark()
    with ExitStack() as stack:
        _StopsReading(device, stack, via_proxy=via_proxy)
        t0 = time.monotonic()
        # Meanwhile the device answers (its control service; a new echo host would replace
        # the half-open session, which the next test covers).
        assert device.info(timeout=TIMEOUT)["fw"] == device.fw
        device.console.expect(
            r"^WS CLOSE code=6 reason=peer silent past the dead bound",
            timeout=DEAD_S + SLACK,
            since=mark,
        )
        elapsed = time.monotonic() - t0
    assert EARLY * DEAD_S <= elapsed <= DEAD_S + SLACK, elapsed
    _echo(device)


def test_a_new_host_is_served_once_a_half_open_session_is_dead(device: Device) -> None:
    # Another host's session is held for it until its dead bound (docs/protocol.md §2,
    # Strangers): a new host is refused with BUSY meanwhile, and its constructor retries.
    mark = device.console.mark()
    with ExitStack() as stack:
        stale = _StopsReading(device, stack, via_proxy=True)
        assert stale.proxy is not None
        t0 = time.monotonic()
        _echo(device)
        elapsed = time.monotonic() - t0
        device.console.expect(r"^WS CLOSE code=11 reason=another peer's session is live",
                              timeout=TIMEOUT, since=mark)
        device.console.expect(r"^WS CLOSE code=6 reason=peer silent past the dead bound",
                              timeout=TIMEOUT, since=mark)
    assert elapsed <= DEAD_S + SLACK, elapsed


def test_half_open_before_hello_does_not_hold_a_slot(device: Device) -> None:
    """Connections behind a black hole never deliver their HELLO; a host is served meanwhile."""
    mark = device.console.mark()
    with ExitStack() as stack:
        proxy = stack.enter_context(Proxy(upstream=(device.ip, device.port), seed=5))
        proxy.add(Blackhole(), direction="upstream")
        for _ in range(SLOTS + 1):
            s = stack.enter_context(socket.create_connection(proxy.address, timeout=TIMEOUT))
            s.sendall(_hello_bytes())  # held by the proxy: the device never sees it
        deadline = time.monotonic() + TIMEOUT
        while proxy.connections < SLOTS + 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proxy.connections == SLOTS + 1
        _echo(device)
        device.console.expect(
            r"^WS CLOSE code=6 reason=(no HELLO within the handshake bound|evicted)",
            timeout=HANDSHAKE_S + SLACK,
            since=mark,
        )
