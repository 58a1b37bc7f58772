"""A sketch's ``.ino`` files as one C++ translation unit, the way PlatformIO compiles them.

PlatformIO builds the ``*.ino`` and ``*.pde`` files found directly in ``src_dir`` as one
unit: the file that defines ``setup()`` or ``loop()`` first, the others after it by name,
all of it after ``#include <Arduino.h>``, with a prototype of every function they define
placed before the first definition (an Arduino sketch may call a function above the place
it defines it). :func:`sketch_unit` writes that unit for the twin and for ``esp-hil size``;
``#line`` directives keep the compiler's messages on the ``.ino`` files' own lines.

Written here rather than taken from PlatformIO, whose converter is part of its SCons build
and runs the preprocessor first: this one reads the text with comments, literals and
directives blanked, so it needs no compiler.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SKETCH_SUFFIXES", "Function", "convert", "functions", "sketch_files", "sketch_unit"]

SKETCH_SUFFIXES = (".ino", ".pde")
_MAIN = re.compile(r"\bvoid\s+(?:setup|loop)\s*\(")
# A function's head at file scope: specifiers and return type (words, '*', '&'), a plain
# name, and arguments without default values or parentheses. Member definitions
# (``A::f``), templates, operators and function-pointer arguments do not match: they get
# no prototype, as with PlatformIO.
_HEAD = re.compile(
    r"""(?P<ret>(?:[A-Za-z_]\w*(?:\s*[*&]+\s*|\s+))+?)
        (?P<name>[A-Za-z_]\w*)\s*\((?P<args>[^()=]*)\)\s*\Z""",
    re.X,
)
# Any function's head before its body: ``f(...)``, maybe ``const``, ``noexcept``, ``override``.
_BODY = re.compile(r"\)\s*(?:const\s*|noexcept\s*|override\s*|final\s*)*\Z")
_NOT_A_TYPE = frozenset({
    "if", "else", "while", "for", "do", "switch", "case", "return", "sizeof", "new", "delete",
    "typedef", "using", "throw", "goto", "template", "operator", "struct", "class", "union",
    "enum", "namespace",
})


@dataclass(frozen=True)
class Function:
    """A function head at file scope: its prototype text and where it starts."""

    prototype: str  # whitespace-collapsed: "unsigned long elapsed(int since)"; "": none
    name: str
    start: int  # offset of its first character in the text
    defined: bool  # followed by a body (else it is a declaration)


def sketch_files(src_dir: Path) -> list[Path]:
    """The sketch files PlatformIO would merge: ``src_dir/*.ino`` and ``*.pde`` (not below),
    the first to define ``setup()`` or ``loop()`` first, the rest by name."""
    if not src_dir.is_dir():
        return []
    files = sorted(p for p in src_dir.iterdir() if p.suffix in SKETCH_SUFFIXES and p.is_file())
    for i, path in enumerate(files):
        if _MAIN.search(_blank(_read(path))):
            return [path, *files[:i], *files[i + 1:]]
    return files


def sketch_unit(src_dir: Path, out_root: Path) -> Path | None:
    """Write the unit of ``src_dir``'s sketch files under ``out_root`` (None: there are none).

    The file is ``<out_root>/<digest of its text>/<main file>.cpp`` (``main.ino.cpp``), so
    the same sketch always gives the same path and object caches keyed on it stay valid.
    """
    files = sketch_files(src_dir)
    if not files:
        return None
    text = convert([(str(p), _read(p)) for p in files])
    data = text.encode("utf-8", "surrogateescape")
    out = out_root / hashlib.sha256(data).hexdigest()[:16] / f"{files[0].name}.cpp"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, out)  # whole or absent, for parallel builders
    return out


def convert(files: Sequence[tuple[str, str]]) -> str:
    """One C++ unit of sketch files given as (path, text), in the order to merge them."""
    parts = ["#include <Arduino.h>\n"]
    starts: list[tuple[int, str]] = []  # (offset of the file's first line, its path)
    offset = len(parts[0])
    for path, text in files:
        marker = f"#line 1 {_quoted(path)}\n"
        if text and not text.endswith("\n"):
            text += "\n"
        parts += [marker, text]
        starts.append((offset + len(marker), path))
        offset += len(marker) + len(text)
    merged = "".join(parts)
    blank = _blank(merged)
    heads = functions(blank)
    declared = {f.prototype for f in heads if not f.defined}
    wanted: list[Function] = []
    for f in heads:
        if f.defined and f.prototype and f.prototype not in declared:
            declared.add(f.prototype)
            wanted.append(f)
    if not wanted:
        return merged
    at = _insertion_point(blank, heads, wanted)
    first, path = max((s, p) for s, p in starts if s <= at)
    line = merged.count("\n", first, at) + 1
    prototypes = "".join(f"{f.prototype};\n" for f in wanted)
    gap = "" if merged[at - 1] == "\n" else "\n"
    return f"{merged[:at]}{gap}{prototypes}#line {line} {_quoted(path)}\n{merged[at:]}"


def functions(blank: str) -> list[Function]:
    """Every function head at file scope of ``blank`` (text after :func:`_blank`), in order:
    those followed by a body (definitions) and those followed by ``;`` (declarations)."""
    found: list[Function] = []
    depth = 0
    stmt = 0  # where the current file-scope statement began
    for i, ch in enumerate(blank):
        if ch == "{":
            if depth == 0:
                _head(blank, stmt, i, True, found)
            depth += 1
        elif ch == "}":
            depth = max(0, depth - 1)
            if depth == 0:
                stmt = i + 1
        elif ch == ";" and depth == 0:
            _head(blank, stmt, i, False, found)
            stmt = i + 1
    return found


def _head(blank: str, start: int, end: int, defined: bool, found: list[Function]) -> None:
    """The function head ending at ``end``, if any: the statement from ``start``, or from
    one of its later lines (a macro call without ``;`` may stand before it). A body whose
    head takes no prototype (default arguments, ``A::f()``, a template) is kept without
    one: the prototypes must come before it too, as it may call the others."""
    text = blank[start:end]
    for line in (0, *(k + 1 for k, ch in enumerate(text) if ch == "\n")):
        lead = line + len(text[line:]) - len(text[line:].lstrip())
        m = _HEAD.match(text, lead)
        if m is None:
            continue
        if m["name"] in _NOT_A_TYPE or _NOT_A_TYPE.intersection(m["ret"].split()):
            break
        prototype = " ".join(text[lead:m.end("args") + 1].split())
        found.append(Function(prototype, m["name"], start + lead, defined))
        return
    if defined and _BODY.search(text):
        lead = len(text) - len(text.lstrip())
        found.append(Function("", "", start + lead, defined))


def _insertion_point(blank: str, heads: list[Function], wanted: list[Function]) -> int:
    """Before the first definition, or before the file-scope statement that names one of
    the functions earlier (``Ticker tick(blink);`` above ``void blink() {}``)."""
    at = next(f.start for f in heads if f.defined)
    # What lies at file scope before it: text inside braces blanked, each '}' that returns
    # to file scope kept (it ends a statement).
    scope = list(blank[:at])
    depth = 0
    for i, ch in enumerate(scope):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth = max(0, depth - 1)
            if depth:
                scope[i] = " "
            continue
        if depth:
            scope[i] = " "
    outer = "".join(scope)
    names = "|".join(re.escape(n) for n in sorted({f.name for f in wanted}))
    mention = re.search(rf"\b(?:{names})\b", outer)
    if mention is None:
        return at
    stmt = max(outer.rfind(";", 0, mention.start()), outer.rfind("}", 0, mention.start())) + 1
    while blank[stmt].isspace():
        stmt += 1
    return stmt


def _blank(text: str) -> str:
    """``text`` with comments, string and character literals and preprocessor directives
    replaced by spaces (newlines kept), so offsets and line numbers stay those of ``text``."""
    out = list(text)
    n = len(text)
    i = 0
    line_start = True  # only whitespace since the last newline

    def wipe(a: int, b: int) -> None:
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        ch = text[i]
        if ch == "\n":
            line_start = True
            i += 1
            continue
        if ch == "#" and line_start:
            j = i
            while j < n and text[j] != "\n":
                j = j + 2 if text[j] == "\\" and j + 1 < n else j + 1
            wipe(i, j)
            i = j
            continue
        if not ch.isspace():
            line_start = False
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            wipe(i, j)
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            wipe(i, j)
            i = j
        elif ch == "R" and text.startswith('"', i + 1) and not _ident_before(text, i):
            m = re.compile(r'R"([^()\\\s]{0,16})\(').match(text, i)
            if m is None:
                i += 1
                continue
            j = text.find(f"){m[1]}\"", m.end())
            j = n if j < 0 else j + len(m[1]) + 2
            wipe(i, j)
            i = j
        elif ch in "\"'":
            j = i + 1
            while j < n and text[j] != ch and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(n, j + 1)
            wipe(i, j)
            i = j
        else:
            i += 1
    return "".join(out)


def _ident_before(text: str, i: int) -> bool:
    return i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")


def _quoted(path: str) -> str:
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _read(path: Path) -> str:
    # Any bytes survive the round trip: a sketch's literals may not be UTF-8.
    return path.read_bytes().decode("utf-8", "surrogateescape")
