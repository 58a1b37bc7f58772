"""The ESP8266 size accounting (harness/size.py) and the real-target compile (harness/xtensa.py).

The accounting is tested on small synthetic ``readelf`` outputs; one test compiles a tiny
project with Debian's xtensa-lx106 compiler against the core snapshot and skips, saying
why, when they are not installed (tools/ci_xtensa.sh installs them).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import size, xtensa
from harness.project import ProjectError, load_project

MINIMAL_INI = ("[env:nodemcuv2]\nplatform = espressif8266\nboard = nodemcuv2\n"
               "framework = arduino\n")

READELF = """\
There are 9 section headers, starting at offset 0x400:

Section Headers:
  [Nr] Name              Type            Addr     Off    Size   ES Flg Lk Inf Al
  [ 0]                   NULL            00000000 000000 000000 00      0   0  0
  [ 1] .group            GROUP           00000000 000034 00000c 04      8   5  4
  [ 2] .text.loop        PROGBITS        00000000 000040 000100 00  AX  0   0  4
  [ 3] .bss._ZN12_GLOBAL__N_13bufE NOBITS          00000000 000140 001000 00  WA  0   0  4
  [ 4] .rodata.str1.1    PROGBITS        00000000 000140 000020 01 AMS  0   0  1
  [ 5] .text._Z3fooi     PROGBITS        00000000 000160 000040 00 AXG  0   0  4
  [ 6] .bss._Z3barE      NOBITS          00000000 0001a0 000010 00 WAG  0   0  4
  [ 7] .debug_info       PROGBITS        00000000 0001a0 000300 00      0   0  1
  [ 8] .symtab           SYMTAB          00000000 0004a0 000100 10      9  10  4

