"""The regression gate: figures saved with their spread, compared against a new run.

Sans-IO: :func:`compare` takes two sets of per-repeat samples and says, figure by figure,
whether the new run is worse than the stored one beyond what the stored spread explains.
A figure fails only when both hold:

* a one-sided Mann-Whitney U test (``scipy.stats``) says the new samples are worse than
  the stored ones with p <= ``alpha``, and
* the medians differ by more than ``tolerance`` (a relative change), so a difference at
  the noise level never fails, however many samples make it "significant".

With too few samples for the test ever to reach ``alpha`` (e.g. one value per figure from
a pytest session) the rule is the stored range instead: every new sample worse than the
stored worst by more than ``tolerance``.

By default the *ratios* (ours / raw TCP of the same repeat) are compared: they cancel most
of a loaded machine's drift. ``absolute`` compares our own figures (MB/s, µs) instead.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

#: Schema identifier of a saved baseline (bump when a field changes meaning).
SCHEMA = "esp-hil-bench-baseline/1"

#: Defaults of ``--tolerance`` and ``--alpha``: a halved efficiency (change -50 %) is far
#: beyond 25 %, while repeated runs on a loaded 2-core machine stay within it.
DEFAULT_TOLERANCE = 0.25
DEFAULT_ALPHA = 0.05


class GateError(ValueError):
    """A baseline that cannot be used (missing, malformed, or measuring other figures)."""


@dataclass
class FigureSamples:
    """Per-repeat samples of one figure: ours, raw TCP's, and their ratio."""

    name: str
    unit: str
    #: Whether a larger absolute value is better (throughput yes, latency no). Ratios are
    #: always oriented so that larger is better.
    higher_is_better: bool
    ratio: list[float] = field(default_factory=list)
    ours: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)

    def add(self, ours: float, raw: float) -> None:
        """One repeat's pair of figures."""
        self.ours.append(ours)
        self.raw.append(raw)
        self.ratio.append(ours / raw if self.higher_is_better else raw / ours)

    def samples(self, absolute: bool) -> list[float]:
        """What is compared: the ratios, or our absolute figures."""
        return self.ours if absolute else self.ratio

    def as_dict(self) -> dict[str, Any]:
        """For the baseline file."""
        return {"unit": self.unit, "higher_is_better": self.higher_is_better,
                "ratio": self.ratio, "ours": self.ours, "raw": self.raw}


@dataclass(frozen=True)
class Verdict:
    """The comparison of one figure."""

    name: str
    unit: str
    baseline: float
    now: float
    #: Relative change of the median, signed so that negative is worse (for latencies:
    #: baseline / now - 1).
    change: float
    #: One-sided p-value of "now is worse"; None when the samples are too few for the test.
    p: float | None
    worse: bool


def document(figures: dict[str, FigureSamples], *, machine: dict[str, Any],
             device: dict[str, Any], settings: dict[str, Any], saved: str) -> dict[str, Any]:
    """The baseline file's content."""
    return {
        "schema": SCHEMA,
        "saved": saved,
        "machine": machine,
        "device": device,
        "settings": settings,
        "figures": {name: f.as_dict() for name, f in figures.items()},
    }


