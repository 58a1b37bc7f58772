#!/usr/bin/env python3
"""Cross-compile the portable core of the device library for the ESP8266 and check its size.

Compiles every ``firmware/lib/WiFiSocket/src/wifisocket/*.cpp`` with Debian's
``xtensa-lx106-elf-g++`` (``-Os -mlongcalls -fno-exceptions -fno-rtti -std=c++17``, libc
headers from picolibc), measures the objects with ``xtensa-lx106-elf-size`` and compares
the totals with ``firmware/size-budget.json``:

- ``text``, ``data``, ``bss``: Berkeley totals over the objects (``text`` includes
  ``.rodata`` and ``.literal``);
- ``rodata``: the constant data inside ``text``, reported on its own because the ESP8266
  Arduino core places ``.rodata`` in RAM unless it is marked ``PROGMEM``;
- ``endpoint_ram``: ``sizeof(wsock::Endpoint)`` on the target (the session state that every
  ``WiFiSocketT`` holds next to its three buffers), measured from a probe object.

Usage::

    python3 tools/size_budget.py            # report; exit 1 if anything is over budget
    python3 tools/size_budget.py --json     # the same as JSON on stdout
    python3 tools/size_budget.py --update   # record the measurement, budget = measured + 10%

Exit status: 0 within budget, 1 over budget, 2 the cross compiler is missing or failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "firmware" / "lib" / "WiFiSocket" / "src"
SOURCES_DIR = CORE / "wifisocket"
BUDGET = ROOT / "firmware" / "size-budget.json"
CXX = "xtensa-lx106-elf-g++"
SIZE = "xtensa-lx106-elf-size"
# Debian's gcc-xtensa-lx106 comes without a C library; picolibc-xtensa-lx106-elf has one.
PICOLIBC_SPECS = Path("/usr/lib/xtensa-lx106-elf/picolibc.specs")
FLAGS = ["-Os", "-mlongcalls", "-fno-exceptions", "-fno-rtti", "-std=c++17"]
WARNINGS = ["-Wall", "-Wextra"]
FIELDS = ("text", "data", "bss", "rodata", "endpoint_ram")
HEADROOM_PERCENT = 10
COMPILE_TIMEOUT = 120.0

PROBE = """// sizeof(wsock::Endpoint) on the target, read back as the size of this array's .bss.
#include "wifisocket/session.h"
unsigned char esp_hil_endpoint_probe[sizeof(wsock::Endpoint)];
"""


class ToolError(Exception):
    """The cross toolchain is missing or failed."""


def missing_tools() -> list[str]:
    """Names of what is needed and not installed (Debian package names)."""
    missing = []
    if shutil.which(CXX) is None:
        missing.append("gcc-xtensa-lx106")
    if shutil.which(SIZE) is None:
        missing.append("binutils-xtensa-lx106")
    if not PICOLIBC_SPECS.is_file():
        missing.append("picolibc-xtensa-lx106-elf")
    return missing


def _run(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolError(f"{' '.join(cmd)}: {exc}") from exc
    if proc.returncode != 0:
        raise ToolError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return proc.stdout + proc.stderr


def compile_object(src: Path, out: Path) -> str:
    """Cross-compile one translation unit; returns the compiler's warnings (if any)."""
    cmd = [CXX, f"--specs={PICOLIBC_SPECS}", *FLAGS, *WARNINGS, f"-I{CORE}", "-c", str(src),
           "-o", str(out)]
    return _run(cmd).strip()


