"""--project / esp_hil_project / --pio-env as a user meets them: paths, defaults, usage errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]

SHOW = """
from harness.pytest_plugin import device_options, project_path

def test_show(request):
    opts = device_options(request.config)
    print("PROJECT", project_path(request.config))
    print("LOADED", opts.load_project().root, opts.load_project().env)
"""


@pytest.fixture(autouse=True)
def _this_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    # pytester's subprocesses run elsewhere: make them import this checkout's harness.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def _sketch(where: Path) -> Path:
    (where / "src").mkdir(parents=True)
    (where / "src" / "main.cpp").write_text("void setup() {}\nvoid loop() {}\n")
    (where / "platformio.ini").write_text("[env:one]\n[env:two]\n")
    return where


def test_ini_key_is_relative_to_the_ini_file(pytester: pytest.Pytester) -> None:
    project = _sketch(pytester.path / "fw")
    suite = pytester.path / "suite"
    suite.mkdir()
    (suite / "pytest.ini").write_text("[pytest]\nesp_hil_project = ../fw\n")
    (suite / "test_show.py").write_text(SHOW)
    result = pytester.runpytest_subprocess("suite", "-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*PROJECT {suite}/../fw", f"LOADED {project} one"])
    result.stdout.fnmatch_lines([f"esp-hil: device=sim project={suite}/../fw"])


def test_option_is_relative_to_the_invocation_and_picks_the_env(
    pytester: pytest.Pytester,
) -> None:
    project = _sketch(pytester.path / "fw")
    pytester.makepyfile(test_show=SHOW)
    result = pytester.runpytest_subprocess("-s", "--project", "fw", "--pio-env", "two")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"LOADED {project} two"])


def test_without_a_project_the_test_firmware(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_show=SHOW)
    result = pytester.runpytest_subprocess("-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*PROJECT None", f"LOADED {ROOT / 'firmware'} nodemcuv2"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--project", "nowhere"], "esp-hil: project */nowhere: no such directory"),
        (["--project", "."], "esp-hil: project *: no platformio.ini (not a PlatformIO project)"),
        (["--project", "fw", "--pio-env", "three"], "*no environment 'three'*(it has one, two)"),
    ],
)
def test_a_wrong_project_is_one_usage_error_line(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    _sketch(pytester.path / "fw")
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
