"""Sans-IO pipeline stages: what each toxic does to one direction of one connection.

A stage takes items (bytes, or a :class:`Marker` for end-of-stream) with :meth:`Stage.feed`
and gives back the items that may go on with :meth:`Stage.emit`. Time is passed in, never
read, and nothing here touches a socket, so the stages can be driven by a fake clock.

Every stage keeps what it holds in arrival order and hands it all back from
:meth:`Stage.drain` when its toxic is removed; that is how removing a toxic under traffic
loses and reorders nothing.
"""

from __future__ import annotations

import enum
import math
import random
from collections import deque
from dataclasses import dataclass
from typing import Literal

from harness.netem.toxics import (
    Bandwidth,
    Blackhole,
    Corrupt,
    CutAfter,
    Latency,
    LimitData,
    ResetPeer,
    Slicer,
    SlowClose,
    Stalls,
    Toxic,
)


class Marker(enum.Enum):
    """An in-band event that travels through the pipeline behind the data before it."""

    EOF = "eof"
    """The source finished sending: half-close the destination leg once delivered."""
    CLOSE = "close"
    """Close the whole connection once everything before it was delivered."""


Item = bytes | Marker


@dataclass(frozen=True)
class Fault:
    """An out-of-band action on the whole connection, raised by a stage at its time."""

    kind: Literal["close", "reset"]
    """``close``: close both legs normally. ``reset``: RST the destination leg."""


# Bytes until the next flip when nothing is ever flipped: far beyond any real stream.
_NEVER = 1 << 62


def _size(item: Item) -> int:
    return len(item) if isinstance(item, bytes) else 0


class _Held:
    """A FIFO of items whose head can be consumed piecewise without copying the rest.

    Slicing the head off a bytes object each time would copy the remainder on every
    piece, which is quadratic for small pieces of a large read.
    """

    def __init__(self) -> None:
        self._items: deque[Item] = deque()
        self._offset = 0
        self.bytes = 0

    def __bool__(self) -> bool:
        return bool(self._items)

    def append(self, item: Item) -> None:
        self._items.append(item)
        self.bytes += _size(item)

    def take(self, limit: int) -> Item:
        """Pop a marker, or up to ``limit`` bytes of the data at the head."""
        head = self._items[0]
        if not isinstance(head, bytes):
            self._items.popleft()
            return head
        piece = head[self._offset : self._offset + limit]
        self._offset += len(piece)
        if self._offset == len(head):
            self._items.popleft()
            self._offset = 0
        self.bytes -= len(piece)
        return piece

    def take_all(self) -> list[Item]:
        out: list[Item] = []
        while self._items:
            head = self._items[0]
            out.append(self.take(len(head) if isinstance(head, bytes) else 0))
        return out


class Stage:
    """One toxic applied to one direction of one connection.

    ``born`` is when the toxic started to apply to this connection; timed faults count
    from it. Subclasses keep their own queues; the defaults suit a stage that holds
    nothing and passes items straight on.
    """

    def __init__(self, name: str, rng: random.Random, now: float) -> None:
        self.name = name
        self.rng = rng
        self.born = now
        self._ready: list[Item] = []

    def feed(self, item: Item, now: float) -> None:
        """Accept one item from the stage before (or from the socket)."""
        self._ready.append(item)

    def emit(self, now: float) -> list[Item]:
        """Return, in order, the items that may go on at time ``now``."""
        out, self._ready = self._ready, []
        return out

    def deadline(self) -> float | None:
        """The earliest future time at which :meth:`emit` or :meth:`fault` has news."""
        return None

    def fault(self, now: float) -> Fault | None:
        """An out-of-band fault that is due at ``now``, if any."""
        return None

    def drain(self) -> list[Item]:
        """Give up everything held, in order (the toxic is being removed)."""
        return self.emit(math.inf)

    def held(self) -> int:
        """Bytes currently held."""
        return sum(_size(i) for i in self._ready)


class _QueuedStage(Stage):
    """A stage that holds items in a :class:`_Held` queue until its own rule lets them go."""

    def __init__(self, name: str, rng: random.Random, now: float) -> None:
        super().__init__(name, rng, now)
        self._queue = _Held()

    def feed(self, item: Item, now: float) -> None:
        self._queue.append(item)

    def drain(self) -> list[Item]:
        return self._queue.take_all()

    def held(self) -> int:
        return self._queue.bytes


