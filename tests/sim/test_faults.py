"""Long pipelined streams through random fault schedules: every message once, in order.

Hypothesis draws a schedule of faults — cuts at random byte offsets (``LimitData``), resets
(``ResetPeer``), timed cuts (``CutAfter``), fragmentation (``Slicer``), latency with jitter
and short stalls (``Blackhole``) — each applied when the host has sent a given message,
and a seed for the ``netem`` proxy. The host streams messages to the twin's echo service
through the proxy; the echoes must be exactly what was sent: none lost, none duplicated,
order kept, types kept, in both topologies (the host dials the device; the device dials
the host's ``WiFiSocket.accept``). A failing example prints its schedule and proxy seed,
and replays from them.
"""

from __future__ import annotations

import random
import socket
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from harness import WiFiSocket
from harness.device.base import Device
from harness.netem import Proxy
from tests.helpers.faults import CUTS, Fault, Injector

pytestmark = pytest.mark.twin

WAIT = 20.0  # every wait here is bounded by this
HOST = "127.0.0.1"
# Reconnect quickly (the defaults are for WiFi); everything else is the default.
OPTS: dict[str, Any] = {"backoff_initial": 0.02, "backoff_max": 0.2, "timeout": WAIT}
DIRECTIONS = ("upstream", "downstream", "both")
SETTINGS = settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def faults(n: int, kinds: tuple[str, ...]) -> st.SearchStrategy[Fault]:
    at = st.integers(0, n * 3 // 4)  # early enough to hit the stream, not its silent end
    direction = st.sampled_from(DIRECTIONS)
    values = {
        "limit_data": st.integers(0, 40_000),  # a cut at a random byte offset
        "reset_peer": st.integers(0, 100),
        "cut_after": st.integers(0, 100),
        "stall": st.integers(10, 200),  # short: well under the dead-peer bound
        "slicer": st.integers(1, 64),
        "latency": st.integers(1, 5),
    }
    return st.one_of(*(st.builds(Fault, at, st.just(k), direction, values[k]) for k in kinds))


def schedules(n: int, cuts: int, others: int) -> st.SearchStrategy[list[Fault]]:
    """At least one cut, then up to ``others`` more faults of any kind, in order."""
    return st.tuples(
        st.lists(faults(n, CUTS), min_size=1, max_size=cuts),
        st.lists(faults(n, (*CUTS, "stall", "slicer", "latency")), max_size=others),
    ).map(lambda pair: sorted(pair[0] + pair[1], key=lambda f: f.at))


def _messages(n: int, seed: int) -> list[str | bytes]:
    rng = random.Random(seed)
    out: list[str | bytes] = []
    for i in range(n):
        body = f"{i}:" + "".join(rng.choices("abcdefgh", k=rng.randrange(0, 1000)))
        out.append(body if rng.random() < 0.5 else body.encode())
    return out


def _stream(ws: WiFiSocket, proxy: Proxy, schedule: list[Fault], n: int, seed: int) -> None:
    """Pipeline ``n`` messages through the echo, faults as scheduled; check every echo."""
    msgs = _messages(n, seed)
    injector = Injector(proxy)
    pending = list(schedule)
    try:
        for i, msg in enumerate(msgs):
            while pending and pending[0].at <= i:
                injector.apply(pending.pop(0))
            ws.send(msg)
        got = [ws.receive(timeout=WAIT) for _ in msgs]
    finally:
        injector.stop()
    note(f"netem seed={proxy.seed}, {ws.reconnects} reconnect(s), "
         f"{proxy.connections_total} connection(s)")
    event(f"reconnects: {min(ws.reconnects, 3)}{'+' if ws.reconnects >= 3 else ''}")
    if got != msgs:
        first = next(k for k, (a, b) in enumerate(zip(got, msgs, strict=True)) if a != b)
        tags = [str(m[: m.index(":" if isinstance(m, str) else b":")]) for m in got]
        raise AssertionError(
            f"netem seed={proxy.seed} schedule={schedule}: echoes differ from what was sent "
            f"from message {first} on; {len(tags) - len(set(tags))} duplicate(s)"
        )
    for a, b in zip(got, msgs, strict=True):
        assert type(a) is type(b)


N = 600


@SETTINGS
@given(schedule=schedules(N, 2, 3), seed=st.integers(0, 2**32 - 1))
def test_host_dials_streams_survive_random_faults(
    device: Device, schedule: list[Fault], seed: int
) -> None:
    note(f"netem seed={seed} schedule={schedule}")
    with Proxy(upstream=(device.ip, device.port), seed=seed) as proxy, \
            WiFiSocket(*proxy.address, key=device.key, **OPTS) as ws:
        _stream(ws, proxy, schedule, N, seed)


@settings(SETTINGS, max_examples=3)
@given(schedule=schedules(N, 1, 1), seed=st.integers(0, 2**32 - 1))
def test_device_dials_streams_survive_random_faults(
    device: Device, schedule: list[Fault], seed: int
) -> None:
    """The seed project's topology: the host serves, the device dials (and redials)."""
    note(f"netem seed={seed} schedule={schedule}")
    with socket.create_server((HOST, 0)) as listener, \
            Proxy(upstream=listener.getsockname(), seed=seed) as proxy:
        reply = device.control(f"dial {HOST} {proxy.address[1]}")
        assert reply.get("ok") is True, reply
        try:
            with WiFiSocket.accept(listener, key=device.key, **OPTS) as ws:
                _stream(ws, proxy, schedule, N, seed)
        finally:
            assert device.control("dial off").get("ok") is True
