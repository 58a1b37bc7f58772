"""The fault-injecting TCP proxy: a listener, a loop thread, and the control API.

One background thread runs a ``selectors`` loop over the listener, every connection's two
legs and a wake-up socket. Control calls from other threads (add, remove, disable, ...)
are queued to that thread and waited for with a timeout, so the pipelines are only ever
touched by one thread and need no locks.
"""

from __future__ import annotations

import errno
import logging
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, TypeVar

from harness.netem.connection import Connection, Counters
from harness.netem.seeding import fresh_seed, stage_rng
from harness.netem.stages import make_stage
from harness.netem.toxics import TOXIC_TYPES, Toxic

log = logging.getLogger("harness.netem")

Direction = Literal["both", "upstream", "downstream"]
"""``upstream``: client→server bytes; ``downstream``: server→client bytes."""

_DIRECTIONS: dict[str, tuple[str, ...]] = {
    "both": ("upstream", "downstream"),
    "upstream": ("upstream",),
    "downstream": ("downstream",),
}

_T = TypeVar("_T")
_IN_PROGRESS = frozenset({errno.EINPROGRESS, errno.EWOULDBLOCK})
_WAKE = object()
_LISTEN = object()


@dataclass(frozen=True)
class InstalledToxic:
    """A toxic as installed on a proxy: its name, the toxic, and where it applies."""

    name: str
    toxic: Toxic
    direction: Direction


