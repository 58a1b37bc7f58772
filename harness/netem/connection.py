"""One proxied TCP connection: two non-blocking legs and a pipeline per direction.

Everything here runs on the proxy's loop thread; the proxy calls :meth:`Connection.handle`
for socket readiness and :meth:`Connection.service` whenever the connection had an event
or one of its deadlines passed.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import struct
from collections import deque
from dataclasses import dataclass, field

from harness.netem.pipeline import Pipeline
from harness.netem.stages import Item, Marker, Stage

log = logging.getLogger("harness.netem")

CHUNK = 1 << 18
"""Bytes asked for per recv(): large reads are what makes the no-toxic path fast."""

HIGH_WATER = 1 << 20
"""Stop reading a source while this many bytes of its direction are held (back-pressure)."""

# Bound on how much unread input a graceful close throws away before closing: unread
# input makes Linux send RST instead of FIN, but a peer that keeps sending must not keep
# the loop thread busy.
_DRAIN_LIMIT = 1 << 22

_RW = selectors.EVENT_READ | selectors.EVENT_WRITE


@dataclass
class Counters:
    """Bytes the proxy delivered to the destination, per direction, over all connections."""

    sent: dict[str, int] = field(default_factory=lambda: {"upstream": 0, "downstream": 0})


class Flow:
    """One direction of a connection: bytes read from ``src`` go out to ``dst``."""

    def __init__(self, direction: str, src: socket.socket, dst: socket.socket) -> None:
        self.direction = direction
        self.src = src
        self.dst = dst
        self.pipeline = Pipeline()
        # One entry per send(): the boundaries a Slicer made must survive to the socket.
        self.out: deque[memoryview | Marker] = deque()
        self.out_bytes = 0
        self.src_eof = False
        self.done = False

    def backlog(self) -> int:
        """Bytes of this direction held by the proxy."""
        return self.pipeline.held() + self.out_bytes

    def queue(self, items: list[Item]) -> None:
        """Put items that left the pipeline in line for the destination socket."""
        for item in items:
            if isinstance(item, bytes):
                if item:
                    self.out.append(memoryview(item))
                    self.out_bytes += len(item)
            else:
                self.out.append(item)


def _rst_close(sock: socket.socket) -> None:
    # Linger on with a zero timeout: close() discards the send queue and sends RST.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _graceful_close(sock: socket.socket) -> None:
    drained = 0
    try:
        while drained < _DRAIN_LIMIT:
            data = sock.recv(CHUNK)
            if not data:
                break
            drained += len(data)
    except OSError:
        pass
    sock.close()


class Connection:
    """A client leg, a server leg, and the upstream/downstream flows between them."""

    def __init__(
        self,
        index: int,
        client: socket.socket,
        server: socket.socket,
        selector: selectors.BaseSelector,
        counters: Counters,
        connect_deadline: float,
    ) -> None:
        self.index = index
        self.client = client
        self.server = server
        self.flows = {
            "upstream": Flow("upstream", client, server),
            "downstream": Flow("downstream", server, client),
        }
        self.connecting = True
        self.closed = False
        self._connect_deadline = connect_deadline
        self._selector = selector
        self._counters = counters
        self._masks: dict[socket.socket, int] = {client: 0, server: 0}
        self._update_interest()

    # -- control, called by the proxy -------------------------------------------------

    def add_stage(self, direction: str, stage: Stage) -> None:
        """Append a stage to one direction's pipeline."""
        self.flows[direction].pipeline.add(stage)

    def remove_stage(self, name: str, now: float) -> None:
        """Remove a stage by name from every direction that has it; nothing held is lost."""
        for flow in self.flows.values():
            if name in flow.pipeline.names():
                flow.queue(flow.pipeline.remove(name, now))

    def deadline(self) -> float | None:
        """The earliest time this connection needs :meth:`service` without an event."""
        if self.closed:
            return None
        times = [f.pipeline.deadline() for f in self.flows.values()]
        if self.connecting:
            times.append(self._connect_deadline)
        present = [t for t in times if t is not None]
        return min(present) if present else None

    def close(self) -> None:
        """Close both legs normally (FIN)."""
        self._teardown(reset=())

    def refuse(self) -> None:
        """The upstream could not be reached: reset the client, the closest to "refused"."""
        self._teardown(reset=(self.client,))

    # -- events -----------------------------------------------------------------------

    def handle(self, sock: socket.socket, mask: int, now: float) -> None:
        """React to readiness of one of the two legs."""
        if self.closed:
            return
        if self.connecting:
            if sock is self.server and mask & selectors.EVENT_WRITE:
                self._finish_connect()
            return
        if mask & selectors.EVENT_READ:
            for flow in self.flows.values():
                if flow.src is sock and not flow.src_eof:
                    self._read(flow, now)

    def service(self, now: float) -> None:
        """Move due items, fire due faults, write what can be written."""
        if self.closed:
            return
        if self.connecting and now >= self._connect_deadline:
            log.info("netem: connection %d: upstream connect timed out", self.index)
            self._teardown(reset=(self.client,))
            return
        if self._fire_faults(now):
            return
        if not self.connecting:
            for flow in self.flows.values():
                flow.queue(flow.pipeline.pump(now))
                self._flush(flow)
                if self.closed:
                    return
            if all(f.done for f in self.flows.values()):
                self._teardown(reset=())
                return
        self._update_interest()

    # -- internals --------------------------------------------------------------------

    def _finish_connect(self) -> None:
        err = self.server.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            log.info("netem: connection %d: upstream connect failed: errno %d", self.index, err)
            self.refuse()
            return
        self.connecting = False

    def _read(self, flow: Flow, now: float) -> None:
        try:
            data = flow.src.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            # The source was reset: pass the reset on to the other side.
            self._teardown(reset=(flow.dst,))
            return
        item: Item
        if data:
            item = data
        else:
            flow.src_eof = True
            item = Marker.EOF
        flow.queue(flow.pipeline.feed(item, now))

    def _flush(self, flow: Flow) -> None:
        while flow.out:
            head = flow.out[0]
            if isinstance(head, Marker):
                flow.out.popleft()
                if head is Marker.CLOSE:
                    self._teardown(reset=())
                    return
                with contextlib.suppress(OSError):
                    flow.dst.shutdown(socket.SHUT_WR)
                flow.done = True
                continue
            try:
                n = flow.dst.send(head)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # The destination is gone (reset or closed): reset the other side too.
                self._teardown(reset=(flow.src,))
                return
            self._counters.sent[flow.direction] += n
            flow.out_bytes -= n
            if n < len(head):
                flow.out[0] = head[n:]
                return
            flow.out.popleft()

    def _fire_faults(self, now: float) -> bool:
        reset: list[socket.socket] = []
        close = False
        for flow in self.flows.values():
            fault = flow.pipeline.fault(now)
            if fault is None:
                continue
            if fault.kind == "reset":
                reset.append(flow.dst)
            else:
                close = True
        if reset or close:
            log.info("netem: connection %d: fault fired (reset=%d)", self.index, len(reset))
            self._teardown(reset=tuple(reset))
            return True
        return False

    def _update_interest(self) -> None:
        wanted = dict.fromkeys(self._masks, 0)
        if self.connecting:
            wanted[self.server] = selectors.EVENT_WRITE
        else:
            for flow in self.flows.values():
                if not flow.src_eof and flow.backlog() < HIGH_WATER:
                    wanted[flow.src] |= selectors.EVENT_READ
                if flow.out:
                    wanted[flow.dst] |= selectors.EVENT_WRITE
        for sock, mask in wanted.items():
            old = self._masks[sock]
            if mask == old:
                continue
            if old == 0:
                self._selector.register(sock, mask, self)
            elif mask == 0:
                self._selector.unregister(sock)
            else:
                self._selector.modify(sock, mask & _RW, self)
            self._masks[sock] = mask

    def _teardown(self, reset: tuple[socket.socket, ...]) -> None:
        if self.closed:
            return
        self.closed = True
        for sock, mask in self._masks.items():
            if mask:
                self._selector.unregister(sock)
            self._masks[sock] = 0
        for sock in (self.client, self.server):
            if sock in reset:
                _rst_close(sock)
            else:
                _graceful_close(sock)
