"""Full duplex against the twin: a reader thread and a writer thread on one WiFiSocket.

* the writer never waits for a ``receive`` blocked in the reader;
* 3,000 pipelined messages through random cuts (netem), every one echoed back exactly once
  and in order; the same over hypothesis-drawn cut schedules;
* several writers interleave whole messages;
* ``close()`` from a third thread wakes a blocked ``receive`` and a blocked ``send``.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import ConnectionLost, WiFiSocket
from harness.device.base import Device
from harness.netem import Blackhole, Proxy
from tests.helpers.faults import Fault, Injector

pytestmark = pytest.mark.twin

WAIT = 30.0  # every wait here is bounded by this
OPTS: dict[str, Any] = {"backoff_initial": 0.02, "backoff_max": 0.2, "timeout": WAIT}


def _msg(i: int) -> str | bytes:
    # Both types, sizes from a few bytes to a couple of frames per window.
    body = f"{i:06d}:" + "x" * (i * 37 % 700)
    return body if i % 3 else body.encode()


class _Reader(threading.Thread):
    """Receives ``count`` messages into ``got`` (or records the error)."""

    def __init__(self, ws: WiFiSocket, count: int) -> None:
        super().__init__(daemon=True)
        self.ws = ws
        self.count = count
        self.got: list[str | bytes] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for _ in range(self.count):
                self.got.append(self.ws.receive(timeout=WAIT))
        except BaseException as exc:
            self.error = exc


def _pipeline(ws: WiFiSocket, count: int, cuts: dict[int, Fault], injector: Injector) -> None:
    """Send ``count`` messages from this thread while a reader thread takes the echoes."""
    reader = _Reader(ws, count)
    reader.start()
    try:
        for i in range(count):
            fault = cuts.get(i)
            if fault is not None:
                injector.apply(fault)
            ws.send(_msg(i))
    finally:
        reader.join(WAIT * 2)
    assert not reader.is_alive(), "the reader is stuck"
    assert reader.error is None, f"after {len(reader.got)} messages: {reader.error!r}"
    want = [_msg(i) for i in range(count)]
    if reader.got != want:
        first = next(i for i, (a, b) in enumerate(zip(reader.got, want, strict=True)) if a != b)
        pytest.fail(f"message {first}: got {reader.got[first]!r:.40}, want {want[first]!r:.40}")
    with pytest.raises(Exception, match="no message"):
        ws.receive(timeout=0.2)  # and nothing more: no duplicate at the end


def test_send_does_not_wait_for_a_blocked_receive(device: Device) -> None:
    with WiFiSocket(device.ip, device.port, key=device.key, **OPTS) as ws:
        reader = _Reader(ws, 1)
        reader.start()
        time.sleep(0.2)  # the reader is blocked in receive (nothing was sent yet)
        start = time.monotonic()
        ws.send("ping from the main thread", timeout=2.0)
        assert time.monotonic() - start < 1.0  # not after the reader's timeout
        reader.join(WAIT)
        assert reader.got == ["ping from the main thread"]


def test_3000_pipelined_messages_through_random_cuts(device: Device, netem: Proxy) -> None:
    rng = random.Random(netem.seed)
    count = 3000
    cuts: dict[int, Fault] = {}
    for at in rng.sample(range(50, count - 50), 12):
        kind = rng.choice(["limit_data", "reset_peer"])
        value = rng.randrange(0, 8000) if kind == "limit_data" else rng.randrange(0, 20)
        cuts[at] = Fault(at, kind, rng.choice(["upstream", "downstream"]), value)
    injector = Injector(netem)
    try:
        with WiFiSocket(*netem.address, key=device.key, **OPTS) as ws:
            _pipeline(ws, count, cuts, injector)
            assert ws.reconnects >= 1
    finally:
        injector.stop()


_cut = st.builds(
    Fault,
    at=st.integers(0, 299),
    kind=st.sampled_from(["limit_data", "reset_peer"]),
    direction=st.sampled_from(["upstream", "downstream"]),
    value=st.integers(0, 4000),
)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(_cut, max_size=4, unique_by=lambda f: f.at))
def test_duplex_survives_any_cut_schedule(device: Device, cuts: list[Fault]) -> None:
    with Proxy(upstream=(device.ip, device.port), seed=0) as proxy:
        injector = Injector(proxy)
        try:
            with WiFiSocket(*proxy.address, key=device.key, **OPTS) as ws:
                # reset_peer's value is ms: keep it short so the cut lands mid-stream.
                schedule = {
                    f.at: f if f.kind == "limit_data" else Fault(f.at, f.kind, f.direction,
                                                                 f.value % 20)
                    for f in cuts
                }
                _pipeline(ws, 300, schedule, injector)
        finally:
            injector.stop()


def test_several_writers_interleave_whole_messages(device: Device) -> None:
    writers, each = 4, 300
    with WiFiSocket(device.ip, device.port, key=device.key, **OPTS) as ws:
        reader = _Reader(ws, writers * each)
        reader.start()
        errors: list[BaseException] = []

        def write(w: int) -> None:
            try:
                for i in range(each):
                    ws.send(f"{w}:{i}:" + "y" * (i % 500))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(w,), daemon=True) for w in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        reader.join(WAIT)
        assert not errors and reader.error is None, (errors, reader.error)
        # Each writer's messages arrive whole and in its order.
        for w in range(writers):
            mine = [m for m in reader.got if isinstance(m, str) and m.startswith(f"{w}:")]
            assert mine == [f"{w}:{i}:" + "y" * (i % 500) for i in range(each)]
        assert len(reader.got) == writers * each


def test_close_from_a_third_thread_wakes_receive_and_send(
    device: Device, netem: Proxy
) -> None:
    with WiFiSocket(*netem.address, key=device.key, **OPTS) as ws:
        ws.send("hello")
        assert ws.receive() == "hello"
        netem.add(Blackhole(), direction="upstream")  # nothing gets through: the window fills
        outcome: dict[str, BaseException | None] = {}

        def receive() -> None:
            try:
                ws.receive(timeout=WAIT)
                outcome["receive"] = None
            except BaseException as exc:
                outcome["receive"] = exc

        def send() -> None:
            try:
                while True:  # blocks once the device's window is full
                    ws.send(b"z" * ws.max_message, timeout=WAIT)
            except BaseException as exc:
                outcome["send"] = exc

        threads = [threading.Thread(target=f, daemon=True) for f in (receive, send)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        assert all(t.is_alive() for t in threads) and not outcome, outcome
        took: list[float] = []

        def close() -> None:
            start = time.monotonic()
            ws.close()
            took.append(time.monotonic() - start)

        closer = threading.Thread(target=close, daemon=True)
        closer.start()
        for t in (*threads, closer):
            t.join(5.0)
            assert not t.is_alive()
        # The waiting thread left at once: close() did not wait out its 1 s bound for it.
        assert took and took[0] < 0.9, took
        assert isinstance(outcome["receive"], ConnectionLost), outcome
        assert isinstance(outcome["send"], ConnectionLost), outcome
