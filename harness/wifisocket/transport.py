"""The byte-moving part of a link: the current TCP connection, its output queue, the poll set.

A :class:`Transport` never blocks and never decides anything: it writes what it is given
until the kernel would block, reads into one reused buffer, and keeps the set of file
descriptors (and the events each is waited for) that the I/O layer waits on — with
``select.poll`` in the blocking socket, with the event loop's readers and writers in
``harness.aio``.
"""

from __future__ import annotations

import contextlib
import itertools
import select
import socket
from collections import deque
from typing import Any

__all__ = ["POLLBAD", "POLLIN", "POLLOUT", "Transport"]

POLLIN = select.POLLIN
POLLOUT = select.POLLOUT
POLLBAD = select.POLLERR | select.POLLHUP | select.POLLNVAL

# One recv takes up to this much: several window-fulls of small frames per syscall.
_RECV_BUFFER = 256 * 1024
# Buffers per sendmsg (Linux's IOV_MAX is 1024).
_IOV_MAX = 64


class Transport:
    """The current connection (at most one) and the poll set of a link."""

    def __init__(self) -> None:
        self.poller = select.poll()
        #: fd -> the poll events waited for; the I/O layer waits on exactly these.
        self.watched: dict[int, int] = {}
        self.sock: socket.socket | None = None
        self.fd = -1
        self.connecting = False  # a non-blocking TCP connect is in progress
        self.outq: deque[bytes | memoryview] = deque()
        #: Bytes in ``outq`` (the link stops reading while too many are backed up).
        self.queued = 0
        self.local_address: tuple[Any, ...] = ()
        self.peer_address: tuple[Any, ...] = ()
        self._rbuf = bytearray(_RECV_BUFFER)
        self._rview = memoryview(self._rbuf)

    # --- the poll set --------------------------------------------------------------------

    def watch(self, fd: int, mask: int) -> None:
        old = self.watched.get(fd)
        if old == mask:
            return
        if old is None:
            self.poller.register(fd, mask)
        else:
            self.poller.modify(fd, mask)
        self.watched[fd] = mask

    def unwatch(self, fd: int) -> None:
        if self.watched.pop(fd, None) is not None:
            with contextlib.suppress(KeyError, OSError, ValueError):
                self.poller.unregister(fd)

    def sync_mask(self, reading: bool = True) -> None:
        """Wait for writability only while something is queued (or a connect is pending).

        ``reading=False``: do not wait for input (the link pauses reading while its output
        is backed up; errors and hang-ups are still reported).
        """
        fd = self.fd
        if fd >= 0:
            if self.connecting:
                want = POLLOUT
            else:
                want = (POLLIN if reading else 0) | (POLLOUT if self.outq else 0)
            if self.watched.get(fd) != want:
                self.watch(fd, want)

    # --- the connection ----------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """A TCP connection is established (bytes can move)."""
        return self.sock is not None and not self.connecting

    def attach(self, sock: socket.socket, *, connecting: bool = False) -> None:
        """Make ``sock`` the connection (raises OSError before changing anything)."""
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.fd = sock.fileno()
        self.connecting = connecting
        self.outq.clear()
        self.queued = 0
        self.watch(self.fd, POLLOUT if connecting else POLLIN)

    def established(self) -> None:
        """The TCP connect finished (raises OSError if the connection is already gone)."""
        sock = self.sock
        assert sock is not None
        self.local_address, self.peer_address = sock.getsockname(), sock.getpeername()
        self.connecting = False

    def detach(self) -> None:
        """Close the connection (nothing more is written)."""
        sock = self.sock
        if sock is None:
            return
        self.unwatch(self.fd)
        sock.close()
        self.sock = None
        self.fd = -1
        self.connecting = False
        self.outq.clear()
        self.queued = 0

    def last_words(self, data: bytes) -> None:
        """Best effort: ``data`` (a CLOSE) if no frame is half written, then FIN."""
        sock = self.sock
        if sock is None or self.connecting:
            return
        try:
            if data and not self.outq:
                sock.send(data)
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def abort(self, data: bytes) -> None:
        """Best effort: what is queued and ``data`` in one write, then FIN (a fatal error)."""
        sock = self.sock
        if sock is None or self.connecting:
            return
        out = b"".join(bytes(chunk) for chunk in self.outq) + data
        self.outq.clear()
        self.queued = 0
        try:
            if out:
                sock.send(out)
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # --- moving bytes --------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Write ``data`` now as far as the kernel takes it; queue the rest (raises OSError).

        Bytes queued before go first, so frames never interleave.
        """
        if self.outq:
            self.outq.append(data)
            self.queued += len(data)
            self.write_some()
            return
        sock = self.sock
        assert sock is not None and not self.connecting
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent != len(data):
            self.outq.append(memoryview(data)[sent:])
            self.queued += len(data) - sent

    def write_some(self) -> None:
        """Write queued bytes until the kernel would block (raises OSError)."""
        outq = self.outq
        sock = self.sock
        if sock is None or self.connecting:
            return
        while outq:
            try:
                if len(outq) == 1:
                    n = sock.send(outq[0])
                else:  # several frames queued: one syscall for all of them
                    n = sock.sendmsg(list(itertools.islice(outq, _IOV_MAX)))
            except BlockingIOError:
                return
            if not n:
                return
            self.queued -= n
            while n:
                head = outq[0]
                if n < len(head):
                    outq[0] = memoryview(head)[n:]
                    return  # the kernel took what it could
                n -= len(head)
                outq.popleft()

    def read(self) -> memoryview | None:
        """What the kernel has (a view valid until the next read); None if nothing yet.

        Raises:
            OSError: the connection failed; ``EOFError``: the peer closed it.
        """
        sock = self.sock
        assert sock is not None
        try:
            n = sock.recv_into(self._rbuf)
        except BlockingIOError:
            return None
        if n == 0:
            raise EOFError
        return self._rview[:n]

    def has_input(self) -> bool:
        """The kernel holds unread bytes (or an error) for us; reads nothing."""
        sock = self.sock
        if sock is None or self.connecting:
            return False
        try:
            return bool(sock.recv(1, socket.MSG_PEEK))
        except BlockingIOError:
            return False
        except OSError:
            return True

    @property
    def read_size(self) -> int:
        """Bytes one :meth:`read` takes at most (a shorter read drained the kernel)."""
        return len(self._rbuf)
