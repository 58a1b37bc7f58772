"""The reconnect policy of :class:`~harness.wifisocket.WiFiSocket`: capped exponential backoff.

Pure and clock-free, so the schedule can be tested without sockets: :meth:`Backoff.delay`
maps the number of failed attempts in a row to the wait before the next attempt.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Backoff", "Reconnect", "ReconnectPolicy"]

# 2**60 times any sane initial delay is past every cap; it keeps the float finite.
_MAX_EXPONENT = 60


class Backoff:
    """Capped exponential backoff with jitter.

    The first attempt after a connection was lost is made at once; after ``n`` failed
    attempts in a row (``n >= 1``) the next one waits
    ``min(maximum, initial * 2**(n-1))``, shortened by a random fraction of at most
    ``jitter`` (so the cap is never exceeded and peers that lost the same link spread out).

    Args:
        initial: the wait after the first failure, in seconds (> 0).
        maximum: the cap, in seconds (>= initial).
        jitter: 0 (no randomness) ..= 1 (anything from 0 to the full wait).
        rng: the source of jitter (``random.Random(seed)`` makes the schedule replay).
    """

    def __init__(
        self, initial: float, maximum: float, jitter: float, rng: random.Random | None = None
    ) -> None:
        if not (math.isfinite(initial) and initial > 0):
            raise ValueError(f"backoff_initial must be > 0, got {initial}")
        if not (math.isfinite(maximum) and maximum >= initial):
            raise ValueError(f"backoff_max must be >= backoff_initial, got {maximum}")
        if not 0 <= jitter <= 1:
            raise ValueError(f"backoff_jitter must be in 0..1, got {jitter}")
        self.initial = float(initial)
        self.maximum = float(maximum)
        self.jitter = float(jitter)
        self._rng = rng if rng is not None else random.Random()

    def base(self, failures: int) -> float:
        """The wait after ``failures`` failed attempts in a row, before jitter."""
        if failures <= 0:
            return 0.0
        return min(self.maximum, self.initial * 2.0 ** min(failures - 1, _MAX_EXPONENT))

    def delay(self, failures: int) -> float:
        """The wait before the next attempt, with jitter (draws from the rng if > 0)."""
        base = self.base(failures)
        if base == 0.0 or self.jitter == 0.0:
            return base
        return base * (1.0 - self.jitter * self._rng.random())


@dataclass(frozen=True)
class Reconnect:
    """What :class:`~harness.wifisocket.WiFiSocket` passes to ``on_reconnect``.

    Attributes:
        count: reconnects of this socket so far, this one included.
        cause: why the previous connection ended (an error message).
        attempts: connections tried during this outage, the successful one included
            (in the serve topology: connections accepted).
        lost_at: ``time.monotonic()`` when the loss was noticed.
        connected_at: ``time.monotonic()`` when the peer's HELLO arrived.
        resumed: both directions carried on where they were (nothing lost).
        session_lost: the peer came back with a new session (a reboot): the next call
            raises :class:`~harness.errors.SessionLost`.
        peer_address: the peer of the new connection.
    """

    count: int
    cause: str
    attempts: int
    lost_at: float
    connected_at: float
    resumed: bool
    session_lost: bool
    peer_address: tuple[Any, ...]

    @property
    def downtime(self) -> float:
        """Seconds from noticing the loss to the peer's HELLO on the new connection."""
        return self.connected_at - self.lost_at


@dataclass
class ReconnectPolicy:
    """The reconnect options of a WiFiSocket (see its docstring); validated on creation."""

    reconnect: bool = True
    backoff_initial: float = 0.1
    backoff_max: float = 5.0
    backoff_jitter: float = 0.5
    backoff_seed: int | None = None
    reconnect_timeout: float | None = 60.0
    connect_timeout: float = 2.0
    on_reconnect: Callable[[Reconnect], object] | None = None
    backoff: Backoff = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rng = random.Random(self.backoff_seed)
        self.backoff = Backoff(self.backoff_initial, self.backoff_max, self.backoff_jitter, rng)
        if self.reconnect_timeout is not None and not self.reconnect_timeout >= 0:
            raise ValueError(
                f"reconnect_timeout must be >= 0 or None, got {self.reconnect_timeout}"
            )
        if not (math.isfinite(self.connect_timeout) and self.connect_timeout > 0):
            raise ValueError(f"connect_timeout must be > 0, got {self.connect_timeout}")
        if self.on_reconnect is not None and not callable(self.on_reconnect):
            raise TypeError("on_reconnect must be callable")

    @classmethod
    def split(cls, options: dict[str, Any]) -> tuple[ReconnectPolicy, dict[str, Any]]:
        """Take this policy's keys out of ``options``; the rest are the Session's."""
        names = [f for f in cls.__dataclass_fields__ if f != "backoff"]
        mine = {k: options[k] for k in names if k in options}
        rest = {k: v for k, v in options.items() if k not in mine}
        return cls(**mine), rest
