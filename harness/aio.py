"""``harness.aio``: the WiFiSocket link for asyncio programs.

The same link as :class:`harness.WiFiSocket` — the same sans-IO
:class:`~harness.wifisocket.session.Session` and the same
:class:`~harness.wifisocket.link.Link` (transport, reconnect supervisor, acceptor) — with
the event loop doing the waiting: the link's sockets are the loop's readers and writers and
its next timer (keepalive, dead peer, reconnect attempt, give-up) a ``call_later``. No
thread per socket, so one coroutine can drive many devices::

    from harness import aio

    async with await aio.WiFiSocket.connect("192.168.1.50") as ws:
        await ws.send("hello")
        print(await ws.receive(timeout=2))
        async for msg in ws:        # until the peer closes normally
            ...

Errors, options, reconnect and resume semantics are those of :class:`harness.WiFiSocket`
(docs/reconnect.md). One socket belongs to the event loop it was created in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import time
from types import TracebackType
from typing import Any

from harness.errors import ConnectionLost, ProtocolError, Timeout
from harness.wifisocket.acceptor import Acceptor, Allow
from harness.wifisocket.link import (
    BusyRetry,
    Link,
    LinkView,
    PeerClosedNormally,
    deadline_after,
)
from harness.wifisocket.socket import DEFAULT_PORT, DEFAULT_TIMEOUT, configure
from harness.wifisocket.transport import POLLIN, POLLOUT

__all__ = ["WiFiSocket"]

_log = logging.getLogger("harness.wifisocket")
_FOREVER = math.inf
_CLOSE_FLUSH = 1.0




async def _dial(loop: asyncio.AbstractEventLoop, host: str, port: int) -> socket.socket:
    """A connected non-blocking socket to the first address of ``host`` that answers."""
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    error: OSError | None = None
    for family, type_, proto, _, address in infos:
        sock = socket.socket(family, type_, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
        except BaseException as exc:  # a timeout cancels us here: the socket must not leak
            sock.close()
            if not isinstance(exc, OSError):
                raise
            error = exc
        else:
            return sock
    raise error or OSError(f"no address for {host}")

class WiFiSocket(LinkView):
    """An asyncio message link to a device speaking the WiFiSocket protocol v1.

    Make one with :meth:`connect` (we dial the device) or :meth:`serve` (the device dials
    in); the constructor is not public.
    """

    def __init__(self, link: Link, timeout: float | None, loop: asyncio.AbstractEventLoop) -> None:
        self._link = link
        self._session = link.session
        self._timeout = timeout
        self._loop = loop
        self._registered: dict[int, tuple[int, socket.socket]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = _FOREVER
        self._waiters: list[asyncio.Future[None]] = []

    # --- making one ----------------------------------------------------------------------

    @classmethod
    async def connect(
        cls, host: str, port: int = DEFAULT_PORT, *, timeout: float | None = DEFAULT_TIMEOUT,
        **options: Any,
    ) -> WiFiSocket:
        """Connect to ``host:port`` and complete the HELLO exchange within ``timeout``.

        Options and errors as :class:`harness.WiFiSocket`.
        """
        configure(options)  # bad options fail before any socket exists
        deadline = deadline_after(timeout)
        retry = BusyRetry(deadline)
        while True:
            try:
                return await cls._dial_once(host, port, timeout, deadline, options)
            except ProtocolError as exc:
                pause = retry.pause_after(exc)
            except Timeout as exc:
                retry.timed_out(exc)
            await asyncio.sleep(pause)

    @classmethod
    async def _dial_once(cls, host: str, port: int, timeout: float | None, deadline: float,
                         options: dict[str, Any]) -> WiFiSocket:
        policy, session = configure(options)
        loop = asyncio.get_running_loop()
        remaining = None if deadline == _FOREVER else max(0.001, deadline - time.monotonic())
        try:
            # wait_for, not asyncio.timeout: the package supports Python 3.10.
            sock = await asyncio.wait_for(_dial(loop, host, port), remaining)
        except asyncio.TimeoutError as exc:
            raise Timeout(f"connecting to {host}:{port} timed out after {timeout} s") from exc
        except OSError as exc:
            raise ConnectionLost(f"cannot connect to {host}:{port}: {exc}") from exc
        self = cls(Link(session, policy, f"{host}:{port}"), timeout, loop)
        try:
            try:
                self._link.dialled(sock)
            except OSError as exc:
                raise ConnectionLost(f"connection failed during setup: {exc}") from exc
            # The peer's HELLO is due within connect_timeout, as on every later attempt.
            await self._await_first(min(deadline, time.monotonic() + policy.connect_timeout),
                                    timeout)
        except BaseException:
            sock.close()
            self._teardown()
            raise
        return self

    @classmethod
    async def serve(
        cls, port: int = DEFAULT_PORT, host: str = "0.0.0.0", *, timeout: float | None = None,
        allow: Allow = None, **options: Any,
    ) -> WiFiSocket:
        """Listen on ``host:port`` and wait for a peer that dials in and says HELLO.

        As :meth:`harness.WiFiSocket.serve`: ``timeout`` bounds the wait for the peer (None:
        forever); with ``reconnect=True`` the socket keeps listening for the device to
        dial back in until :meth:`close`; ``allow`` says who may dial in.
        """
        policy, session = configure(options)
        Acceptor.check_allow(allow)
        try:
            listener = socket.create_server((host, port))
        except OSError as exc:
            raise ConnectionLost(f"cannot listen on {host}:{port}: {exc}") from exc
        self = cls(Link(session, policy), DEFAULT_TIMEOUT if timeout is None else timeout,
                   asyncio.get_running_loop())
        try:
            try:
                self._link.listen(listener, owns=True, allow=allow)
            except OSError as exc:
                raise ConnectionLost(f"the listener is unusable: {exc}") from exc
            await self._await_first(deadline_after(timeout), timeout)
        except BaseException:
            listener.close()
            self._teardown()
            raise
        return self

    async def _await_first(self, deadline: float, timeout: float | None) -> None:
        link = self._link
        self._changed()
        while not link.connected:
            link.check_first(deadline, timeout)
            await self._wait(deadline)

    # --- the event loop's side -----------------------------------------------------------

    def _changed(self) -> None:
        """After the link acted: follow its poll set and timer, wake waiters, callbacks."""
        link = self._link
        # A link that failed for good waits for nothing (its socket would stay readable).
        done = link.closed or link.error is not None
        wake = _FOREVER if done else link.prepare_wait()
        self._follow(link, {} if done else link.transport.watched)
        if wake != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._timer_at = wake
            if wake != _FOREVER:
                self._timer = self._loop.call_later(
                    max(0.0, wake - time.monotonic()), self._on_timer
                )
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)
        while link.callbacks:
            try:
                link.callbacks.popleft()()
            except Exception:
                _log.exception("on_reconnect callback failed")

    def _follow(self, link: Link, watched: dict[int, int]) -> None:
        """Make the loop's readers and writers those of ``watched`` (the link's poll set)."""
        owners = link.fd_owners()
        loop = self._loop
        for fd, (mask, owner) in list(self._registered.items()):
            if watched.get(fd) != mask or owners.get(fd) is not owner:
                del self._registered[fd]
                # The socket may be closed already (its fd reused): the loop may complain.
                with contextlib.suppress(OSError, ValueError):
                    loop.remove_reader(fd)
                with contextlib.suppress(OSError, ValueError):
                    loop.remove_writer(fd)
        for fd, mask in watched.items():
            sock = owners.get(fd)
            if sock is None or fd in self._registered:
                continue
            if mask & POLLIN:
                loop.add_reader(fd, self._on_ready, fd, POLLIN)
            if mask & POLLOUT:
                loop.add_writer(fd, self._on_ready, fd, POLLOUT)
            self._registered[fd] = (mask, sock)

    def _on_ready(self, fd: int, mask: int) -> None:
        link = self._link
        if link.closed and link.transport.sock is None:
            return
        link.process([(fd, mask)])
        link.flush_some()
        self._changed()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = _FOREVER
        link = self._link
        link.process([])
        link.flush_some()
        self._changed()

    async def _wait(self, deadline: float) -> None:
        """Until the link acted (or ``deadline``)."""
        fut: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(fut)
        delay = None if deadline == _FOREVER else max(0.0, deadline - time.monotonic())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(fut, delay)

    def _teardown(self) -> None:
        # Leave the loop before the sockets close (a closed fd cannot be unregistered).
        for fd in self._registered:
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)
        self._registered.clear()
        self._link.shutdown()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = _FOREVER
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    # --- public API --------------------------------------------------------------------

    async def send(
        self, msg: str | bytes | bytearray | memoryview, timeout: float | None = None
    ) -> None:
        """Send one message (``str`` as TEXT, bytes-like as BINARY); as
        :meth:`harness.WiFiSocket.send`: waits while the window is full or the link is down.
        """
        if not isinstance(msg, (str, bytes, bytearray, memoryview)):
            raise TypeError(f"send() takes str or bytes-like, not {type(msg).__name__}")
        waited = self._timeout if timeout is None else timeout
        deadline = deadline_after(waited)
        link = self._link
        try:
            while not link.sending(msg, deadline, waited):
                await self._wait(deadline)
        finally:
            self._changed()
        # The frame is the session's now: wait until the kernel took it.
        sock = link.transport.sock
        while not link.written(sock, deadline):
            await self._wait(deadline)

    async def receive(self, timeout: float | None = None) -> str | bytes:
        """The next message; as :meth:`harness.WiFiSocket.receive`."""
        waited = self._timeout if timeout is None else timeout
        deadline = deadline_after(waited)
        while (item := self._link.receiving(deadline, waited)) is None:
            await self._wait(deadline)
        return item

    async def flush(self, timeout: float | None = None) -> None:
        """Until the peer acknowledged everything sent so far (as the blocking ``flush``)."""
        deadline = deadline_after(self._timeout if timeout is None else timeout)
        while not self._link.flushed(deadline):
            await self._wait(deadline)

    async def close(self) -> None:
        """A CLOSE NORMAL (best effort, at most 1 s), then the TCP connection. Idempotent.

        Coroutines waiting in this socket wake and raise ConnectionLost.
        """
        link = self._link
        if link.closed:
            return
        if link.say_goodbye():
            deadline = deadline_after(_CLOSE_FLUSH)
            sock = link.transport.sock
            self._changed()
            while (link.transport.outq and link.transport.sock is sock and link.error is None
                   and time.monotonic() < deadline):
                await self._wait(deadline)
        self._teardown()
        link.callbacks.clear()

    async def __aenter__(self) -> WiFiSocket:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __aiter__(self) -> WiFiSocket:
        return self

    async def __anext__(self) -> str | bytes:
        """The next message, without a timeout; the iteration ends when the peer closes
        normally."""
        try:
            return await self.receive(timeout=_FOREVER)
        except PeerClosedNormally:
            raise StopAsyncIteration from None
