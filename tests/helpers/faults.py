"""Fault schedules for the netem proxy: a :class:`Fault` is one toxic applied when the host
is about to send a given message, and the :class:`Injector` applies them and takes each out
again when it has done its work."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Any

from harness.netem import Blackhole, CutAfter, Latency, LimitData, Proxy, ResetPeer, Slicer

WAIT = 20.0  # every wait here is bounded by this
CUTS = ("limit_data", "reset_peer", "cut_after")


@dataclass(frozen=True)
class Fault:
    """One fault: applied when the host is about to send message ``at``."""

    at: int
    kind: str
    direction: str
    value: int  # bytes (limit_data), ms (reset_peer, cut_after, stall, latency), size (slicer)

    def toxic(self) -> Any:
        if self.kind == "limit_data":
            return LimitData(bytes=self.value)
        if self.kind == "reset_peer":
            return ResetPeer(after_ms=self.value)
        if self.kind == "cut_after":
            return CutAfter(seconds=self.value / 1000)
        if self.kind == "stall":
            return Blackhole()
        if self.kind == "slicer":
            return Slicer(average_size=self.value, size_variation=self.value // 2)
        assert self.kind == "latency"
        return Latency(ms=self.value, jitter_ms=self.value / 2)


class Injector:
    """Applies faults to a proxy and takes each out again when it has done its work.

    Toxics act on new connections too, so a cut is removed once the connection it hit is
    gone (the reconnect then goes through); a stall after ``value`` ms; a slicer after
    50 ms; latency stays to the end of the stream.
    """

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.done = threading.Event()
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    def apply(self, fault: Fault) -> None:
        before = self.proxy.connections_total
        name = self.proxy.add(fault.toxic(), direction=fault.direction)  # type: ignore[arg-type]
        if fault.kind in CUTS:
            self._later(name, lambda: self.proxy.connections_total > before
                        or self.proxy.connections == 0)
        elif fault.kind == "stall":
            until = time.monotonic() + fault.value / 1000
            self._later(name, lambda: time.monotonic() >= until)
        elif fault.kind == "slicer":
            until = time.monotonic() + 0.05
            self._later(name, lambda: time.monotonic() >= until)

    def _later(self, name: str, ready: Any) -> None:
        def run() -> None:
            try:
                while not ready() and not self.done.wait(0.002):
                    pass
                with contextlib.suppress(KeyError):
                    self.proxy.remove(name)
            except BaseException as exc:  # reported by stop()
                self.errors.append(exc)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.threads.append(t)

    def stop(self) -> None:
        self.done.set()
        for t in self.threads:
            t.join(WAIT)
        assert not any(t.is_alive() for t in self.threads), "an injector thread hangs"
        assert not self.errors, self.errors
        self.proxy.clear()
