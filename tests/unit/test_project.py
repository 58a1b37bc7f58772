"""harness.project: a user's PlatformIO project as esp-hil builds it (--project, --pio-env)."""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import backends
from harness.device.errors import DeviceError
from harness.device.options import DeviceOptions
from harness.project import (
    Library,
    ProjectError,
    firmware_root,
    lib_dep_name,
    load_project,
    used_libraries,
)

ROOT = Path(__file__).resolve().parents[2]


def _project(tmp_path: Path, ini: str, *, src: bool = True) -> Path:
    (tmp_path / "platformio.ini").write_text(textwrap.dedent(ini))
    if src:
        (tmp_path / "src").mkdir()
        (tmp_path / "src" / "main.cpp").write_text("void setup() {}\nvoid loop() {}\n")
    return tmp_path


INI = """\
    ; a comment
    [platformio]
    default_envs = second

    [common]
    flags = -DFROM_COMMON=1

    [env]
    framework = arduino
    build_flags =
        -Wall
        -DBASE=1  ; inline comment

    [env:first]
    board = nodemcuv2

    [env:second]
    build_flags =
        ${env.build_flags}
        ${common.flags}
        -D SPACED=2
        -DHOST=\\"192.168.1.10\\"
        -DPATH='"a b"'

    [env:child]
    extends = env:second
    board = d1_mini
"""


def test_default_env_inheritance_and_interpolation(tmp_path: Path) -> None:
    project = load_project(_project(tmp_path, INI))
    assert project.env == "second"
    assert project.root == tmp_path.resolve()
    assert project.defines == (
        "-DBASE=1",
        "-DFROM_COMMON=1",
        "-DSPACED=2",
        '-DHOST="192.168.1.10"',
        '-DPATH="a b"',
    )
    assert load_project(tmp_path, "first").defines == ("-DBASE=1",)  # [env] inherited
    assert load_project(tmp_path, "child").defines == project.defines  # extends followed


def test_an_envs_own_options_replace_envs_and_extra_dirs_resolve(tmp_path: Path) -> None:
    _project(tmp_path, """\
        [env]
        build_flags = -DBASE -Wall
        build_unflags = -Os
        lib_extra_dirs = ../shared, ~/libs
        [env:own]
        build_flags = -DOWN -I"a b"
        lib_extra_dirs =
            extra
        [env:inherit]
        """)
    own = load_project(tmp_path, "own")
    assert (own.build_flags, own.build_unflags) == (("-DOWN", "-Ia b"), ("-Os",))
    assert own.lib_extra_dirs == ((tmp_path / "extra").resolve(),)
    inherit = load_project(tmp_path, "inherit")
    assert inherit.build_flags == ("-DBASE", "-Wall")
    assert inherit.lib_extra_dirs == ((tmp_path.parent / "shared").resolve(),
                                      (Path.home() / "libs").resolve())


def test_without_default_envs_the_first_env(tmp_path: Path) -> None:
    _project(tmp_path, "[env:b]\nbuild_flags = -DX\n[env:a]\n")
    assert load_project(tmp_path).env == "b"
    assert load_project(tmp_path).defines == ("-DX",)


