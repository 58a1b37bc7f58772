"""The engine of a WiFiSocket: a Session on a Transport, kept up by a Supervisor. Never waits.

:class:`Link` wires the pieces together: it feeds what the transport reads to the
:class:`~harness.wifisocket.session.Session`, turns the session's events into messages for
the application and connection changes, writes what the session says, opens new
connections when the :class:`~harness.wifisocket.supervisor.Supervisor` says so (dialling
again, or through the :class:`~harness.wifisocket.acceptor.Acceptor`) and records the first
fatal error. Every method returns at once; the I/O layer around it decides how to wait
(``poll`` in :mod:`harness.wifisocket.socket`, the event loop in :mod:`harness.aio`) and
guarantees that one thread at a time calls into it.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import math
import os
import random
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from harness.errors import (
    AuthenticationFailed,
    ConnectionLost,
    PeerClosedNormally,
    ProtocolError,
    SessionLost,
    Timeout,
    WiFiSocketError,
)
from harness.wifisocket.acceptor import Acceptor, Allow, Pending
from harness.wifisocket.backoff import Reconnect, ReconnectPolicy
from harness.wifisocket.frame import CloseCode
from harness.wifisocket.session import (
    RECOVERABLE,
    Connected,
    Dead,
    Event,
    Failed,
    Handshake,
    Message,
    PeerClosed,
    Session,
    SessionReset,
    State,
    WindowFull,
)
from harness.wifisocket.supervisor import Supervisor
from harness.wifisocket.transport import POLLBAD, POLLIN, POLLOUT, Transport

__all__ = ["Link", "LinkStats", "LinkView", "PeerClosedNormally"]

_log = logging.getLogger("harness.wifisocket")

_FOREVER = math.inf
_OPEN = State.OPEN
_CONNECT_IN_PROGRESS = frozenset(
    {errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK, errno.EINTR}
)

_Msg = str | bytes

#: Control bytes (PONGs, ACKs, a CLOSE) the output queue may hold beyond our own
#: unacknowledged data before the link stops reading from the peer: a peer that sends
#: without reading what we answer must not grow our memory (its TCP window then closes).
OUTPUT_BACKLOG = 64 * 1024
#: Pause between the constructor's attempts while the device answers BUSY (jittered, so
#: that clients waiting for the same service do not retry in lockstep).
BUSY_RETRY = 0.1


def deadline_after(timeout: float | None) -> float:
    """The monotonic time ``timeout`` seconds from now (inf for None or inf: no bound)."""
    if timeout is None or timeout == _FOREVER:
        return _FOREVER
    return time.monotonic() + timeout


class BusyRetry:
    """The constructor's policy while a device refuses with BUSY, for both facades (no I/O:
    the caller sleeps its own way).

    The device frees another host's live session at its dead bound (or when that host
    closes), so the constructor tries again while time remains; if the time runs out, the
    BUSY refusal is the reason it reports, not the last attempt's Timeout.
    """

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.refusal: ProtocolError | None = None

    def pause_after(self, exc: ProtocolError) -> float:
        """How long to wait before the next attempt; re-raises ``exc`` to give up (not a
        BUSY refusal, or no time left)."""
        if exc.code != CloseCode.BUSY or time.monotonic() + BUSY_RETRY >= self.deadline:
            raise exc
        self.refusal = exc
        return BUSY_RETRY * random.uniform(0.5, 1.5)

    def timed_out(self, exc: Timeout) -> NoReturn:
        """An attempt ran out of time: raise the BUSY refusal if there was one, else ``exc``."""
        if self.refusal is not None:
            raise self.refusal from None
        raise exc


@dataclass(frozen=True)
class LinkStats:
    """Counters of a link's keyed failures (docs/protocol.md §6), since it was made.

    Attributes:
        bad_tags: frames this side rejected for a wrong tag (``BAD_TAG``: tampering, or an
            on-path party injecting; each cost a reconnect).
        auth_failures: handshakes that failed (``AUTH``): a dialer that did not prove the
            key (serve), or this side's own failed handshake (which ends the link).
    """

    bad_tags: int = 0
    auth_failures: int = 0


class Link:
    """One logical link: the session, its current connection and how it comes back.

    Args:
        session: the protocol state (it outlives connections).
        policy: the reconnect options.
        target: ``host:port`` for messages.
    """

    def __init__(self, session: Session, policy: ReconnectPolicy, target: str = "") -> None:
        self.session = session
        self.policy = policy
        self.target = target
        self.transport = Transport()
        self.supervisor = Supervisor(policy)
        self.acceptor: Acceptor | None = None
        self.connected = False  # the peer's HELLO arrived on the current connection
        self.closed = False  # close() was called
        self.error: WiFiSocketError | None = None  # the first fatal error
        #: Messages for the application, and SessionLost markers in arrival order.
        self.inbox: deque[_Msg | SessionLost] = deque()
        #: SessionLost not raised yet (each is also in the inbox, after older messages).
        self.losses: deque[SessionLost] = deque()
        #: on_reconnect calls to make outside any lock.
        self.callbacks: deque[Callable[[], object]] = deque()
        # When the next timer is due, as of the last prepare_wait (timers only move later
        # while connected, so a read in between need not look at them again).
        self._due = 0.0
        # Host topology: where to dial again.
        self.dial_family = socket.AF_INET
        self.dial_address: Any = None
        self.bad_tags = 0
        self.auth_failures = 0  # of our own connections; the acceptor counts its pending

    # --- setup -------------------------------------------------------------------------

    def dialled(self, sock: socket.socket) -> None:
        """Host topology: ``sock`` is connected to the peer; say HELLO (raises OSError)."""
        self.transport.attach(sock)
        self._transport_up()
        self.dial_family = sock.family
        self.dial_address = sock.getpeername()

    def listen(self, listener: socket.socket, *, owns: bool, allow: Allow = None) -> None:
        """Serve topology: wait for the peer on ``listener`` (raises OSError)."""
        self.acceptor = Acceptor(
            listener, owns=owns, transport=self.transport,
            session=self.session, connect_timeout=self.policy.connect_timeout,
            allow=allow,
        )
        self.target = self.acceptor.target
        self.supervisor.serving = True

    # --- the application's side --------------------------------------------------------

    def check_usable(self) -> None:
        if self.closed:
            raise ConnectionLost("the WiFiSocket is closed")
        if self.error is not None:
            raise self.error

    def raise_loss(self) -> None:
        """Raise the oldest pending SessionLost (from send/flush: before older messages)."""
        loss = self.losses.popleft()
        with contextlib.suppress(ValueError):
            self.inbox.remove(loss)
        raise loss

    def take(self) -> _Msg | None:
        """The next message (None if none yet); raises a SessionLost at its place."""
        if not self.inbox:
            return None
        item = self.inbox.popleft()
        if self.losses and item is self.losses[0]:
            raise self.losses.popleft()
        return item  # type: ignore[return-value]

    def try_send(self, msg: str | bytes | bytearray | memoryview) -> bool:
        """Frame and write ``msg`` if the session is open and has window; False: wait.

        Raises MessageTooLarge (nothing changes), or what a lost connection turns into.
        A message the session took is never lost: if the write fails it is in the resend
        window and goes out on the next connection.
        """
        if self.closed or self.error is not None:
            self.check_usable()
        if self.losses:
            self.raise_loss()
        session = self.session
        if session.state is not _OPEN:
            return False
        try:
            frame = session.send_message(msg, time.monotonic())
        except WindowFull:
            return False
        try:
            self.transport.write(frame)
        except OSError as exc:
            self._write_failed(exc)
            self.check_usable()
        return True

    # One step of each API call, shared by the blocking and the asyncio facade: each
    # returns the result (or True when done), None/False when the caller must wait and
    # try again, or raises (Timeout once ``deadline`` passed).

    def sending(self, msg: str | bytes | bytearray | memoryview, deadline: float,
                waited: float | None) -> bool:
        """Frame and write ``msg`` if possible (see :meth:`try_send`)."""
        if self.try_send(msg):
            return True
        if time.monotonic() >= deadline:
            raise self.send_timeout(waited)
        return False

    def written(self, sock: socket.socket | None, deadline: float) -> bool:
        """After a send: the kernel took the queued bytes (or ``sock`` is gone)."""
        self.check_usable()
        if not self.transport.outq or self.transport.sock is not sock:
            return True
        if time.monotonic() >= deadline:
            raise Timeout(
                "send: the peer is not reading; the message is queued and will go out when "
                "it does"
            )
        return False

    def receiving(self, deadline: float, waited: float | None) -> _Msg | None:
        """The next message, if there is one."""
        item = self.take()
        if item is not None:
            return item
        self.check_usable()
        if time.monotonic() >= deadline:
            raise self.receive_timeout(waited)
        return None

    def flushed(self, deadline: float) -> bool:
        """The peer acknowledged everything we sent."""
        self.check_usable()
        if self.losses:
            self.raise_loss()
        if self.session.unacked_bytes == 0:
            return True
        if time.monotonic() >= deadline:
            n = len(self.session.unacked_messages)
            raise Timeout(f"flush: {n} message(s) still unconfirmed")
        return False

    def outage(self) -> str:
        return self.supervisor.outage(time.monotonic())

    def check_first(self, deadline: float, timeout: float | None) -> None:
        """While the first HELLO exchange is not done: raise its error, or Timeout if late."""
        if self.error is not None:
            raise self.error
        if time.monotonic() < deadline:
            return
        if self.transport.sock is not None:
            with contextlib.suppress(OSError):
                self.transport.write(self.session.close(CloseCode.TIMEOUT, "no HELLO"))
            raise Timeout(
                f"no HELLO from {self.transport.peer_address} within the handshake timeout"
            )
        refused = self.acceptor.refused if self.acceptor is not None else ""
        refused = f" (last refused: {refused})" if refused else ""
        raise Timeout(f"no peer connected to {self.target} within {timeout} s{refused}")

    def send_timeout(self, waited: float | None) -> Timeout:
        """Why a send could not frame its message in time."""
        if self.session.is_open:
            return Timeout(
                f"send: the peer's window stayed full for {waited} s; the message was not sent"
            )
        return Timeout(
            f"send: the link stayed down for {waited} s ({self.outage()}); "
            "the message was not sent"
        )

    def receive_timeout(self, waited: float | None) -> Timeout:
        down = f" (the link is down: {self.outage()})" if self.supervisor.down else ""
        return Timeout(f"no message within {waited} s{down}")

    def fd_owners(self) -> dict[int, socket.socket]:
        """The socket behind each watched file descriptor (an fd number can be reused)."""
        owners: dict[int, socket.socket] = {}
        if self.transport.sock is not None:
            owners[self.transport.fd] = self.transport.sock
        acceptor = self.acceptor
        if acceptor is not None:
            if acceptor.listener is not None:
                owners[acceptor.fd] = acceptor.listener
            for p in acceptor.pending:
                owners[p.fd] = p.sock
        return owners

    # --- waiting: what to wait for, and acting on what happened -------------------------

    def prepare_wait(self) -> float:
        """Before a wait: an ACK still owed goes out; returns when the next timer is due."""
        transport = self.transport
        if self.error is None and transport.ready:
            owed = self.session.data_to_send()  # an ACK still owed goes out before we wait
            if owed:
                self._write(owed)
        transport.sync_mask(reading=not (transport.queued and self.backed_up))
        self._due = self.wake_at(time.monotonic())
        return self._due

    def wake_at(self, now: float) -> float:
        """When the next timer is due (absolute, monotonic; inf: none)."""
        at = _FOREVER
        transport = self.transport
        if transport.ready:
            timer = self.session.next_timer(now)
            if timer is not None:
                at = now + timer
        sup = self.supervisor
        if sup.lost_at is not None:
            at = min(at, sup.wake_at(self._attempt_open))
        if self.acceptor is not None and self.acceptor.pending:
            at = min(at, self.acceptor.wake_at())
        return at

    def process(self, ready: list[tuple[int, int]], ack: bool = True) -> None:
        """Act on ready file descriptors, then on due timers.

        ``ack=False`` defers the ACK for what is read (the caller's next send carries it,
        or :meth:`prepare_wait` sends it).
        """
        if ready:
            sock = self.transport.sock
            self._service(ready, ack)
            if (self.connected and self.transport.sock is sock and self.error is None
                    and (self.acceptor is None or not self.acceptor.pending)
                    and time.monotonic() < self._due):
                return  # steady state and no timer due: skip the timer round
        self._timers(ack)

    def pump(self, ack: bool = True) -> None:
        """Whatever is ready now, and the timers (no waiting)."""
        self.process(self.transport.poller.poll(0), ack)
        self.flush_some()

    def flush_some(self) -> None:
        """Write queued bytes until the kernel would block."""
        if self.transport.outq:
            try:
                self.transport.write_some()
            except OSError as exc:
                self._write_failed(exc)

    @property
    def backed_up(self) -> bool:
        """Our output is backed up past :data:`OUTPUT_BACKLOG`: reading pauses.

        Data frames in the queue are bounded by the peer's window; what exceeds them was
        produced by reading (answers to the peer), so reading more would only add to it.
        """
        return self.transport.queued > self.session.unacked_bytes + OUTPUT_BACKLOG

    @property
    def _attempt_open(self) -> bool:
        return self.transport.sock is not None and not self.connected

    def _service(self, ready: list[tuple[int, int]], ack: bool) -> None:
        transport = self.transport
        sock = transport.sock
        sock_fd = transport.fd
        acceptor = self.acceptor
        for fd, mask in ready:
            if self.error is not None:
                return
            if fd == sock_fd and sock is not None and transport.sock is sock:
                if transport.connecting:
                    self._finish_connect()
                    continue
                if mask & (POLLIN | POLLBAD):
                    bad = bool(mask & POLLBAD)
                    self._read_available(drain=bad, ack=ack)
                    if bad and transport.sock is sock and self.error is None:
                        self._lost("connection error")
                if mask & POLLOUT and transport.sock is sock:
                    self.flush_some()
            elif acceptor is not None and acceptor.listener is not None and fd == acceptor.fd:
                for _ in range(acceptor.accept(time.monotonic())):
                    self.supervisor.accepted()
            elif acceptor is not None:
                p = acceptor.read(fd)
                if p is not None:
                    self._promote(p)

    def _read_available(self, drain: bool = False, ack: bool = True) -> None:
        """Read what the kernel has, feed the session, queue its answers."""
        transport = self.transport
        sock = transport.sock
        if sock is None or transport.connecting:
            return
        session = self.session
        size = transport.read_size
        queued = len(self.inbox)
        while self.error is None and transport.sock is sock:
            if not drain and transport.queued and self.backed_up:
                break  # resumes once the peer reads what we owe it
            try:
                data = transport.read()
            except EOFError:
                self._lost("connection closed by the peer")
                return
            except OSError as exc:
                self._lost(f"connection error: {exc}")
                return
            if data is None:
                break
            events = session.receive_data(data, time.monotonic())
            if len(events) == 1 and type(events[0]) is Message:
                self.inbox.append(events[0].data)  # the usual read: one message
            else:
                self._handle(events)
            if len(data) < size and not drain:
                break  # most likely all there was; saves an EAGAIN round trip
        if transport.sock is sock:
            # A deferred ACK is for one reply (the next send carries it); a read that
            # brought a stream is acknowledged at once, so the peer's window reopens while
            # the application works through it.
            out = session.data_to_send(ack or len(self.inbox) - queued > 1)
            if out:
                self._write(out)

    def _timers(self, ack: bool) -> None:
        if self.error is not None:
            return
        now = time.monotonic()
        transport = self.transport
        sock = transport.sock
        if transport.ready:
            if self.backed_up and transport.has_input():
                # Bytes we chose not to read yet: the peer is not silent.
                self.session.peer_alive(now)
            events = self.session.tick(now)
            if events:
                self._handle(events)
            if transport.sock is sock:
                out = self.session.data_to_send(ack)
                if out:
                    self._write(out)
            if self.error is not None:
                return
        acceptor = self.acceptor
        if acceptor is not None and acceptor.pending:
            acceptor.expire(now)
        due = self.supervisor.due(now, self._attempt_open)
        if due == "give_up":
            error = self.supervisor.give_up(now, self.target, self.session.unacked_messages)
            self.transport.last_words(self.session.data_to_send())
            self.transport.detach()
            self._fail(error)
        elif due == "attempt_timeout":
            what = "TCP connect" if transport.connecting else "HELLO"
            self._attempt_failed(Timeout(
                f"no {what} from {self.target} within {self.policy.connect_timeout} s"
            ))
        elif due == "attempt":
            self._start_attempt(now)

    # --- events ------------------------------------------------------------------------

    def _handle(self, events: list[Event]) -> None:
        for i, ev in enumerate(events):
            if type(ev) is Message:
                self.inbox.append(ev.data)
            elif isinstance(ev, Connected):
                self._on_connected(ev, events[i + 1:])
            elif isinstance(ev, SessionReset):
                n = len(ev.unconfirmed)
                loss = SessionLost(
                    f"the peer restarted with a new session; {n} message(s) of ours were "
                    "never confirmed",
                    ev.unconfirmed,
                )
                self.losses.append(loss)
                self.inbox.append(loss)
            elif isinstance(ev, PeerClosed):
                if ev.code == CloseCode.NORMAL:
                    reason = f": {ev.reason}" if ev.reason else ""
                    self._fail(PeerClosedNormally(f"the peer closed the connection{reason}"))
                elif ev.code == CloseCode.AUTH:
                    self.auth_failures += 1
                    self._fail(AuthenticationFailed(f"peer closed: {ev.reason}"))
                elif ev.code in RECOVERABLE:
                    self._drop(ProtocolError(ev.code, f"peer closed: {ev.reason}"))
                else:
                    self._fail(ProtocolError(ev.code, f"peer closed: {ev.reason}"))
            elif isinstance(ev, Failed):
                code = ev.error.code
                if code == CloseCode.BAD_TAG:
                    self.bad_tags += 1
                elif code == CloseCode.AUTH:
                    self.auth_failures += 1
                if code in RECOVERABLE:
                    self._drop(ev.error)
                else:
                    self._fail(ev.error)
            elif isinstance(ev, Dead):
                if self.connected:
                    self._drop(ConnectionLost(
                        f"the peer was silent for {self.session.dead_after} s (dead)"
                    ))
                else:  # the peer never said HELLO on this connection
                    self._drop(Timeout(
                        f"no HELLO from {self.target} within {self.session.dead_after} s"
                    ))
            # Pong: the session keeps the rtt.

    def _on_connected(self, ev: Connected, after: list[Event]) -> None:
        """The peer's HELLO arrived; ``after``: the events of the same read that follow it."""
        session = self.session
        self.connected = True
        # The session has handled the whole read already: messages that came with the
        # HELLO are this connection's progress, not part of the mark.
        received = sum(1 for e in after if type(e) is Message)
        info = self.supervisor.connected(
            time.monotonic(), (session.delivered - received, session.peer_ack),
            resumed=ev.resumed, session_lost=any(isinstance(e, SessionReset) for e in after),
            peer_address=tuple(self.transport.peer_address),
        )
        if info is not None and self.policy.on_reconnect is not None:
            self.callbacks.append(functools.partial(self.policy.on_reconnect, info))
        if self.acceptor is not None:
            self.acceptor.peer_connected(self.transport.peer_address)
            if not self.policy.reconnect:
                self.acceptor.stop_listening()

    # --- connection changes ------------------------------------------------------------

    def _transport_up(self, dialer: Handshake | None = None) -> None:
        """The current TCP connection is established: say HELLO (raises OSError).

        ``dialer``: the handshake of the peer that dialled us (serve topology).
        """
        self.transport.established()
        self.connected = False
        self.transport.write(self.session.connection_made(time.monotonic(), dialer))

    def _write(self, data: bytes) -> None:
        try:
            self.transport.write(data)
        except OSError as exc:
            self._write_failed(exc)

    def _write_failed(self, exc: OSError) -> None:
        # The peer may have said CLOSE (with its reason) and messages before it hung up:
        # read what the kernel still holds so they win over a bare "connection reset".
        sock = self.transport.sock
        self._read_available(drain=True)
        if self.transport.sock is sock and self.error is None:
            self._lost(f"send failed: {exc}")

    def _lost(self, why: str) -> None:
        self._drop(ConnectionLost(why))

    def _drop(self, error: WiFiSocketError) -> None:
        """The current connection (or attempt) ended: reconnect, or fail for good."""
        if self.error is not None:
            return
        if not self.supervisor.armed or self.closed:
            self._fail(error)
        elif self.connected:
            session = self.session
            self.supervisor.connection_lost(
                time.monotonic(), (session.delivered, session.peer_ack), str(error)
            )
            self._end_connection()
            _log.debug("%s: connection lost (%s); reconnecting", self.target, error)
        else:
            self._attempt_failed(error)

    def _end_connection(self) -> None:
        self.transport.last_words(self.session.data_to_send())
        self.transport.detach()
        self.connected = False
        self.session.connection_lost()

    def _attempt_failed(self, error: WiFiSocketError) -> None:
        self._end_connection()
        self.supervisor.attempt_failed(time.monotonic(), str(error))

    def _start_attempt(self, now: float) -> None:
        """Host topology: start a non-blocking TCP connect to the peer's address."""
        self.supervisor.attempt_started(now)
        try:
            sock = socket.socket(self.dial_family, socket.SOCK_STREAM)
        except OSError as exc:
            self._attempt_failed(ConnectionLost(f"cannot create a socket: {exc}"))
            return
        try:
            sock.setblocking(False)
            err = sock.connect_ex(self.dial_address)
            if err != 0 and err not in _CONNECT_IN_PROGRESS:
                raise OSError(err, os.strerror(err))
            self.transport.attach(sock, connecting=err != 0)
            if err == 0:
                self._transport_up()
        except OSError as exc:
            if self.transport.sock is not sock:
                sock.close()
            self._drop(ConnectionLost(f"cannot connect to {self.target}: {exc}"))

    def _finish_connect(self) -> None:
        sock = self.transport.sock
        assert sock is not None
        try:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, os.strerror(err))
            self._transport_up()
        except OSError as exc:
            self._drop(ConnectionLost(f"cannot connect to {self.target}: {exc}"))

    def _promote(self, p: Pending) -> None:
        """``p`` said HELLO: it becomes the connection (replacing the current one, if any)."""
        transport = self.transport
        if transport.sock is not None:
            # The device dialled again (it found this connection dead): the newer wins.
            words = self.session.drop_connection(
                CloseCode.REPLACED, "a newer connection replaced this one"
            )
            transport.last_words(words)
            if self.connected:
                self._drop(ConnectionLost(f"replaced by a newer connection from {p.address}"))
            else:
                transport.detach()
        assert self.acceptor is not None
        try:
            transport.attach(p.sock)
            self._transport_up(p.handshake)
        except OSError as exc:
            transport.detach()
            p.sock.close()
            self.acceptor.refused = f"{p.address}: connection failed during setup: {exc}"
            return
        sock = p.sock
        self._handle(self.session.receive_data(bytes(p.handshake.data), time.monotonic()))
        if transport.sock is sock:
            out = self.session.data_to_send()
            if out:
                self._write(out)

    # --- the end -----------------------------------------------------------------------

    def _fail(self, error: WiFiSocketError) -> None:
        """Record the first fatal error, send what the session has to say, shut down TCP."""
        if self.error is not None:
            return
        self.error = error
        self.transport.abort(self.session.data_to_send())
        self.session.connection_lost()
        if self.acceptor is not None:
            self.acceptor.stop_listening()

    def say_goodbye(self) -> bool:
        """close(): queue a CLOSE NORMAL if connected; True if there is something to flush."""
        self.closed = True
        if self.error is None and self.session.is_open and self.transport.ready:
            self._write(self.session.close(CloseCode.NORMAL, ""))
            return bool(self.transport.outq)
        return False

    def shutdown(self) -> None:
        """Release every socket (idempotent)."""
        self.closed = True
        self.session.close()
        self.transport.detach()
        if self.acceptor is not None:
            self.acceptor.stop_listening()

    def sockets(self) -> list[socket.socket]:
        """Every socket this link holds (for a finalizer)."""
        socks = [] if self.transport.sock is None else [self.transport.sock]
        if self.acceptor is not None:
            socks += self.acceptor.sockets()
        return socks


