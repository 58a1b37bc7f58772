"""Performance figures recorded by tests: throughput, latency, rates.

Figures travel as pytest ``user_properties`` (so they survive pytest-xdist and land in the
JUnit XML as ``<property>`` elements); the plugin gathers them for the terminal summary.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

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


#: Units in which a smaller figure is the better one.
_LOWER_IS_BETTER_UNITS = {"us", "ms", "s"}


def _by_name(figures: list[Figure]) -> dict[str, list[Figure]]:
    out: dict[str, list[Figure]] = {}
    for f in figures:
        out.setdefault(f.name, []).append(f)
    return out


def save_figures(figures: list[Figure], path: str) -> None:
    """Store the session's figures as a bench baseline (``--esp-hil-save``). Samples of the
    same name add up, and so do sessions: saving into an existing baseline appends, so a
    few runs build the spread the comparison needs. Raises :class:`GateError`."""
    from harness.bench import gate
    from harness.bench.report import machine_info

    doc: dict[str, object] = {}
    if os.path.exists(path):
        doc = gate.load(path)
    stored = doc.get("figures", {})
    assert isinstance(stored, dict)
    for name, group in _by_name(figures).items():
        unit = group[0].unit
        entry = stored.setdefault(name, {"unit": unit, "ratio": [], "ours": [], "raw": [],
                                         "higher_is_better": unit not in _LOWER_IS_BETTER_UNITS})
        entry["ours"] += [f.value for f in group]
    saved = datetime.now(timezone.utc).isoformat(timespec="seconds")
    doc = {**gate.document({}, machine=machine_info(), device={}, settings={"source": "pytest"},
                           saved=saved), "figures": stored}
    try:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    except OSError as exc:
        raise gate.GateError(f"{path}: cannot write it: {exc.strerror or exc}") from None


def compare_figures(figures: list[Figure], path: str) -> tuple[list[str], list[str]]:
    """Compare the session's figures with a baseline (``--esp-hil-compare``), absolute
    values, the bench's rule and defaults. Returns the table's lines and the names of the
    figures that got worse. Raises :class:`GateError` for an unusable baseline, or when a
    figure of the baseline was not recorded in this run (figures the baseline lacks are
    not compared)."""
    from harness.bench import gate

    stored = gate.samples_from(gate.load(path))
    now = _by_name(figures)
    missing = sorted(set(stored) - set(now))
    if missing:
        raise gate.GateError(f"{path}: figures not recorded in this run: {', '.join(missing)}")
    verdicts = [
        gate.compare_one(name, b.unit, b.ours, [f.value for f in now[name]],
                         higher_is_better=b.higher_is_better,
                         tolerance=gate.DEFAULT_TOLERANCE, alpha=gate.DEFAULT_ALPHA)
        for name, b in stored.items()
    ]
    return gate.format_verdicts(verdicts), [v.name for v in verdicts if v.worse]
