"""``WiFiSocket``: the blocking host side of the WiFiSocket protocol, reconnecting by itself.

All protocol logic lives in :class:`~harness.wifisocket.session.Session`; this module moves
bytes and manages TCP connections. Sockets are non-blocking and every wait is one ``poll``
bounded by the call's deadline and the next timer (keepalive, dead peer, reconnect attempt,
give-up), so:

* ``send`` and ``receive`` do their I/O directly in the caller's thread (no hand-off, so a
  small echo costs about what raw TCP costs);
* while ``send`` waits for the kernel, for window or for a reconnect it keeps reading
  (queuing the peer's messages and answering its acks and PINGs), so two peers that both
  only send never deadlock;
* a small daemon thread keeps the link alive (PING, PONG, acks, dead-peer detection,
  reconnecting) while no API call is running. It only acts when it can take the API lock
  without waiting.

When a connection is lost (TCP error or end of stream, a peer silent past ``dead_after``,
a peer's CLOSE ``TIMEOUT``, a corrupted frame) the socket opens a new one — it dials the
same address again, or in the serve topology accepts the device dialling back in — and
the session resumes on it: what the peer acknowledged is dropped, the rest resent in
order, duplicates dropped. Attempts follow :class:`~harness.wifisocket.backoff.Backoff`;
the socket gives up after ``reconnect_timeout`` with :class:`ReconnectFailed`.

One ``WiFiSocket`` is meant for one thread at a time: a ``send`` from another thread waits
until a blocked ``receive`` returns.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import math
import os
import select
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from harness.errors import (
    ConnectionLost,
    ProtocolError,
    SessionLost,
    Timeout,
    WiFiSocketError,
)
from harness.wifisocket.backoff import Reconnect, ReconnectPolicy
from harness.wifisocket.frame import CloseCode, FrameDecoder, FrameType, Hello, encode_frame
from harness.wifisocket.session import (
    Connected,
    Dead,
    Event,
    Failed,
    Message,
    PeerClosed,
    Session,
    SessionReset,
    WindowFull,
)

__all__ = ["ReconnectFailed", "WiFiSocket"]

_log = logging.getLogger(__name__)

DEFAULT_PORT = 8080
DEFAULT_TIMEOUT = 5.0
_RECV_BUFFER = 256 * 1024
# How long close() tries to get its CLOSE frame (and queued bytes) out.
_CLOSE_FLUSH = 1.0
# The keepalive thread's pace while the application is busy with the link, and its
# back-off when it finds an API call in progress.
_ACTIVE_POLL = 0.05
_BUSY_BACKOFF = 0.05
_IDLE_MAX_WAIT = 1.0
# Serve topology: accepted connections waiting for their HELLO, at most this many.
_MAX_PENDING = 4
# A HELLO frame is at most 20 + 64 bytes: a first frame that is not complete by then is not one.
_HELLO_FRAME_MAX = 84
_PENDING_READ = 4096
_CLOSE_REASON_MAX = 123

# Ends of a connection after which the session resumes on a new one. Every other
# protocol error (and REPLACED: someone else took the session over) is final.
_RECOVERABLE = frozenset({int(CloseCode.TIMEOUT), int(CloseCode.BAD_CRC)})
_CONNECT_IN_PROGRESS = frozenset(
    {errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK, errno.EINTR}
)

_POLLIN = select.POLLIN
_POLLOUT = select.POLLOUT
_POLLBAD = select.POLLERR | select.POLLHUP | select.POLLNVAL
_FOREVER = math.inf

_Msg = str | bytes


class ReconnectFailed(ConnectionLost):
    """The link was lost and did not come back within ``reconnect_timeout``.

    Attributes:
        attempts: connections tried (or accepted, in the serve topology) during the outage.
        elapsed: seconds from noticing the loss to giving up.
        last_error: why the last attempt (or the lost connection) failed.
        unconfirmed: our messages the peer never acknowledged, in order: they may or may not
            have reached it.
    """

    def __init__(
        self,
        message: str,
        attempts: int = 0,
        elapsed: float = 0.0,
        last_error: str = "",
        unconfirmed: list[str | bytes] | None = None,
    ) -> None:
        self.attempts = attempts
        self.elapsed = elapsed
        self.last_error = last_error
        self.unconfirmed: list[str | bytes] = list(unconfirmed or [])
        super().__init__(message)

    def __reduce__(self):  # type: ignore[override]
        return (
            self.__class__,
            (self.args[0], self.attempts, self.elapsed, self.last_error, self.unconfirmed),
        )


class _PeerClosedNormally(ConnectionLost):
    """The peer sent CLOSE NORMAL: iteration ends quietly, other calls raise."""


@dataclass(eq=False)
class _Pending:
    """Serve topology: an accepted connection that has not completed its HELLO yet."""

    sock: socket.socket
    fd: int
    address: Any
    deadline: float
    decoder: FrameDecoder
    buf: bytearray = field(default_factory=bytearray)


def _poll_ms(seconds: float | None) -> int | None:
    if seconds is None or seconds == _FOREVER:
        return None
    return max(0, math.ceil(seconds * 1000))


def _deadline(timeout: float | None) -> float:
    if timeout is None or timeout == _FOREVER:
        return _FOREVER
    return time.monotonic() + timeout


def _configure(options: dict[str, Any]) -> tuple[ReconnectPolicy, Session]:
    """Split and validate the keyword options (before any socket exists)."""
    policy, session_options = ReconnectPolicy.split(dict(options))
    return policy, Session(**session_options)


def _close_frame(code: int, reason: str) -> bytes:
    raw = reason.encode("utf-8")[:_CLOSE_REASON_MAX].decode("utf-8", "ignore").encode("utf-8")
    return encode_frame(FrameType.CLOSE, bytes((int(code),)) + raw)


class WiFiSocket:
    """A message link to a device (or any peer) speaking the WiFiSocket protocol v1.

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
        ProtocolError: the peer's HELLO was invalid, or it closed us with a reason.
    """

    def __init__(
        self, host: str, port: int = DEFAULT_PORT, *, timeout: float | None = DEFAULT_TIMEOUT,
        **options: Any,
    ) -> None:
        policy, session = _configure(options)  # bad options fail before any socket exists
        deadline = _deadline(timeout)
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except TimeoutError as exc:
            raise Timeout(f"connecting to {host}:{port} timed out after {timeout} s") from exc
        except OSError as exc:
            raise ConnectionLost(f"cannot connect to {host}:{port}: {exc}") from exc
        self._setup(session, policy, timeout)
        self._target = f"{host}:{port}"
        try:
            try:
                self._attach(sock)
                self._transport_up()
                self._dial_family = sock.family
                self._dial_address = sock.getpeername()
            except OSError as exc:
                raise ConnectionLost(f"connection failed during setup: {exc}") from exc
            self._await_first(deadline, timeout)
        except BaseException:
            sock.close()
            self._teardown()
            raise
        self._start_thread()

    @classmethod
    def serve(
        cls, port: int = DEFAULT_PORT, host: str = "0.0.0.0", *, timeout: float | None = None,
        **options: Any,
    ) -> WiFiSocket:
        """Listen on ``host:port`` and wait for a peer that dials in and says HELLO.

        ``timeout`` bounds the wait for the peer (None: wait forever); the socket's default
        ``send``/``receive`` timeout is ``timeout``, or 5 s if None. Connections that do not
        say HELLO within ``connect_timeout`` are closed and do not count. With
        ``reconnect=True`` (the default) the socket keeps listening, so that the device can
        dial back in after a drop (a newer connection that completes HELLO replaces the
        current one); the listener is closed by :meth:`close`. With ``reconnect=False`` it
        is closed before this returns.
        """
        _configure(options)  # validate the options before listening
        try:
            listener = socket.create_server((host, port))
        except OSError as exc:
            raise ConnectionLost(f"cannot listen on {host}:{port}: {exc}") from exc
        try:
            return cls._accepting(listener, timeout, options, owns=True)
        except BaseException:
            listener.close()
            raise

    @classmethod
    def accept(
        cls, listener: socket.socket, *, timeout: float | None = None, **options: Any
    ) -> WiFiSocket:
        """Like :meth:`serve`, on a listening socket the caller owns (it stays open).

        The listener is made non-blocking; with ``reconnect=True`` the socket keeps
        accepting reconnections from it until :meth:`close`.
        """
        return cls._accepting(listener, timeout, options, owns=False)

    @classmethod
    def _accepting(
        cls, listener: socket.socket, timeout: float | None, options: dict[str, Any], owns: bool
    ) -> WiFiSocket:
        policy, session = _configure(options)
        self = cls.__new__(cls)
        self._setup(session, policy, DEFAULT_TIMEOUT if timeout is None else timeout)
        try:
            where = listener.getsockname()
            self._target = f"{where[0]}:{where[1]}"
            listener.setblocking(False)
        except OSError as exc:
            self._teardown()
            raise ConnectionLost(f"the listener is unusable: {exc}") from exc
        self._listener = listener
        self._listener_fd = listener.fileno()
        self._owns_listener = owns
        self._watch(self._listener_fd, _POLLIN)
        try:
            self._await_first(_deadline(timeout), timeout)
        except BaseException:
            self._teardown()
            raise
        self._start_thread()
        return self

    # --- setup -------------------------------------------------------------------------

    def _setup(self, session: Session, policy: ReconnectPolicy, timeout: float | None) -> None:
        self._session = session
        self._policy = policy
        self._timeout = timeout
        self._lock = threading.Lock()
        self._calls = 0
        self._closed = False
        self._error: WiFiSocketError | None = None
        self._inbox: deque[_Msg | SessionLost] = deque()
        self._outq: deque[bytes | memoryview] = deque()
        self._rbuf = bytearray(_RECV_BUFFER)
        self._rview = memoryview(self._rbuf)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._poller = select.poll()
        self._watched: dict[int, int] = {}
        self._target = ""
        # The current connection.
        self._sock: socket.socket | None = None
        self._sock_fd = -1
        self._connecting = False  # a non-blocking TCP connect is in progress
        self._connected = False  # the peer's HELLO arrived on it
        self._local_address: tuple[Any, ...] = ()
        self._peer_address: tuple[Any, ...] = ()
        self._conn_since = 0.0
        self._progress_mark = (0, 0)
        # Where to dial again (host topology) or listen (serve topology).
        self._dial_family = socket.AF_INET
        self._dial_address = None
        self._listener: socket.socket | None = None
        self._listener_fd = -1
        self._owns_listener = False
        self._pending: list[_Pending] = []
        self._refused = ""
        # Reconnecting.
        self._armed = False  # the first HELLO exchange succeeded and reconnect is on
        self._lost_at: float | None = None  # set while the link is down
        self._lost_cause = ""
        self._last_error = ""
        self._attempts = 0
        self._failures = 0  # failed attempts in a row: the backoff exponent
        self._next_attempt = 0.0
        self._attempt_deadline = _FOREVER
        self._reconnects = 0
        self._last_reconnect: Reconnect | None = None
        # SessionLost not raised yet (each is also in the inbox, after the messages that
        # arrived before it) and on_reconnect calls to make once the lock is released.
        self._losses: deque[SessionLost] = deque()
        self._callbacks: deque[Callable[[], object]] = deque()

    def _start_thread(self) -> None:
        thread = threading.Thread(
            target=_keepalive_loop, args=(weakref.ref(self), self._stop, self._wake_r),
            name=f"wifisocket-keepalive-{self._peer_address}", daemon=True,
        )
        self._thread = thread
        thread.start()

    def _await_first(self, deadline: float, timeout: float | None) -> None:
        """Run until the first connection's HELLO exchange is done (or raise)."""
        # Connected, not is_open: the peer may say HELLO, a few messages and CLOSE in one
        # go; the handshake succeeded and those messages are still to be received.
        while not self._connected:
            if self._error is not None:
                raise self._error
            if time.monotonic() >= deadline:
                if self._sock is not None:
                    self._outq.append(self._session.close(CloseCode.TIMEOUT, "no HELLO"))
                    self._write_some()
                    raise Timeout(
                        f"no HELLO from {self._peer_address} within the handshake timeout"
                    )
                refused = f" (last refused: {self._refused})" if self._refused else ""
                raise Timeout(f"no peer connected to {self._target} within {timeout} s{refused}")
            self._step(deadline)
            self._write_some()
        self._write_some()

    # --- public API --------------------------------------------------------------------

    def send(self, msg: str | bytes | bytearray | memoryview, timeout: float | None = None) -> None:
        """Send one message: ``str`` as TEXT, bytes-like as BINARY.

        Blocks while the peer's window is full or the link is down and reconnecting (it
        never drops), reading meanwhile. Once this returns, the message is delivered
        exactly once unless the peer loses its session (then it is listed by SessionLost).

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
        deadline = _deadline(self._timeout if timeout is None else timeout)
        try:
            with self._lock:
                self._calls += 1
                self._check_usable()
                if self._losses:
                    self._raise_loss()
                session = self._session
                frame: bytes | None = None
                if session.is_open:
                    with contextlib.suppress(WindowFull):
                        frame = session.send_message(msg, time.monotonic())
                if frame is None:
                    frame = self._send_slow(msg, deadline, timeout)
                sock = self._sock
                assert sock is not None
                if not self._outq:
                    # Fast path: the whole frame in one syscall.
                    try:
                        sent = sock.send(frame)
                    except BlockingIOError:
                        sent = 0
                    except OSError as exc:
                        # The frame is in the resend window: when reconnecting, it goes
                        # out again on the next connection.
                        self._write_failed(exc)
                        self._check_usable()
                        return
                    if sent == len(frame):
                        return
                    self._outq.append(memoryview(frame)[sent:])
                else:
                    self._outq.append(frame)
                self._flush_out(deadline)
        finally:
            if self._callbacks:
                self._run_callbacks()

    def _send_slow(
        self, msg: str | bytes | bytearray | memoryview, deadline: float, timeout: float | None
    ) -> bytes:
        """Wait for window or for a connection, then frame ``msg`` (lock held)."""
        session = self._session
        while True:
            if session.is_open:
                try:
                    return session.send_message(msg, time.monotonic())
                except WindowFull:
                    pass
            if time.monotonic() >= deadline:
                waited = self._timeout if timeout is None else timeout
                if session.is_open:
                    raise Timeout(
                        f"send: the peer's window stayed full for {waited} s; "
                        "the message was not sent"
                    ) from None
                raise Timeout(
                    f"send: the link stayed down for {waited} s ({self._outage()}); "
                    "the message was not sent"
                ) from None
            self._step(deadline)
            self._write_some()
            self._check_usable()
            if self._losses:
                self._raise_loss()

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
        return self._receive(_deadline(self._timeout if timeout is None else timeout), timeout)

    def _receive(self, deadline: float, timeout: float | None) -> str | bytes:
        try:
            with self._lock:
                self._calls += 1
                inbox = self._inbox
                while True:
                    if inbox:
                        item = inbox.popleft()
                        if self._losses and item is self._losses[0]:
                            raise self._losses.popleft()
                        return item  # type: ignore[return-value]
                    if self._closed:
                        raise ConnectionLost("the WiFiSocket is closed")
                    if self._error is not None:
                        raise self._error
                    if time.monotonic() >= deadline:
                        waited = self._timeout if timeout is None else timeout
                        down = f" (the link is down: {self._outage()})" if self._lost_at else ""
                        raise Timeout(f"no message within {waited} s{down}")
                    # The ACK for what this reads is deferred: the caller's next send
                    # carries it, or it goes out before the next wait (_step).
                    self._step(deadline, ack=False)
                    self._write_some()
        finally:
            if self._callbacks:
                self._run_callbacks()

    def flush(self, timeout: float | None = None) -> None:
        """Wait until the peer has acknowledged every message sent so far (reconnecting
        as needed).

        Raises:
            Timeout: something is still unconfirmed after ``timeout``.
            SessionLost: the peer lost its session meanwhile (the messages are listed).
            ConnectionLost / ProtocolError: the link is gone for good.
        """
        deadline = _deadline(self._timeout if timeout is None else timeout)
        try:
            with self._lock:
                self._calls += 1
                while True:
                    self._check_usable()
                    if self._losses:
                        self._raise_loss()
                    if self._session.unacked_bytes == 0:
                        return
                    if time.monotonic() >= deadline:
                        n = len(self._session.unacked_messages)
                        raise Timeout(f"flush: {n} message(s) still unconfirmed")
                    self._step(deadline)
                    self._write_some()
        finally:
            if self._callbacks:
                self._run_callbacks()

    def close(self) -> None:
        """Close the link: a CLOSE NORMAL (best effort), then the TCP connection. Idempotent.

        Messages the peer has not acknowledged yet are not waited for (see :meth:`flush`
        and :attr:`unconfirmed`).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._error is None and self._session.is_open and self._sock is not None:
                self._outq.append(self._session.close(CloseCode.NORMAL, ""))
                # Best effort: the peer may already be gone.
                with contextlib.suppress(WiFiSocketError):
                    self._flush_out(_deadline(_CLOSE_FLUSH))
            self._session.close()
            self._teardown()
        self._callbacks.clear()

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
            except _PeerClosedNormally:
                return

    def __del__(self) -> None:
        # A forgotten socket must not leak its fds or keep pinging.
        try:
            if not self._closed:
                self._stop.set()
                socks = [self._sock, self._wake_r, self._wake_w]
                socks += [p.sock for p in self._pending]
                if self._owns_listener:
                    socks.append(self._listener)
                for s in socks:
                    if s is not None:
                        s.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        if self._closed:
            state = "closed"
        elif self._error is not None:
            state = "broken"
        elif self._lost_at is not None:
            state = "reconnecting"
        else:
            state = "open"
        return f"<WiFiSocket {state} local={self._local_address} peer={self._peer_address}>"

    # --- properties --------------------------------------------------------------------

    @property
    def max_message(self) -> int:
        """The largest message the peer accepts (bytes of UTF-8 for text)."""
        return self._session.peer_max_message

    @property
    def rtt(self) -> float | None:
        """The latest PING round-trip time in seconds (None until one was measured)."""
        return self._session.rtt

    @property
    def session_id(self) -> int:
        """This side's session id."""
        return self._session.session_id

    @property
    def peer_session_id(self) -> int:
        """The peer's session id (it changes when the peer reboots)."""
        return self._session.peer_session_id

    @property
    def local_address(self) -> tuple[Any, ...]:
        """``(host, port)`` of this end of the (current or last) TCP connection."""
        return tuple(self._local_address)

    @property
    def peer_address(self) -> tuple[Any, ...]:
        """``(host, port)`` of the peer of the (current or last) TCP connection."""
        return tuple(self._peer_address)

    @property
    def timeout(self) -> float | None:
        """The default timeout of send/receive, in seconds."""
        return self._timeout

    @property
    def dead_after(self) -> float:
        """The dead-peer bound: seconds without receiving anything (0 = never)."""
        return self._session.dead_after

    @property
    def connected(self) -> bool:
        """True while a connection is up and its HELLO exchange done."""
        return self._connected and self._error is None and not self._closed

    @property
    def reconnects(self) -> int:
        """How many times the link was re-established."""
        return self._reconnects

    @property
    def last_reconnect(self) -> Reconnect | None:
        """The latest reconnect's facts (None if there was none)."""
        return self._last_reconnect

    @property
    def unconfirmed(self) -> list[str | bytes]:
        """Our messages the peer has not acknowledged yet, in order."""
        return self._session.unacked_messages

    # --- I/O machinery (called with the lock held) --------------------------------------

    def _check_usable(self) -> None:
        if self._closed:
            raise ConnectionLost("the WiFiSocket is closed")
        if self._error is not None:
            raise self._error

    def _raise_loss(self) -> None:
        """Raise the oldest pending SessionLost (from send/flush: before older messages)."""
        loss = self._losses.popleft()
        with contextlib.suppress(ValueError):
            self._inbox.remove(loss)
        raise loss

    def _outage(self) -> str:
        if self._lost_at is None:
            return "connected"
        down = time.monotonic() - self._lost_at
        what = "accepted" if self._listener is not None else "tried"
        return (
            f"down for {down:.1f} s after: {self._lost_cause}; {self._attempts} connection(s) "
            f"{what} since; last error: {self._last_error}"
        )

    def _watch(self, fd: int, mask: int) -> None:
        old = self._watched.get(fd)
        if old == mask:
            return
        if old is None:
            self._poller.register(fd, mask)
        else:
            self._poller.modify(fd, mask)
        self._watched[fd] = mask

    def _unwatch(self, fd: int) -> None:
        if self._watched.pop(fd, None) is not None:
            with contextlib.suppress(KeyError, OSError, ValueError):
                self._poller.unregister(fd)

    def _sync_sock_mask(self) -> None:
        fd = self._sock_fd
        if fd >= 0:
            want = _POLLOUT if self._connecting else (_POLLIN | _POLLOUT if self._outq else _POLLIN)
            if self._watched.get(fd) != want:
                self._watch(fd, want)

    def _step(self, deadline: float, ack: bool = True) -> None:
        """Wait once for a socket, the next timer or the deadline, then act on it."""
        if self._error is not None:
            return
        if self._sock is not None and not self._connecting:
            owed = self._session.data_to_send()  # an ACK still owed goes out before we wait
            if owed:
                self._outq.append(owed)
                self._write_some()
        now = time.monotonic()
        wake = self._wake_at(now)
        wait = (wake if wake < deadline else deadline) - now
        self._sync_sock_mask()
        ready = self._poller.poll(_poll_ms(wait))
        if ready:
            self._service(ready, ack)
        self._timers(ack)

    def _wake_at(self, now: float) -> float:
        """When the next timer is due (absolute, monotonic)."""
        at = _FOREVER
        if self._sock is not None and not self._connecting:
            timer = self._session.next_timer(now)
            if timer is not None:
                at = now + timer
        if self._lost_at is not None:
            if self._sock is not None:
                at = min(at, self._attempt_deadline)
            elif self._listener is None:
                at = min(at, self._next_attempt)
            limit = self._policy.reconnect_timeout
            if limit is not None:
                at = min(at, self._lost_at + limit)
        for p in self._pending:
            at = min(at, p.deadline)
        return at

    def _service(self, ready: list[tuple[int, int]], ack: bool = True) -> None:
        sock = self._sock
        sock_fd = self._sock_fd
        for fd, mask in ready:
            if self._error is not None:
                return
            if fd == sock_fd and sock is not None and self._sock is sock:
                if self._connecting:
                    self._finish_connect()
                    continue
                if mask & (_POLLIN | _POLLBAD):
                    bad = bool(mask & _POLLBAD)
                    self._read_available(drain=bad, ack=ack)
                    if bad and self._sock is sock and self._error is None:
                        self._lost("connection error")
                if mask & _POLLOUT and self._sock is sock:
                    self._write_some()
            elif fd == self._listener_fd and self._listener is not None:
                self._accept_pending()
            else:
                for p in self._pending:
                    if p.fd == fd:
                        self._read_pending(p)
                        break

    def _read_available(self, drain: bool = False, ack: bool = True) -> None:
        """Read what the kernel has, feed the session, queue its answers (do not write)."""
        sock = self._sock
        if sock is None or self._connecting:
            return
        session = self._session
        size = len(self._rbuf)
        while self._error is None and self._sock is sock:
            try:
                n = sock.recv_into(self._rbuf)
            except BlockingIOError:
                break
            except OSError as exc:
                self._lost(f"connection error: {exc}")
                return
            if n == 0:
                self._lost("connection closed by the peer")
                return
            self._handle(session.receive_data(self._rview[:n], time.monotonic()))
            if n < size and not drain:
                break  # most likely all there was; saves an EAGAIN round trip
        if self._sock is sock:
            out = session.data_to_send(ack)
            if out:
                self._outq.append(out)

    def _timers(self, ack: bool = True) -> None:
        if self._error is not None:
            return
        now = time.monotonic()
        sock = self._sock
        if sock is not None and not self._connecting:
            events = self._session.tick(now)
            if events:
                self._handle(events)
            if self._sock is sock:
                out = self._session.data_to_send(ack)
                if out:
                    self._outq.append(out)
            if self._error is not None:
                return
        if self._pending:
            for p in list(self._pending):
                if now >= p.deadline:
                    self._close_pending(p, ProtocolError(
                        CloseCode.TIMEOUT,
                        f"no HELLO within {self._policy.connect_timeout} s",
                    ))
        if self._lost_at is None:
            return
        limit = self._policy.reconnect_timeout
        if limit is not None and now - self._lost_at >= limit:
            self._give_up(now)
        elif self._sock is not None:
            if now >= self._attempt_deadline:
                what = "TCP connect" if self._connecting else "HELLO"
                self._attempt_failed(Timeout(
                    f"no {what} from {self._target} within {self._policy.connect_timeout} s"
                ))
        elif self._listener is None and now >= self._next_attempt:
            self._start_attempt(now)

    def _handle(self, events: list[Event]) -> None:
        for ev in events:
            if type(ev) is Message:
                self._inbox.append(ev.data)
            elif isinstance(ev, Connected):
                self._on_connected(ev, events[events.index(ev) + 1:])
            elif isinstance(ev, SessionReset):
                n = len(ev.unconfirmed)
                loss = SessionLost(
                    f"the peer restarted with a new session; {n} message(s) of ours were "
                    "never confirmed",
                    ev.unconfirmed,
                )
                self._losses.append(loss)
                self._inbox.append(loss)
            elif isinstance(ev, PeerClosed):
                if ev.code == CloseCode.NORMAL:
                    reason = f": {ev.reason}" if ev.reason else ""
                    self._fail(_PeerClosedNormally(f"the peer closed the connection{reason}"))
                elif ev.code in _RECOVERABLE:
                    self._drop(ProtocolError(ev.code, f"peer closed: {ev.reason}"))
                else:
                    self._fail(ProtocolError(ev.code, f"peer closed: {ev.reason}"))
            elif isinstance(ev, Failed):
                if ev.error.code in _RECOVERABLE:
                    self._drop(ev.error)
                else:
                    self._fail(ev.error)
            elif isinstance(ev, Dead):
                self._drop(ConnectionLost(
                    f"the peer was silent for {self._session.dead_after} s (dead)"
                ))
            # Pong: the session keeps the rtt.

    def _on_connected(self, ev: Connected, after: list[Event]) -> None:
        """The peer's HELLO arrived; ``after``: the events of the same read that follow it."""
        now = time.monotonic()
        session = self._session
        self._connected = True
        self._conn_since = now
        # The session has handled the whole read already: messages that came with the
        # HELLO are this connection's progress, not part of the mark.
        received = sum(1 for e in after if type(e) is Message)
        self._progress_mark = (session.delivered - received, session.peer_ack)
        session_lost = any(isinstance(e, SessionReset) for e in after)
        if self._lost_at is not None:
            self._reconnects += 1
            info = Reconnect(
                count=self._reconnects,
                cause=self._lost_cause,
                attempts=max(1, self._attempts),
                lost_at=self._lost_at,
                connected_at=now,
                resumed=ev.resumed,
                session_lost=session_lost,
                peer_address=tuple(self._peer_address),
            )
            self._last_reconnect = info
            self._lost_at = None
            callback = self._policy.on_reconnect
            if callback is not None:
                self._callbacks.append(functools.partial(callback, info))
        elif self._policy.reconnect:
            self._armed = True
        if not self._policy.reconnect:
            self._stop_listening()

    def _write_some(self) -> None:
        """Write queued bytes until the kernel would block."""
        outq = self._outq
        sock = self._sock
        if sock is None or self._connecting:
            return
        while outq and self._error is None:
            head = outq[0]
            try:
                n = sock.send(head)
            except BlockingIOError:
                return
            except OSError as exc:
                self._write_failed(exc)
                return
            if n == len(head):
                outq.popleft()
            else:
                outq[0] = memoryview(head)[n:]
                return

    def _flush_out(self, deadline: float) -> None:
        """Write everything queued, reading meanwhile; Timeout if the deadline passes.

        Returns early if the connection drops while reconnecting: whatever data was queued
        is in the session's resend window and goes out again on the next connection.
        """
        sock = self._sock
        while True:
            self._write_some()
            self._check_usable()
            if not self._outq or self._sock is not sock:
                return
            if time.monotonic() >= deadline:
                raise Timeout(
                    "send: the peer is not reading; the message is queued and will go out "
                    "when it does"
                )
            self._step(deadline)

    def _write_failed(self, exc: OSError) -> None:
        # The peer may have said CLOSE (with its reason) and messages before it hung up:
        # read what the kernel still holds so they win over a bare "connection reset".
        sock = self._sock
        self._read_available(drain=True)
        if self._sock is sock and self._error is None:
            self._lost(f"send failed: {exc}")

    def _lost(self, why: str) -> None:
        self._drop(ConnectionLost(why))

    # --- connection changes ------------------------------------------------------------

    def _attach(self, sock: socket.socket, *, connecting: bool = False) -> None:
        """Make ``sock`` the current connection (raises OSError before changing anything)."""
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._sock_fd = sock.fileno()
        self._connecting = connecting
        self._connected = False
        self._outq.clear()
        self._watch(self._sock_fd, _POLLOUT if connecting else _POLLIN)

    def _transport_up(self) -> None:
        """The current TCP connection is established: say HELLO (raises OSError)."""
        sock = self._sock
        assert sock is not None
        local, peer = sock.getsockname(), sock.getpeername()
        self._connecting = False
        self._local_address, self._peer_address = local, peer
        self._outq.append(self._session.connection_made(time.monotonic()))
        self._write_some()

    def _detach(self) -> None:
        sock = self._sock
        if sock is None:
            return
        self._unwatch(self._sock_fd)
        sock.close()
        self._sock = None
        self._sock_fd = -1
        self._connecting = False
        self._connected = False
        self._outq.clear()

    def _last_words(self) -> None:
        """Best effort: what the session still has to say (a CLOSE), then FIN."""
        sock = self._sock
        if sock is None or self._connecting:
            return
        out = self._session.data_to_send()
        try:
            if out and not self._outq:  # never after a partly written frame
                sock.send(out)
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _drop(self, error: WiFiSocketError) -> None:
        """The current connection (or attempt) ended: reconnect, or fail for good."""
        if self._error is not None:
            return
        if not self._armed or self._closed:
            self._fail(error)
        elif self._connected:
            self._connection_lost(error)
        else:
            self._attempt_failed(error)

    def _connection_lost(self, error: WiFiSocketError) -> None:
        """An established connection ended: the outage begins (lock held)."""
        now = time.monotonic()
        session = self._session
        # A connection that carried traffic, or lived a while, resets the backoff; one
        # that died right after its HELLO counts as a failed attempt (a flapping link).
        progressed = (session.delivered, session.peer_ack) != self._progress_mark
        if progressed or now - self._conn_since >= self._policy.backoff_max:
            self._failures = 0
        else:
            self._failures += 1
        self._last_words()
        self._detach()
        session.connection_lost()
        self._lost_at = now
        self._lost_cause = self._last_error = str(error)
        self._attempts = 0
        self._next_attempt = now + self._policy.backoff.delay(self._failures)
        _log.debug("%s: connection lost (%s); reconnecting", self._target, error)

    def _attempt_failed(self, error: WiFiSocketError) -> None:
        now = time.monotonic()
        self._last_words()
        self._detach()
        self._session.connection_lost()
        self._failures += 1
        self._last_error = str(error)
        self._next_attempt = now + self._policy.backoff.delay(self._failures)

    def _start_attempt(self, now: float) -> None:
        """Host topology: start a non-blocking TCP connect to the peer's address."""
        self._attempts += 1
        self._attempt_deadline = now + self._policy.connect_timeout
        where = self._target
        try:
            sock = socket.socket(self._dial_family, socket.SOCK_STREAM)
        except OSError as exc:
            self._attempt_failed(ConnectionLost(f"cannot create a socket: {exc}"))
            return
        try:
            sock.setblocking(False)
            err = sock.connect_ex(self._dial_address)
            if err != 0 and err not in _CONNECT_IN_PROGRESS:
                raise OSError(err, os.strerror(err))
            self._attach(sock, connecting=err != 0)
            if err == 0:
                self._transport_up()
        except OSError as exc:
            if self._sock is not sock:
                sock.close()
            self._drop(ConnectionLost(f"cannot connect to {where}: {exc}"))

    def _finish_connect(self) -> None:
        sock = self._sock
        assert sock is not None
        try:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, os.strerror(err))
            self._transport_up()
        except OSError as exc:
            self._drop(ConnectionLost(f"cannot connect to {self._target}: {exc}"))

    def _give_up(self, now: float) -> None:
        assert self._lost_at is not None
        elapsed = now - self._lost_at
        unconfirmed = self._session.unacked_messages
        if self._listener is not None:
            what, where = "accepted", f"waiting for the peer to dial back in on {self._target}"
        else:
            what, where = "tried", f"reconnecting to {self._target}"
        error = ReconnectFailed(
            f"gave up {where} after {elapsed:.1f} s "
            f"(reconnect_timeout={self._policy.reconnect_timeout}) and {self._attempts} "
            f"connection(s) {what}; lost because: {self._lost_cause}; last error: "
            f"{self._last_error}; {len(unconfirmed)} message(s) unconfirmed",
            attempts=self._attempts,
            elapsed=elapsed,
            last_error=self._last_error,
            unconfirmed=unconfirmed,
        )
        self._last_words()
        self._detach()
        self._fail(error)

    def _fail(self, error: WiFiSocketError) -> None:
        """Record the first fatal error, send what the session has to say, shut down TCP."""
        if self._error is not None:
            return
        self._error = error
        sock = self._sock
        if sock is not None and not self._connecting:
            out = self._session.data_to_send()
            if out:
                self._outq.append(out)
            # One best-effort attempt: a CLOSE with our reason, if the kernel takes it now.
            data = b"".join(bytes(chunk) for chunk in self._outq)
            self._outq.clear()
            try:
                if data:
                    sock.send(data)
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._session.connection_lost()
        self._stop_listening()

    # --- serve topology: accepting, and connections waiting for their HELLO -------------

    def _accept_pending(self) -> None:
        listener = self._listener
        while listener is not None and self._listener is listener:
            try:
                conn, address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of fds: try again on the next round
                self._refused = f"accept failed: {exc}"
                return
            try:
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                conn.close()
                continue
            if self._lost_at is not None:
                self._attempts += 1
            if len(self._pending) >= _MAX_PENDING:
                self._close_pending(self._pending[0], ProtocolError(
                    CloseCode.TIMEOUT, "too many connections waiting for HELLO"
                ))
            pending = _Pending(
                conn, conn.fileno(), address,
                time.monotonic() + self._policy.connect_timeout,
                FrameDecoder(self._session.max_message),
            )
            self._pending.append(pending)
            self._watch(pending.fd, _POLLIN)

    def _read_pending(self, p: _Pending) -> None:
        try:
            data = p.sock.recv(_PENDING_READ)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._close_pending(p, None, f"connection error before HELLO: {exc}")
            return
        if not data:
            self._close_pending(p, None, "closed before HELLO")
            return
        p.buf += data
        frames, error = p.decoder.decode(data)
        if frames:
            first = frames[0]
            if first.type != FrameType.HELLO:
                name = getattr(first.type, "name", str(first.type))
                self._close_pending(p, ProtocolError(
                    CloseCode.PROTOCOL, f"{name} frame before HELLO"
                ))
                return
            try:
                Hello.decode(first.payload)
            except ProtocolError as exc:
                self._close_pending(p, exc)
                return
            self._promote(p)
        elif error is not None:
            self._close_pending(p, error)
        elif len(p.buf) >= _HELLO_FRAME_MAX:
            self._close_pending(p, ProtocolError(CloseCode.PROTOCOL, "first frame is not a HELLO"))

    def _close_pending(self, p: _Pending, error: ProtocolError | None, why: str = "") -> None:
        self._pending.remove(p)
        self._unwatch(p.fd)
        if error is not None:
            self._refused = f"{p.address}: {error}"
            with contextlib.suppress(OSError):
                p.sock.send(_close_frame(error.code, error.reason))
        elif why:
            self._refused = f"{p.address}: {why}"
        p.sock.close()

    def _promote(self, p: _Pending) -> None:
        """``p`` said HELLO: it becomes the connection (replacing the current one, if any)."""
        self._pending.remove(p)
        self._unwatch(p.fd)
        if self._sock is not None:
            # The device dialled again (it found this connection dead): the newer wins.
            words = self._session.drop_connection(
                CloseCode.REPLACED, "a newer connection replaced this one"
            )
            if words and not self._outq:
                with contextlib.suppress(OSError):
                    self._sock.send(words)
            if self._connected:
                self._connection_lost(ConnectionLost(f"replaced by a newer connection from "
                                                     f"{p.address}"))
            else:
                self._detach()
        try:
            self._attach(p.sock)
            self._transport_up()
        except OSError as exc:
            self._detach()
            p.sock.close()
            self._refused = f"{p.address}: connection failed during setup: {exc}"
            return
        sock = p.sock
        now = time.monotonic()
        self._handle(self._session.receive_data(bytes(p.buf), now))
        if self._sock is sock:
            out = self._session.data_to_send()
            if out:
                self._outq.append(out)
            self._write_some()

    def _stop_listening(self) -> None:
        for p in list(self._pending):
            self._close_pending(p, None)
        listener = self._listener
        if listener is None:
            return
        self._unwatch(self._listener_fd)
        self._listener = None
        self._listener_fd = -1
        if self._owns_listener:
            listener.close()

    # --- threads -----------------------------------------------------------------------

    def _run_callbacks(self) -> None:
        """Run queued on_reconnect calls (never with the lock held)."""
        while self._callbacks:
            try:
                call = self._callbacks.popleft()
            except IndexError:
                return
            try:
                call()
            except Exception:
                _log.exception("on_reconnect callback failed")

    def _teardown(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            # The thread needs the lock to act; callers hold it, so do not wait long.
            thread.join(0)
        for p in list(self._pending):
            self._close_pending(p, None)
        socks = [self._sock, self._wake_r, self._wake_w]
        if self._owns_listener:
            socks.append(self._listener)
        self._listener = None
        for s in socks:
            if s is not None:
                with contextlib.suppress(OSError):
                    s.close()

    def _keepalive_pump(self) -> tuple[bool, float | None, list[tuple[int, int]]]:
        """One keepalive round (lock held): (go on, seconds to the next timer, fds to poll)."""
        if self._closed or self._error is not None:
            return False, None, []
        self._step(time.monotonic())  # poll(0): whatever is ready, and the timers
        self._write_some()
        if self._error is not None:
            return False, None, []
        now = time.monotonic()
        wake = self._wake_at(now)
        self._sync_sock_mask()
        wait = None if wake == _FOREVER else max(0.0, wake - now)
        return True, wait, list(self._watched.items())


def _keepalive_loop(
    ref: weakref.ref[WiFiSocket], stop: threading.Event, wake: socket.socket
) -> None:
    """Keep an idle link alive; never holds a strong reference while waiting."""
    seen_calls = -1
    wake_fd = wake.fileno()
    while not stop.is_set():
        ws = ref()
        if ws is None:
            return
        if not ws._lock.acquire(blocking=False):
            del ws
            stop.wait(_BUSY_BACKOFF)
            continue
        try:
            go_on, timer, fds = ws._keepalive_pump()
            idle = ws._calls == seen_calls
            seen_calls = ws._calls
        finally:
            ws._lock.release()
        if ws._callbacks:
            ws._run_callbacks()
        del ws
        if not go_on:
            return
        wait = _IDLE_MAX_WAIT if timer is None else min(timer, _IDLE_MAX_WAIT)
        if idle:
            # The application is not using the link: watch its sockets so PINGs are
            # answered, data acknowledged and reconnections made at once.
            poller = select.poll()
            poller.register(wake_fd, _POLLIN)
            for fd, mask in fds:
                poller.register(fd, mask)
            try:
                poller.poll(_poll_ms(wait))
            except OSError:
                stop.wait(min(wait, _ACTIVE_POLL))
        else:
            # The application is active and does its own I/O; only keep the timers.
            stop.wait(min(wait, _ACTIVE_POLL))