COMDAT group section [    1] `.group' [_Z3fooi] contains 2 sections:
   [Index]    Name
   [    5]   .text._Z3fooi
   [    6]   .bss._Z3barE

"""


def test_parse_readelf_keeps_allocated_sections_and_their_group() -> None:
    sections = size.parse_readelf(READELF)
    assert [(s.name, s.size, s.group) for s in sections] == [
        (".text.loop", 0x100, None),
        (".bss._ZN12_GLOBAL__N_13bufE", 0x1000, None),
        (".rodata.str1.1", 0x20, None),
        (".text._Z3fooi", 0x40, "_Z3fooi"),
        (".bss._Z3barE", 0x10, "_Z3fooi"),
    ]


@pytest.mark.parametrize(("section", "region"), [
    (".bss._ZN12_GLOBAL__N_14echoE", "bss"),
    (".data.counter", "data"),
    (".rodata.str1.1", "rodata"),  # strings not marked PROGMEM cost RAM
    (".rodata._ZL6kTable", "rodata"),
    (".rodata._ZTV11WiFiSocketT", "flash"),  # vtables (VTABLES_IN_FLASH)
    (".rodata._ZZ4loopE8__func__", "flash"),
    (".irom.text.main.cpp.12.3", "flash"),  # PROGMEM
    (".text.loop", "flash"),
    (".literal.loop", "flash"),
    (".iram.text.main.cpp.40.1", "iram"),  # IRAM_ATTR
    (".text._ZNKSt8functionIFvvEEclEv", "iram"),  # std::function's call operator
    (".init_array", "rodata"),
    (".xt.prop.loop", None),
])
def test_region_of_follows_the_linker_script(section: str, region: str | None) -> None:
    assert size.region_of(section) == region


def test_account_counts_a_comdat_group_once() -> None:
    sections = size.parse_readelf(READELF)
    first, second = size.account([("a.cpp", sections), ("b.cpp", sections)])
    assert first.regions == {"data": 0, "rodata": 0x20, "bss": 0x1010, "iram": 0,
                             "flash": 0x140}
    assert second.regions == {"data": 0, "rodata": 0x20, "bss": 0x1000, "iram": 0,
                              "flash": 0x100}
    assert first.ram == 0x1030
    assert first.ram_sections[0] == (".bss._ZN12_GLOBAL__N_13bufE", 0x1000)
    assert size.totals([first, second])["ram"] == 0x1030 + 0x1020


_sections = st.lists(st.tuples(st.sampled_from([".bss.x", ".rodata.y", ".text.z", ".data.w"]),
                               st.integers(0, 5000), st.sampled_from([None, "g1", "g2"])),
                     max_size=8)


@given(st.lists(_sections, min_size=1, max_size=5))
def test_a_group_counts_once_whatever_objects_share_it(objects: list) -> None:
    parsed = [(f"o{i}.cpp", [size.Section(n, s, g) for n, s, g in secs])
              for i, secs in enumerate(objects)]
    figures = size.account(parsed)
    # Expected: ungrouped sections everywhere, and each group's sections from its first object.
    expected = 0
    owner: dict[str, int] = {}
    for i, (_name, secs) in enumerate(parsed):
        for sec in secs:
            if sec.group is None or owner.setdefault(sec.group, i) == i:
                expected += sec.size
    tot = size.totals(figures)
    assert sum(tot[r] for r in size.REGIONS) == expected


def test_over_budget_names_the_total_and_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"budget": {"ram": 100, "iram": 0, "flash": 10}}))
    budget = size.load_budget(path)
    tot = {"ram": 101, "iram": 0, "flash": 10}
    assert size.over_budget(tot, budget) == ["static RAM 101 bytes > budget 100"]
    assert size.over_budget({"ram": 100, "iram": 0, "flash": 10}, budget) == []


@pytest.mark.parametrize("doc", ["{", "[]", '{"budget": {"ram": 1}}',
                                 '{"budget": {"ram": -1, "iram": 0, "flash": 0}}',
                                 '{"budget": {"ram": true, "iram": 0, "flash": 0}}'])
def test_a_bad_budget_file_is_one_error(tmp_path: Path, doc: str) -> None:
    path = tmp_path / "b.json"
    path.write_text(doc)
    with pytest.raises(ValueError, match=r"b\.json"):
        size.load_budget(path)


def test_cli_bad_budget_exits_2_with_one_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "b.json"
    path.write_text("{}")
    assert size.main([str(tmp_path), "--budget", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("esp-hil size: ") and "\n" not in err


def test_diagnostics_are_ours_only_inside_the_project(tmp_path: Path) -> None:
    core = "/opt/core/cores/esp8266/Arduino.h"
    out = (f"In file included from {tmp_path}/src/main.cpp:1:\n"
           f"{core}:10:5: warning: unused parameter 'x' [-Wunused-parameter]\n"
           "   10 |   int x;\n"
           f"{tmp_path}/src/main.cpp:3:9: warning: unused variable 'y' [-Wunused-variable]\n"
           "    3 |     int y;\n")
    found = xtensa.parse_diagnostics(out, [tmp_path])
    assert [(d.kind, d.ours) for d in found] == [("warning", False), ("warning", True)]
    assert "In file included from" in found[0].text and "int y;" in found[1].text


def test_project_flags_apply_unflags_and_drop_comments(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "platformio.ini").write_text(
        "[platformio]\ndefault_envs = b\n"
        "[env]\nbuild_unflags = -std=gnu++17\n"
        "build_flags =\n    -std=gnu++17\n    ; a comment\n    -DX=1 -Wl,--gc\n"
        "[env:b]\nbuild_flags = ${env.build_flags} -DY\n"
        "[env:c]\n")
    assert xtensa.project_flags(load_project(tmp_path)) == ["-DX=1", "-DY"]
    assert xtensa.project_flags(load_project(tmp_path, "c")) == ["-DX=1"]


def test_an_envs_build_flags_override_envs_and_extends_is_followed(tmp_path: Path) -> None:
    # PlatformIO's rule: [env:X]'s own value replaces [env]'s (it is not added to it).
    (tmp_path / "src").mkdir()
    (tmp_path / "platformio.ini").write_text(
        "[env]\nbuild_flags = -DBASE -Wall\n"
        "[env:own]\nbuild_flags = -DOWN\n"
        "[env:inherit]\n"
        "[common]\nbuild_flags = -DCOMMON\n"
        "[env:child]\nextends = common\n")
    assert xtensa.project_flags(load_project(tmp_path)) == ["-DOWN"]  # the first env
    assert xtensa.project_flags(load_project(tmp_path, "inherit")) == ["-DBASE", "-Wall"]
    assert xtensa.project_flags(load_project(tmp_path, "child")) == ["-DCOMMON"]


@pytest.mark.parametrize(("setup", "message"), [
    ("unknown-env", "no environment 'typo' in platformio.ini (it has a)"),
    ("no-ini", "no platformio.ini (not a PlatformIO project)"),
    ("garbage", "platformio.ini cannot be read"),
])
def test_a_project_size_cannot_use_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: str, message: str
) -> None:
    # Before any toolchain is needed: the project is read first.
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.cpp").write_text("void setup() {}\n")
    if setup != "no-ini":
        ini = "[env:a]\n" if setup == "unknown-env" else "not an ini line\n"
        (tmp_path / "platformio.ini").write_text(ini)
    args = [str(tmp_path), "--no-budget", *(["--env", "typo"] if setup == "unknown-env" else [])]
    with pytest.raises(ProjectError):
        xtensa.build(tmp_path, "nodemcu", tmp_path / "out", env="typo")
    assert size.main(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("esp-hil size: project ") and message in line


def test_unknown_board_is_one_error() -> None:
    with pytest.raises(xtensa.XtensaError, match="unknown board 'uno'"):
        xtensa.board_for("uno")
    assert xtensa.board_for("nodemcuv2").variant == "nodemcu"


def _toolchain_or_skip() -> None:
    missing = xtensa.missing_packages()
    if missing:
        pytest.skip(f"needs Debian package(s) {' '.join(missing)} (tools/ci_xtensa.sh "
                    "installs them)")
    try:
        xtensa.find_core()
        xtensa.find_newlib()
    except xtensa.XtensaError as exc:
        pytest.skip(str(exc))


SKETCH = """#include <Arduino.h>
#include <ESP8266WiFi.h>
#include <functional>
uint8_t scratch[1000];
static const char kGreeting[] PROGMEM = "hello from flash";
void setup() {
  Serial.begin(115200);
  Serial.println(FPSTR(kGreeting));
  WiFi.mode(WIFI_STA);
  scratch[0] = 1;
}
void loop() { Serial.write(scratch, sizeof scratch); }
"""


@pytest.mark.timeout(1200)
def test_real_compile_of_a_tiny_sketch(tmp_path: Path) -> None:
    _toolchain_or_skip()
    (tmp_path / "platformio.ini").write_text(MINIMAL_INI)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.cpp").write_text(SKETCH)
    result = size.size_project(tmp_path)
    (obj,) = result["objects"]
    assert obj.name == "src/main.cpp"
    assert obj.regions["bss"] >= 1000
    assert dict(obj.ram_sections)[".bss.scratch"] == 1000
    assert obj.regions["flash"] > 0 and obj.regions["iram"] == 0
    assert result["core_objects"], "the core's WiFi/EEPROM sources were compiled too"

    # A warning in our code fails the build, with the file named.
    (tmp_path / "src" / "main.cpp").write_text(SKETCH + "int f(int unused) { return 1; }\n")
    with pytest.raises(xtensa.XtensaError, match="unused"):
        size.size_project(tmp_path)


def test_cli_over_budget_exits_1_with_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    (tmp_path / "board-budget.json").write_text(
        json.dumps({"budget": {"ram": 10, "iram": 0, "flash": 1000}}))
    fig = size.ObjectSize("src/main.cpp")
    fig.regions["bss"] = 11

    def fake(project: Path, board: str, budget: Path | None, env: str | None) -> dict:
        limits = size.load_budget(budget) if budget else None
        tot = size.totals([fig])
        return {"project": str(project), "board": board, "objects": [fig],
                "core_objects": [], "totals": tot, "core_warnings": [], "budget": limits,
                "over": size.over_budget(tot, limits) if limits else []}

    monkeypatch.setattr(size, "size_project", fake)
    assert size.main([str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert "src/main.cpp" in out
    assert err.strip().splitlines() == [
        f"esp-hil size: over budget ({tmp_path / 'board-budget.json'}): "
        "static RAM 11 bytes > budget 10"]
    assert size.main([str(tmp_path), "--no-budget"]) == 0


def test_project_sources_are_src_and_lib_src_recursively(tmp_path: Path) -> None:
    for rel in ("src/main.cpp", "src/sub/a.cpp", "lib/L/src/x/y.cpp", "lib/L/examples/e.cpp",
                "test/t.cpp", "src/h.h"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    (tmp_path / "platformio.ini").write_text(MINIMAL_INI)
    project = load_project(tmp_path)
    found = [str(p.relative_to(tmp_path)) for p in xtensa.project_sources(project)]
    assert found == ["lib/L/src/x/y.cpp", "src/main.cpp", "src/sub/a.cpp"]


def test_lib_extra_dirs_add_libraries_named_as_project_libraries(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    for rel in ("proj/src/main.cpp", "proj/lib/Own/src/own.cpp", "shared/Ext/src/ext.cpp",
                "shared/NoSrc/flat.cpp", "shared/Own/src/shadowed.cpp"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    (project / "platformio.ini").write_text(
        "[platformio]\ndefault_envs = a\n[env]\nlib_extra_dirs = ../shared ; comment\n"
        "[env:a]\nbuild_flags = -DX=1\n")
    loaded = load_project(project)
    shared = (tmp_path / "shared").resolve()
    assert loaded.lib_extra_dirs == (shared,)
    libs = xtensa.library_dirs(loaded)
    # NoSrc is an Arduino 1.0 library (sources in its own folder); shared/Own is shadowed.
    assert [lib.root for lib in libs] == [loaded.lib_dir / "Own", shared / "Ext", shared / "NoSrc"]
    found = xtensa.project_sources(loaded, libs)
    assert sorted(xtensa._project_name(p, loaded, libs) for p in found) == [
        "lib/Ext/src/ext.cpp", "lib/NoSrc/flat.cpp", "lib/Own/src/own.cpp", "src/main.cpp"]
    assert str(shared / "Ext/src") in xtensa.project_includes(loaded, libs)


@pytest.mark.timeout(1200)
def test_esp_hil_size_measures_the_sensor_node_example(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # The example takes EspHil and WiFiSocket from ../../firmware/lib (lib_extra_dirs).
    _toolchain_or_skip()
    from harness.cli import main as cli

    example = Path(__file__).resolve().parents[2] / "examples" / "sensor-node"
    budget = tmp_path / "budget.json"
    budget.write_text(json.dumps({"budget": {"ram": 20480, "iram": 512, "flash": 131072}}))
    assert cli(["size", str(example), "--budget", str(budget), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    names = [o["name"] for o in result["objects"]]
    assert "src/main.cpp" in names and "lib/EspHil/src/EspHil.cpp" in names
    assert "lib/WiFiSocket/src/wifisocket/session.cpp" in names
    assert 0 < result["totals"]["ram"] <= 20480 and result["over"] == []


@pytest.mark.timeout(1200)
def test_esp_hil_size_builds_an_ino_sketch_and_its_installed_lib_deps(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The .ino unit the twin compiles (harness.ino) compiles for the ESP8266 as well, with
    the core's own Arduino.h, and a lib_deps library installed under .pio/libdeps counts."""
    _toolchain_or_skip()
    from harness.cli import main as cli
    from tests.helpers.projects import ino_project

    project = ino_project(tmp_path / "ino")
    assert cli(["size", str(project), "--no-budget", "--json"]) == 0
    names = [o["name"] for o in json.loads(capsys.readouterr().out)["objects"]]
    assert "src/answer.ino.cpp" in names
    assert ".pio/libdeps/plain/Answer/src/Answer.c" in names and "src/suffix.c" in names
