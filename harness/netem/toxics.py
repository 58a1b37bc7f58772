"""The faults a :class:`~harness.netem.Proxy` can inject, as plain data.

Each toxic is a frozen dataclass that only *describes* a fault; the proxy turns it into a
stage of a per-direction pipeline (see :mod:`harness.netem.stages`) once per connection and
direction, so one toxic value can be shared by any number of connections.

Names and meanings follow Toxiproxy where it has the toxic (latency, bandwidth, slicer,
limit_data, reset_peer, timeout, slow_close); ``Corrupt`` and ``CutAfter`` are our own.
Times are in milliseconds unless the field name says otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _finite_non_negative(value: float, field: str) -> None:
    _require(
        isinstance(value, (int, float)) and math.isfinite(value) and value >= 0,
        f"{field} must be a finite number >= 0, got {value!r}",
    )


@dataclass(frozen=True)
class Latency:
    """Delay every chunk by ``ms`` milliseconds, plus or minus up to ``jitter_ms``.

    The jitter of each chunk is drawn uniformly from ``[-jitter_ms, +jitter_ms]`` and the
    delay never goes below zero. Bytes are never reordered: a chunk whose draw would let it
    overtake its predecessor leaves right after it instead. A half-close (FIN) is delayed
    like data.
    """

    ms: float
    jitter_ms: float = 0.0

    def __post_init__(self) -> None:
        _finite_non_negative(self.ms, "ms")
        _finite_non_negative(self.jitter_ms, "jitter_ms")


@dataclass(frozen=True)
class Bandwidth:
    """Limit the rate to ``bytes_per_s`` bytes per second.

    Bytes leave in small pieces (about 10 ms worth each) so the rate is smooth rather than
    bursty. Unused capacity is not saved up while the link is idle.
    """

    bytes_per_s: float

    def __post_init__(self) -> None:
        _finite_non_negative(self.bytes_per_s, "bytes_per_s")
        _require(self.bytes_per_s > 0, "bytes_per_s must be > 0")


@dataclass(frozen=True)
class Slicer:
    """Fragment the stream into small writes of about ``average_size`` bytes.

    Each slice size is drawn uniformly from ``average_size ± size_variation`` (at least 1
    byte). With ``delay_ms`` > 0 the proxy waits that long between slices, which is what
    makes the receiver actually see separate small reads; with 0 the slices are separate
    ``send()`` calls but the receiving kernel may merge them again.
    Slice boundaries sit at stream offsets drawn from the seed, so they replay; a slice is
    additionally cut where the proxy's own read ended.
    """

    average_size: int
    size_variation: int = 0
    delay_ms: float = 0.0

    def __post_init__(self) -> None:
        _require(
            isinstance(self.average_size, int) and self.average_size >= 1,
            f"average_size must be an int >= 1, got {self.average_size!r}",
        )
        _require(
            isinstance(self.size_variation, int) and self.size_variation >= 0,
            f"size_variation must be an int >= 0, got {self.size_variation!r}",
        )
        _finite_non_negative(self.delay_ms, "delay_ms")


@dataclass(frozen=True)
class LimitData:
    """Let exactly ``bytes`` bytes through in this direction, then close the connection.

    Bytes beyond the limit are discarded. The close travels behind the data, so the
    receiver sees exactly ``bytes`` bytes and then end-of-stream; both legs are closed.
    ``LimitData(0)`` closes the connection as soon as the toxic applies.
    """

    bytes: int

    def __post_init__(self) -> None:
        _require(
            isinstance(self.bytes, int) and self.bytes >= 0,
            f"bytes must be an int >= 0, got {self.bytes!r}",
        )


@dataclass(frozen=True)
class ResetPeer:
    """Reset the connection ``after_ms`` milliseconds after the toxic applies.

    The receiving side of this toxic's direction gets a TCP RST (the proxy closes that leg
    with ``SO_LINGER`` 0), so its next ``recv``/``send`` fails with ``ECONNRESET``; the
    other leg is closed normally. With ``direction="both"`` both sides get the RST.
    "Applies" means: when the connection opened, or when the toxic was added to an already
    open connection.
    """

    after_ms: float = 0.0

    def __post_init__(self) -> None:
        _finite_non_negative(self.after_ms, "after_ms")


@dataclass(frozen=True)
class Blackhole:
    """Stop forwarding (Toxiproxy's ``timeout``): the link stalls.

    Unlike Toxiproxy, held bytes are *kept*, not discarded: a TCP stream cannot have a gap
    in the middle, so a stall is what a dead WiFi link really looks like. Once the proxy
    holds about 1 MiB in this direction it stops reading and TCP flow control pushes back
    on the sender. Removing the toxic releases everything it held, in order.
    With ``ms`` > 0 the connection is closed ``ms`` milliseconds after the toxic applies.
    """

    ms: float = 0.0

    def __post_init__(self) -> None:
        _finite_non_negative(self.ms, "ms")


@dataclass(frozen=True)
class SlowClose:
    """Delay the end-of-stream (FIN, or a close caused by another toxic) by ``delay_ms``.

    Data is not delayed; only the close that follows it.
    """

    delay_ms: float

    def __post_init__(self) -> None:
        _finite_non_negative(self.delay_ms, "delay_ms")


@dataclass(frozen=True)
class Corrupt:
    """Flip one random bit in each byte with the given ``probability`` (0..1).

    Which bytes and which bits are decided by the proxy's seed and the byte's offset in
    the stream, so the same seed and the same bytes give the same corrupted output no
    matter how the kernel chunked the stream.
    """

    probability: float

    def __post_init__(self) -> None:
        _finite_non_negative(self.probability, "probability")
        _require(self.probability <= 1, "probability must be <= 1")


@dataclass(frozen=True)
class CutAfter:
    """Close the connection ``seconds`` after the toxic applies.

    Both legs are closed normally (FIN); for an abortive cut use :class:`ResetPeer`.
    "Applies" means: when the connection opened, or when the toxic was added to an already
    open connection, whichever is later.
    """

    seconds: float

    def __post_init__(self) -> None:
        _finite_non_negative(self.seconds, "seconds")


@dataclass(frozen=True)
class Stalls:
    """Occasional stalls: the link holds everything for ``ms``, at random moments
    ``every_ms`` apart on average (exponential gaps, from the proxy's seed).

    This is how a lost burst of segments looks on TCP: the stream is never cut or
    reordered, it pauses until the sender's retransmission gets through.
    """

    every_ms: float
    ms: float

    def __post_init__(self) -> None:
        _require(math.isfinite(self.every_ms) and self.every_ms > 0, "every_ms must be > 0")
        _finite_non_negative(self.ms, "ms")


Toxic = (
    Latency
    | Bandwidth
    | Slicer
    | LimitData
    | ResetPeer
    | Blackhole
    | SlowClose
    | Corrupt
    | CutAfter
    | Stalls
)
"""Any of the toxics above."""

TOXIC_TYPES: tuple[type, ...] = (
    Latency,
    Bandwidth,
    Slicer,
    LimitData,
    ResetPeer,
    Blackhole,
    SlowClose,
    Corrupt,
    CutAfter,
    Stalls,
)
