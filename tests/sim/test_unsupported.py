"""A sketch that uses API the twin's shim lacks fails its build with one line naming it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.sim import FirmwareBuildError, build_firmware
from harness.sim.unsupported import explain_unsupported, find_missing

SHIM = Path("/x/firmware/sim")

# g++ in a UTF-8 locale quotes with these.
L, R = "\u2018", "\u2019"
GCC_UTF8 = f"""\
/p/s.cpp: In function {L}void setup(){R}:
/p/s.cpp:4:20: error: {L}class EspClass{R} has no member named {L}deepSleep{R}; did you mean {L}x{R}
    4 |   ESP.deepSleep(1000);
      |       ^~~~~~~~~
/p/s.cpp:5:3: error: {L}tone{R} was not declared in this scope
/p/s.cpp:6:3: error: {L}tone{R} was not declared in this scope
"""
GCC_C = """\
s.cpp:3:1: error: 'WiFiUDP' does not name a type
s.cpp:9:5: error: 'foo' is not a member of 'ESP8266WiFiClass'
"""
GCC_HEADER = """\
s.cpp:2:10: fatal error: ESP8266WebServer.h: No such file or directory
    2 | #include <ESP8266WebServer.h>
compilation terminated.
"""
CLANG = """\
s.cpp:2:10: fatal error: 'ESP8266mDNS.h' file not found
s.cpp:4:7: error: no member named 'softAP' in 'ESP8266WiFiClass'
s.cpp:5:3: error: use of undeclared identifier 'tone'
s.cpp:6:3: error: unknown type name 'WiFiUDP'
"""


def names(output: str) -> list[str]:
    return [m.name for m in find_missing(output)]


def test_gcc_messages_in_either_locale() -> None:
    assert names(GCC_UTF8) == ["EspClass::deepSleep", "tone"]
    assert names(GCC_C) == ["WiFiUDP", "ESP8266WiFiClass::foo"]
    assert names(GCC_HEADER) == ["<ESP8266WebServer.h>"]


def test_clang_messages() -> None:
    assert names(CLANG) == ["<ESP8266mDNS.h>", "ESP8266WiFiClass::softAP", "tone", "WiFiUDP"]


def test_one_line_names_it_and_the_shim() -> None:
    line = explain_unsupported(GCC_UTF8, SHIM)
    assert line is not None and "\n" not in line
    assert line.startswith("/p/s.cpp:4: EspClass::deepSleep is not available on the twin")
    assert "also missing: tone" in line
    assert "/x/firmware/sim/" in line and "README.md" in line


def test_a_genuine_error_keeps_the_compiler_output() -> None:
    # The first error is the sketch's own: later "not declared" lines follow from it.
    output = "s.cpp:3:9: error: expected ';' before 'x'\n" + GCC_C
    assert explain_unsupported(output, SHIM) is None
    assert explain_unsupported("", SHIM) is None
    assert explain_unsupported("/usr/bin/ld: cannot find -lfoo\n", SHIM) is None


@given(
    name=st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,30}", fullmatch=True),
    quotes=st.sampled_from([("'", "'"), (L, R)]),
    line=st.integers(min_value=1, max_value=99999),
)
def test_any_undeclared_name_is_named(name: str, quotes: tuple[str, str], line: int) -> None:
    o, c = quotes
    output = f"dir/s.cpp:{line}:3: error: {o}{name}{c} was not declared in this scope\n"
    [missing] = find_missing(output)
    assert (missing.name, missing.file, missing.line) == (name, "dir/s.cpp", line)


# --------------------------------------------------------------------- real builds


def build_error(tmp_path: Path, source: str) -> str:
    sketch = tmp_path / "sketch.cpp"
    sketch.write_text(source)
    with pytest.raises(FirmwareBuildError) as info:
        build_firmware(sketch=sketch)
    return str(info.value)


@pytest.mark.twin
def test_build_with_a_missing_member(tmp_path: Path) -> None:
    message = build_error(
        tmp_path,
        "#include <Arduino.h>\nvoid setup() {\n  ESP.getVcc();\n}\nvoid loop() {}\n",
    )
    assert "\n" not in message
    assert "sketch.cpp:3: EspClass::getVcc is not available on the twin" in message
    assert "firmware/sim/" in message and "README.md" in message


@pytest.mark.twin
def test_build_with_a_missing_header(tmp_path: Path) -> None:
    message = build_error(
        tmp_path,
        "#include <Arduino.h>\n#include <WiFiClientSecure.h>\n"
        "BearSSL::WiFiClientSecure tls;\nvoid setup() { tls.setInsecure(); }\nvoid loop() {}\n",
    )
    assert "\n" not in message
    assert "sketch.cpp:2: #include <WiFiClientSecure.h> is not available on the twin" in message
    assert "firmware/sim/" in message


@pytest.mark.twin
def test_build_with_a_syntax_error_shows_the_compiler(tmp_path: Path) -> None:
    source = "#include <Arduino.h>\nvoid setup() { int x = }\nvoid loop() {}\n"
    message = build_error(tmp_path, source)
    assert "failed:" in message and "error:" in message