class Proxy:
    """A TCP proxy from ``listen`` to ``upstream`` that injects faults (toxics).

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. Toxics can be
    added and removed at any time, also under traffic; they apply to open and future
    connections alike. All random decisions derive from :attr:`seed`; print it when a test
    fails so the same faults can be replayed with ``Proxy(..., seed=that_seed)``.
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        seed: int | None = None,
        connect_timeout: float = 5.0,
        control_timeout: float = 5.0,
    ) -> None:
        self._upstream = upstream
        self._listen = listen
        self._seed = fresh_seed() if seed is None else seed
        self._connect_timeout = connect_timeout
        self._control_timeout = control_timeout

        # Re-entrant: a control call made before start runs on the caller's thread with
        # the lock held (so start() cannot slip in), and takes it again inside.
        self._lock = threading.RLock()
        self._toxics: dict[str, InstalledToxic] = {}
        self._enabled = True
        self._thread: threading.Thread | None = None
        self._finished = False
        self._stopping = False
        self._crash: BaseException | None = None
        self._address: tuple[str, int] | None = None
        self._upstream_addr: tuple[int, Any] | None = None

        self._selector: selectors.BaseSelector | None = None
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._calls: deque[tuple[Callable[[], Any], Future[Any]]] = deque()
        self._conns: list[Connection] = []
        self._accepted = 0
        self._counters = Counters()

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> Proxy:
        """Bind the listener and start the loop thread. Returns ``self``."""
        with self._lock:
            if self._thread is not None or self._finished:
                raise RuntimeError("a Proxy can be started once")
            family, _, _, _, sockaddr = socket.getaddrinfo(
                *self._upstream, type=socket.SOCK_STREAM
            )[0]
            self._upstream_addr = (family, sockaddr)
            self._selector = selectors.DefaultSelector()
            self._wake_r, self._wake_w = socket.socketpair()
            self._wake_r.setblocking(False)
            self._wake_w.setblocking(False)
            self._selector.register(self._wake_r, selectors.EVENT_READ, _WAKE)
            try:
                listener = self._open_listener(self._listen)
            except OSError:
                self._close_plumbing()
                raise
            host, port = listener.getsockname()[:2]
            self._address = (host, port)
            if self._enabled:
                self._listener = listener
                self._selector.register(listener, selectors.EVENT_READ, _LISTEN)
            else:
                listener.close()
            self._thread = threading.Thread(
                target=self._run, name=f"netem-proxy-{port}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close the listener and every connection and join the loop thread.

        Idempotent. Raises :class:`TimeoutError` if the thread did not end in ``timeout``.
        """
        with self._lock:
            thread = self._thread
            if thread is None:
                self._finished = True
                return
            self._stopping = True
        self._wake()
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"netem proxy thread did not stop within {timeout} s")
        with self._lock:
            self._thread = None
            self._finished = True

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- properties ---------------------------------------------------------------------

    @property
    def seed(self) -> int:
        """The seed all fault decisions derive from."""
        return self._seed

    @property
    def upstream(self) -> tuple[str, int]:
        """The (host, port) the proxy connects to."""
        return self._upstream

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the proxy listens on; known once started."""
        if self._address is None:
            raise RuntimeError("the proxy is not started yet")
        return self._address

    @property
    def enabled(self) -> bool:
        """False between :meth:`disable` and :meth:`enable`."""
        return self._enabled

    @property
    def connections(self) -> int:
        """How many proxied connections are open now."""
        return len(self._conns)

    @property
    def connections_total(self) -> int:
        """How many connections were accepted since start."""
        return self._accepted

    @property
    def bytes_upstream(self) -> int:
        """Bytes delivered client→server, over all connections."""
        return self._counters.sent["upstream"]

    @property
    def bytes_downstream(self) -> int:
        """Bytes delivered server→client, over all connections."""
        return self._counters.sent["downstream"]

    @property
    def toxics(self) -> tuple[InstalledToxic, ...]:
        """The installed toxics, in the order they apply."""
        with self._lock:
            return tuple(self._toxics.values())

    # -- control ------------------------------------------------------------------------

    def add(self, toxic: Toxic, *, direction: Direction = "both", name: str | None = None) -> str:
        """Install ``toxic`` at the end of the pipeline of ``direction``; return its name.

        The default name is ``<type>_<direction>`` (``latency_downstream``), with a number
        appended if that is taken. It also applies to connections that are already open.
        """
        if not isinstance(toxic, TOXIC_TYPES):
            raise TypeError(f"not a toxic: {toxic!r}")
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction must be both, upstream or downstream: {direction!r}")
        chosen = name

        def apply() -> str:
            # Registry and open connections change together on the loop thread, so a
            # connection accepted meanwhile gets the toxic exactly once.
            with self._lock:
                if chosen is None:
                    final = self._free_name(f"{type(toxic).__name__.lower()}_{direction}")
                elif chosen in self._toxics:
                    raise ValueError(f"a toxic named {chosen!r} is already installed")
                else:
                    final = chosen
                installed = InstalledToxic(final, toxic, direction)
                self._toxics[final] = installed
            now = time.monotonic()
            for conn in self._conns:
                self._install(conn, installed, now)
            return final

        return self._call(apply)

    def remove(self, name: str) -> None:
        """Uninstall a toxic; bytes it held go on, in order. ``KeyError`` if unknown."""

        def apply() -> None:
            with self._lock:
                if name not in self._toxics:
                    raise KeyError(name)
                del self._toxics[name]
            now = time.monotonic()
            for conn in self._conns:
                conn.remove_stage(name, now)

        self._call(apply)

    def clear(self) -> None:
        """Uninstall every toxic, last added first."""
        for installed in reversed(self.toxics):
            self.remove(installed.name)

    def disable(self) -> None:
        """Take the link down: refuse new connections and close all open ones."""
        self._call(self._apply_disable)

    def enable(self) -> None:
        """Bring the link back up on the same address (``OSError`` if it was taken)."""
        self._call(self._apply_enable)

    # -- plumbing used by the control API ------------------------------------------------

    def _free_name(self, base: str) -> str:
        name, n = base, 1
        while name in self._toxics:
            n += 1
            name = f"{base}_{n}"
        return name

    def _call(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` on the loop thread (or here, if there is none) and wait for it."""
        with self._lock:
            if self._crash is not None:
                raise RuntimeError("the netem proxy loop crashed") from self._crash
            if self._thread is None or self._stopping:
                return fn()
            future: Future[_T] = Future()
            self._calls.append((fn, future))
        self._wake()
        return future.result(timeout=self._control_timeout)

    def _wake(self) -> None:
        try:
            if self._wake_w is not None:
                self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            # A full wake-up pipe already guarantees a wake-up.
            pass

    def _open_listener(self, address: tuple[str, int]) -> socket.socket:
        family, _, _, _, sockaddr = socket.getaddrinfo(*address, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    # -- loop-thread side ---------------------------------------------------------------

    def _install(self, conn: Connection, installed: InstalledToxic, now: float) -> None:
        for direction in _DIRECTIONS[installed.direction]:
            rng = stage_rng(self._seed, conn.index, direction, installed.name)
            conn.add_stage(direction, make_stage(installed.toxic, installed.name, rng, now))

    def _apply_disable(self) -> None:
        self._enabled = False
        if self._listener is not None and self._selector is not None:
            self._selector.unregister(self._listener)
            self._listener.close()
            self._listener = None
        for conn in self._conns:
            conn.close()
        self._conns.clear()

    def _apply_enable(self) -> None:
        if self._listener is None and self._selector is not None:
            self._listener = self._open_listener(self.address)
            self._selector.register(self._listener, selectors.EVENT_READ, _LISTEN)
        self._enabled = True

    def _accept(self, now: float) -> None:
        assert self._listener is not None and self._upstream_addr is not None
        for _ in range(64):
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("netem: accept failed: %s", exc)
                return
            family, sockaddr = self._upstream_addr
            server = socket.socket(family, socket.SOCK_STREAM)
            for sock in (client, server):
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            index = self._accepted
            self._accepted += 1
            assert self._selector is not None
            conn = Connection(
                index,
                client,
                server,
                self._selector,
                self._counters,
                connect_deadline=now + self._connect_timeout,
            )
            with self._lock:
                installed = list(self._toxics.values())
            for toxic in installed:
                self._install(conn, toxic, now)
            self._conns.append(conn)
            err = server.connect_ex(sockaddr)
            if err == 0:
                conn.handle(server, selectors.EVENT_WRITE, now)
            elif err not in _IN_PROGRESS:
                log.info("netem: connection %d: upstream connect failed: errno %d", index, err)
                conn.refuse()

    def _next_timeout(self) -> float | None:
        deadlines = [d for d in (c.deadline() for c in self._conns) if d is not None]
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())

    def _run_calls(self) -> None:
        assert self._wake_r is not None
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        while self._calls:
            fn, future = self._calls.popleft()
            try:
                future.set_result(fn())
            except Exception as exc:
                future.set_exception(exc)

    def _run(self) -> None:
        assert self._selector is not None
        try:
            while not self._stopping:
                events = self._selector.select(self._next_timeout())
                now = time.monotonic()
                touched: set[Connection] = set()
                for key, mask in events:
                    if key.data is _WAKE:
                        self._run_calls()
                        touched.update(self._conns)
                    elif key.data is _LISTEN:
                        self._accept(now)
                        touched.update(self._conns)
                    else:
                        conn: Connection = key.data
                        conn.handle(key.fileobj, mask, now)  # type: ignore[arg-type]
                        touched.add(conn)
                now = time.monotonic()
                for conn in self._conns:
                    deadline = conn.deadline()
                    if conn in touched or (deadline is not None and deadline <= now):
                        conn.service(now)
                self._conns = [c for c in self._conns if not c.closed]
        except Exception as exc:
            # Loud, not silent: later control calls raise with this as the cause.
            log.exception("netem: proxy loop crashed")
            self._crash = exc
        finally:
            self._shutdown_loop()

    def _shutdown_loop(self) -> None:
        for conn in self._conns:
            conn.close()
        self._conns.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            self._stopping = True
            pending = list(self._calls)
            self._calls.clear()
        for _, future in pending:
            future.set_exception(RuntimeError("the proxy stopped"))
        self._close_plumbing()

    def _close_plumbing(self) -> None:
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        if self._selector is not None:
            self._selector.close()
            # Nothing may register with it after this (enable() on a stopped proxy).
            self._selector = None
