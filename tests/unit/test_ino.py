"""A sketch's .ino files as one C++ unit (harness.ino), as PlatformIO compiles them."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.ino import convert, sketch_files, sketch_unit
from harness.project import firmware_root

_LINE = re.compile(r'#line (\d+) "(.*)"$')
_MARK = re.compile(r"// @(\d+):(\d+)$")

RETURNS = ["void", "int", "unsigned long", "const char*", "bool", "static int", "char *",
           "void ICACHE_RAM_ATTR"]
ARGS = ["", "int a", "const char* s, size_t n", "unsigned long since", "int& ref", "float *v"]


@dataclass
class Item:
    """Lines of one file-scope construct, and what it means for the prototypes."""

    lines: list[str]
    prototype: str | None = None  # a definition that wants this prototype
    declares: str | None = None  # a declaration of this prototype
    mentions: str | None = None  # names this function at file scope, before it may be defined
    defines: str | None = None  # the line that opens a function body at file scope


def _proto(ret: str, name: str, args: str) -> str:
    return " ".join(f"{ret} {name}({args})".split())


@st.composite
def sketches(draw: st.DrawFn) -> tuple[list[list[Item]], list[str]]:
    """Files of file-scope items (the first holds setup() and loop()), and the file names."""
    counter = iter(range(10_000))
    functions: list[str] = []
    items: list[Item] = [
        Item(["void setup() {", "  Serial.begin(115200);", "}"], "void setup()",
             defines="void setup() {"),
        Item(["void loop() { }"], "void loop()", defines="void loop() { }"),
    ]

    def one(kind: str) -> Item:
        n = next(counter)
        ret, args = draw(st.sampled_from(RETURNS)), draw(st.sampled_from(ARGS))
        name = f"f{n}"
        if kind == "function":
            functions.append(name)
            body = draw(st.sampled_from([
                ["  return;"], ['  const char* t = "} { void g() {";', "  (void)t;"],
                ["  char c = '{';", "  (void)c; // }"], ["  if (true) { while (false) { } }"],
                ["  /* } */", "  other();"],
            ]))
            head = f"{ret} {name}({args}) {{"
            return Item([head, *body, "}"], _proto(ret, name, args), defines=head)
        if kind == "defaulted":
            head = f"void {name}(int x = 3) {{ (void)x; }}"
            return Item([head], defines=head)
        if kind == "declared":
            proto = _proto(ret, name, args)
            head = f"{ret} {name}({args}) {{ }}"
            return Item([f"{proto};", head], declares=proto, defines=head)
        if kind == "pointer" and functions:
            target = draw(st.sampled_from(functions))
            return Item([f"auto p{n} = &{target};"], mentions=target)
        if kind == "struct":
            return Item([f"struct S{n} {{", "  int count;", "  void method() { }", "};"])
        if kind == "comment":
            return Item(["/* void hidden() {", "   } */"])
        if kind == "directive":
            return Item([f"#define M{n}(x) {{ x }}"])
        return Item([f"int g{n} = {n};", f'const char* s{n} = "void fake() {{";'])

    kinds = st.sampled_from(["function", "function", "defaulted", "declared", "pointer",
                             "struct", "comment", "directive", "global"])
    items += [one(k) for k in draw(st.lists(kinds, max_size=12))]
    # Pointers go before the function they name: the prototypes must precede them.
    order = draw(st.permutations(range(len(items))))
    shuffled = [items[i] for i in order]
    cuts = sorted(draw(st.lists(st.integers(1, max(1, len(shuffled) - 1)), max_size=2)))
    files = [shuffled[a:b] for a, b in zip([0, *cuts], [*cuts, len(shuffled)], strict=True)]
    files = [f for f in files if f]
    names = draw(st.permutations([f"{c}.ino" for c in "abc"[: len(files)]]))
    return files, list(names)


def _render(files: list[list[Item]]) -> list[str]:
    """Each file's text; every line ends in a marker ``// @file:line``."""
    texts = []
    for i, items in enumerate(files):
        lines = [line for item in items for line in item.lines]
        texts.append("".join(f"{line} // @{i}:{k}\n" for k, line in enumerate(lines, 1)))
    return texts