class LatencyStage(Stage):
    """Holds each item until its release time; release times never decrease."""

    def __init__(self, toxic: Latency, name: str, rng: random.Random, now: float) -> None:
        super().__init__(name, rng, now)
        self._toxic = toxic
        self._queue: deque[tuple[float, Item]] = deque()
        self._last_release = -math.inf
        self._held = 0

    def feed(self, item: Item, now: float) -> None:
        delay = self._toxic.ms
        # Only data draws jitter, so the number of draws is the number of data chunks.
        if self._toxic.jitter_ms and isinstance(item, bytes):
            delay += self.rng.uniform(-self._toxic.jitter_ms, self._toxic.jitter_ms)
        release = max(now + max(delay, 0.0) / 1000.0, self._last_release)
        self._last_release = release
        self._queue.append((release, item))
        self._held += _size(item)

    def emit(self, now: float) -> list[Item]:
        out: list[Item] = []
        while self._queue and self._queue[0][0] <= now:
            item = self._queue.popleft()[1]
            self._held -= _size(item)
            out.append(item)
        return out

    def deadline(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def held(self) -> int:
        return self._held


class BandwidthStage(_QueuedStage):
    """A virtual clock: the link is busy until ``_free_at``; pieces go when it is free."""

    def __init__(self, toxic: Bandwidth, name: str, rng: random.Random, now: float) -> None:
        super().__init__(name, rng, now)
        self._rate = toxic.bytes_per_s
        # About 10 ms worth per piece: smooth enough, and few wake-ups at high rates.
        self._quantum = max(1, min(1 << 16, int(self._rate / 100)))
        self._free_at = -math.inf

    def feed(self, item: Item, now: float) -> None:
        if not self._queue:
            # An idle link saves no credit: the next piece cannot leave before now.
            self._free_at = max(self._free_at, now)
        self._queue.append(item)

    def emit(self, now: float) -> list[Item]:
        out: list[Item] = []
        while self._queue and self._free_at <= now:
            piece = self._queue.take(self._quantum)
            # Advance from the previous slot, not from now, so a late wake-up catches up
            # and the average rate stays exact.
            self._free_at += _size(piece) / self._rate
            out.append(piece)
        return out

    def deadline(self) -> float | None:
        return self._free_at if self._queue else None


class SlicerStage(_QueuedStage):
    """Cuts data at stream offsets drawn from the rng, one slice per ``delay_ms``."""

    def __init__(self, toxic: Slicer, name: str, rng: random.Random, now: float) -> None:
        super().__init__(name, rng, now)
        self._average = toxic.average_size
        self._variation = toxic.size_variation
        self._delay = toxic.delay_ms / 1000.0
        self._left = self._draw()
        self._next_at = -math.inf

    def _draw(self) -> int:
        size = self._average
        if self._variation:
            size += self.rng.randint(-self._variation, self._variation)
        return max(1, size)

    def emit(self, now: float) -> list[Item]:
        out: list[Item] = []
        while self._queue and self._next_at <= now:
            piece = self._queue.take(self._left)
            out.append(piece)
            if isinstance(piece, Marker):
                continue
            self._left -= len(piece)
            if self._left == 0:
                self._left = self._draw()
            if self._delay:
                self._next_at = now + self._delay
        return out

    def deadline(self) -> float | None:
        return self._next_at if self._queue else None


class LimitDataStage(Stage):
    """Passes the first N bytes, then a CLOSE marker, then discards everything."""

    def __init__(self, toxic: LimitData, name: str, rng: random.Random, now: float) -> None:
        super().__init__(name, rng, now)
        self._left = toxic.bytes
        self._closed = False
        self._maybe_close()

    def _maybe_close(self) -> None:
        if self._left == 0 and not self._closed:
            self._closed = True
            self._ready.append(Marker.CLOSE)

    def feed(self, item: Item, now: float) -> None:
        if self._closed:
            return
        if isinstance(item, bytes):
            item = item[: self._left]
            self._left -= len(item)
        self._ready.append(item)
        self._maybe_close()


class ResetPeerStage(Stage):
    """Passes data; raises a reset fault ``after_ms`` after it was born."""

    def __init__(self, toxic: ResetPeer, name: str, rng: random.Random, now: float) -> None:
        super().__init__(name, rng, now)
        self._at = now + toxic.after_ms / 1000.0

    def deadline(self) -> float | None:
        return self._at

    def fault(self, now: float) -> Fault | None:
        return Fault("reset") if now >= self._at else None


class TimedCloseStage(Stage):
    """Passes data; raises a close fault at a fixed time after it was born."""

    def __init__(self, after_s: float, name: str, rng: random.Random, now: float) -> None:
        super().__init__(name, rng, now)
        self._at = now + after_s

    def deadline(self) -> float | None:
        return self._at

    def fault(self, now: float) -> Fault | None:
        return Fault("close") if now >= self._at else None


class BlackholeStage(_QueuedStage):
    """Holds everything (a stall); optionally closes the connection after ``ms``."""

    def __init__(self, toxic: Blackhole, name: str, rng: random.Random, now: float) -> None:
        super().__init__(name, rng, now)
        self._at = now + toxic.ms / 1000.0 if toxic.ms > 0 else None

    def emit(self, now: float) -> list[Item]:
        return []

    def deadline(self) -> float | None:
        return self._at

    def fault(self, now: float) -> Fault | None:
        return Fault("close") if self._at is not None and now >= self._at else None


class StallsStage(_QueuedStage):
    """Passes items on except inside stall windows ``[_start, _end)``, which follow each
    other with exponential gaps of mean ``every_ms``."""

    def __init__(self, toxic: Stalls, name: str, rng: random.Random, now: float) -> None:
        super().__init__(name, rng, now)
        self._toxic = toxic
        self._start = now
        self._end = now
        self._schedule(now)

    def _schedule(self, after: float) -> None:
        self._start = after + self.rng.expovariate(1000.0 / self._toxic.every_ms)
        self._end = self._start + self._toxic.ms / 1000.0

    def emit(self, now: float) -> list[Item]:
        while now >= self._end:
            self._schedule(self._end)
        if now >= self._start:
            return []
        return self._queue.take_all()

    def deadline(self) -> float | None:
        return self._end if self._queue else None


class SlowCloseStage(Stage):
    """Passes data at once; holds a marker (and anything behind it) for ``delay_ms``."""

    def __init__(self, toxic: SlowClose, name: str, rng: random.Random, now: float) -> None:
        super().__init__(name, rng, now)
        self._delay = toxic.delay_ms / 1000.0
        self._queue: deque[Item] = deque()
        self._release_at: float | None = None

    def feed(self, item: Item, now: float) -> None:
        if isinstance(item, Marker) and self._release_at is None:
            self._release_at = now + self._delay
        if self._release_at is None:
            self._ready.append(item)
        else:
            self._queue.append(item)

    def emit(self, now: float) -> list[Item]:
        out, self._ready = self._ready, []
        if self._release_at is not None and self._release_at <= now:
            out.extend(self._queue)
            self._queue.clear()
            self._release_at = None
        return out

    def deadline(self) -> float | None:
        return self._release_at

    def held(self) -> int:
        return sum(_size(i) for i in self._ready) + sum(_size(i) for i in self._queue)


class CorruptStage(Stage):
    """Flips one bit in randomly chosen bytes; the choice depends on stream offset only.

    The gap to the next corrupted byte is drawn from the geometric distribution, which is
    the same as one Bernoulli(p) trial per byte but costs one draw per *flipped* byte.
    """

    def __init__(self, toxic: Corrupt, name: str, rng: random.Random, now: float) -> None:
        super().__init__(name, rng, now)
        self._p = toxic.probability
        self._skip = self._gap()

    def _gap(self) -> int:
        if self._p >= 1.0:
            return 0
        if self._p <= 0.0:
            return _NEVER
        # 1 - random() lies in (0, 1], so the log is finite; a tiny p can still make the
        # quotient overflow to infinity, which means "never" for any real stream.
        gap = math.log(1.0 - self.rng.random()) / math.log1p(-self._p)
        return _NEVER if gap >= _NEVER else math.floor(gap)

    def feed(self, item: Item, now: float) -> None:
        if not isinstance(item, bytes) or self._skip >= len(item):
            if isinstance(item, bytes):
                self._skip -= len(item)
            self._ready.append(item)
            return
        data = bytearray(item)
        pos = self._skip
        while pos < len(data):
            data[pos] ^= 1 << self.rng.randrange(8)
            pos += 1 + self._gap()
        self._skip = pos - len(data)
        self._ready.append(bytes(data))


def make_stage(toxic: Toxic, name: str, rng: random.Random, now: float) -> Stage:
    """Build the stage that applies ``toxic`` to one direction of one connection."""
    if isinstance(toxic, Latency):
        return LatencyStage(toxic, name, rng, now)
    if isinstance(toxic, Bandwidth):
        return BandwidthStage(toxic, name, rng, now)
    if isinstance(toxic, Slicer):
        return SlicerStage(toxic, name, rng, now)
    if isinstance(toxic, LimitData):
        return LimitDataStage(toxic, name, rng, now)
    if isinstance(toxic, ResetPeer):
        return ResetPeerStage(toxic, name, rng, now)
    if isinstance(toxic, Blackhole):
        return BlackholeStage(toxic, name, rng, now)
    if isinstance(toxic, SlowClose):
        return SlowCloseStage(toxic, name, rng, now)
    if isinstance(toxic, Corrupt):
        return CorruptStage(toxic, name, rng, now)
    if isinstance(toxic, Stalls):
        return StallsStage(toxic, name, rng, now)
    if isinstance(toxic, CutAfter):
        return TimedCloseStage(toxic.seconds, name, rng, now)
    raise TypeError(f"not a toxic: {toxic!r}")