def berkeley(obj: Path) -> dict[str, int]:
    """text/data/bss of one object, as ``size -B`` reports them."""
    lines = _run([SIZE, "-B", str(obj)]).splitlines()
    text, data, bss = (int(v) for v in lines[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def rodata(obj: Path) -> int:
    """Bytes of the object's ``.rodata*`` sections (``size -A``)."""
    total = 0
    for line in _run([SIZE, "-A", str(obj)]).splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".rodata") and parts[1].isdigit():
            total += int(parts[1])
    return total


def measure() -> dict[str, Any]:
    """Compile and measure; returns totals, per-object figures and warnings."""
    missing = missing_tools()
    if missing:
        raise ToolError("missing: " + " ".join(missing) + " (apt-get install them)")
    sources = sorted(SOURCES_DIR.glob("*.cpp"))
    if not sources:
        raise ToolError(f"no sources in {SOURCES_DIR}")
    totals = dict.fromkeys(FIELDS, 0)
    objects: dict[str, dict[str, int]] = {}
    warnings: list[str] = []
    with tempfile.TemporaryDirectory(prefix="esp-hil-size-") as tmp:
        for src in sources:
            obj = Path(tmp) / (src.stem + ".o")
            warn = compile_object(src, obj)
            if warn:
                warnings.append(warn)
            fig = berkeley(obj)
            fig["rodata"] = rodata(obj)
            objects[src.name] = fig
            for key, value in fig.items():
                totals[key] += value
        probe_src = Path(tmp) / "probe.cpp"
        probe_src.write_text(PROBE)
        probe_obj = Path(tmp) / "probe.o"
        compile_object(probe_src, probe_obj)
        totals["endpoint_ram"] = berkeley(probe_obj)["bss"]
    return {
        "compiler": _run([CXX, "--version"]).splitlines()[0],
        "flags": FLAGS,
        "totals": totals,
        "objects": objects,
        "warnings": warnings,
    }


def load_budget(path: Path) -> dict[str, Any]:
    """The budget file: ``{"budget": {field: bytes}, "measured": {...}, ...}``."""
    doc = json.loads(path.read_text())
    budget = doc.get("budget")
    if not isinstance(budget, dict) or not all(isinstance(budget.get(f), int) for f in FIELDS):
        raise ValueError(f"{path}: 'budget' must give an integer for each of {FIELDS}")
    return doc


def over_budget(totals: dict[str, int], budget: dict[str, int]) -> list[str]:
    """One line per field that is above its budget."""
    return [f"{f}: {totals[f]} bytes > budget {budget[f]}" for f in FIELDS
            if totals[f] > budget[f]]


def budget_for(totals: dict[str, int]) -> dict[str, int]:
    """Measured + 10%, rounded up (0 stays 0: something appearing there is worth a look)."""
    return {f: -(-totals[f] * (100 + HEADROOM_PERCENT) // 100) for f in FIELDS}


def write_budget(path: Path, result: dict[str, Any]) -> None:
    """Record a measurement and the budget derived from it."""
    doc = {
        "about": "Size budget of the portable core of firmware/lib/WiFiSocket cross-compiled "
                 "for the ESP8266; checked by tools/size_budget.py (docs/robustness.md). "
                 "Budget = measured + 10%; update with tools/size_budget.py --update.",
        "compiler": result["compiler"],
        "flags": result["flags"],
        "measured": result["totals"],
        "objects": result["objects"],
        "budget": budget_for(result["totals"]),
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")


def report(result: dict[str, Any], budget: dict[str, int]) -> str:
    """A human-readable table of the figures against the budget."""
    lines = [f"{result['compiler']}  {' '.join(result['flags'])}"]
    lines.append(f"{'object':<16}{'text':>8}{'data':>8}{'bss':>8}{'rodata':>8}")
    for name, fig in result["objects"].items():
        lines.append(f"{name:<16}{fig['text']:>8}{fig['data']:>8}{fig['bss']:>8}"
                     f"{fig['rodata']:>8}")
    tot = result["totals"]
    lines.append(f"{'total':<16}{tot['text']:>8}{tot['data']:>8}{tot['bss']:>8}"
                 f"{tot['rodata']:>8}")
    lines.append(f"{'budget':<16}{budget['text']:>8}{budget['data']:>8}{budget['bss']:>8}"
                 f"{budget['rodata']:>8}")
    lines.append(f"sizeof(wsock::Endpoint) = {tot['endpoint_ram']} bytes "
                 f"(budget {budget['endpoint_ram']})")
    for warn in result["warnings"]:
        lines.append(f"compiler warnings:\n{warn}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=Path, default=BUDGET, help="budget file")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--update", action="store_true",
                        help="write the measurement and a budget of measured + 10%%")
    args = parser.parse_args(argv)
    try:
        result = measure()
    except ToolError as exc:
        print(f"size_budget: {exc}", file=sys.stderr)
        return 2
    if args.update:
        write_budget(args.budget, result)
    budget = load_budget(args.budget)["budget"]
    over = over_budget(result["totals"], budget)
    if args.json:
        print(json.dumps({**result, "budget": budget, "over": over}, indent=2))
    else:
        print(report(result, budget))
    if over:
        print("OVER BUDGET:\n  " + "\n  ".join(over), file=sys.stderr)
        print(f"(shrink the code, or raise {os.path.relpath(args.budget)} on purpose with "
              "--update and say why in the commit)", file=sys.stderr)
        return 1
    if not args.json:
        print("size budget: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
