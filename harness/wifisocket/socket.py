"""``WiFiSocket``: the blocking host side of the WiFiSocket protocol, over one TCP socket.

All protocol logic lives in :class:`~harness.wifisocket.session.Session`; this module only
moves bytes. The socket is non-blocking and every wait is a ``poll`` bounded by the call's
deadline and the session's next timer, so:

* ``send`` and ``receive`` do their I/O directly in the caller's thread (no hand-off, so a
  small echo costs about what raw TCP costs);
* while ``send`` waits for the kernel or for window it keeps reading (queuing the peer's
  messages and answering its acks and PINGs), so two peers that both only send never
  deadlock;
* a small daemon thread keeps the link alive (PING, PONG, acks, dead-peer detection) while
  no API call is running. It only acts when it can take the API lock without waiting.

One ``WiFiSocket`` is meant for one thread at a time: a ``send`` from another thread waits
until a blocked ``receive`` returns.
"""

from __future__ import annotations

import contextlib
import math
import select
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from harness.errors import (
    ConnectionLost,
    ProtocolError,
    SessionLost,
    Timeout,
    WiFiSocketError,
)
from harness.wifisocket.frame import CloseCode
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

__all__ = ["WiFiSocket"]

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

_POLLIN = select.POLLIN
_POLLOUT = select.POLLOUT
_POLLBAD = select.POLLERR | select.POLLHUP | select.POLLNVAL
_FOREVER = math.inf

_Msg = str | bytes


class _PeerClosedNormally(ConnectionLost):
    """The peer sent CLOSE NORMAL: iteration ends quietly, other calls raise."""


def _poll_ms(seconds: float | None) -> int | None:
    if seconds is None or seconds == _FOREVER:
        return None
    return max(0, math.ceil(seconds * 1000))


