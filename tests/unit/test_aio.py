"""``harness.aio`` against a scripted peer: the same errors and ends as the blocking socket."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import ProtocolError, Timeout, aio
from harness.wifisocket.frame import CloseCode
from tests.helpers.peer import LOCAL, WAIT, Peer, device, echo

pytestmark = pytest.mark.asyncio


async def test_echo_and_a_normal_close_end_the_iteration(pool: ThreadPoolExecutor,
                                                         listener) -> None:
    def script(peer: Peer) -> None:
        peer.open()
        for i in range(5):
            peer.send(f"m{i}")
        peer.conn.sendall(peer.s.close())

    port, fut = device(pool, listener, script)
    async with await aio.WiFiSocket.connect(LOCAL, port, timeout=WAIT) as ws:
        got = [m async for m in ws]
        assert got == [f"m{i}" for i in range(5)]
        fut.result(WAIT)
        # The link is over: the event loop must not keep servicing its (readable) socket.
        cpu = time.process_time()
        await asyncio.sleep(0.3)
        assert time.process_time() - cpu < 0.15


async def test_round_trips_and_timeouts(pool: ThreadPoolExecutor, listener) -> None:
    port, fut = device(pool, listener, echo)
    async with await aio.WiFiSocket.connect(LOCAL, port, timeout=WAIT) as ws:
        assert ws.max_message == 4096 and ws.connected
        for i in range(200):
            await ws.send(b"%d" % i if i % 2 else str(i))
        for i in range(200):
            assert await ws.receive() == (b"%d" % i if i % 2 else str(i))
        with pytest.raises(Timeout, match="no message"):
            await ws.receive(timeout=0.05)
        await ws.flush()
    assert fut.result(WAIT) is not None  # the peer saw our CLOSE


async def test_a_peer_protocol_close_raises_the_same_error(pool: ThreadPoolExecutor,
                                                           listener) -> None:
    def script(peer: Peer) -> None:
        peer.open()
        peer.conn.sendall(peer.s.close(CloseCode.PROTOCOL, "you did it wrong"))

    port, fut = device(pool, listener, script)
    async with await aio.WiFiSocket.connect(LOCAL, port, timeout=WAIT) as ws:
        with pytest.raises(ProtocolError, match="you did it wrong") as info:
            await ws.receive()
        assert info.value.code == CloseCode.PROTOCOL
        with pytest.raises(ProtocolError):
            await ws.send("after")
    fut.result(WAIT)