def test_the_example_and_the_test_firmware() -> None:
    listen = load_project(ROOT / "examples" / "sensor-node")
    assert (listen.env, listen.defines) == ("listen", ("-DSENSOR_PORT=8080",))
    dial = load_project(ROOT / "examples" / "sensor-node", "dial")
    assert '-DSENSOR_DIAL_HOST="192.168.1.10"' in dial.defines
    assert load_project(firmware_root()).env == "nodemcuv2"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "no such directory"),
        ("no-ini", "no platformio.ini"),
        ("no-src", "no src/ directory"),
        ("no-env", r"has no \[env:NAME\] section"),
        ("bad-env", "no environment 'nope' in platformio.ini \\(it has a\\)"),
        ("loop", "'extends' loops"),
        ("garbage", "cannot be read"),
    ],
)
def test_a_project_that_cannot_be_used_is_one_line(
    tmp_path: Path, setup: str, message: str
) -> None:
    path, env = tmp_path / "p", None
    if setup != "missing":
        path.mkdir()
    if setup == "no-src":
        _project(path, "[env:a]\n", src=False)
    elif setup == "no-env":
        _project(path, "[platformio]\n")
    elif setup == "bad-env":
        _project(path, "[env:a]\n")
        env = "nope"
    elif setup == "loop":
        _project(path, "[env:a]\nextends = env:b\n[env:b]\nextends = env:a\n")
    elif setup == "garbage":
        _project(path, "not an ini line\n")
    with pytest.raises(ProjectError, match=message) as caught:
        load_project(path, env)
    assert "\n" not in str(caught.value)


_NAME = st.from_regex(r"[A-Z_][A-Z0-9_]{0,15}", fullmatch=True)
_VALUE = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=12)


@given(st.lists(st.tuples(_NAME, _VALUE), max_size=6), st.booleans())
def test_every_define_reaches_the_compiler_as_written(
    defines: list[tuple[str, str]], spaced: bool
) -> None:
    from harness.project import _defines, _words

    words = []
    for name, value in defines:
        word = f"{name}={value}" if value else name
        words += ["-D", word] if spaced else [f"-D{word}"]
    flags = shlex.join(["-Wall", *words, "-Os"])
    expected = [f"-D{name}={value}" if value else f"-D{name}" for name, value in defines]
    assert _defines(_words([flags], "build_flags")) == expected


