"""``WiFiSocket``: the blocking host side of the WiFiSocket protocol, reconnecting by itself.

This module is the public facade: the threads and the waiting. The parts it drives, each
with one concern:

* :mod:`~harness.wifisocket.session` — the protocol (sans-IO): frames, acks, resume, the
  HELLO check of a new connection and which close codes are recoverable;
* :mod:`~harness.wifisocket.link` — a Session on a connection, never waiting;
* :mod:`~harness.wifisocket.transport` — the socket, its output queue and the poll set;
* :mod:`~harness.wifisocket.supervisor` — when to reconnect and when to give up (no I/O);
* :mod:`~harness.wifisocket.acceptor` — the serve topology's listener;
* :mod:`~harness.wifisocket.keepalive` — the thread that keeps an idle link alive.

Full duplex: any number of threads may call ``send`` and ``receive`` at once. The lock is
held only while touching the link's state or writing, never while waiting: one waiting
thread at a time waits in ``poll`` (without the lock) and acts on what it finds for
everyone; the others wait on a condition it signals. So a ``send`` never waits for a
``receive`` blocked in another thread, each message goes out whole, and ``close()`` from
any thread wakes every waiter (docs/reconnect.md, "Threads and cost").

When a connection is lost (TCP error or end of stream, a peer silent past ``dead_after``,
a peer's CLOSE ``TIMEOUT``, a corrupted frame) the socket opens a new one — it dials the
same address again, or in the serve topology accepts the device dialling back in — and
the session resumes on it: what the peer acknowledged is dropped, the rest resent in
order, duplicates dropped. Attempts follow :class:`~harness.wifisocket.backoff.Backoff`;
the socket gives up after ``reconnect_timeout`` with :class:`ReconnectFailed`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from harness.errors import ConnectionLost, ProtocolError, ReconnectFailed, Timeout
from harness.wifisocket.acceptor import Acceptor, Allow
from harness.wifisocket.backoff import ReconnectPolicy
from harness.wifisocket.keepalive import ACTIVE_POLL, IDLE_MAX_WAIT, start_keepalive
from harness.wifisocket.keyed import KeyLike
from harness.wifisocket.link import (
    BusyRetry,
    Link,
    LinkView,
    PeerClosedNormally,
    deadline_after,
)
from harness.wifisocket.session import Session
from harness.wifisocket.transport import POLLIN, POLLOUT

__all__ = ["ReconnectFailed", "WiFiSocket"]

_log = logging.getLogger("harness.wifisocket")

DEFAULT_PORT = 8080
DEFAULT_TIMEOUT = 5.0
# How long close() tries to get its CLOSE frame (and queued bytes) out.
_CLOSE_FLUSH = 1.0
_FOREVER = math.inf


def _poll_ms(seconds: float) -> int | None:
    if seconds == _FOREVER:
        return None
    return max(0, math.ceil(seconds * 1000))


def configure(options: dict[str, Any]) -> tuple[ReconnectPolicy, Session]:
    """Split and validate the keyword options (before any socket exists)."""
    policy, session_options = ReconnectPolicy.split(dict(options))
    return policy, Session(**session_options)


class WiFiSocket(LinkView):
    """A message link to a device (or any peer) speaking the WiFiSocket protocol (v1, or v2
    with a key).

    ``WiFiSocket(host, port)`` connects and completes the HELLO exchange within ``timeout``;
    :meth:`serve` waits for a device that dials in. Then ``send(str | bytes)`` and
    ``receive()`` exchange whole messages, keeping their type (text or binary).

    Once the first HELLO exchange succeeded, a lost connection is re-established by itself
    (``reconnect=True``): every message is delivered exactly once and in order across the
    drop, both ways, and ``send`` blocks (with its timeout) while the link is down. A peer
    that comes back with a new session (the device rebooted) makes the next call raise
    :class:`~harness.errors.SessionLost` with our unconfirmed messages; the link then goes
    on with the new session. See docs/reconnect.md.

    Args:
        host: the device's address.
        port: its WiFiSocket port (the test firmware's echo service is 8080).
        timeout: bound for connecting + handshake, and the default timeout of
            :meth:`send` / :meth:`receive` (None: no limit).
        key: the pre-shared key of a keyed link (protocol version 2, docs/protocol.md §6,
            docs/security.md): 16 to 32 bytes, or the same as a hex str (as typed on the
            device's console); another length is a ValueError. The peer must have the same
            key: both prove it in the handshake, and every frame is then authenticated (a
            forged or replayed frame costs a reconnect, never a wrong message). None: an
            unkeyed link (version 1). The key never appears in a repr, an error or a log.
        **options: reconnect options —
            ``reconnect`` (default True; False: a lost connection is final,
            :class:`~harness.errors.ConnectionLost`),
            ``backoff_initial`` (0.1 s), ``backoff_max`` (5 s), ``backoff_jitter`` (0.5),
            ``backoff_seed`` (None: the jitter is not reproducible),
            ``reconnect_timeout`` (60 s; None: never give up) — how long the link may stay
            down before :class:`ReconnectFailed`,
            ``connect_timeout`` (2 s) — bound of one attempt (TCP connect + HELLO),
            ``on_reconnect`` — called with a :class:`~harness.wifisocket.backoff.Reconnect`
            after each reconnect (outside the socket's lock, in the thread that did it);
            and session options, passed to :class:`~harness.wifisocket.session.Session`:
            ``max_message``, ``window``, ``keepalive_ms``, ``dead_after``,
            ``resend_buffer``, ``session_id``, ``rng``.

    Raises:
        Timeout: no TCP connection or no HELLO within ``timeout``.
        ConnectionLost: the connection was refused or dropped during the handshake.
        ProtocolError: the peer's HELLO was invalid, or it closed us with a reason; code
            ``BUSY`` when the device held another host's live session until ``timeout``.
        AuthenticationFailed: (a ProtocolError, code ``AUTH``) the keyed handshake failed:
            a wrong key, a key on one side only, a reflected HELLO. Never retried; after
            the first connection, it ends the link the same way (no redial).
    """

    def __init__(
        self, host: str, port: int = DEFAULT_PORT, *, timeout: float | None = DEFAULT_TIMEOUT,
        key: KeyLike = None, **options: Any,
    ) -> None:
        options["key"] = key
        configure(options)  # bad options fail before any socket exists
        deadline = deadline_after(timeout)
        retry = BusyRetry(deadline)
        while True:
            try:
                self._dial(host, port, timeout, deadline, options)
                break
            except ProtocolError as exc:
                pause = retry.pause_after(exc)
            except Timeout as exc:
                retry.timed_out(exc)
            time.sleep(pause)
        start_keepalive(self)

    def _dial(self, host: str, port: int, timeout: float | None, deadline: float,
              options: dict[str, Any]) -> None:
        """One connection and HELLO exchange (the constructor's attempt)."""
        policy, session = configure(options)
        try:
            sock = socket.create_connection(
                (host, port), timeout=None if deadline == _FOREVER else
                max(0.001, deadline - time.monotonic()))
        except TimeoutError as exc:
            raise Timeout(f"connecting to {host}:{port} timed out after {timeout} s") from exc
        except OSError as exc:
            raise ConnectionLost(f"cannot connect to {host}:{port}: {exc}") from exc
        self._setup(Link(session, policy, f"{host}:{port}"), timeout)
        try:
            try:
                self._link.dialled(sock)
            except OSError as exc:
                raise ConnectionLost(f"connection failed during setup: {exc}") from exc
            # The peer's HELLO is due within connect_timeout, as on every later attempt.
            self._await_first(min(deadline, time.monotonic() + policy.connect_timeout), timeout)
        except BaseException:
            sock.close()
            self._teardown()
            raise

    @classmethod
    def serve(
        cls, port: int = DEFAULT_PORT, host: str = "0.0.0.0", *, timeout: float | None = None,
        allow: Allow = None, key: KeyLike = None, **options: Any,
    ) -> WiFiSocket:
        """Listen on ``host:port`` and wait for a peer that dials in and says HELLO.

        ``timeout`` bounds the wait for the peer (None: wait forever); the socket's default
        ``send``/``receive`` timeout is ``timeout``, or 5 s if None. Connections that do not
        say HELLO within ``connect_timeout`` are closed and do not count. With
        ``reconnect=True`` (the default) the socket keeps listening, so that the device can
        dial back in after a drop (a newer connection that completes HELLO replaces the
        current one); the listener is closed by :meth:`close`. With ``reconnect=False`` it
        is closed before this returns.

        ``allow`` says who may dial in: IP addresses or networks (``"192.168.4.17"``,
        ``["10.0.0.0/24"]``), refused at accept before anything is read or sent, or a
        function ``allow((host, port), hello) -> bool`` of the dialer's HELLO. Default: any
        address may be the first peer, then only that peer's address (its redials).
        Without a filter and a key, whoever dials first *is* the device: see
        docs/reconnect.md, "Who may dial in".

        ``key``: as in the constructor. Keyed, a dialer becomes the peer only once it proved
        the key; one that fails is refused (CLOSE ``AUTH``), counted in :attr:`stats`, and
        the wait goes on (a stranger cannot end it).
        """
        options["key"] = key
        configure(options)  # validate the options before listening
        Acceptor.check_allow(allow)
        try:
            listener = socket.create_server((host, port))
        except OSError as exc:
            raise ConnectionLost(f"cannot listen on {host}:{port}: {exc}") from exc
        try:
            return cls._accepting(listener, timeout, options, owns=True, allow=allow)
        except BaseException:
            listener.close()
            raise

    @classmethod
    def accept(
        cls, listener: socket.socket, *, timeout: float | None = None, allow: Allow = None,
        key: KeyLike = None, **options: Any,
    ) -> WiFiSocket:
        """Like :meth:`serve` (``allow`` and ``key`` included), on a listening socket the
        caller owns.

        The listener is made non-blocking; with ``reconnect=True`` the socket keeps
        accepting reconnections from it until :meth:`close`.
        """
        Acceptor.check_allow(allow)
        options["key"] = key
        return cls._accepting(listener, timeout, options, owns=False, allow=allow)

    @classmethod
    def _accepting(
        cls, listener: socket.socket, timeout: float | None, options: dict[str, Any], owns: bool,
        allow: Allow = None,
    ) -> WiFiSocket:
        policy, session = configure(options)
        self = cls.__new__(cls)
        self._setup(Link(session, policy), DEFAULT_TIMEOUT if timeout is None else timeout)
        try:
            try:
                self._link.listen(listener, owns=owns, allow=allow)
            except OSError as exc:
                raise ConnectionLost(f"the listener is unusable: {exc}") from exc
            self._await_first(deadline_after(timeout), timeout)
        except BaseException:
            self._teardown()
            raise
        start_keepalive(self)
        return self

    # --- setup and teardown ------------------------------------------------------------

    def _setup(self, link: Link, timeout: float | None) -> None:
        self._link = link
        self._session = link.session
        self._timeout = timeout
        self._lock = threading.Lock()
        # Signalled whenever the waiting thread has acted, and by close().
        self._changed = threading.Condition(self._lock)
        self._polling = False  # a thread waits in poll, without the lock
        self._keepalive_polls = False  # ... and it is the keepalive thread
        self._sleepers = 0  # threads waiting on _changed
        self._calls = 0  # API calls so far (the keepalive thread's idleness test)
        self._stop = threading.Event()
        # Wakes the waiting thread when the poll set or close() needs it.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._wake_fd = self._wake_r.fileno()
        self._poller = link.transport.poller
        link.transport.watch(self._wake_fd, POLLIN)

    def _await_first(self, deadline: float, timeout: float | None) -> None:
        """Run until the first connection's HELLO exchange is done (or raise)."""
        link = self._link
        with self._lock:
            # Connected, not is_open: the peer may say HELLO, a few messages and CLOSE in
            # one go; the handshake succeeded and those messages are still to be received.
            while not link.connected:
                link.check_first(deadline, timeout)
                self._wait(deadline)

    def _teardown(self) -> None:
        self._stop.set()
        self._link.shutdown()
        for s in (self._wake_r, self._wake_w):
            s.close()

    # --- waiting (lock held on entry and on return, released meanwhile) ----------------

    def _wait(self, deadline: float, ack: bool = True) -> None:
        """Wait until something happened, the next timer, or ``deadline``; act on it.

        One thread at a time waits in ``poll`` and services the link for everyone; the
        others wait on ``_changed``, which it signals after each round.
        """
        link = self._link
        if self._polling:
            transport = link.transport
            if self._keepalive_polls or (
                transport.outq and not transport.watched.get(transport.fd, 0) & POLLOUT
            ):
                # The keepalive thread yields to the application; queued bytes need the
                # poller to watch for writability (once: then its poll set has it).
                self._kick()
            self._sleep(deadline)
            return
        wake = link.prepare_wait()
        now = time.monotonic()
        self._polling = True
        self._lock.release()
        try:
            ready = self._poller.poll(_poll_ms((wake if wake < deadline else deadline) - now))
        finally:
            self._lock.acquire()
            self._polling = False
        if ready and (len(ready) > 1 or ready[0][0] == self._wake_fd):
            ready = self._drain_wake(ready)
        if not link.closed or link.transport.sock is not None:
            link.process(ready, ack)
            if link.transport.outq:
                link.flush_some()
        if self._sleepers:
            self._changed.notify_all()

    def _sleep(self, deadline: float) -> None:
        """Wait on ``_changed`` until the polling thread's next round (or ``deadline``)."""
        wait = None if deadline == _FOREVER else max(0.0, deadline - time.monotonic())
        self._sleepers += 1
        try:
            self._changed.wait(wait)
        finally:
            self._sleepers -= 1

    def _drain_wake(self, ready: list[tuple[int, int]]) -> list[tuple[int, int]]:
        wake_fd = self._wake_fd
        for fd, _ in ready:
            if fd == wake_fd:
                with contextlib.suppress(OSError):
                    self._wake_r.recv(4096)
                return [r for r in ready if r[0] != wake_fd]
        return ready

    def _kick(self) -> None:
        """Wake the thread waiting in poll (if any)."""
        if self._polling:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"\0")

    def _run_callbacks(self) -> None:
        """Run queued on_reconnect calls (never with the lock held)."""
        callbacks = self._link.callbacks
        while callbacks:
            try:
                call = callbacks.popleft()
            except IndexError:
                return
            try:
                call()
            except Exception:
                _log.exception("on_reconnect callback failed")

    def _keepalive_round(self, seen_calls: int) -> tuple[bool, int, float]:
        """One round of the keepalive thread: (go on, API calls so far, pause before next)."""
        link = self._link
        with self._lock:
            if link.closed or link.error is not None:
                return False, seen_calls, 0.0
            calls = self._calls
            if self._polling:
                return True, calls, ACTIVE_POLL  # that thread runs the timers too
            if calls == seen_calls:
                # The application is not using the link: wait on its sockets so PINGs are
                # answered, data acknowledged and reconnections made at once.
                self._keepalive_polls = True
                try:
                    self._wait(time.monotonic() + IDLE_MAX_WAIT)
                finally:
                    self._keepalive_polls = False
                return True, calls, 0.0
            # The application is active and does its own I/O; only keep the timers.
            link.pump()
            if self._sleepers:
                self._changed.notify_all()
            now = time.monotonic()
            return True, calls, min(max(0.0, link.wake_at(now) - now), ACTIVE_POLL)

    # --- public API --------------------------------------------------------------------

    def send(self, msg: str | bytes | bytearray | memoryview, timeout: float | None = None) -> None:
        """Send one message: ``str`` as TEXT, bytes-like as BINARY.

        Blocks while the peer's window is full or the link is down and reconnecting (it
        never drops). Once this returns, the message is delivered exactly once unless the
        peer loses its session (then it is listed by SessionLost). Safe to call from any
        thread, while another one is blocked in :meth:`receive`.

        Raises:
            MessageTooLarge: the message exceeds the peer's ``max_message``; nothing was
                written and the link stays usable.
            Timeout: the window stayed full or the link stayed down (the message was not
                sent), or the kernel would not take the bytes in time (the message is
                queued and goes out later).
            SessionLost: the peer came back with a new session; this message was not sent.
            ConnectionLost / ProtocolError: the link is gone for good.
        """
        if not isinstance(msg, (str, bytes, bytearray, memoryview)):
            raise TypeError(f"send() takes str or bytes-like, not {type(msg).__name__}")
        waited = self._timeout if timeout is None else timeout
        link = self._link
        transport = link.transport
        try:
            with self._lock:
                self._calls += 1
                sock = transport.sock
                # The deadline is needed only once the call has to wait: the usual send
                # (window open, kernel takes the frame) never computes it.
                deadline: float | None = None
                if not link.try_send(msg):
                    deadline = deadline_after(waited)
                    while not link.sending(msg, deadline, waited):
                        self._wait(deadline)
                        sock = transport.sock
                if transport.sock is not sock:
                    self._kick()  # the poller's set changed under it
                # The frame is the session's now: wait until the kernel took it.
                if transport.outq or transport.sock is not sock:
                    if deadline is None:
                        deadline = deadline_after(waited)
                    while not link.written(sock, deadline):
                        self._wait(deadline)
        finally:
            if link.callbacks:
                self._run_callbacks()

    def receive(self, timeout: float | None = None) -> str | bytes:
        """Return the next message: ``str`` for TEXT, ``bytes`` for BINARY.

        Waits across reconnects. Messages that arrived before a peer's reboot are returned
        first, then :class:`~harness.errors.SessionLost` is raised once, then the new
        session's messages follow.

        Raises:
            Timeout: nothing arrived within ``timeout`` (default: the socket's timeout).
            SessionLost: the peer came back with a new session (see above).
            ConnectionLost / ProtocolError: the link is gone for good (messages that
                arrived before are returned first).
        """
        return self._receive(deadline_after(self._timeout if timeout is None else timeout), timeout)

    def _receive(self, deadline: float, timeout: float | None) -> str | bytes:
        link = self._link
        waited = self._timeout if timeout is None else timeout
        try:
            with self._lock:
                self._calls += 1
                item = link.take() if link.inbox else None
                if item is not None:
                    return item
                # The ACK for what this reads is deferred: the caller's next send carries
                # it, or it goes out before the next wait.
                while (item := link.receiving(deadline, waited)) is None:
                    self._wait(deadline, ack=False)
                return item
        finally:
            if link.callbacks:
                self._run_callbacks()

    def flush(self, timeout: float | None = None) -> None:
        """Wait until the peer has acknowledged every message sent so far (reconnecting
        as needed).

        Raises:
            Timeout: something is still unconfirmed after ``timeout``.
            SessionLost: the peer lost its session meanwhile (the messages are listed).
            ConnectionLost / ProtocolError: the link is gone for good.
        """
        deadline = deadline_after(self._timeout if timeout is None else timeout)
        link = self._link
        try:
            with self._lock:
                self._calls += 1
                while not link.flushed(deadline):
                    self._wait(deadline)
        finally:
            if link.callbacks:
                self._run_callbacks()

    def close(self) -> None:
        """Close the link: a CLOSE NORMAL (best effort), then the TCP connection. Idempotent.

        Safe from any thread: calls blocked in other threads wake and raise
        :class:`~harness.errors.ConnectionLost`. Messages the peer has not acknowledged
        yet are not waited for (see :meth:`flush` and :attr:`unconfirmed`).
        """
        link = self._link
        with self._lock:
            if link.closed:
                return
            deadline = deadline_after(_CLOSE_FLUSH)
            if link.say_goodbye():
                # Best effort: the peer may already be gone.
                sock = link.transport.sock
                while (link.transport.outq and link.transport.sock is sock
                       and link.error is None and time.monotonic() < deadline):
                    self._wait(deadline)
            # Wake the thread in poll and wait for it to leave before closing its fds.
            self._kick()
            while self._polling and time.monotonic() < deadline:
                self._sleep(deadline)
            self._teardown()
            self._changed.notify_all()
        link.callbacks.clear()

    def __enter__(self) -> WiFiSocket:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[str | bytes]:
        """Yield messages until the peer closes normally.

        Waits without a timeout between messages; a dead peer is still detected after
        ``dead_after`` (and reconnected to). Any other end of the link raises as
        :meth:`receive` does.
        """
        while True:
            try:
                yield self._receive(_FOREVER, None)
            except PeerClosedNormally:
                return

    def __del__(self) -> None:
        # A forgotten socket must not leak its fds or keep pinging.
        try:
            if not self._link.closed:
                self._stop.set()
                for s in [*self._link.sockets(), self._wake_r, self._wake_w]:
                    s.close()
        except Exception:
            pass