def _positions(unit: str) -> list[tuple[str, int, str]]:
    """(file, line, text) of each line of ``unit`` as the compiler counts them."""
    where, number = "<unit>", 1
    out = []
    for text in unit.splitlines():
        m = _LINE.match(text)
        if m:
            where, number = m[2], int(m[1])
            continue
        out.append((where, number, text))
        number += 1
    return out


@given(sketches())
def test_every_line_keeps_its_file_and_number(sketch: tuple[list[list[Item]], list[str]]) -> None:
    files, names = sketch
    texts = _render(files)
    unit = convert(list(zip(names, texts, strict=True)))
    seen = 0
    for where, number, text in _positions(unit):
        m = _MARK.search(text)
        if m:
            seen += 1
            assert (where, number) == (names[int(m[1])], int(m[2])), text
    assert seen == sum(t.count("\n") for t in texts)


@given(sketches())
def test_each_defined_function_gets_one_prototype_before_any_use(
    sketch: tuple[list[list[Item]], list[str]],
) -> None:
    files, names = sketch
    items = [item for f in files for item in f]
    declared = {item.declares for item in items if item.declares}
    wanted = {item.prototype for item in items if item.prototype} - declared
    unit = convert(list(zip(names, _render(files), strict=True)))
    lines = unit.splitlines()
    added = [(k, line) for k, line in enumerate(lines)
             if line.endswith(";") and not _MARK.search(line)]
    assert sorted(line[:-1] for _, line in added) == sorted(wanted)
    if not added:
        return
    block = added[0][0]
    assert [k for k, _ in added] == list(range(block, block + len(added)))
    heads = {item.defines for item in items if item.defines}
    assert block < min(k for k, line in enumerate(lines) if line.split(" // @")[0] in heads)
    for item in items:
        if item.mentions:
            at = next(k for k, line in enumerate(lines) if line.startswith(item.lines[0]))
            assert block < at, item.lines[0]


def test_the_main_file_first_and_nothing_below_src(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.ino").write_text("void deep() {}\n")
    (tmp_path / "a_helpers.ino").write_text("int twice(int x) { return 2 * x; }\n")
    (tmp_path / "b.pde").write_text("void b() {}\n")
    (tmp_path / "node.ino").write_text("// void setup() {} in a comment is not it\n"
                                       "void setup() {}\nvoid loop() {}\n")
    assert [p.name for p in sketch_files(tmp_path)] == ["node.ino", "a_helpers.ino", "b.pde"]
    out = sketch_unit(tmp_path, tmp_path / "out")
    assert out is not None and out.name == "node.ino.cpp"
    assert sketch_unit(tmp_path, tmp_path / "out") == out  # the same text, the same file
    assert sketch_unit(tmp_path / "sub" / "none", tmp_path / "out") is None


def test_a_sketch_that_is_not_utf8_keeps_its_bytes(tmp_path: Path) -> None:
    (tmp_path / "main.ino").write_bytes(b'const char* s = "caf\xe9";\nvoid setup() {}\n')
    out = sketch_unit(tmp_path, tmp_path / "out")
    assert out is not None and b'"caf\xe9"' in out.read_bytes()


SKETCH = """\
#include <Ticker.h>

Ticker ticker;
void (*on_tick)() = &blink;  // names blink before its definition

void setup() {
  pinMode(LED_BUILTIN, OUTPUT);
  ticker.attach_ms(500, on_tick);
  Serial.println(label(3));
}

void loop() {}
"""

HELPERS = """\
const char* label(int n) { return n > 2 ? "many" : "few"; }
void blink() { digitalWrite(LED_BUILTIN, !digitalRead(LED_BUILTIN)); }
"""


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_the_unit_compiles_against_the_shim_and_errors_name_the_ino(tmp_path: Path) -> None:
    (tmp_path / "node.ino").write_text(SKETCH)
    (tmp_path / "helpers.ino").write_text(HELPERS)
    out = sketch_unit(tmp_path, tmp_path / "out")
    assert out is not None
    cmd = ["g++", "-std=c++17", "-fsyntax-only", f"-I{firmware_root() / 'sim'}", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    (tmp_path / "helpers.ino").write_text(HELPERS + "void broken() { undefined_call(); }\n")
    out = sketch_unit(tmp_path, tmp_path / "out")
    assert out is not None
    done = subprocess.run([*cmd[:-1], str(out)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode != 0
    assert f"{tmp_path / 'helpers.ino'}:3:" in done.stderr, done.stderr
