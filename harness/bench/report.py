"""What ``esp-hil bench`` makes of its measurements: ratio rows, text tables, JSON, a plot.

A *ratio* is always "ours relative to raw TCP, higher is better": throughput and rates
divide ours by raw, latencies divide raw by ours (so 0.5 means our round trip takes twice
as long as a raw TCP one).
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from typing import Any

from harness.bench.measure import DOWN, OURS, RAW, UP, Echo, Transfer

#: JSON schema identifier of the bench output (bump when a field changes meaning).
SCHEMA = "esp-hil-bench/1"


@dataclass
class SizeResult:
    """Everything measured at one message size."""

    size: int
    transfers: dict[tuple[str, str], Transfer]  # (service, direction) -> Transfer
    echoes: dict[str, Echo]  # service -> Echo

    def transfer(self, service: str, direction: str) -> Transfer | None:
        """The transfer of ``service`` in ``direction``, if it was measured."""
        return self.transfers.get((service, direction))

    def ratio(self, metric: str) -> float | None:
        """Ours relative to raw for ``metric`` (see :data:`METRICS`); None if not measured."""
        ours, raw = self.value(metric, OURS), self.value(metric, RAW)
        if ours is None or raw is None or ours <= 0 or raw <= 0:
            return None
        return raw / ours if metric in _LOWER_IS_BETTER else ours / raw

    def value(self, metric: str, service: str) -> float | None:
        """The figure ``metric`` of ``service`` (MB/s, msg/s, or µs)."""
        if metric in ("up_mb_per_s", "down_mb_per_s", "up_msg_per_s", "down_msg_per_s"):
            t = self.transfer(service, UP if metric.startswith("up") else DOWN)
            if t is None:
                return None
            return t.mb_per_s if metric.endswith("mb_per_s") else t.msg_per_s
        e = self.echoes.get(service)
        if e is None:
            return None
        if metric == "echo_p50_us":
            return e.p50 * 1e6
        if metric == "echo_p99_us":
            return e.p99 * 1e6
        if metric == "echo_per_s":
            return e.per_s
        raise KeyError(metric)


#: Figures compared ours-vs-raw, with their units.
METRICS = {
    "up_mb_per_s": "MB/s",
    "down_mb_per_s": "MB/s",
    "up_msg_per_s": "msg/s",
    "down_msg_per_s": "msg/s",
    "echo_p50_us": "us",
    "echo_p99_us": "us",
    "echo_per_s": "round trips/s",
}
_LOWER_IS_BETTER = {"echo_p50_us", "echo_p99_us"}


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    if value >= 10 ** digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    line = "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))
    out = [line, "-" * len(line)]
    out += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return out


def format_tables(results: list[SizeResult]) -> list[str]:
    """The end-of-run tables: throughput and message rates, then echo round trips."""
    rows = []
    for r in results:
        for direction, label in ((UP, "up (host->device)"), (DOWN, "down (device->host)")):
            ours, raw = r.transfer(OURS, direction), r.transfer(RAW, direction)
            if ours is None and raw is None:
                continue
            rows.append([
                f"{r.size} B",
                label,
                _fmt(ours.mb_per_s if ours else None),
                _fmt(raw.mb_per_s if raw else None),
                _ratio(r.ratio(f"{direction}_mb_per_s")),
                _fmt(ours.msg_per_s if ours else None),
                _fmt(ours.device_mb_per_s if ours else None),
                _fmt(raw.device_mb_per_s if raw else None),
            ])
    lines = ["One-way throughput (MB/s = 10^6 B/s; ratio = ours / raw TCP)"]
    lines += _table(
        ["size", "direction", "ours MB/s", "raw MB/s", "ratio", "ours msg/s",
         "device: ours", "device: raw"],
        rows,
    )
    rows = []
    for r in results:
        ours_e, raw_e = r.echoes.get(OURS), r.echoes.get(RAW)
        if ours_e is None and raw_e is None:
            continue
        rows.append([
            f"{r.size} B",
            _fmt(r.value("echo_p50_us", OURS)),
            _fmt(r.value("echo_p50_us", RAW)),
            _ratio(r.ratio("echo_p50_us")),
            _fmt(r.value("echo_p99_us", OURS)),
            _fmt(r.value("echo_p99_us", RAW)),
            _ratio(r.ratio("echo_p99_us")),
            _fmt(r.value("echo_per_s", OURS)),
            _fmt(r.value("echo_per_s", RAW)),
        ])
    lines += ["", "Echo round trips, one message in flight (us; ratio = raw / ours latency)"]
    lines += _table(
        ["size", "ours p50", "raw p50", "ratio", "ours p99", "raw p99", "ratio",
         "ours rt/s", "raw rt/s"],
        rows,
    )
    return lines


def summary(results: list[SizeResult]) -> dict[str, Any]:
    """The headline ratios: bulk transfer at the largest size, 64-byte echo."""
    out: dict[str, Any] = {}
    if not results:
        return out
    bulk = max(results, key=lambda r: r.size)
    out["bulk_size"] = bulk.size
    out["bulk_up_ratio"] = bulk.ratio("up_mb_per_s")
    out["bulk_down_ratio"] = bulk.ratio("down_mb_per_s")
    small = [r for r in results if r.size == 64]
    if small:
        out["echo64_p50_ratio"] = small[0].ratio("echo_p50_us")
        out["echo64_rate_ratio"] = small[0].ratio("echo_per_s")
    return out


def format_summary(s: dict[str, Any]) -> list[str]:
    """Summary lines, with the efficiency goals of issue 5 for orientation (not a verdict
    on the code: the goals are about the twin over loopback)."""
    lines = []
    if "bulk_size" in s:
        lines.append(
            f"bulk transfer at {s['bulk_size']} B: up {_ratio(s['bulk_up_ratio'])}, "
            f"down {_ratio(s['bulk_down_ratio'])} of raw TCP (goal on the twin: >= 0.80)"
        )
    if "echo64_p50_ratio" in s:
        lines.append(
            f"64 B echo: median round trip {_ratio(s['echo64_p50_ratio'])} of raw TCP's speed, "
            f"round trips/s {_ratio(s['echo64_rate_ratio'])} (goal on the twin: >= 0.70)"
        )
    return lines


def machine_info() -> dict[str, Any]:
    """Where the figures were measured."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def to_json(
    results: list[SizeResult], *, device: dict[str, Any], settings: dict[str, Any],
    started: str, elapsed: float,
) -> dict[str, Any]:
    """The machine-readable document ``--json`` writes."""
    ratios = []
    for r in results:
        for metric, unit in METRICS.items():
            ours, raw = r.value(metric, OURS), r.value(metric, RAW)
            if ours is None and raw is None:
                continue
            ratios.append({"size": r.size, "metric": metric, "unit": unit, "ours": ours,
                           "raw": raw, "ratio": r.ratio(metric)})
    return {
        "schema": SCHEMA,
        "started": started,
        "elapsed_s": elapsed,
        "machine": machine_info(),
        "device": device,
        "settings": settings,
        "ratio_definition": "ours/raw for throughput and rates, raw/ours for latencies",
        "summary": summary(results),
        "ratios": ratios,
        "transfers": [t.as_dict() for r in results for t in r.transfers.values()],
        "echo": [e.as_dict() for r in results for e in r.echoes.values()],
    }


