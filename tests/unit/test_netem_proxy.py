"""The netem proxy over real loopback sockets, against small echo/source/sink servers."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.netem import (
    Bandwidth,
    Blackhole,
    Corrupt,
    CutAfter,
    Latency,
    LimitData,
    Proxy,
    ResetPeer,
    Slicer,
    SlowClose,
)
from tests.helpers.wait import wait_until

WAIT = 5.0  # every blocking call in these tests gives up after this long


class Server:
    """A threaded loopback TCP server running ``handler(conn)`` for each connection."""

    def __init__(self, handler: Callable[[socket.socket], None]) -> None:
        self._handler = handler
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(WAIT)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            self._handler(conn)

    def join_handlers(self) -> None:
        for t in list(self._threads):
            t.join(WAIT)
            assert not t.is_alive(), "server handler hung"

    def close(self) -> None:
        self._stop.set()
        self._acceptor.join(WAIT)
        self._listener.close()


def echo(conn: socket.socket) -> None:
    while data := conn.recv(1 << 16):
        conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)


def source(payload: bytes) -> Callable[[socket.socket], None]:
    def handler(conn: socket.socket) -> None:
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        # Wait for the peer's close so our close never races unread data into an RST.
        while conn.recv(1 << 16):
            pass

    return handler


class Sink:
    """Handler that records what each connection received and how it ended."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.endings: list[str] = []
        self.done = threading.Event()

    def __call__(self, conn: socket.socket) -> None:
        got = bytearray()
        ending = "eof"
        try:
            while data := conn.recv(1 << 16):
                got += data
        except ConnectionResetError:
            ending = "reset"
        except TimeoutError:
            ending = "timeout"
        self.received.append(bytes(got))
        self.endings.append(ending)
        self.done.set()


@pytest.fixture
def server_factory() -> Iterator[Callable[[Callable[[socket.socket], None]], Server]]:
    servers: list[Server] = []

    def make(handler: Callable[[socket.socket], None]) -> Server:
        servers.append(Server(handler))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


@pytest.fixture
def echo_proxy(
    server_factory: Callable[[Callable[[socket.socket], None]], Server],
) -> Iterator[Proxy]:
    with Proxy(server_factory(echo).address, seed=1234) as proxy:
        yield proxy