def test_a_board_builds_the_project_with_esp_hils_libraries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "p").mkdir()
    project = _project(tmp_path / "p", INI)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pio = bin_dir / "pio"
    record = tmp_path / "pio-run"
    pio.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "--version" ]; then exit 0; fi\n'
        f'echo "$* | $PLATFORMIO_LIB_EXTRA_DIRS" > "{record}"\n'
        'mkdir -p "$3/.pio/build/$5" && printf "\\351image" > "$3/.pio/build/$5/firmware.bin"\n'
    )
    pio.chmod(pio.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("PLATFORMIO_LIB_EXTRA_DIRS", raising=False)
    opts = DeviceOptions(spec="/dev/ttyUSB7", project=project, pio_env="first")
    assert backends.firmware_image(opts) == b"\xe9image"
    args, libs = record.read_text().strip().split(" | ")
    assert args == f"run -d {project.resolve()} -e first"
    assert Path(libs) == firmware_root() / "lib"
    assert (Path(libs) / "EspHil" / "src" / "EspHil.h").is_file()


def test_a_board_build_with_a_missing_project_is_a_device_error(tmp_path: Path) -> None:
    opts = DeviceOptions(spec="/dev/ttyUSB7", project=tmp_path / "none")
    with pytest.raises(DeviceError, match="no such directory"):
        backends.firmware_image(opts)


def _files(root: Path, *rels: str) -> None:
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("")


def test_libraries_of_lib_extra_dirs_and_installed_lib_deps_laid_out_as_platformio_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PLATFORMIO_LIBDEPS_DIR", raising=False)
    monkeypatch.delenv("PLATFORMIO_WORKSPACE_DIR", raising=False)
    (tmp_path / "p").mkdir()
    root = _project(tmp_path / "p", """\
        [env:node]
        lib_extra_dirs = ../shared
        lib_deps =
            bblanchon/ArduinoJson@^7.0.0
            https://github.com/knolleary/pubsubclient.git#v2.8, Wanted @ 1.2
    """)
    _files(tmp_path, "p/lib/Own/src/own.cpp", "p/lib/Own/src/own.h", "p/lib/Own/examples/e/e.cpp",
           "p/lib/Own/src/tests/t.cpp", "p/lib/Own/include/api.h",
           "shared/Flat/flat.cpp", "shared/Flat/flat.h", "shared/Flat/utility/u.cpp",
           "shared/Flat/examples/x/x.cpp", "shared/own/src/shadowed.cpp",
           "p/.pio/libdeps/node/ArduinoJson/src/ArduinoJson.h",
           "p/.pio/libdeps/node/PubSubClient/src/PubSubClient.cpp",
           "p/.pio/libdeps/other/Wanted/src/w.cpp")
    project = load_project(root)
    libs = project.libraries()
    assert [lib.name for lib in libs] == ["Own", "Flat", "ArduinoJson", "PubSubClient"]
    own, flat = libs[0], libs[1]
    assert own.files((".cpp",)) == [root / "lib/Own/src/own.cpp"]
    assert own.include_dirs == [root / "lib/Own/src", root / "lib/Own/include"]
    assert own.files((".h",)) == [root / "lib/Own/include/api.h", root / "lib/Own/src/own.h"]
    shared = (tmp_path / "shared").resolve()
    assert flat.files((".cpp",)) == [shared / "Flat/flat.cpp", shared / "Flat/utility/u.cpp"]
    assert flat.include_dirs == [shared / "Flat", shared / "Flat/utility"]
    # Another env's installed libraries are not this env's.
    assert project.missing_lib_deps() == ["Wanted @ 1.2"]
    monkeypatch.setenv("PLATFORMIO_LIBDEPS_DIR", "elsewhere")
    assert load_project(root).libdeps_dir == root / "elsewhere" / "node"


@pytest.mark.parametrize(("spec", "name"), [
    ("ArduinoJson", "ArduinoJson"),
    ("bblanchon/ArduinoJson@^7.0.0", "ArduinoJson"),
    ("Adafruit BME280 Library @ 2.2.4", "Adafruit BME280 Library"),
    ("https://github.com/knolleary/pubsubclient.git#v2.8", "pubsubclient"),
    ("https://github.com/me/lib.git", "lib"),
    ("symlink://../shared/Mine", "Mine"),
])
def test_the_library_a_lib_deps_entry_names(spec: str, name: str) -> None:
    assert lib_dep_name(spec) == name


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_used_libraries_follow_the_preprocessor_through_libraries_and_symlinks(
    tmp_path: Path,
) -> None:
    def lib(root: Path, name: str, source: str) -> Library:
        (root / name / "src").mkdir(parents=True)
        # Distinct texts: gcc takes two identical "#pragma once" headers for one file.
        (root / name / "src" / f"{name}.h").write_text(f"#pragma once\n// {name}\n{source}")
        (root / name / "src" / f"{name}.cpp").write_text(f'#include "{name}.h"\n')
        return Library(root / name)

    libs = tmp_path / "libs"
    elsewhere = tmp_path / "elsewhere"
    real_a = lib(elsewhere, "A", "#include <B.h>\n")
    libs.mkdir()
    (libs / "A").symlink_to(real_a.root)  # as pio installs a symlink:// lib_deps
    a = Library(libs / "A")
    b = lib(libs, "B", "")
    unused = lib(libs, "C", "")
    board_only = lib(libs, "D", "")
    sketch = tmp_path / "main.cpp"
    sketch.write_text("#include <A.h>\n#ifndef ESP_HIL_SIM\n#include <D.h>\n#endif\n")
    everything = [a, b, unused, board_only]
    flags = [f"-I{d}" for x in everything for d in x.include_dirs]
    assert used_libraries(["g++"], [*flags, "-DESP_HIL_SIM=1"], [sketch], everything) == [a, b]
    assert used_libraries(["g++"], flags, [sketch], everything) == [a, b, board_only]
    # A preprocessor that fails leaves nothing out.
    assert used_libraries(["g++"], [*flags, "-DESP_HIL_SIM=1", "--no-such-option"], [sketch],
                          everything) == everything