class WiFiSocket:
    """A message link to a device (or any peer) speaking the WiFiSocket protocol v1.

    ``WiFiSocket(host, port)`` connects and completes the HELLO exchange within ``timeout``;
    :meth:`serve` waits for a device that dials in. Then ``send(str | bytes)`` and
    ``receive()`` exchange whole messages, keeping their type (text or binary).

    Args:
        host: the device's address.
        port: its WiFiSocket port (the test firmware's echo service is 8080).
        timeout: bound for connecting + handshake, and the default timeout of
            :meth:`send` / :meth:`receive` (None: no limit).
        **options: passed to :class:`~harness.wifisocket.session.Session`:
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
        session = Session(**options)  # bad options fail before any socket exists
        deadline = _deadline(timeout)
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except TimeoutError as exc:
            raise Timeout(f"connecting to {host}:{port} timed out after {timeout} s") from exc
        except OSError as exc:
            raise ConnectionLost(f"cannot connect to {host}:{port}: {exc}") from exc
        self._start(sock, session, timeout, deadline)

    @classmethod
    def serve(
        cls, port: int = DEFAULT_PORT, host: str = "0.0.0.0", *, timeout: float | None = None,
        **options: Any,
    ) -> WiFiSocket:
        """Listen on ``host:port``, accept one peer that dials in, and handshake with it.

        ``timeout`` bounds the wait for the peer (None: wait forever); the accepted
        socket's default ``send``/``receive`` timeout is ``timeout``, or 5 s if None.
        The listening socket is closed before this returns.
        """
        Session(**options)  # validate the options before blocking in accept
        try:
            listener = socket.create_server((host, port))
        except OSError as exc:
            raise ConnectionLost(f"cannot listen on {host}:{port}: {exc}") from exc
        with listener:
            return cls.accept(listener, timeout=timeout, **options)

    @classmethod
    def accept(
        cls, listener: socket.socket, *, timeout: float | None = None, **options: Any
    ) -> WiFiSocket:
        """Like :meth:`serve`, on a listening socket the caller owns (it stays open)."""
        session = Session(**options)
        deadline = _deadline(timeout)
        listener.settimeout(timeout)
        try:
            conn, _ = listener.accept()
        except TimeoutError as exc:
            where = listener.getsockname()
            raise Timeout(f"no peer connected to {where} within {timeout} s") from exc
        except OSError as exc:
            raise ConnectionLost(f"accept failed: {exc}") from exc
        op_timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        handshake_deadline = deadline if timeout is not None else _deadline(op_timeout)
        self = cls.__new__(cls)
        self._start(conn, session, op_timeout, handshake_deadline)
        return self

    # --- setup -------------------------------------------------------------------------

    def _start(
        self, sock: socket.socket, session: Session, timeout: float | None, deadline: float
    ) -> None:
        self._sock = sock
        self._session = session
        self._timeout = timeout
        self._lock = threading.Lock()
        self._calls = 0
        self._closed = False
        self._connected = False
        self._error: WiFiSocketError | None = None
        self._inbox: deque[_Msg] = deque()
        self._outq: deque[bytes | memoryview] = deque()
        self._rbuf = bytearray(_RECV_BUFFER)
        self._rview = memoryview(self._rbuf)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            self._local_address = sock.getsockname()
            self._peer_address = sock.getpeername()
        except OSError as exc:
            self._teardown()
            raise ConnectionLost(f"connection failed during setup: {exc}") from exc
        self._poll_r = select.poll()
        self._poll_r.register(sock, _POLLIN)
        self._poll_rw = select.poll()
        self._poll_rw.register(sock, _POLLIN | _POLLOUT)
        try:
            self._handshake(deadline)
        except BaseException:
            self._teardown()
            raise
        thread = threading.Thread(
            target=_keepalive_loop, args=(weakref.ref(self), self._stop, self._wake_r),
            name=f"wifisocket-keepalive-{self._peer_address}", daemon=True,
        )
        self._thread = thread
        thread.start()

    def _handshake(self, deadline: float) -> None:
        session = self._session
        self._outq.append(session.connection_made(time.monotonic()))
        # Connected, not is_open: the peer may say HELLO, a few messages and CLOSE in one
        # go; the handshake succeeded and those messages are still to be received.
        while not self._connected:
            self._write_some()
            if self._connected:
                break
            if self._error is not None:
                raise self._error
            if time.monotonic() >= deadline:
                self._outq.append(session.close(CloseCode.TIMEOUT, "no HELLO"))
                self._write_some()
                raise Timeout(
                    f"no HELLO from {self._peer_address} within the handshake timeout"
                )
            self._step(deadline)
        self._write_some()

    # --- public API --------------------------------------------------------------------

    def send(self, msg: str | bytes | bytearray | memoryview, timeout: float | None = None) -> None:
        """Send one message: ``str`` as TEXT, bytes-like as BINARY.

        Blocks while the peer's window is full (it never drops), reading meanwhile.

        Raises:
            MessageTooLarge: the message exceeds the peer's ``max_message``; nothing was
                written and the link stays usable.
            Timeout: the window stayed full (the message was not sent), or the kernel
                would not take the bytes in time (the message is queued and goes out later).
            ConnectionLost / ProtocolError: the link is gone.
        """
        if not isinstance(msg, (str, bytes, bytearray, memoryview)):
            raise TypeError(f"send() takes str or bytes-like, not {type(msg).__name__}")
        deadline = _deadline(self._timeout if timeout is None else timeout)
        with self._lock:
            self._calls += 1
            self._check_usable()
            session = self._session
            while True:
                try:
                    frame = session.send_message(msg, time.monotonic())
                    break
                except WindowFull:
                    pass
                if time.monotonic() >= deadline:
                    raise Timeout(
                        f"send: the peer's window stayed full for {timeout or self._timeout} s; "
                        "the message was not sent"
                    ) from None
                self._step(deadline)
                self._write_some()
                self._check_usable()
            if not self._outq:
                # Fast path: the whole frame in one syscall.
                try:
                    sent = self._sock.send(frame)
                except BlockingIOError:
                    sent = 0
                except OSError as exc:
                    self._write_failed(exc)
                    self._check_usable()
                    return
                if sent == len(frame):
                    return
                self._outq.append(memoryview(frame)[sent:])
            else:
                self._outq.append(frame)
            self._flush(deadline)

    def receive(self, timeout: float | None = None) -> str | bytes:
        """Return the next message: ``str`` for TEXT, ``bytes`` for BINARY.

        Raises:
            Timeout: nothing arrived within ``timeout`` (default: the socket's timeout).
            ConnectionLost / ProtocolError: the link is gone (messages that arrived before
                are returned first).
        """
        return self._receive(_deadline(self._timeout if timeout is None else timeout), timeout)

    def _receive(self, deadline: float, timeout: float | None) -> str | bytes:
        with self._lock:
            self._calls += 1
            inbox = self._inbox
            while True:
                if inbox:
                    return inbox.popleft()
                if self._closed:
                    raise ConnectionLost("the WiFiSocket is closed")
                if self._error is not None:
                    raise self._error
                if time.monotonic() >= deadline:
                    raise Timeout(
                        f"no message within {self._timeout if timeout is None else timeout} s"
                    )
                self._step(deadline)
                # Acks (and PONGs) for what was just read go out before we return.
                self._write_some()

    def close(self) -> None:
        """Close the link: a CLOSE NORMAL (best effort), then the TCP connection. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._error is None and self._session.is_open:
                self._outq.append(self._session.close(CloseCode.NORMAL, ""))
                # Best effort: the peer may already be gone.
                with contextlib.suppress(WiFiSocketError):
                    self._flush(_deadline(_CLOSE_FLUSH))
            self._session.close()
            self._teardown()

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
        ``dead_after``. Any other end of the link raises as :meth:`receive` does.
        """
        while True:
            try:
                yield self._receive(_FOREVER, None)
            except _PeerClosedNormally:
                return

    def __del__(self) -> None:
        # A forgotten socket must not leak its fd or keep pinging.
        try:
            if not self._closed:
                self._stop.set()
                self._sock.close()
                self._wake_r.close()
                self._wake_w.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("broken" if self._error else "open")
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
        """The peer's session id."""
        return self._session.peer_session_id

    @property
    def local_address(self) -> tuple[Any, ...]:
        """``(host, port)`` of this end of the TCP connection."""
        return tuple(self._local_address)

    @property
    def peer_address(self) -> tuple[Any, ...]:
        """``(host, port)`` of the peer."""
        return tuple(self._peer_address)

    @property
    def timeout(self) -> float | None:
        """The default timeout of send/receive, in seconds."""
        return self._timeout

    # --- I/O machinery (called with the lock held) --------------------------------------

    def _check_usable(self) -> None:
        if self._closed:
            raise ConnectionLost("the WiFiSocket is closed")
        if self._error is not None:
            raise self._error

    def _step(self, deadline: float) -> None:
        """Wait for the socket (or the next timer, or the deadline) once, then act on it."""
        session = self._session
        now = time.monotonic()
        wait = deadline - now
        timer = session.next_timer(now)
        if timer is not None and timer < wait:
            wait = timer
        poller = self._poll_rw if self._outq else self._poll_r
        ready = poller.poll(_poll_ms(wait)) if self._error is None else []
        for _, mask in ready:
            if mask & (_POLLIN | _POLLBAD):
                self._read_available(drain=bool(mask & _POLLBAD))
                if mask & _POLLBAD and self._error is None:
                    self._lost("connection error")
            if mask & _POLLOUT:
                self._write_some()
        self._tick()

    def _read_available(self, drain: bool = False) -> None:
        """Read what the kernel has, feed the session, queue its answers (do not write)."""
        sock = self._sock
        session = self._session
        size = len(self._rbuf)
        while self._error is None:
            try:
                n = sock.recv_into(self._rbuf)
            except BlockingIOError:
                break
            except OSError as exc:
                self._lost(f"connection error: {exc}")
                break
            if n == 0:
                self._lost("connection closed by the peer")
                break
            self._handle(session.receive_data(self._rview[:n], time.monotonic()))
            if n < size and not drain:
                break  # most likely all there was; saves an EAGAIN round trip
        out = session.data_to_send()
        if out:
            self._outq.append(out)

    def _tick(self) -> None:
        session = self._session
        events = session.tick(time.monotonic())
        if events:
            self._handle(events)
        out = session.data_to_send()
        if out:
            self._outq.append(out)

    def _handle(self, events: list[Event]) -> None:
        for ev in events:
            if type(ev) is Message:
                self._inbox.append(ev.data)
            elif isinstance(ev, Connected):
                self._connected = True
            elif isinstance(ev, PeerClosed):
                if ev.code == CloseCode.NORMAL:
                    reason = f": {ev.reason}" if ev.reason else ""
                    self._fail(_PeerClosedNormally(f"the peer closed the connection{reason}"))
                else:
                    self._fail(ProtocolError(ev.code, f"peer closed: {ev.reason}"))
            elif isinstance(ev, Failed):
                self._fail(ev.error)
            elif isinstance(ev, Dead):
                self._fail(ConnectionLost(
                    f"the peer was silent for {self._session.dead_after} s (dead)"
                ))
            elif isinstance(ev, SessionReset):
                # Not reachable without reconnect (a first HELLO cannot reset anything),
                # but never let it pass silently.
                self._fail(SessionLost(
                    f"the peer restarted; {len(ev.unconfirmed)} message(s) unconfirmed",
                    ev.unconfirmed,
                ))
            # Pong: the session keeps the rtt.

    def _write_some(self) -> None:
        """Write queued bytes until the kernel would block."""
        outq = self._outq
        sock = self._sock
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

    def _flush(self, deadline: float) -> None:
        """Write everything queued, reading meanwhile; Timeout if the deadline passes."""
        while True:
            self._write_some()
            self._check_usable()
            if not self._outq:
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
        self._read_available(drain=True)
        self._lost(f"send failed: {exc}")

    def _lost(self, why: str) -> None:
        self._session.connection_lost()
        self._fail(ConnectionLost(why))

    def _fail(self, error: WiFiSocketError) -> None:
        """Record the first fatal error, send what the session has to say, shut down TCP."""
        if self._error is not None:
            return
        self._error = error
        out = self._session.data_to_send()
        if out:
            self._outq.append(out)
        self._session.connection_lost()
        # One best-effort attempt: a CLOSE with our reason, if the kernel takes it now.
        data = b"".join(bytes(chunk) for chunk in self._outq)
        self._outq.clear()
        try:
            if data:
                self._sock.send(data)
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _teardown(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            # The thread needs the lock to act; callers hold it, so do not wait long.
            thread.join(0)
        for s in (self._sock, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                s.close()

    def _keepalive_pump(self) -> tuple[bool, float | None, bool]:
        """One keepalive round (lock held): returns (go_on, next timer, want_write)."""
        if self._closed or self._error is not None:
            return False, None, False
        self._read_available()
        self._tick()
        self._write_some()
        if self._error is not None:
            return False, None, False
        return True, self._session.next_timer(time.monotonic()), bool(self._outq)


def _deadline(timeout: float | None) -> float:
    if timeout is None or timeout == _FOREVER:
        return _FOREVER
    return time.monotonic() + timeout


def _keepalive_loop(
    ref: weakref.ref[WiFiSocket], stop: threading.Event, wake: socket.socket
) -> None:
    """Keep an idle link alive; never holds a strong reference while waiting."""
    seen_calls = -1
    poller = None
    registered = 0
    while not stop.is_set():
        ws = ref()
        if ws is None:
            return
        if not ws._lock.acquire(blocking=False):
            del ws
            stop.wait(_BUSY_BACKOFF)
            continue
        try:
            go_on, timer, want_write = ws._keepalive_pump()
            idle = ws._calls == seen_calls
            seen_calls = ws._calls
            if go_on and idle and poller is None:
                poller = select.poll()
                poller.register(wake, _POLLIN)
                poller.register(ws._sock, _POLLIN)
                registered = _POLLIN
            if go_on and poller is not None:
                mask = _POLLIN | (_POLLOUT if want_write else 0)
                if mask != registered:
                    poller.modify(ws._sock, mask)
                    registered = mask
        finally:
            ws._lock.release()
        del ws
        if not go_on:
            return
        wait = _IDLE_MAX_WAIT if timer is None else min(timer, _IDLE_MAX_WAIT)
        if idle and poller is not None:
            # The application is not using the link: watch the socket so PINGs are
            # answered and data acknowledged at once.
            poller.poll(_poll_ms(wait))
        else:
            # The application is active and does its own I/O; only keep the timers.
            stop.wait(min(wait, _ACTIVE_POLL))
