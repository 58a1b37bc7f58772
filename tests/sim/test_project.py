"""A user's PlatformIO project on the twin: its src/, its lib/, its env's defines, and errors;
and on the board path (a stand-in ``pio``, a blank twin as the board).

Also runs examples/sensor-node's own tests from this checkout (tools/ci_wheel.sh runs them
from an installed wheel, outside the checkout).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from harness.backends import open_device
from harness.device.errors import DeviceError, FirmwareCrashed
from harness.device.options import DeviceOptions
from harness.project import load_project
from harness.sim.build import FirmwareBuildError, build_firmware
from harness.sim.core.build import core_root
from tests.helpers.projects import ino_project

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
ANSWER = 5.0
_SCRATCH = shutil.ignore_patterns(".pio", ".pytest_cache", ".hypothesis")

SKETCH = """\
#include <Arduino.h>
#include <EspHil.h>
#include <WiFiSocket.h>
#include "answer.h"

WiFiSocketT<64, 512, 512> service;

void setup() {
  EspHil.begin("answer/1.0");
  service.begin(ANSWER_PORT);
  EspHil.ready(ANSWER_PORT, service.maxMessage());
}

void loop() {
  EspHil.loop();
  service.loop();
  char text[65];
  if (service.receive(text) < 0) return;
  service.send(answer());
}
"""

INI = """\
[platformio]
default_envs = plain

[env]
framework = arduino
build_flags = -DANSWER_PORT=7001

[env:plain]

[env:tuned]
build_flags =
    -DANSWER_PORT=7002
    -DANSWER_TEXT=\\"tuned\\"
"""


def _answer_project(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src" / "main.cpp").write_text(SKETCH)
    lib = root / "lib" / "Answer" / "src"
    lib.mkdir(parents=True)
    (lib / "answer.h").write_text("#pragma once\nconst char* answer();\n")
    (lib / "answer.cpp").write_text(
        '#include "answer.h"\n#ifndef ANSWER_TEXT\n#define ANSWER_TEXT "plain"\n#endif\n'
        "const char* answer() { return ANSWER_TEXT; }\n"
    )
    (root / "platformio.ini").write_text(INI)
    return root


@pytest.mark.parametrize(("env", "port", "text"), [(None, 7001, "plain"), ("tuned", 7002, "tuned")])
def test_the_project_its_library_and_its_env_defines_run_on_the_twin(
    tmp_path: Path, env: str | None, port: int, text: str
) -> None:
    project = _answer_project(tmp_path / "answer")
    opts = DeviceOptions(spec="sim-direct", project=project, pio_env=env)
    with open_device(opts) as dev:
        assert dev.port == port and dev.fw.startswith("answer/1.0+")
        assert dev.ctrl_port == 0
        with dev.connect(timeout=ANSWER) as link:
            link.send("?")
            assert link.receive(timeout=ANSWER) == text
        with pytest.raises(DeviceError, match="needs esp-hil's test firmware"):
            dev.control("info")
        assert dev.info()["fw"] == dev.fw  # the agent's console `info`


def test_a_sketch_that_dials_has_no_port_to_connect_to() -> None:
    example = ROOT / "examples" / "sensor-node"
    opts = DeviceOptions(spec="sim-direct", project=example, pio_env="dial")
    dials = r"listens on no port: it dials 192\.168\.1\.10:9000"
    with open_device(opts) as dev, pytest.raises(DeviceError, match=dials):
        dev.connect()


@pytest.mark.parametrize(("spec", "bug", "reason"), [
    ("sim", "*(volatile int*)nullptr = 1;", "Exception (29)"),
    ("sim-direct", "while (true) {}", "Soft WDT reset"),
])
def test_a_sketch_that_crashes_while_booting_fails_bring_up_with_the_reason(
    tmp_path: Path, spec: str, bug: str, reason: str
) -> None:
    """A boot loop ends the wait for READY at the second crash report, not at its timeout,
    and names the crash in one line; over RFC2217 the console survives the resets."""
    project = _answer_project(tmp_path / "answer")
    (project / "src" / "main.cpp").write_text(
        SKETCH.replace("  service.begin(", f"  {bug}\n  service.begin(")
    )
    with pytest.raises(FirmwareCrashed) as crash:
        open_device(DeviceOptions(spec=spec, project=project)).close()
    first = str(crash.value).splitlines()[0]
    assert first == (f"the firmware crashed 2 times while booting (a boot loop): {reason}; "
                     "its report is in the console tail")
    assert ">>>stack>>>" in crash.value.console_tail


def test_a_sketch_whose_process_dies_fails_bring_up_at_once_with_how(tmp_path: Path) -> None:
    """A firmware that dies without a reset halts the twin's chip (no board does that): the
    wait for READY ends at once with how it died, not at its timeout."""
    project = _answer_project(tmp_path / "answer")
    dies = SKETCH.replace("  service.begin(", "  _exit(7);\n  service.begin(")
    (project / "src" / "main.cpp").write_text("#include <unistd.h>\n" + dies)
    with pytest.raises(DeviceError) as died:
        open_device(DeviceOptions(spec="sim", project=project)).close()
    assert str(died.value).splitlines()[0].startswith(
        "the twin's firmware died (exit code 7) and the chip halted; a reset boots it again")


_NO_CORE = not (core_root() / "tests" / "host" / "Makefile").is_file()


@pytest.mark.parametrize("spec", [
    "sim-direct",
    pytest.param("sim-core", marks=pytest.mark.skipif(_NO_CORE, reason="no ESP8266 core")),
])
def test_an_ino_sketch_with_installed_lib_deps_runs_on_the_twin(tmp_path: Path, spec: str) -> None:
    """On the shim and on the core's own Arduino.h alike."""
    project = ino_project(tmp_path / "ino")
    with (open_device(DeviceOptions(spec=spec, project=project)) as dev,
          dev.connect(timeout=ANSWER) as link):
        link.send("why")
        assert link.receive(timeout=ANSWER) == "42:why!"