def plot(results: list[SizeResult], path: str, *, title: str) -> None:
    """Write a PNG of three panels against message size: one-way throughput (ours and raw
    TCP, both directions), echo round trip (median and 99th percentile), and the ratios."""
    try:
        import matplotlib
    except ImportError as exc:
        raise RuntimeError("--plot needs matplotlib: pip install 'esp-hil[bench]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    sizes = [r.size for r in results]
    fig, (ax_t, ax_e, ax_r) = plt.subplots(
        1, 3, figsize=(18, 5.6), constrained_layout=True, gridspec_kw={"width_ratios": [5, 5, 4]}
    )
    styles: dict[tuple[str, str], dict[str, Any]] = {
        (OURS, UP): dict(color="tab:blue", ls="-", marker="o", label="WiFiSocket, host→device"),
        (RAW, UP): dict(color="tab:blue", ls="--", marker="o", mfc="white",
                        label="raw TCP, host→device"),
        (OURS, DOWN): dict(color="tab:orange", ls="-", marker="s",
                           label="WiFiSocket, device→host"),
        (RAW, DOWN): dict(color="tab:orange", ls="--", marker="s", mfc="white",
                          label="raw TCP, device→host"),
    }
    for (service, direction), style in styles.items():
        pts = [(r.size, t.mb_per_s) for r in results
               if (t := r.transfer(service, direction)) is not None]
        if pts:
            ax_t.plot([x for x, _ in pts], [y for _, y in pts], lw=2, ms=6, **style)
    ax_t.set_title("One-way throughput")
    ax_t.set_ylabel("MB/s (10⁶ bytes/s), log scale")

    for service, color, label in ((OURS, "tab:green", "WiFiSocket"),
                                  (RAW, "tab:gray", "raw TCP")):
        echoes = [(r.size, e) for r in results if (e := r.echoes.get(service)) is not None]
        if not echoes:
            continue
        e_sizes = [size for size, _ in echoes]
        ls = "-" if service == OURS else "--"
        ax_e.plot(e_sizes, [e.p50 * 1e6 for _, e in echoes], color=color, ls=ls, marker="o",
                  lw=2, label=f"{label}, median")
        ax_e.plot(e_sizes, [e.p99 * 1e6 for _, e in echoes], color=color, ls=ls, marker="v",
                  lw=1, alpha=0.55, label=f"{label}, 99th percentile")
    ax_e.set_title("Echo round trip, one message in flight")
    ax_e.set_ylabel("µs, log scale")

    for metric, color, marker, label in (
        ("up_mb_per_s", "tab:blue", "o", "throughput host→device"),
        ("down_mb_per_s", "tab:orange", "s", "throughput device→host"),
        ("echo_p50_us", "tab:green", "D", "echo median (raw / ours latency)"),
    ):
        pts = [(r.size, v) for r in results if (v := r.ratio(metric)) is not None]
        if pts:
            ax_r.plot([x for x, _ in pts], [y for _, y in pts], color=color, marker=marker,
                      lw=2, label=label)
    ax_r.axhline(1.0, color="black", lw=1, ls=":")
    top = max([1.0, *(v for r in results for m in ("up_mb_per_s", "down_mb_per_s",
                                                   "echo_p50_us")
                      if (v := r.ratio(m)) is not None)])
    ax_r.set_ylim(0, top * 1.4)  # room above the 1.0 line for the legend
    ax_r.set_title("WiFiSocket relative to raw TCP (1 = as fast)")
    ax_r.set_ylabel("ratio, higher is better")

    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    for ax in (ax_t, ax_e, ax_r):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(sizes))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _size_label(int(v))))
        ax.set_xlabel("message size")
        ax.grid(True, which="major", alpha=0.35)
        ax.legend(fontsize=9, loc="upper right" if ax is ax_r else "best")
    for ax in (ax_t, ax_e):
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(FuncFormatter(
            lambda v, _pos: f"{v:g}" if f"{v:g}"[0] in "235" else ""
        ))
        ax.grid(True, which="minor", axis="y", alpha=0.12)
    fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _size_label(size: int) -> str:
    if size >= 1024 and size % 1024 == 0:
        return f"{size // 1024} KiB"
    return f"{size} B"
