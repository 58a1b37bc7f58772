"""RAM and flash of a firmware on the ESP8266, from its xtensa objects, against a budget.

Where a section ends up is decided by the core's linker script (``eagle.app.v6.common.ld.h``
with ``VTABLES_IN_FLASH``, the core's default), in its order: the first rule that matches a
section wins. What matters on the ESP8266 is that ``.rodata`` is copied into the 80 KB of
data RAM unless it is marked ``PROGMEM`` (``.irom.text``), so constant strings and tables
cost RAM like ``.data`` does.

Figures are taken before linking (there is no SDK to link against), so they are an upper
bound: ``--gc-sections`` would drop unreferenced functions and constants. Inline functions
and templates that several objects share (COMDAT groups) are counted once, in the first
object that has them.

Regions: ``data`` + ``rodata`` + ``bss`` = static RAM (``ram``); ``iram`` = code in the
32 KB instruction RAM; ``flash`` = code and constants in flash (``.irom0.text``).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import xtensa
from harness.project import firmware_root

READELF = "xtensa-lx106-elf-readelf"
CXXFILT = "xtensa-lx106-elf-c++filt"
REGIONS = ("data", "rodata", "bss", "iram", "flash")
BUDGET_FIELDS = ("ram", "iram", "flash")

# (region, patterns) in the linker script's order; object files are named *.cpp.o / *.c.o,
# which is what sends their code to flash (the .irom0.text rule names them).
_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("data", (".dport0.*", ".dport.*")),
    ("data", (".data", ".data.*", ".gnu.linkonce.d.*", ".data1", ".sdata", ".sdata.*",
              ".gnu.linkonce.s.*", ".sdata2", ".sdata2.*", ".gnu.linkonce.s2.*", ".jcr")),
    ("bss", (".noinit",)),
    ("iram", (".UserEnter.text", "*ExceptionVector.text", ".entry.text", ".init.literal",
              ".init", ".text.app_entry*", ".text.gdbstub*", ".text.gdb_init",
              ".text._ZNKSt8functionIF*EE*")),
    ("flash", (".literal*", ".text*", ".rodata._ZTV*", ".irom0.literal", ".irom.literal",
               ".irom.text.literal", ".irom0.text", ".irom0.text.*", ".irom.text",
               ".irom.text.*", ".irom0.pstr.*", ".rodata._ZZ*__FUNCTION__",
               ".rodata._ZZ*__PRETTY_FUNCTION__",
               ".rodata._ZZ*__func__", ".irom.exceptiontext", ".rodata._ZTIN*",
               ".rodata._ZTSN10*", ".rodata._ZTISt*", ".rodata._ZTSSt*", ".rodata._ZTIPKc",
               ".rodata._ZTIc", ".rodata._ZTIv", ".rodata._ZTSv", ".rodata._ZTSc",
               ".rodata._ZTSPKc", ".rodata._ZTSi", ".rodata._ZTIi", ".gcc_except_table*",
               ".eh_frame")),
    ("iram", (".iram.literal", ".iram.text", ".iram.text.*", ".stub", ".gnu.linkonce.t.*",
              ".gnu.linkonce.literal.*", ".fini.literal", ".fini", ".lit4", ".lit4.*",
              ".gnu.linkonce.lit4.*")),
    # .init_array is not named by the script: as an orphan it lands next to .rodata in RAM.
    ("rodata", (".sdk.version", ".rodata", ".rodata.*", ".gnu.linkonce.r.*", ".rodata1",
                ".xt_except_table", ".gnu.linkonce.e.*", ".ctors", ".ctors.*", ".dtors",
                ".dtors.*", ".init_array", ".init_array.*", ".fini_array", ".fini_array.*",
                ".xt_except_desc", ".gnu.linkonce.h.*", ".xt_except_desc_end")),
    ("bss", (".dynsbss", ".sbss", ".sbss.*", ".gnu.linkonce.sb.*", ".scommon", ".sbss2",
             ".sbss2.*", ".gnu.linkonce.sb2.*", ".dynbss", ".bss", ".bss.*",
             ".gnu.linkonce.b.*")),
)

_SECTION = re.compile(
    r"^\s*\[\s*(?P<index>\d+)\]\s+(?P<name>\S+)\s+(?P<type>\S+)\s+[0-9a-f]+\s+[0-9a-f]+\s+"
    r"(?P<size>[0-9a-f]+)\s+[0-9a-f]+\s+(?P<flags>[A-Za-z]*)\s+\d+\s+\d+\s+\d+\s*$")
_GROUP = re.compile(r"^COMDAT group section \[\s*\d+\] `[^']*' \[(?P<sig>[^\]]+)\]")
_MEMBER = re.compile(r"^\s+\[\s*(?P<index>\d+)\]\s+\S+\s*$")


@dataclass(frozen=True)
class Section:
    """One allocated section of an object file."""

    name: str
    size: int
    group: str | None = None  # the COMDAT group's signature, if it is in one


@dataclass
class ObjectSize:
    """The regions of one object, and its largest RAM sections."""

    name: str
    regions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REGIONS, 0))
    ram_sections: list[tuple[str, int]] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # allocated, matched by no rule

    @property
    def ram(self) -> int:
        """Static RAM: data + rodata + bss."""
        return self.regions["data"] + self.regions["rodata"] + self.regions["bss"]


def region_of(section: str) -> str | None:
    """The region a section of a ``*.cpp.o`` lands in, or None if no rule names it."""
    for region, patterns in _RULES:
        if any(fnmatch.fnmatchcase(section, p) for p in patterns):
            return region
    return None


def parse_readelf(text: str) -> list[Section]:
    """Allocated sections of ``readelf -S -g -W`` output, with their COMDAT group."""
    sections: dict[int, tuple[str, int]] = {}
    groups: dict[int, str] = {}
    signature: str | None = None
    for line in text.splitlines():
        match = _SECTION.match(line)
        if match:
            if "A" in match["flags"] and match["type"] != "NULL":
                sections[int(match["index"])] = (match["name"], int(match["size"], 16))
            continue
        group = _GROUP.match(line)
        if group:
            signature = group["sig"]
            continue
        member = _MEMBER.match(line)
        if member and signature is not None:
            groups[int(member["index"])] = signature
        elif not line.strip():
            signature = None
    return [Section(name, size, groups.get(index))
            for index, (name, size) in sorted(sections.items())]


def account(objects: Iterable[tuple[str, Sequence[Section]]]) -> list[ObjectSize]:
    """Regions per object; a COMDAT group is counted in the first object that has it."""
    seen: set[str] = set()
    out: list[ObjectSize] = []
    for name, sections in objects:
        fig = ObjectSize(name)
        claimed: set[str] = set()
        for sec in sections:
            if sec.group is not None:
                if sec.group in seen and sec.group not in claimed:
                    continue
                claimed.add(sec.group)
            region = region_of(sec.name)
            if region is None:
                fig.unknown.append(sec.name)
                continue
            fig.regions[region] += sec.size
            if region in ("data", "rodata", "bss") and sec.size:
                fig.ram_sections.append((sec.name, sec.size))
        seen |= claimed
        fig.ram_sections.sort(key=lambda item: -item[1])
        out.append(fig)
    return out


def totals(objects: Sequence[ObjectSize]) -> dict[str, int]:
    """Sums over the objects, with ``ram`` = data + rodata + bss."""
    tot = {r: sum(o.regions[r] for o in objects) for r in REGIONS}
    tot["ram"] = tot["data"] + tot["rodata"] + tot["bss"]
    return tot


def load_budget(path: Path) -> dict[str, int]:
    """The ``budget`` of a budget file: bytes for each of ``ram``, ``iram``, ``flash``."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    budget = doc.get("budget") if isinstance(doc, dict) else None
    if not isinstance(budget, dict) or not all(
            type(budget.get(f)) is int and budget[f] >= 0 for f in BUDGET_FIELDS):
        raise ValueError(f"{path}: 'budget' must give bytes (an integer >= 0) for each of "
                         f"{', '.join(BUDGET_FIELDS)}")
    return {f: budget[f] for f in BUDGET_FIELDS}