def test_a_header_of_lib_deps_not_installed_says_how_to_install_them(tmp_path: Path) -> None:
    project = ino_project(tmp_path / "ino")
    shutil.rmtree(project / ".pio")
    with pytest.raises(FirmwareBuildError) as failed:
        build_firmware(project=load_project(project))
    line = str(failed.value)
    assert "\n" not in line
    assert line.startswith(f"{project / 'src' / 'answer.ino'}:4: #include <Answer.h> is not "
                           "available on the twin: lib_deps lists someone/Answer@^1.0, not "
                           f"installed in {project / '.pio' / 'libdeps' / 'plain'}"), line
    assert "`pio pkg install -e plain`" in line


def test_only_the_libraries_the_sketch_includes_on_the_twin_are_built(tmp_path: Path) -> None:
    """As PlatformIO's dependency finder, with the twin's defines: a library included only
    for the board (#ifndef ESP_HIL_SIM), or not at all, is not compiled; one included by
    a library that is, is."""
    project = ino_project(tmp_path / "ino")
    libdeps = project / ".pio" / "libdeps" / "plain"
    for name, source in [
        ("BoardOnly", "#error this library needs the ESP8266 SDK\n"),
        ("Unused", "#error nothing includes this library\n"),
        ("Base", '#include "Base.h"\nint base_value() { return 7; }\n'),
        ("Wrapper", '#include "Wrapper.h"\n#include <Base.h>\n'
                    "int wrapped() { return base_value() * 6; }\n"),
    ]:
        (libdeps / name / "src").mkdir(parents=True)
        (libdeps / name / "src" / f"{name}.cpp").write_text(source)
        (libdeps / name / "src" / f"{name}.h").write_text("#pragma once\n")
    (libdeps / "Base" / "src" / "Base.h").write_text("#pragma once\nint base_value();\n")
    (libdeps / "Wrapper" / "src" / "Wrapper.h").write_text("#pragma once\nint wrapped();\n")
    main = project / "src" / "answer.ino"
    sketch = main.read_text().replace("decorated(text)", 'wrapped() == 42 ? decorated(text) : "?"')
    main.write_text("#ifndef ESP_HIL_SIM\n#include <BoardOnly.h>\n#endif\n#include <Wrapper.h>\n"
                    + sketch)
    with (open_device(DeviceOptions(spec="sim-direct", project=project)) as dev,
          dev.connect(timeout=ANSWER) as link):
        link.send("why")
        assert link.receive(timeout=ANSWER) == "42:why!"