def connect(proxy: Proxy) -> socket.socket:
    sock = socket.create_connection(proxy.address, timeout=WAIT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_all(sock: socket.socket) -> bytes:
    got = bytearray()
    while data := sock.recv(1 << 16):
        got += data
    return bytes(got)


def read_exactly(sock: socket.socket, n: int) -> bytes:
    got = bytearray()
    while len(got) < n:
        data = sock.recv(n - len(got))
        assert data, f"connection closed after {len(got)} of {n} bytes"
        got += data
    return bytes(got)


def round_trip(proxy: Proxy, chunks: list[bytes]) -> bytes:
    """Send chunks through an echo proxy from a thread while reading; return the echo."""
    with connect(proxy) as sock:
        errors: list[BaseException] = []

        def send() -> None:
            try:
                for chunk in chunks:
                    sock.sendall(chunk)
                sock.shutdown(socket.SHUT_WR)
            except BaseException as exc:  # surfaced by the assertion below
                errors.append(exc)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        got = read_all(sock)
        sender.join(WAIT)
        assert not errors and not sender.is_alive()
        return got


# -- plain forwarding ------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_echo_proxy() -> Iterator[Proxy]:
    server = Server(echo)
    with Proxy(server.address, seed=1) as proxy:
        yield proxy
    server.close()


@settings(max_examples=40)
@given(st.lists(st.binary(max_size=20_000), max_size=12))
def test_bytes_pass_through_unchanged_both_ways(
    shared_echo_proxy: Proxy, chunks: list[bytes]
) -> None:
    assert round_trip(shared_echo_proxy, chunks) == b"".join(chunks)


def test_large_transfer_with_back_pressure_is_exact(echo_proxy: Proxy) -> None:
    payload = random.Random(5).randbytes(8 << 20)
    chunks = [payload[i : i + 100_000] for i in range(0, len(payload), 100_000)]
    assert round_trip(echo_proxy, chunks) == payload
    # Every byte went up and came back down; the counters saw all of them.
    assert echo_proxy.bytes_upstream == len(payload)
    assert echo_proxy.bytes_downstream == len(payload)


def test_connection_count_follows_open_connections(echo_proxy: Proxy) -> None:
    assert echo_proxy.connections == 0
    a, b = connect(echo_proxy), connect(echo_proxy)
    a.sendall(b"x")
    b.sendall(b"y")
    assert read_exactly(a, 1) == b"x" and read_exactly(b, 1) == b"y"
    assert echo_proxy.connections == 2
    assert echo_proxy.connections_total == 2
    a.close()
    b.close()
    wait_until(lambda: echo_proxy.connections == 0, "connections to close", WAIT)


# -- each toxic, live ------------------------------------------------------------------


def test_latency_adds_at_least_its_delay_each_way(echo_proxy: Proxy) -> None:
    with connect(echo_proxy) as sock:
        sock.sendall(b"warm")
        assert read_exactly(sock, 4) == b"warm"
        # Added to an already open connection: it applies at once.
        echo_proxy.add(Latency(ms=100), direction="downstream")
        t0 = time.monotonic()
        sock.sendall(b"ping")
        assert read_exactly(sock, 4) == b"ping"
        assert time.monotonic() - t0 >= 0.1
        echo_proxy.add(Latency(ms=100), direction="upstream")
        t0 = time.monotonic()
        sock.sendall(b"pong")
        assert read_exactly(sock, 4) == b"pong"
        assert time.monotonic() - t0 >= 0.2


def test_bandwidth_bounds_the_rate(
    server_factory: Callable[[Callable[[socket.socket], None]], Server],
) -> None:
    payload = random.Random(1).randbytes(100_000)
    with Proxy(server_factory(source(payload)).address) as proxy:
        proxy.add(Bandwidth(200_000), direction="downstream")
        t0 = time.monotonic()
        with connect(proxy) as sock:
            assert read_all(sock) == payload
        assert time.monotonic() - t0 >= 0.3


def test_slicer_makes_the_receiver_see_many_small_reads(
    server_factory: Callable[[Callable[[socket.socket], None]], Server],
) -> None:
    payload = bytes(range(256)) * 4
    with Proxy(server_factory(source(payload)).address, seed=3) as proxy:
        proxy.add(Slicer(10, 5, delay_ms=2), direction="downstream")
        reads = []
        with connect(proxy) as sock:
            while data := sock.recv(1 << 16):
                reads.append(data)
    assert b"".join(reads) == payload
    # About 100 slices 2 ms apart; even a very loaded reader sees many separate reads.
    assert len(reads) >= 20
    assert min(len(r) for r in reads) <= 15


def test_limit_data_downstream_delivers_exactly_n_bytes_then_eof(
    server_factory: Callable[[Callable[[socket.socket], None]], Server],
) -> None:
    payload = random.Random(2).randbytes(50_000)
    with Proxy(server_factory(source(payload)).address) as proxy:
        proxy.add(LimitData(1000), direction="downstream")
        with connect(proxy) as sock:
            assert read_all(sock) == payload[:1000]


def test_limit_data_upstream_lets_the_server_see_exactly_n_bytes(
    server_factory: Callable[[Callable[[socket.socket], None]], Server],
) -> None:
    sink = Sink()
    with Proxy(server_factory(sink).address) as proxy:
        proxy.add(LimitData(777), direction="upstream")
        with connect(proxy) as sock:
            # The proxy may close on us mid-send: that is the point.
            with contextlib.suppress(OSError):
                sock.sendall(bytes(10_000))
            assert sink.done.wait(WAIT)
    assert sink.received == [bytes(777)]
    assert sink.endings == ["eof"]


def test_reset_peer_gives_connection_reset(echo_proxy: Proxy) -> None:
    echo_proxy.add(ResetPeer(after_ms=50), direction="downstream")
    # The reset comes while we wait (or, on a loaded machine, even during connect), so
    # recv fails instead of returning data or EOF.
    with pytest.raises(ConnectionResetError), connect(echo_proxy) as sock:
        sock.recv(100)


def test_reset_peer_upstream_resets_the_server_side_only(
    server_factory: Callable[[Callable[[socket.socket], None]], Server],
) -> None:
    sink = Sink()
    with Proxy(server_factory(sink).address) as proxy:
        proxy.add(ResetPeer(after_ms=100), direction="upstream")
        with connect(proxy) as sock:
            assert read_all(sock) == b""  # the client's leg is closed normally
        assert sink.done.wait(WAIT)
    assert sink.endings == ["reset"]


def test_blackhole_stalls_and_releases_everything_when_removed(echo_proxy: Proxy) -> None:
    name = echo_proxy.add(Blackhole(), direction="upstream")
    with connect(echo_proxy) as sock:
        sock.sendall(b"held back")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(100)
        sock.settimeout(WAIT)
        echo_proxy.remove(name)
        assert read_exactly(sock, 9) == b"held back"


def test_blackhole_with_ms_closes_the_connection_after_that_time(echo_proxy: Proxy) -> None:
    echo_proxy.add(Blackhole(ms=300))
    t0 = time.monotonic()
    with connect(echo_proxy) as sock:
        sock.sendall(b"lost in the hole")
        assert read_all(sock) == b""
    assert time.monotonic() - t0 >= 0.3


def test_slow_close_delays_the_eof_not_the_data(
    server_factory: Callable[[Callable[[socket.socket], None]], Server],
) -> None:
    with Proxy(server_factory(source(b"bye")).address) as proxy:
        proxy.add(SlowClose(300), direction="downstream")
        # Before connecting: the server closes at once, so the proxy may see its FIN (and
        # start the 300 ms) before connect() has even returned here.
        t0 = time.monotonic()
        with connect(proxy) as sock:
            assert read_exactly(sock, 3) == b"bye"
            assert sock.recv(10) == b""
            assert time.monotonic() - t0 >= 0.3


def corrupted_download(server: Server, payload: bytes, seed: int) -> bytes:
    with Proxy(server.address, seed=seed) as proxy:
        proxy.add(Corrupt(0.01), direction="downstream")
        with connect(proxy) as sock:
            got = read_all(sock)
    assert len(got) == len(payload)
    return got


def test_corrupt_is_reproducible_from_the_seed(
    server_factory: Callable[[Callable[[socket.socket], None]], Server],
) -> None:
    payload = random.Random(9).randbytes(30_000)
    server = server_factory(source(payload))
    first = corrupted_download(server, payload, seed=42)
    again = corrupted_download(server, payload, seed=42)
    other = corrupted_download(server, payload, seed=43)
    assert first != payload
    assert again == first
    assert other != first
    flips = [bin(a ^ b).count("1") for a, b in zip(payload, first, strict=True)]
    assert max(flips) == 1
    assert 150 < sum(flips) < 450  # about 1 % of 30 000 bytes


def test_cut_after_closes_that_long_after_the_toxic_was_added(echo_proxy: Proxy) -> None:
    with connect(echo_proxy) as sock:
        sock.sendall(b"alive")
        assert read_exactly(sock, 5) == b"alive"
        t0 = time.monotonic()
        echo_proxy.add(CutAfter(0.5))
        sock.sendall(b"still")
        assert read_exactly(sock, 5) == b"still"
        assert read_all(sock) == b""
        assert time.monotonic() - t0 >= 0.5


def test_disable_refuses_and_closes_enable_restores(echo_proxy: Proxy) -> None:
    with connect(echo_proxy) as sock:
        sock.sendall(b"up")
        assert read_exactly(sock, 2) == b"up"
        echo_proxy.disable()
        assert not echo_proxy.enabled
        assert read_all(sock) == b""
    assert echo_proxy.connections == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(echo_proxy.address, timeout=WAIT)
    echo_proxy.enable()
    assert round_trip(echo_proxy, [b"back ", b"again"]) == b"back again"


def test_control_before_start_takes_effect_at_start(
    server_factory: Callable[[Callable[[socket.socket], None]], Server],
) -> None:
    proxy = Proxy(server_factory(echo).address)
    proxy.disable()
    proxy.add(LimitData(3), direction="downstream")
    with proxy:
        assert not proxy.enabled
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(proxy.address, timeout=WAIT)
        proxy.enable()
        assert round_trip(proxy, [b"abcdef"]) == b"abc"


def test_unreachable_upstream_resets_the_client() -> None:
    spare = socket.create_server(("127.0.0.1", 0))
    dead = spare.getsockname()[:2]
    spare.close()  # nothing listens there now
    # The reset may already arrive while connect() waits for the handshake.
    with Proxy(dead) as proxy, pytest.raises(ConnectionResetError), connect(proxy) as sock:
        sock.recv(10)


# -- control under traffic and lifecycle ----------------------------------------------


def test_adding_and_removing_toxics_under_traffic_loses_nothing(echo_proxy: Proxy) -> None:
    stop = threading.Event()
    sent = bytearray()
    received = bytearray()
    errors: list[BaseException] = []
    sock = connect(echo_proxy)
    sock.settimeout(4 * WAIT)  # throttling toxics may legitimately block the sender a while

    def send() -> None:
        # A counter pattern: any lost, duplicated or reordered byte breaks the comparison.
        counter = 0
        try:
            while not stop.is_set():
                chunk = b"".join(struct.pack(">I", counter + i) for i in range(1024))
                counter += 1024
                sock.sendall(chunk)
                sent.extend(chunk)
                time.sleep(0.0005)  # keep the volume modest; the toggles are the point
            sock.shutdown(socket.SHUT_WR)
        except BaseException as exc:
            errors.append(exc)

    def receive() -> None:
        try:
            received.extend(read_all(sock))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=f, daemon=True) for f in (send, receive)]
    for t in threads:
        t.start()
    schedule = random.Random(77)
    kinds: list[Callable[[], object]] = [
        lambda: Latency(ms=schedule.uniform(1, 20), jitter_ms=5),
        # Slices 1 ms apart must not be so small that draining a full backlog outlasts
        # the socket timeouts on a loaded machine (wake-ups then come every few ms):
        # that would be the toxic working, not a bug.
        lambda: Slicer(schedule.randint(6000, 9000), 2000, delay_ms=schedule.choice([0, 1])),
        lambda: Slicer(schedule.randint(10, 200), 9),
        lambda: Blackhole(),
        lambda: Bandwidth(2_000_000),
    ]
    directions = ["both", "upstream", "downstream"]
    for _ in range(40):
        names = [t.name for t in echo_proxy.toxics]
        if names and schedule.random() < 0.5:
            echo_proxy.remove(schedule.choice(names))
        else:
            echo_proxy.add(schedule.choice(kinds)(), direction=schedule.choice(directions))  # type: ignore[arg-type]
        time.sleep(0.02)
    # End with bytes surely held (a stall under traffic), so clear() must release them.
    echo_proxy.add(Latency(ms=200))
    echo_proxy.add(Blackhole(), direction="upstream")
    time.sleep(0.05)
    echo_proxy.clear()
    stop.set()
    for t in threads:
        t.join(5 * WAIT)
        assert not t.is_alive()
    sock.close()
    assert not errors
    assert len(sent) > 100_000
    assert received == sent


