#!/usr/bin/env python3
"""Compare `esp-hil bench --json` files side by side: ours, raw and the ratio per figure.

    python benchmarks/compare.py before.json after.json [more.json ...]

With several runs of the same code it shows the spread that the machine's load causes
(and, with more than two files, a last column with the median of each figure); with runs
of different code (a change, a scratch copy) what the change bought.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

FIGURES = ["up_mb_per_s", "down_mb_per_s", "echo_p50_us", "echo_p99_us"]


def load(path: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    if doc.get("schema") != "esp-hil-bench/1":
        raise SystemExit(f"{path}: not an esp-hil bench result (schema {doc.get('schema')!r})")
    return doc


def _cell(ours: float, raw: float, ratio: float | None) -> str:
    return f"{ours:.4g} / {raw:.4g} x{'-' if ratio is None else f'{ratio:.2f}'}"


def main(argv: list[str]) -> int:
    if len(argv) < 1:
        print(__doc__, file=sys.stderr)
        return 2
    docs = [load(p) for p in argv]
    names = [Path(p).stem[-28:] for p in argv]
    width = max(24, *(len(n) for n in names))
    for name, doc in zip(names, docs, strict=True):
        load_avg = doc["machine"].get("loadavg") or [float("nan")]
        print(f"{name}: {doc['started']}  {doc['device'].get('fw', '?')}  "
              f"load average {load_avg[0]:.2f}")
    print()
    with_median = len(docs) > 2
    header = f"{'figure':<22}" + "".join(f"{n:>{width + 2}}" for n in names)
    if with_median:
        header += f"{'median':>{width + 2}}"
    print(header)
    print("-" * len(header))
    sizes = sorted({r["size"] for d in docs for r in d["ratios"]})
    for metric in FIGURES:
        for size in sizes:
            cells = []
            seen: list[tuple[float, float, float]] = []
            for doc in docs:
                row = next((r for r in doc["ratios"]
                            if r["metric"] == metric and r["size"] == size), None)
                if row is None or row["ours"] is None or row["raw"] is None:
                    cells.append("-")
                    continue
                cells.append(_cell(row["ours"], row["raw"], row["ratio"]))
                if row["ratio"] is not None:
                    seen.append((row["ours"], row["raw"], row["ratio"]))
            if with_median:
                cells.append(_cell(*(statistics.median(v[i] for v in seen) for i in range(3)))
                             if seen else "-")
            label = f"{metric.replace('_', ' ')} {size}"
            print(f"{label:<22}" + "".join(f"{c:>{width + 2}}" for c in cells))
    print("\ncells: ours / raw TCP (MB/s or us) x ratio (ours relative to raw, higher is better)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
