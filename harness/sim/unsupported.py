"""Turn a failed twin compile that uses API the shim lacks into one line.

A sketch written for the ESP8266 core may call something the host shim
(``firmware/sim/``) does not implement: ``ESP.getVcc``, ``tone``, ``<WiFiClientSecure.h>``.
g++ (or clang++) then prints a wall of errors; :func:`explain_unsupported` reads that
output and names what is missing, where it is used, and where the shim lives. It only
speaks when the *first* error is such a case, so a genuine mistake in the sketch keeps
the compiler's own words.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Missing", "explain_unsupported", "find_missing"]

_LOCATION = re.compile(
    r"^(?P<file>[^:\n]+):(?P<line>\d+):(?:\d+:)?\s*(?:fatal )?error:\s*(?P<msg>.*)$"
)
# g++ quotes with U+2018/U+2019 in a UTF-8 locale and '' in the C locale; clang++ with ''.
_OPEN = "['\u2018`]"
_CLOSE = "['\u2019]"


def _q(group: str) -> str:
    """A quoted name captured as ``group``."""
    return f"{_OPEN}(?:class |struct )?(?P<{group}>[^'\u2019]+){_CLOSE}"


# (pattern on the error message, kind): a missing header, a member of a class the shim
# has, or a name (function, variable, type) the shim does not declare at all.
_WHAT = [
    (re.compile(r"^(?P<header>[^:]+): No such file or directory"), "header"),
    (re.compile(f"^{_q('header')} file not found"), "header"),
    (re.compile(f"^{_q('cls')} has no member named {_q('member')}"), "member"),
    (re.compile(f"^no member named {_q('member')} in {_q('cls')}"), "member"),
    (re.compile(f"^{_q('member')} is not a member of {_q('cls')}"), "member"),
    (re.compile(f"^no type named {_q('member')} in {_q('cls')}"), "member"),
    (re.compile(f"^{_q('name')} was not declared in this scope"), "name"),
    (re.compile(f"^{_q('name')} has not been declared"), "name"),
    (re.compile(f"^{_q('name')} does not name a type"), "name"),
    (re.compile(f"^use of undeclared identifier {_q('name')}"), "name"),
    (re.compile(f"^unknown type name {_q('name')}"), "name"),
]
_MAX_NAMED = 6


@dataclass(frozen=True)
class Missing:
    """One thing the sketch uses that the twin's shim does not declare."""

    name: str  # "<WiFiClientSecure.h>", "EspClass::deepSleep", "tone"
    kind: str  # "header", "member" or "name"
    file: str
    line: int


def _classify(message: str) -> tuple[str, str] | None:
    for pattern, kind in _WHAT:
        m = pattern.match(message)
        if m is None:
            continue
        if kind == "header":
            return f"<{m['header']}>", kind
        if kind == "member":
            return f"{m['cls']}::{m['member']}", kind
        return m["name"], kind
    return None


def find_missing(output: str) -> list[Missing]:
    """What the compiler says is missing, in order, without repeats.

    Empty unless the first error of ``output`` is one of those cases (a missing header,
    member, declaration or type).
    """
    found: list[Missing] = []
    seen: set[str] = set()
    first = True
    for raw in output.splitlines():
        loc = _LOCATION.match(raw.strip())
        if loc is None:
            continue
        what = _classify(loc["msg"])
        if first and what is None:
            return []
        first = False
        if what is None or what[0] in seen:
            continue
        seen.add(what[0])
        found.append(Missing(what[0], what[1], loc["file"], int(loc["line"])))
    return found


def _shown(path: str) -> str:
    """``path`` relative to the working directory when it lies below it."""
    try:
        return os.path.relpath(path) if Path(path).resolve().is_relative_to(Path.cwd()) else path
    except (OSError, ValueError):
        return path


def explain_unsupported(output: str, shim_dir: Path, uninstalled: str = "") -> str | None:
    """One line naming the API the twin's shim lacks, or None if that is not the failure.

    ``uninstalled`` says which of the project's ``lib_deps`` are not installed and how to
    install them; a missing header is then most likely one of theirs, and the line says so.
    """
    missing = find_missing(output)
    if not missing:
        return None
    first = missing[0]
    shim = _shown(str(shim_dir))
    if first.kind == "header" and uninstalled:
        return (
            f"{_shown(first.file)}:{first.line}: #include {first.name} is not available on "
            f"the twin: {uninstalled} (if {first.name} is not theirs, the Arduino shim in "
            f"{shim}/ does not provide it either)"
        )
    if first.kind == "header":
        what = f"#include {first.name} is not available on the twin"
    elif first.kind == "member":
        what = f"{first.name} is not available on the twin"
    else:
        what = f"'{first.name}' is declared neither by your code nor by the twin"
    others = [m.name for m in missing[1:_MAX_NAMED]]
    if len(missing) > _MAX_NAMED:
        others.append(f"{len(missing) - _MAX_NAMED} more")
    also = f" (also missing: {', '.join(others)})" if others else ""
    them = "them" if others else "it"
    return (
        f"{_shown(first.file)}:{first.line}: {what}{also}: the twin compiles against the "
        f"Arduino shim in {shim}/, which does not provide {them}; "
        f"{shim}/README.md lists what it does"
    )
