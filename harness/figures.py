"""Performance figures recorded by tests: throughput, latency, rates.

Figures travel as pytest ``user_properties`` (so they survive pytest-xdist and land in the
JUnit XML as ``<property>`` elements); the plugin gathers them for the terminal summary.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

#: Prefix of the user_properties that carry figures.
PROPERTY_PREFIX = "esp-hil:"


@dataclass(frozen=True)
class Figure:
    """One measured value with its unit, recorded by ``test``."""

    test: str
    name: str
    value: float
    unit: str

    def property(self) -> tuple[str, str]:
        """The (name, value) pair stored in the test report's user_properties."""
        return f"{PROPERTY_PREFIX}{self.name}", f"{self.value:.6g} {self.unit}"

    @classmethod
    def from_property(cls, test: str, name: str, value: object) -> Figure | None:
        """Parse a user_property back; None if it is not a figure."""
        if not name.startswith(PROPERTY_PREFIX):
            return None
        number, _, unit = str(value).partition(" ")
        return cls(test, name[len(PROPERTY_PREFIX) :], float(number), unit)


class FigureRecorder:
    """What the ``throughput`` fixture hands a test."""

    def __init__(self, test: str, properties: list[tuple[str, object]]) -> None:
        self._test = test
        self._properties = properties
        self.recorded: list[Figure] = []

    def record(self, name: str, value: float, unit: str) -> Figure:
        """Record ``value`` (in ``unit``) under ``name``."""
        fig = Figure(self._test, name, float(value), unit)
        self._properties.append(fig.property())
        self.recorded.append(fig)
        return fig

    @contextmanager
    def measure(
        self, name: str, nbytes: int | None = None, messages: int | None = None
    ) -> Iterator[None]:
        """Time the block; record MB/s for ``nbytes`` and/or msg/s for ``messages``."""
        t0 = time.perf_counter()
        yield
        elapsed = max(time.perf_counter() - t0, 1e-9)
        if nbytes is not None:
            self.record(f"{name} throughput", nbytes / elapsed / 1e6, "MB/s")
        if messages is not None:
            self.record(f"{name} rate", messages / elapsed, "msg/s")
        if nbytes is None and messages is None:
            self.record(f"{name} time", elapsed * 1e3, "ms")


def format_table(figures: list[Figure]) -> list[str]:
    """Lines of a plain-text table of figures for the terminal summary."""
    if not figures:
        return []
    w_name = max(len(f.name) for f in figures)
    lines = [f"{'figure':<{w_name}}  {'value':>12}  {'unit':<6}  test"]
    for f in figures:
        lines.append(f"{f.name:<{w_name}}  {f.value:>12.4g}  {f.unit:<6}  {f.test}")
    return lines
