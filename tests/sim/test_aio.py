"""``harness.aio`` against the twin: the asyncio link, same semantics as the blocking one.

Includes one coroutine driving three twins at once from one event loop, a stream through
netem cuts (reconnect and resume), the serve topology, and close() waking a waiter.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Any

import pytest

from harness import ConnectionLost, MessageTooLarge, SessionLost, Timeout, aio
from harness.backends import DeviceOptions, open_device
from harness.device.base import Device
from harness.netem import Blackhole, Proxy
from tests.helpers.dial import DialControl
from tests.helpers.faults import Fault, Injector
from tests.helpers.net import free_port

pytestmark = [pytest.mark.twin, pytest.mark.asyncio]

WAIT = 20.0
OPTS: dict[str, Any] = {"backoff_initial": 0.02, "backoff_max": 0.2, "timeout": WAIT}


def _msg(i: int) -> str | bytes:
    body = f"{i:05d}:" + "q" * (i * 53 % 900)
    return body if i % 2 else body.encode()


async def _pipeline(ws: aio.WiFiSocket, count: int) -> list[str | bytes]:
    """Send ``count`` messages from one task while another receives the echoes."""

    async def reader() -> list[str | bytes]:
        return [await ws.receive() for _ in range(count)]

    task = asyncio.create_task(reader())
    for i in range(count):
        await ws.send(_msg(i))
    return await asyncio.wait_for(task, WAIT)


async def test_echo_text_and_binary(device: Device) -> None:
    async with await aio.WiFiSocket.connect(device.ip, device.port, key=device.key, **OPTS) as ws:
        assert ws.connected and ws.max_message == device.max_message
        await ws.send("hello")
        await ws.send(b"\x00\xff")
        assert await ws.receive() == "hello"
        assert await ws.receive() == b"\x00\xff"
        with pytest.raises(MessageTooLarge):
            await ws.send(b"x" * (ws.max_message + 1))
        with pytest.raises(Timeout, match="no message"):
            await ws.receive(timeout=0.1)
        assert await _pipeline(ws, 500) == [_msg(i) for i in range(500)]
    assert not ws.connected
    with pytest.raises(ConnectionLost, match="closed"):
        await ws.receive()


@pytest.fixture(scope="module")
def three_twins() -> Iterator[list[Device]]:
    devices: list[Device] = []
    try:
        for _ in range(3):
            devices.append(open_device(DeviceOptions(spec="sim-direct")))
        yield devices
    finally:
        for d in devices:
            d.close()


async def test_one_coroutine_drives_three_twins_at_once(three_twins: list[Device]) -> None:
    socks = await asyncio.gather(
        *(aio.WiFiSocket.connect(d.ip, d.port, key=d.key, **OPTS) for d in three_twins)
    )
    try:
        assert len({s.peer_address for s in socks}) == 3
        count = 400
        # One coroutine: every round sends to all three, then takes all three echoes.
        for i in range(count):
            for n, ws in enumerate(socks):
                await ws.send(f"{n}:{i}")
            for n, ws in enumerate(socks):
                assert await ws.receive() == f"{n}:{i}"
        # And pipelined on all three concurrently.
        results = await asyncio.gather(*(_pipeline(ws, 300) for ws in socks))
        assert all(r == [_msg(i) for i in range(300)] for r in results)
        for d in three_twins:
            assert d.control("stats")["messages"] >= count
    finally:
        await asyncio.gather(*(ws.close() for ws in socks))


async def test_a_pipelined_stream_survives_cuts(device: Device, netem: Proxy) -> None:
    rng = random.Random(netem.seed)
    count = 1500
    cuts = {at: Fault(at, rng.choice(["limit_data", "reset_peer"]),
                      rng.choice(["upstream", "downstream"]), rng.randrange(0, 4000))
            for at in rng.sample(range(20, count - 20), 6)}
    injector = Injector(netem)
    try:
        async with await aio.WiFiSocket.connect(*netem.address, key=device.key, **OPTS) as ws:

            async def reader() -> list[str | bytes]:
                return [await ws.receive() for _ in range(count)]

            task = asyncio.create_task(reader())
            for i in range(count):
                fault = cuts.get(i)
                if fault is not None:
                    if fault.kind == "reset_peer":
                        fault = Fault(fault.at, fault.kind, fault.direction, fault.value % 20)
                    injector.apply(fault)
                await ws.send(_msg(i))
            got = await asyncio.wait_for(task, WAIT * 2)
            assert got == [_msg(i) for i in range(count)]
            assert ws.reconnects >= 1
            with pytest.raises(Timeout):
                await ws.receive(timeout=0.2)  # no duplicate at the end
    finally:
        injector.stop()


async def test_close_wakes_a_waiting_receive_and_send(device: Device, netem: Proxy) -> None:
    ws = await aio.WiFiSocket.connect(*netem.address, key=device.key, **OPTS)
    netem.add(Blackhole(), direction="upstream")

    async def send_until_blocked() -> None:
        while True:
            await ws.send(b"z" * ws.max_message)

    receiving = asyncio.create_task(ws.receive())
    sending = asyncio.create_task(send_until_blocked())
    await asyncio.sleep(0.3)
    assert not receiving.done() and not sending.done()
    await ws.close()
    for task in (receiving, sending):
        with pytest.raises(ConnectionLost):
            await asyncio.wait_for(task, 3.0)


async def test_serve_accepts_the_device_dialling_in(device: Device) -> None:
    port = free_port()
    serving = asyncio.create_task(
        aio.WiFiSocket.serve(port, host="127.0.0.1", key=device.key, **OPTS)
    )
    await asyncio.sleep(0.05)
    dial = DialControl(device)
    dial.to("127.0.0.1", port)
    try:
        async with await serving as ws:
            await ws.send("over the device's connection")
            assert await ws.receive() == "over the device's connection"
    finally:
        dial.off()
        with device.connect(timeout=5.0) as sync:  # the echo service listens again
            sync.send("listening again")
            assert sync.receive(timeout=5.0) == "listening again"


async def test_a_device_reset_raises_session_lost_once_then_goes_on(device: Device) -> None:
    async with await aio.WiFiSocket.connect(device.ip, device.port, key=device.key, **OPTS) as ws:
        await ws.send("before")
        assert await ws.receive() == "before"
        await ws.flush()
        old_peer = ws.peer_session_id
        await asyncio.to_thread(device.reset)
        # The event loop keeps the link: it notices the loss, redials, meets the new session.
        deadline = asyncio.get_running_loop().time() + WAIT
        while ws.peer_session_id == old_peer:
            assert asyncio.get_running_loop().time() < deadline, "no new device session"
            await asyncio.sleep(0.01)
        with pytest.raises(SessionLost) as lost:
            await ws.receive()
        assert lost.value.unconfirmed == []  # everything was acknowledged before the reset
        await ws.send("after")
        assert await ws.receive() == "after"
        assert ws.reconnects >= 1 and ws.last_reconnect is not None
        assert ws.last_reconnect.session_lost