def over_budget(tot: dict[str, int], budget: dict[str, int]) -> list[str]:
    """One line per region above its budget."""
    names = {"ram": "static RAM", "iram": "IRAM", "flash": "flash"}
    return [f"{names[f]} {tot[f]} bytes > budget {budget[f]}"
            for f in BUDGET_FIELDS if tot[f] > budget[f]]


def demangle(section: str) -> str:
    """A section name with the mangled symbol in it made readable (best effort)."""
    prefix, _, rest = section.partition("._Z")
    if not rest:
        return section
    symbol = "_Z" + rest.split(".str1")[0].split("$")[0]
    try:
        out = subprocess.run([CXXFILT, symbol], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return section
    return f"{prefix} {out.stdout.strip()}" if out.returncode == 0 else section


def readelf(obj: Path) -> list[Section]:
    """The allocated sections of an object (``readelf -S -g -W``)."""
    proc = subprocess.run([READELF, "-S", "-g", "-W", str(obj)], capture_output=True,
                          text=True, timeout=60)
    if proc.returncode != 0:
        raise ValueError(f"{READELF} {obj}: {proc.stderr.strip()}")
    return parse_readelf(proc.stdout)


def measure(objects: dict[str, Path]) -> list[ObjectSize]:
    """Per-object figures of compiled objects, named as given."""
    return account((name, readelf(path)) for name, path in sorted(objects.items()))


def table(objects: Sequence[ObjectSize], title: str) -> list[str]:
    """Rows of a per-object table and its total."""
    width = max([len(title), *(len(o.name) for o in objects)]) + 2
    head = f"{title:<{width}}" + "".join(f"{c:>9}" for c in ("data", "rodata", "bss", "RAM",
                                                              "IRAM", "flash"))
    return [head, *(row(o, width) for o in [*objects, total_of(objects)])]


def row(o: ObjectSize, width: int) -> str:
    """One line of the table: name, the regions and RAM."""
    r = o.regions
    return f"{o.name:<{width}}" + "".join(
        f"{v:>9}" for v in (r["data"], r["rodata"], r["bss"], o.ram, r["iram"], r["flash"]))


def total_of(objects: Sequence[ObjectSize], name: str = "total") -> ObjectSize:
    """The objects' sums as one row."""
    tot = ObjectSize(name)
    tot.regions = {r: v for r, v in totals(objects).items() if r in REGIONS}
    return tot


def largest_ram(objects: Sequence[ObjectSize], count: int = 10) -> list[tuple[str, str, int]]:
    """The ``count`` largest RAM sections over all objects: (object, section, bytes)."""
    every = [(o.name, sec, size) for o in objects for sec, size in o.ram_sections]
    return sorted(every, key=lambda item: -item[2])[:count]


def report(result: dict[str, Any]) -> str:
    """Human-readable figures of :func:`size_project`'s result."""
    lines = [f"project {result['project']} for {result['board']} "
             "(objects before linking: an upper bound)"]
    lines += table(result["objects"], "sketch + libraries")
    lines.append("largest static RAM:")
    for obj, sec, size in largest_ram(result["objects"]):
        lines.append(f"  {size:>7}  {demangle(sec)}  ({obj})")
    if result["core_objects"]:
        lines.append("core libraries compiled alongside (not in the budget; part of a blank "
                     "WiFi sketch):")
        core = result["core_objects"]
        lines.append(row(total_of(core, f"{len(core)} objects"), 20))
    unknown = sorted({u for o in result["objects"] for u in o.unknown})
    if unknown:
        lines.append(f"sections no linker rule names (not counted): {', '.join(unknown)}")
    tot, budget = result["totals"], result.get("budget")
    if budget:
        lines.append("budget: " + ", ".join(f"{f} {tot[f]}/{budget[f]}" for f in BUDGET_FIELDS))
    return "\n".join(lines)


def size_project(project: Path, board: str = "nodemcu", budget: Path | None = None,
                 env: str | None = None) -> dict[str, Any]:
    """Compile ``project`` for the ESP8266 and measure it (see :mod:`harness.xtensa`).

    Raises :class:`harness.xtensa.XtensaError` if the toolchain is missing or our code
    does not compile cleanly (the message names the first diagnostic), and
    :class:`harness.project.ProjectError` if the project cannot be used.
    """
    limits = load_budget(budget) if budget is not None else None
    # esp-hil's libraries (WiFiSocket, EspHil) are on the path, as in a board build.
    esp_hil_libraries = [firmware_root() / "lib"]
    with tempfile.TemporaryDirectory(prefix="esp-hil-xtensa-") as out:
        built = xtensa.build(project, board, Path(out), env=env,
                             extra_libraries=esp_hil_libraries)
        if not built.ok:
            first = (built.ours or built.diagnostics)[0]
            raise xtensa.XtensaError(
                f"{len(built.ours)} diagnostic(s) in our code, {len(built.failed)} source(s) "
                f"failed; first:\n{first.text}")
        objects = measure(built.objects)
        core_objects = measure(built.core_objects)
    result: dict[str, Any] = {
        "project": str(built.project), "board": built.board, "objects": objects,
        "core_objects": core_objects, "totals": totals(objects),
        "core_warnings": [d.text for d in built.diagnostics if not d.ours],
    }
    if limits is not None:
        result["budget"] = limits
        result["over"] = over_budget(result["totals"], limits)
    return result


DESCRIPTION = ("Compile a PlatformIO project for the ESP8266 and report its static RAM, IRAM "
               "and flash per object, against a budget.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``esp-hil size`` (shared by the CLI and tools/xtensa/size.py)."""
    parser.add_argument("project", nargs="?", type=Path, default=Path("."),
                        help="PlatformIO project directory (default: .)")
    parser.add_argument("--board", default="nodemcu", help="nodemcu (default) or d1_mini")
    parser.add_argument("--env", help="platformio.ini environment (default: the first of "
                        "default_envs, else the first [env:NAME])")
    parser.add_argument("--budget", type=Path, help="budget file ({'budget': {ram, iram, "
                        "flash}}); default: <project>/board-budget.json if it exists")
    parser.add_argument("--no-budget", action="store_true",
                        help="report only (the compile must still be clean)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


def main(argv: list[str] | None = None) -> int:
    """``esp-hil size``: exit 0 within budget, 1 over it, 2 the build failed or bad input."""
    parser = argparse.ArgumentParser(prog="esp-hil size", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Runs ``esp-hil size`` with parsed :func:`add_arguments` options; its exit status."""
    budget = None if args.no_budget else args.budget
    if budget is None and not args.no_budget and (args.project / "board-budget.json").is_file():
        budget = args.project / "board-budget.json"
    try:
        result = size_project(args.project, args.board, budget, args.env)
    except (xtensa.XtensaError, ValueError) as exc:
        print(f"esp-hil size: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2, default=lambda o: {
            "name": o.name, **o.regions, "ram": o.ram, "ram_sections": o.ram_sections}))
    else:
        print(report(result))
    for warning in result["core_warnings"]:
        print(f"core warning (not ours, does not fail):\n{warning}", file=sys.stderr)
    if result.get("over"):
        print(f"esp-hil size: over budget ({budget}): {'; '.join(result['over'])}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
