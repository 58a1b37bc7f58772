"""Session resume against the twin's firmware: the device's half of the promise.

* a stream the device originates (the control service's ``source`` mode) survives cuts:
  the device resends what the host had not acknowledged, and every message arrives once,
  in order;
* cuts at every byte offset of a short exchange, in each direction (inside HELLOs, headers,
  payloads, CRCs and acks alike);
* a stall past the dead-peer bound: both sides declare the link dead, the host reconnects
  once the stall is over and nothing sent into the stall is lost.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from harness import WiFiSocket
from harness.device.base import Device
from harness.netem import Blackhole, Proxy
from harness.wifisocket import Reconnect
from tests.helpers.faults import Fault, Injector

pytestmark = pytest.mark.twin

WAIT = 20.0  # every wait here is bounded by this
OPTS: dict[str, Any] = {"backoff_initial": 0.02, "backoff_max": 0.2, "timeout": WAIT}


def test_a_stream_the_device_sends_survives_cuts(device: Device, netem: Proxy) -> None:
    count, size = 3000, 200
    injector = Injector(netem)
    with WiFiSocket(*netem.address, key=device.key, **OPTS) as ws:
        try:
            reply = device.control(f"source {count} {size}")
            assert reply.get("ok") is True, reply
            for i in range(count):
                if i in (200, 1100, 2000):  # cut somewhere in the next ~8 KiB
                    injector.apply(Fault(i, "limit_data", "downstream", i * 7 % 8000))
                msg = ws.receive(timeout=WAIT)
                assert isinstance(msg, bytes) and len(msg) == size
                assert int.from_bytes(msg[:4], "big") == i, f"message {i} out of order"
            assert ws.reconnects >= 1
            stats = device.control("stats")
            assert stats["messages"] == count and stats["source_left"] == 0, stats
        finally:
            injector.stop()
            assert device.control("echo").get("mode") == "echo"
        with pytest.raises(Exception, match="no message"):
            ws.receive(timeout=0.2)  # and nothing more: no duplicate at the end


@pytest.mark.parametrize("direction", ["upstream", "downstream"])
def test_cuts_at_every_offset_of_a_short_exchange(
    device: Device, netem: Proxy, direction: str
) -> None:
    msgs: list[str | bytes] = ["first", b"\x00" * 40, "third " * 5]
    injector = Injector(netem)
    try:
        with WiFiSocket(*netem.address, key=device.key, **OPTS) as ws:
            # One exchange is about 250 bytes each way (frames, acks): cut at each offset.
            for offset in range(0, 260, 3):
                injector.apply(Fault(0, "limit_data", direction, offset))
                for m in msgs:
                    ws.send(m)
                got = [ws.receive(timeout=WAIT) for _ in msgs]
                assert got == msgs, f"cut after {offset} bytes {direction}: got {got!r}"
                ws.flush(timeout=WAIT)
            assert ws.reconnects >= 50, ws.reconnects
    finally:
        injector.stop()


def test_a_stall_past_the_dead_bound_is_detected_and_resumed(
    device: Device, netem: Proxy
) -> None:
    seen: list[Reconnect] = []
    opts = {**OPTS, "keepalive_ms": 100, "dead_after": 0.5, "on_reconnect": seen.append}
    with WiFiSocket(*netem.address, key=device.key, **opts) as ws:
        ws.send("before")
        assert ws.receive(timeout=WAIT) == "before"
        mark = device.console.mark()
        stall = netem.add(Blackhole(), direction="both")
        ws.send("into the stall")  # held by the stall, then lost with its connection
        deadline = time.monotonic() + WAIT
        while ws.connected:  # the host finds the peer silent past dead_after
            with pytest.raises(Exception, match="no message"):
                ws.receive(timeout=0.05)
            assert time.monotonic() < deadline, "the stall was never found dead"
        # The device's bound is 3 x our keepalive: it finds us dead too.
        device.console.expect(r"^WS CLOSE code=6 ", timeout=WAIT, since=mark)
        netem.remove(stall)
        ws.send("after")
        assert ws.receive(timeout=WAIT) == "into the stall"
        assert ws.receive(timeout=WAIT) == "after"
    assert seen and "silent for 0.5 s" in seen[0].cause and seen[0].resumed
