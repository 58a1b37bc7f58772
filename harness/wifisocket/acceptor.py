"""Serve topology: the listening socket and the connections that have not said HELLO yet.

An accepted connection becomes the link's transport only once its first frame is a valid
HELLO (the check is :class:`~harness.wifisocket.session.Handshake`, sans-IO) and, on a
keyed link, its AUTH proved the key; anything else is closed with a reason and does not
disturb the session. At most ``MAX_PENDING``
connections wait at once (the oldest makes room), each at most ``connect_timeout``.

Who may dial in is the ``allow`` filter's decision (docs/reconnect.md, "Who may dial
in"): addresses or networks, checked at accept before a byte is read, or a function of
the address and the dialer's HELLO. By default any address may be the first peer; after
that only the first peer's address may dial in again (its redials), so a stranger cannot
take the link over later.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from harness.errors import ProtocolError
from harness.wifisocket.frame import CloseCode, Hello
from harness.wifisocket.session import Handshake, Session, close_frame
from harness.wifisocket.transport import POLLIN, Transport

__all__ = ["MAX_PENDING", "Acceptor", "Allow", "Pending"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: Who may dial in: addresses/networks ("192.168.4.17", "10.0.0.0/24"), or a function of
#: the dialer's ``(host, port)`` and its HELLO; None: the first peer's address (see above).
Allow = str | Iterable[str] | Callable[[Any, Hello], bool] | None


def _networks(allow: str | Iterable[str]) -> list[_Network]:
    items = [allow] if isinstance(allow, str) else list(allow)
    try:
        return [ipaddress.ip_network(item, strict=False) for item in items]
    except ValueError as exc:
        raise ValueError(f"allow: {exc}") from None

MAX_PENDING = 4
_PENDING_READ = 4096


@dataclass(eq=False)
class Pending:
    """An accepted connection waiting for its HELLO."""

    sock: socket.socket
    fd: int
    address: Any
    deadline: float
    handshake: Handshake


class Acceptor:
    """Accepts connections on ``listener`` and keeps them until they say HELLO.

    Args:
        listener: a listening socket (made non-blocking).
        owns: close the listener on :meth:`close`.
        transport: whose poll set the listener and pending connections join.
        session: the session the connections are for (its limits for the HELLO check;
            keyed, our HELLO for the dialer).
        connect_timeout: how long a connection may take to say HELLO.
        allow: who may dial in (:data:`Allow`).
    """

    def __init__(
        self, listener: socket.socket, *, owns: bool, transport: Transport, session: Session,
        connect_timeout: float, allow: Allow = None,
    ) -> None:
        self._allow_hello: Callable[[Any, Hello], bool] | None = None
        self._allowed: list[_Network] | None = None  # None: any address
        if callable(allow):
            self._allow_hello = allow
        elif allow is not None:
            self._allowed = _networks(allow)
        self._pin_first = allow is None
        where = listener.getsockname()
        listener.setblocking(False)
        self.target = f"{where[0]}:{where[1]}"
        self.listener: socket.socket | None = listener
        self.fd = listener.fileno()
        self.owns = owns
        self.pending: list[Pending] = []
        #: Why the latest connection was refused (for a Timeout's message).
        self.refused = ""
        #: Keyed: dialers that failed the handshake (either side's AUTH close).
        self.auth_failures = 0
        self._transport = transport
        self._session = session
        self._connect_timeout = connect_timeout
        transport.watch(self.fd, POLLIN)

    def accept(self, now: float) -> int:
        """Accept what the listener has; returns how many connections joined."""
        listener = self.listener
        joined = 0
        while listener is not None and self.listener is listener:
            try:
                conn, address = listener.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. out of fds: try again on the next round
                self.refused = f"accept failed: {exc}"
                break
            if not self.allows(address):
                # Before a byte is read or written: a stranger learns nothing of us.
                self.refused = f"{address}: address not allowed"
                conn.close()
                continue
            try:
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                conn.close()
                continue
            if len(self.pending) >= MAX_PENDING:
                self._refuse(self.pending[0], ProtocolError(
                    CloseCode.TIMEOUT, "too many connections waiting for HELLO"
                ))
            p = Pending(conn, conn.fileno(), address, now + self._connect_timeout,
                        Handshake(self._session.max_message, self._session))
            self.pending.append(p)
            self._transport.watch(p.fd, POLLIN)
            joined += 1
        return joined

    def read(self, fd: int) -> Pending | None:
        """Read from the pending connection on ``fd``; returns it (removed) once it said
        HELLO (keyed: and proved the key)."""
        p = next((p for p in self.pending if p.fd == fd), None)
        if p is None:
            return None
        try:
            data = p.sock.recv(_PENDING_READ)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            self._refuse(p, None, f"connection error before HELLO: {exc}")
            return None
        if not data:
            self._refuse(p, None, "closed before HELLO")
            return None
        hs = p.handshake
        had_hello = hs.hello is not None
        try:
            done = hs.feed(data)
        except ProtocolError as exc:
            if exc.code == CloseCode.AUTH:
                self.auth_failures += 1
            # A dialer that closed refused us: nothing to answer.
            self._refuse(p, None if exc is hs.peer_closed else exc, str(exc))
            return None
        hello = hs.hello
        if hello is not None and not had_hello and self._allow_hello is not None and (
            not self._allow_hello(p.address, hello)
        ):
            self._refuse(p, ProtocolError(CloseCode.PROTOCOL, "not allowed to dial in"))
            return None
        if hs.reply:
            # Keyed: our HELLO (68 bytes: a fresh socket's buffer takes it).
            reply, hs.reply = hs.reply, b""
            try:
                sent = p.sock.send(reply)
            except OSError as exc:
                sent, why = 0, f"connection error in the handshake: {exc}"
            else:
                why = "send buffer full in the handshake"
            if sent != len(reply):
                self._refuse(p, None, why)
                return None
        if not done:
            return None
        if hs.keyed is not None and hs.known_peer != self._session.peer_session_id:
            # Another peer took the session while this one proved the key: what our HELLO
            # said (resume, ack) is stale. Refused before our AUTH (§6), recoverably: it
            # dials again.
            self._refuse(p, ProtocolError(
                CloseCode.TIMEOUT, "the session changed during the handshake; dial again"))
            return None
        self.pending.remove(p)
        self._transport.unwatch(p.fd)
        return p

    @staticmethod
    def check_allow(allow: Allow) -> None:
        """Raise ValueError for a filter that is not an address, network or function."""
        if allow is not None and not callable(allow):
            _networks(allow)

    def allows(self, address: Any) -> bool:
        """Whether the address filter lets ``address`` (``(host, port, ...)``) dial in."""
        if self._allowed is None:
            return True
        try:
            ip = ipaddress.ip_address(address[0])
        except (ValueError, IndexError, TypeError):
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self._allowed)

    def peer_connected(self, address: Any) -> None:
        """A peer completed HELLO; by default only its address may dial in from now on."""
        if self._pin_first and address:
            self._pin_first = False
            self._allowed = _networks(str(address[0]))

    def expire(self, now: float) -> None:
        """Close the connections that did not say HELLO in time."""
        for p in [p for p in self.pending if now >= p.deadline]:
            self._refuse(p, ProtocolError(
                CloseCode.TIMEOUT, f"no HELLO within {self._connect_timeout} s"
            ))

    def wake_at(self) -> float:
        """The earliest pending deadline (inf if none)."""
        return min((p.deadline for p in self.pending), default=float("inf"))

    def stop_listening(self) -> None:
        """Refuse further connections (and drop the pending ones)."""
        for p in list(self.pending):
            self._refuse(p, None)
        listener = self.listener
        if listener is None:
            return
        self._transport.unwatch(self.fd)
        self.listener = None
        if self.owns:
            listener.close()

    def _refuse(self, p: Pending, error: ProtocolError | None, why: str = "") -> None:
        self.pending.remove(p)
        self._transport.unwatch(p.fd)
        if error is not None:
            self.refused = f"{p.address}: {error}"
            with contextlib.suppress(OSError):
                # Untagged: a refused dialer never got our AUTH (§6).
                p.sock.send(close_frame(error.code, error.reason))
        elif why:
            self.refused = f"{p.address}: {why}"
        p.sock.close()

    def sockets(self) -> list[socket.socket]:
        """Every socket this acceptor would close (for a finalizer)."""
        socks = [p.sock for p in self.pending]
        if self.owns and self.listener is not None:
            socks.append(self.listener)
        return socks