def test_toxic_names_listing_and_errors() -> None:
    proxy = Proxy(("127.0.0.1", 9), seed=5)  # never started: control works offline too
    assert proxy.seed == 5
    assert proxy.add(Latency(10)) == "latency_both"
    assert proxy.add(Latency(20)) == "latency_both_2"
    assert proxy.add(Corrupt(0.5), direction="upstream", name="noise") == "noise"
    with pytest.raises(ValueError):
        proxy.add(Latency(1), name="noise")
    with pytest.raises(ValueError):
        proxy.add(Latency(1), direction="sideways")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        proxy.add("latency")  # type: ignore[arg-type]
    assert [(t.name, t.direction) for t in proxy.toxics] == [
        ("latency_both", "both"),
        ("latency_both_2", "both"),
        ("noise", "upstream"),
    ]
    assert proxy.toxics[2].toxic == Corrupt(0.5)
    proxy.remove("latency_both")
    with pytest.raises(KeyError):
        proxy.remove("latency_both")
    proxy.clear()
    assert proxy.toxics == ()
    with pytest.raises(RuntimeError):
        _ = proxy.address


def test_seed_is_chosen_when_not_given() -> None:
    a, b = Proxy(("127.0.0.1", 9)), Proxy(("127.0.0.1", 9))
    assert isinstance(a.seed, int) and a.seed != b.seed


