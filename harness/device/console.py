"""The device's serial console as timestamped lines, with ``expect``.

Bytes arrive from a reader thread (``feed``); tests and the harness wait on lines with a
pattern and a timeout. Every line is kept with the time it completed, so a failing test can show
what the device printed while it ran.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from harness.device.errors import DeviceTimeout, FirmwareCrashed


@dataclass(frozen=True)
class ConsoleLine:
    """One line the device printed; ``t`` is ``time.monotonic()`` when its newline arrived."""

    t: float
    text: str


class Console:
    """Line-oriented view of a device's UART output.

    ``write`` is given by the backend (a serial port, a twin's stdin); ``feed`` is called by
    the backend's reader with raw bytes.
    """

    #: Lines kept in memory; older ones are dropped (a soak test prints a lot).
    MAX_LINES = 20000

    def __init__(self, write: Callable[[bytes], None] | None = None) -> None:
        self._write = write
        self._cond = threading.Condition()
        self._lines: list[ConsoleLine] = []
        self._dropped = 0
        self._partial = bytearray()
        self._t0 = time.monotonic()
        self.closed_reason: str | None = None

    # -- input from the backend -------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Add raw bytes from the device; complete lines become visible to ``expect``."""
        with self._cond:
            self._partial += data
            if b"\n" not in data:
                return
            *complete, rest = self._partial.split(b"\n")
            self._partial = bytearray(rest)
            now = time.monotonic()
            for raw in complete:
                text = raw.rstrip(b"\r").decode("utf-8", "replace")
                self._lines.append(ConsoleLine(now, text))
            if len(self._lines) > self.MAX_LINES:
                extra = len(self._lines) - self.MAX_LINES
                del self._lines[:extra]
                self._dropped += extra
            self._cond.notify_all()

    def close(self, reason: str) -> None:
        """Mark the console dead (port vanished, process died): waits fail at once."""
        with self._cond:
            self.closed_reason = reason
            self._cond.notify_all()

    def reopen(self) -> None:
        """Accept waits again after a reset or reconnect."""
        with self._cond:
            self.closed_reason = None

    # -- output to the device ---------------------------------------------------------------
    def send_line(self, line: str) -> None:
        """Send one command line to the device."""
        if self._write is None:
            raise RuntimeError("this console is read-only")
        self._write(line.encode() + b"\n")

    # -- reading ----------------------------------------------------------------------------
    def mark(self) -> int:
        """A position in the stream: ``expect(..., since=mark)`` only looks at later lines."""
        with self._cond:
            return self._dropped + len(self._lines)

    @property
    def lines(self) -> list[ConsoleLine]:
        """A snapshot of the lines kept."""
        with self._cond:
            return list(self._lines)

    def since(self, mark: int) -> list[ConsoleLine]:
        """Lines that arrived after ``mark``."""
        with self._cond:
            return self._lines[max(0, mark - self._dropped) :]

    def tail(self, n: int = 30, *, since: int | None = None) -> str:
        """The last ``n`` lines, timestamped relative to when the console was created."""
        with self._cond:
            return self._tail_locked(n, since)

    def _tail_locked(self, n: int, since: int | None = None) -> str:
        lines = self._lines if since is None else self._lines[max(0, since - self._dropped) :]
        out = [f"[{ln.t - self._t0:9.3f}] {ln.text}" for ln in lines[-n:]]
        partial = self._partial.decode("utf-8", "replace")
        if partial:
            out.append(f"[  partial] {partial}")
        return "\n".join(out)

    def expect(
        self,
        pattern: str | re.Pattern[str],
        timeout: float = 5.0,
        *,
        since: int | None = None,
        watch: Callable[[str], str | None] | None = None,
    ) -> re.Match[str]:
        """Wait for a line matching ``pattern`` (``re.search``); return the match.

        Looks at lines after ``since`` (a :meth:`mark`), or at every line kept when ``since``
        is None. Raises :class:`DeviceTimeout` with the console tail when ``timeout`` passes.
        ``watch`` sees every line looked at, in order, before it is matched; a message from
        it ends the wait with :class:`FirmwareCrashed` (e.g. a
        :class:`~harness.device.postmortem.CrashWatch`).
        """
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        pos = self._dropped if since is None else since
        with self._cond:
            while True:
                start = max(0, pos - self._dropped)
                for i in range(start, len(self._lines)):
                    text = self._lines[i].text
                    if watch is not None and (why := watch(text)) is not None:
                        raise FirmwareCrashed(why, console_tail=self._tail_locked(40))
                    m = regex.search(text)
                    if m:
                        return m
                pos = self._dropped + len(self._lines)
                if self.closed_reason is not None:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        why = self.closed_reason or f"no line matching {regex.pattern!r} within {timeout:.1f} s"
        raise DeviceTimeout(why, console_tail=self.tail())