class LinkView:
    """What the blocking and the asyncio WiFiSocket show of their link (read-only)."""

    _link: Link
    _session: Session
    _timeout: float | None

    @property
    def max_message(self) -> int:
        """The largest message the peer accepts (bytes of UTF-8 for text)."""
        return self._session.peer_max_message

    @property
    def keyed(self) -> bool:
        """True on a keyed link (protocol version 2, a ``key`` was given)."""
        return self._session.keyed

    @property
    def stats(self) -> LinkStats:
        """Keyed failures seen so far (:class:`LinkStats`)."""
        link = self._link
        pending = link.acceptor.auth_failures if link.acceptor is not None else 0
        return LinkStats(link.bad_tags, link.auth_failures + pending)

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
        return tuple(self._link.transport.local_address)

    @property
    def peer_address(self) -> tuple[Any, ...]:
        """``(host, port)`` of the peer of the (current or last) TCP connection."""
        return tuple(self._link.transport.peer_address)

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
        link = self._link
        return link.connected and link.error is None and not link.closed

    @property
    def reconnects(self) -> int:
        """How many times the link was re-established."""
        return self._link.supervisor.reconnects

    @property
    def last_reconnect(self) -> Reconnect | None:
        """The latest reconnect's facts (None if there was none)."""
        return self._link.supervisor.last_reconnect

    @property
    def unconfirmed(self) -> list[str | bytes]:
        """Our messages the peer has not acknowledged yet, in order."""
        return self._session.unacked_messages

    def __repr__(self) -> str:
        link = self._link
        if link.closed:
            state = "closed"
        elif link.error is not None:
            state = "broken"
        elif link.supervisor.down:
            state = "reconnecting"
        else:
            state = "open"
        t = link.transport
        return f"<{type(self).__name__} {state} local={t.local_address} peer={t.peer_address}>"