def test_stop_with_live_and_stalled_connections_closes_them_and_returns(
    echo_proxy: Proxy,
) -> None:
    echo_proxy.add(Blackhole(), direction="downstream")
    socks = [connect(echo_proxy) for _ in range(4)]
    for s in socks:
        s.sendall(bytes(100_000))
    wait_until(lambda: echo_proxy.connections == 4, "4 connections", WAIT)
    echo_proxy.stop(timeout=WAIT)  # raises TimeoutError if the loop thread hangs
    for s in socks:
        # Closing with unread input may reset instead of FIN: closed either way.
        with s, contextlib.suppress(ConnectionResetError):
            assert read_all(s) == b""
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(echo_proxy.address, timeout=WAIT)
    echo_proxy.stop()  # idempotent
    with pytest.raises(RuntimeError):
        echo_proxy.start()


def _thread_cpu_seconds(native_id: int) -> float:
    with open(f"/proc/self/task/{native_id}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of stat(5); the split starts at field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs Linux /proc")
def test_an_idle_proxy_with_pending_timers_and_stalls_does_not_spin(echo_proxy: Proxy) -> None:
    name = f"netem-proxy-{echo_proxy.address[1]}"
    thread = next(t for t in threading.enumerate() if t.name == name)
    assert thread.native_id is not None
    echo_proxy.add(Blackhole(), direction="upstream")  # a stalled direction holding bytes
    echo_proxy.add(Latency(ms=2000), direction="downstream")  # a far-away timer
    with connect(echo_proxy) as sock:
        # More than the kernels and the proxy buffer: back-pressure engaged, sender blocked.
        sock.settimeout(0.5)
        with contextlib.suppress(TimeoutError):
            sock.sendall(bytes(64 << 20))
        before = _thread_cpu_seconds(thread.native_id)
        time.sleep(1.0)
        used = _thread_cpu_seconds(thread.native_id) - before
    # A busy loop would burn about a whole second here; an idle one next to nothing.
    assert used < 0.15
