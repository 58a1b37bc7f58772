"""The ``Stalls`` toxic on a fake clock, and the ``wifi`` link profile."""

from __future__ import annotations

import random
import socket
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.netem import Proxy, Stalls
from harness.netem.profiles import PROFILES, apply_profile
from harness.netem.stages import StallsStage, make_stage


def test_stalls_validate() -> None:
    with pytest.raises(ValueError):
        Stalls(every_ms=0, ms=10)
    with pytest.raises(ValueError):
        Stalls(every_ms=100, ms=-1)


@given(seed=st.integers(0, 2**32 - 1), every=st.floats(5, 500), ms=st.floats(0.5, 50),
       chunks=st.lists(st.binary(min_size=1, max_size=64), min_size=1, max_size=60))
def test_stalls_hold_only_inside_stall_windows_and_keep_order(
    seed: int, every: float, ms: float, chunks: list[bytes]
) -> None:
    stage = make_stage(Stalls(every_ms=every, ms=ms), "s", random.Random(seed), 0.0)
    assert isinstance(stage, StallsStage)
    out: list[bytes] = []
    now = 0.0
    step = 0.001
    for chunk in chunks:
        stage.feed(chunk, now)
        got = stage.emit(now)
        in_stall = stage._start <= now < stage._end
        assert (got == []) == in_stall
        out += [g for g in got if isinstance(g, bytes)]
        now += step
    # Held bytes come out no later than the end of the window they wait in.
    deadline = stage.deadline()
    if deadline is not None:
        assert deadline <= now + ms / 1000.0
        out += [g for g in stage.emit(deadline) if isinstance(g, bytes)]
    assert stage.held() == 0
    assert b"".join(out) == b"".join(chunks)


def test_stalls_are_as_frequent_and_long_as_asked() -> None:
    stage = StallsStage(Stalls(every_ms=100, ms=10), "s", random.Random(1), 0.0)
    stalled = 0
    ticks = 200_000
    for i in range(ticks):  # 200 s in 1 ms ticks
        stage.feed(b"x", i / 1000)
        if not stage.emit(i / 1000):
            stalled += 1
    # Mean gap 100 ms after each 10 ms stall: about 10 / 110 of the time is stalled.
    assert 0.07 < stalled / ticks < 0.11


def _echo_server() -> tuple[socket.socket, threading.Thread]:
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, thread


def test_the_wifi_profile_shapes_rate_and_round_trip() -> None:
    wifi = PROFILES["wifi"]
    assert "1 MB/s each way" in wifi.describe()
    server, thread = _echo_server()
    with server, Proxy(server.getsockname(), seed=7) as proxy:
        names = apply_profile(proxy, "wifi")
        assert len(names) == 6 and {t.direction for t in proxy.toxics} == {"upstream",
                                                                           "downstream"}
        with socket.create_connection(proxy.address, timeout=10) as conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            rtts = []
            for _ in range(20):
                t0 = time.perf_counter()
                conn.sendall(b"ping")
                assert conn.recv(16) == b"ping"
                rtts.append(time.perf_counter() - t0)
            rtts.sort()
            # Two one-way delays of 1.5 ± 1 ms: the median round trip is at least 1 ms.
            assert rtts[len(rtts) // 2] >= 0.001
            blob = bytes(300_000)
            t0 = time.perf_counter()
            sender = threading.Thread(target=conn.sendall, args=(blob,))
            sender.start()
            got = 0
            while got < len(blob):
                got += len(conn.recv(65536))
            seconds = time.perf_counter() - t0
            sender.join(timeout=10)
        # 300 kB at 1 MB/s each way: never faster than about 0.3 s.
        assert seconds >= 0.27
    thread.join(timeout=10)


def test_an_unknown_profile_is_a_key_error() -> None:
    with Proxy(("127.0.0.1", 9), seed=1) as proxy, pytest.raises(KeyError, match="known: wifi"):
        apply_profile(proxy, "5g")
