#!/usr/bin/env python3
"""What would a change buy? Bench scratch copies of the tree with patches applied.

Each variant is a copy of ``harness/`` and ``firmware/`` in a temporary directory with some
of the patches of ``benchmarks/whatif/`` applied (``base`` has none). The variants run
``esp-hil bench`` in turn, round after round, so the machine's load drifts over all of them
alike; then the medians are printed (benchmarks/compare.py). The repository is not touched.

    python benchmarks/whatif.py                          # every patch alone, and all together
    python benchmarks/whatif.py --rounds 5 --sizes 64,max --duration 1 --link-key none
    python benchmarks/whatif.py --variant win=fw-window-32k --variant all=*

A patch that no longer applies fails ``tests/unit/test_whatif.py``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATCHES = ROOT / "benchmarks" / "whatif"


def make_copy(where: Path, patches: list[Path]) -> Path:
    """A copy of the tree's code under ``where`` with ``patches`` applied."""
    where.mkdir(parents=True)
    for part in ("harness", "firmware"):
        shutil.copytree(ROOT / part, where / part,
                        ignore=shutil.ignore_patterns("__pycache__", "build", "fuzz"))
    for patch in patches:
        subprocess.run(["patch", "-s", "-p1", "-d", str(where), "-i", str(patch)], check=True)
    return where


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--sizes", default="64,max", help="as esp-hil bench's (default 64,max)")
    p.add_argument("--duration", type=float, default=1.0)
    p.add_argument("--device", default="sim-direct", help="a twin spec (default sim-direct)")
    p.add_argument("--link-key", default="auto", help="as esp-hil bench's (default auto)")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=PATCH[+PATCH]",
                   help="patch names without .patch; '*' = all of them")
    args = p.parse_args(argv)

    available = sorted(PATCHES.glob("*.patch"))
    variants: dict[str, list[Path]] = {"base": []}
    if args.variant:
        for spec in args.variant:
            name, _, what = spec.partition("=")
            chosen = available if what == "*" else [PATCHES / f"{w}.patch" for w in what.split("+")]
            variants[name] = chosen
    else:
        variants.update({patch.stem: [patch] for patch in available})
        variants["all"] = available

    work = Path(tempfile.mkdtemp(prefix="esp-hil-whatif-"))
    try:
        roots = {name: make_copy(work / name, patches) for name, patches in variants.items()}
        results: dict[str, list[str]] = {name: [] for name in variants}
        for r in range(args.rounds):
            for name, root in roots.items():
                out = work / f"{name}-{r}.json"
                print(f"round {r + 1}/{args.rounds}: {name}", file=sys.stderr, flush=True)
                subprocess.run(
                    [sys.executable, "-m", "harness.cli", "bench", "--device", args.device,
                     "--sizes", args.sizes, "--duration", str(args.duration), "--json", str(out),
                     "--link-key", args.link_key],
                    cwd=root, check=True, stdout=subprocess.DEVNULL,
                )
                results[name].append(str(out))
        for name, files in results.items():
            print(f"\n=== {name}: {', '.join(p.name for p in variants[name]) or 'no patch'}")
            subprocess.run([sys.executable, str(ROOT / "benchmarks" / "compare.py"), *files],
                           check=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
