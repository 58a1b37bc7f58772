"""The reconnect supervisor of a link: when to try again, when to give up. No I/O, no clock.

The I/O layer tells the :class:`Supervisor` what happened (a connection came up, was lost,
an attempt failed) with the current time, and asks it what is due (:meth:`due`) and when
to look again (:meth:`wake_at`). The backoff schedule is :class:`~.backoff.Backoff`'s.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from harness.errors import ReconnectFailed
from harness.wifisocket.backoff import Reconnect, ReconnectPolicy

__all__ = ["Supervisor"]

_FOREVER = math.inf

Due = Literal["give_up", "attempt_timeout", "attempt"] | None


class Supervisor:
    """Reconnect bookkeeping of one link (see docs/reconnect.md).

    Args:
        policy: the reconnect options.
        serving: the serve topology (the peer dials back in: no attempts of our own).
    """

    def __init__(self, policy: ReconnectPolicy, *, serving: bool = False) -> None:
        self.policy = policy
        self.serving = serving
        self.armed = False  # the first HELLO exchange succeeded and reconnect is on
        self.lost_at: float | None = None  # set while the link is down
        self.lost_cause = ""
        self.last_error = ""
        self.attempts = 0
        self.failures = 0  # failed attempts in a row: the backoff exponent
        self.next_attempt = 0.0
        self.attempt_deadline = _FOREVER
        self.reconnects = 0
        self.last_reconnect: Reconnect | None = None
        self._conn_since = 0.0
        self._progress_mark: tuple[int, int] = (0, 0)

    @property
    def down(self) -> bool:
        """True between losing an established connection and the next HELLO."""
        return self.lost_at is not None

    def connected(
        self, now: float, progress: tuple[int, int], *, resumed: bool, session_lost: bool,
        peer_address: tuple[Any, ...],
    ) -> Reconnect | None:
        """The peer's HELLO arrived; ``progress``: (delivered, peer_ack) at that moment.

        Returns the reconnect's facts if this ended an outage.
        """
        self._conn_since = now
        self._progress_mark = progress
        if self.lost_at is None:
            self.armed = self.policy.reconnect
            return None
        self.reconnects += 1
        info = Reconnect(
            count=self.reconnects, cause=self.lost_cause, attempts=max(1, self.attempts),
            lost_at=self.lost_at, connected_at=now, resumed=resumed, session_lost=session_lost,
            peer_address=peer_address,
        )
        self.last_reconnect = info
        self.lost_at = None
        return info

    def connection_lost(self, now: float, progress: tuple[int, int], cause: str) -> None:
        """An established connection ended: the outage begins."""
        # A connection that carried traffic, or lived a while, resets the backoff; one
        # that died right after its HELLO counts as a failed attempt (a flapping link).
        if progress != self._progress_mark or now - self._conn_since >= self.policy.backoff_max:
            self.failures = 0
        else:
            self.failures += 1
        self.lost_at = now
        self.lost_cause = self.last_error = cause
        self.attempts = 0
        self.next_attempt = now + self.policy.backoff.delay(self.failures)

    def attempt_started(self, now: float) -> None:
        """A new connection attempt (a dial, or in the serve topology an accepted peer)."""
        self.attempts += 1
        self.attempt_deadline = now + self.policy.connect_timeout

    def accepted(self) -> None:
        """Serve topology: a peer dialled in (it counts as an attempt during an outage)."""
        if self.lost_at is not None:
            self.attempts += 1

    def attempt_failed(self, now: float, cause: str) -> None:
        """The current attempt failed: back off before the next one."""
        self.failures += 1
        self.last_error = cause
        self.next_attempt = now + self.policy.backoff.delay(self.failures)

    def wake_at(self, attempt_open: bool) -> float:
        """When :meth:`due` may next have something (absolute; inf: nothing scheduled).

        ``attempt_open``: a connection attempt is in progress (TCP connect or HELLO).
        """
        lost_at = self.lost_at
        if lost_at is None:
            return _FOREVER
        at = _FOREVER
        if attempt_open:
            at = self.attempt_deadline
        elif not self.serving:
            at = self.next_attempt
        limit = self.policy.reconnect_timeout
        if limit is not None:
            at = min(at, lost_at + limit)
        return at

    def due(self, now: float, attempt_open: bool) -> Due:
        """What to do now: give up, abandon the open attempt, start one, or nothing."""
        lost_at = self.lost_at
        if lost_at is None:
            return None
        limit = self.policy.reconnect_timeout
        if limit is not None and now - lost_at >= limit:
            return "give_up"
        if attempt_open:
            return "attempt_timeout" if now >= self.attempt_deadline else None
        if not self.serving and now >= self.next_attempt:
            return "attempt"
        return None

    def outage(self, now: float) -> str:
        """A sentence about the current outage (for error messages)."""
        if self.lost_at is None:
            return "connected"
        what = "accepted" if self.serving else "tried"
        return (
            f"down for {now - self.lost_at:.1f} s after: {self.lost_cause}; {self.attempts} "
            f"connection(s) {what} since; last error: {self.last_error}"
        )

    def give_up(self, now: float, target: str, unconfirmed: list[str | bytes]) -> ReconnectFailed:
        """The error to raise when the outage outlasted ``reconnect_timeout``."""
        assert self.lost_at is not None
        elapsed = now - self.lost_at
        if self.serving:
            what, where = "accepted", f"waiting for the peer to dial back in on {target}"
        else:
            what, where = "tried", f"reconnecting to {target}"
        return ReconnectFailed(
            f"gave up {where} after {elapsed:.1f} s "
            f"(reconnect_timeout={self.policy.reconnect_timeout}) and {self.attempts} "
            f"connection(s) {what}; lost because: {self.lost_cause}; last error: "
            f"{self.last_error}; {len(unconfirmed)} message(s) unconfirmed",
            attempts=self.attempts, elapsed=elapsed, last_error=self.last_error,
            unconfirmed=unconfirmed,
        )