def load(path: str) -> dict[str, Any]:
    """Read and check a baseline file; :class:`GateError` with one line if unusable."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise GateError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GateError(f"{path}: cannot read it: {exc}") from None
    except json.JSONDecodeError as exc:
        raise GateError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    return figures_of(doc, path)


def figures_of(doc: Any, path: str) -> dict[str, Any]:
    """Check the structure of a baseline document (``path`` only names it in errors)."""
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise GateError(f"{path}: not an esp-hil bench baseline (schema {found!r}, "
                        f"expected {SCHEMA!r}); write one with --save")
    figures = doc.get("figures")
    if not isinstance(figures, dict) or not figures:
        raise GateError(f"{path}: the baseline holds no figures")
    for name, fig in figures.items():
        ok = isinstance(fig, dict) and isinstance(fig.get("higher_is_better"), bool)
        # "ours" always has samples; "ratio" may be empty (a figure without a raw-TCP
        # counterpart, e.g. from pytest's throughput fixture).
        for key, needed in (("ours", True), ("ratio", False)):
            values = fig.get(key, []) if ok else None
            ok = ok and isinstance(values, list) and (bool(values) or not needed) and all(
                isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in values)
        if not ok:
            raise GateError(f"{path}: figure {name!r} has no usable samples")
    return doc


def samples_from(doc: dict[str, Any]) -> dict[str, FigureSamples]:
    """The figures of a checked baseline document."""
    return {
        name: FigureSamples(name, str(f.get("unit", "")), f["higher_is_better"],
                            [float(v) for v in f.get("ratio", [])], [float(v) for v in f["ours"]],
                            [float(v) for v in f.get("raw", [])])
        for name, f in doc["figures"].items()
    }


def _p_worse(now: list[float], base: list[float], higher_is_better: bool) -> float:
    from scipy.stats import mannwhitneyu

    alternative = "less" if higher_is_better else "greater"
    return float(mannwhitneyu(now, base, alternative=alternative).pvalue)


def _reachable(n: int, m: int, alpha: float) -> bool:
    """Whether a one-sided rank test on n and m samples can reach ``alpha`` at all: its
    smallest p-value is 1 / C(n + m, n)."""
    return 1.0 / math.comb(n + m, n) <= alpha


def compare_one(name: str, unit: str, base: list[float], now: list[float], *,
                higher_is_better: bool, tolerance: float, alpha: float) -> Verdict:
    """The verdict on one figure (see the module docstring for the rule)."""
    if not base or not now:
        raise ValueError(f"{name}: no samples to compare")
    b, n = statistics.median(base), statistics.median(now)
    change = n / b - 1 if higher_is_better else b / n - 1
    p: float | None = None
    if _reachable(len(now), len(base), alpha):
        p = _p_worse(now, base, higher_is_better)
        worse = p <= alpha and change < -tolerance
    else:
        # Too few samples for a rank test: beyond the stored range, by the tolerance.
        if higher_is_better:
            worse = max(now) < min(base) * (1 - tolerance)
        else:
            worse = min(now) * (1 - tolerance) > max(base)
    return Verdict(name, unit, b, n, change, p, worse)


def check_figure_set(stored: Iterable[str], measured: Iterable[str]) -> None:
    """:class:`GateError` naming the difference if the two sets of figure names differ."""
    missing = sorted(set(stored) - set(measured))
    extra = sorted(set(measured) - set(stored))
    if missing or extra:
        parts = ([f"not measured now: {', '.join(missing)}"] if missing else []) + (
            [f"not in the baseline: {', '.join(extra)}"] if extra else [])
        raise GateError(f"the baseline has a different figure set ({'; '.join(parts)})")


def compare(baseline: dict[str, FigureSamples], now: dict[str, FigureSamples], *,
            tolerance: float = DEFAULT_TOLERANCE, alpha: float = DEFAULT_ALPHA,
            absolute: bool = False) -> list[Verdict]:
    """Compare every figure; :class:`GateError` if the two runs measured different sets."""
    check_figure_set(baseline, now)
    out = []
    for name, b in baseline.items():
        n = now[name]
        if not absolute and not b.ratio:
            raise GateError(f"figure {name!r} has no ratios in the baseline: compare with "
                            "--absolute")
        hib = True if not absolute else b.higher_is_better
        unit = "ratio" if not absolute else b.unit
        out.append(compare_one(name, unit, b.samples(absolute), n.samples(absolute),
                               higher_is_better=hib, tolerance=tolerance, alpha=alpha))
    return out


def format_verdicts(verdicts: list[Verdict], advisory: Collection[str] = ()) -> list[str]:
    """The table: figure | baseline | now | change | p | verdict (``advisory`` figures are
    marked: they are reported, not failed on)."""
    header = ["figure", "baseline", "now", "change", "p", "verdict"]

    def verdict(v: Verdict) -> str:
        word = "WORSE" if v.worse else "ok"
        return f"{word} (advisory)" if v.name in advisory else word

    rows = [[v.name, f"{v.baseline:.4g} {v.unit}", f"{v.now:.4g} {v.unit}",
             f"{v.change:+.1%}", "-" if v.p is None else f"{v.p:.3g}",
             verdict(v)] for v in verdicts]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("-" * len(lines[0]))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in rows]
    return lines