@pytest.mark.usefixtures("this_checkout")
def test_an_unsupported_api_fails_the_device_fixture_in_one_line(
    pytester: pytest.Pytester,
) -> None:
    project = _answer_project(pytester.path / "fw")
    (project / "src" / "main.cpp").write_text(
        SKETCH.replace("EspHil.begin(", "tone(4, 440);\n  EspHil.begin(")
    )
    pytester.makepyfile(test_x="def test_x(device): pass")
    result = pytester.runpytest_subprocess("--device=sim-direct", "--project", "fw")
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    lines = [ln for ln in out.splitlines() if ln.startswith("the device did not come up")]
    assert len(lines) == 1, out
    assert "main.cpp:9: 'tone' is declared neither" in lines[0], lines[0]
    assert "firmware/sim" in lines[0], lines[0]
    assert "Traceback" not in out and "error:" not in out


@pytest.mark.usefixtures("this_checkout")
@pytest.mark.parametrize("name", ["sensor-node", "climate-logger"])
def test_each_example_passes_its_own_tests(pytester: pytest.Pytester, name: str) -> None:
    example = ROOT / "examples" / name
    result = pytester.runpytest_subprocess(
        str(example / "tests"), "--device=sim-direct", "-p", "no:cacheprovider", "-q"
    )
    tests = sum(p.read_text().count("\ndef test_") for p in (example / "tests").glob("test_*.py"))
    result.assert_outcomes(passed=tests)


@pytest.mark.usefixtures("this_checkout")
def test_the_board_path_builds_the_project_with_pio_flashes_and_provisions(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--device=<a board's URL> --project P``: ``pio run -d P -e ENV`` (a stand-in here, whose
    firmware.bin is the project's twin image), esptool flashing, console provisioning, READY,
    and the project's own tests: the Done-means command, with a blank twin as the board."""
    from harness.project import load_project
    from harness.sim.board import native_image
    from harness.sim.chip import Twin

    project = pytester.path / "sensor-node"
    shutil.copytree(ROOT / "examples" / "sensor-node", project, ignore=_SCRATCH)
    image = pytester.path / "image.bin"
    image.write_bytes(native_image(project=load_project(project)))
    fake = pytester.path / "bin"
    fake.mkdir()
    record = pytester.path / "pio-run.txt"
    (fake / "pio").write_text(
        "#!/bin/sh\n"
        '[ "$1" = "--version" ] && exit 0\n'
        f'echo "$* | $PLATFORMIO_LIB_EXTRA_DIRS" > "{record}"\n'
        f'mkdir -p "$3/.pio/build/$5" && cp "{image}" "$3/.pio/build/$5/firmware.bin"\n'
    )
    (fake / "pio").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    board = Twin().start()  # erased flash: nothing boots until the harness flashes it
    try:
        result = pytester.runpytest_subprocess(
            str(project / "tests"),
            f"--device={board.url}",
            f"--project={project}",
            f"--wifi-ssid={board.ssid}",
            f"--wifi-password={board.password}",
            "-p",
            "no:cacheprovider",
            "-rs",
        )
    finally:
        board.stop()
    result.assert_outcomes(passed=5, skipped=4)  # the `twin` tests skip on a board
    args, libs = record.read_text().strip().split(" | ")
    assert args == f"run -d {project} -e listen"
    assert (Path(libs) / "EspHil" / "src" / "EspHil.h").is_file()
    result.stdout.fnmatch_lines(["*fw=sensor-node/0.1.0+*flash: written*"])

