"""The plugin as a user meets it: options, fixtures listed, markers, figures in the summary."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _this_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    # pytester's subprocesses run elsewhere: make them import this checkout's harness.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def test_fixtures_are_listed_with_docstrings(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--fixtures", "-p", "no:randomly")
    out = result.stdout.str()
    for name in ("device [session scope]", "link --", "netem --", "throughput --"):
        assert name in out
    assert "The board under test" in out


def test_board_marker_skips_on_a_twin_and_figures_reach_the_summary(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_x="""
        import pytest

        @pytest.mark.board
        def test_needs_a_board():
            raise AssertionError("must not run on a twin")

        def test_records(throughput):
            throughput.record("answer", 42, "units")
    """
    )
    result = pytester.runpytest_subprocess("-rs", "--junitxml=out.xml")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*answer*42*units*test_records*"])
    result.stdout.fnmatch_lines(["*needs a real board*"])
    assert 'name="esp-hil:answer" value="42 units"' in (pytester.path / "out.xml").read_text()


def test_twin_marker_skips_on_a_board(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_y="""
        import pytest

        @pytest.mark.twin
        def test_insides():
            pass
    """
    )
    result = pytester.runpytest_subprocess("--device=/dev/ttyUSB9", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*needs the twin*"])


def test_device_options_spread_over_workers(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.pytest_plugin import device_spec

    config = pytester.parseconfig("--device=/dev/a", "--device=/dev/b")
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    assert device_spec(config) == "/dev/a"
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    assert device_spec(config) == "/dev/b"


def _with_entry_point(pytester: pytest.Pytester) -> str:
    """A PYTHONPATH on which the plugin auto-loads under this checkout's entry-point name
    (the installed one may predate it)."""
    section = (ROOT / "pyproject.toml").read_text().split("[project.entry-points.pytest11]")[1]
    lines = section.split("[")[0].splitlines()
    entries = [ln.replace('"', "") for ln in lines if "=" in ln and not ln.startswith("#")]
    # pytest skips an entry point whose name is registered already: `-p <module>` is one.
    assert [ln.split("=")[0].strip() for ln in entries] == ["harness.pytest_plugin"]
    dist = pytester.path / "site" / "esp_hil_probe-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: esp-hil-probe\nVersion: 0\n")
    (dist / "entry_points.txt").write_text("[pytest11]\n" + "\n".join(entries) + "\n")
    return os.pathsep.join([str(dist.parent), os.environ["PYTHONPATH"]])


def test_naming_the_auto_loaded_plugin_again_is_harmless(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", _with_entry_point(pytester))
    pytester.makepyfile(test_z="def test_ok(throughput): pass")
    # The installed entry point (whatever its name) is blocked; the probe's loads.
    result = pytester.runpytest_subprocess("-p", "no:esp_hil", "-p", "harness.pytest_plugin")
    assert "Traceback" not in result.stderr.str()
    result.assert_outcomes(passed=1)


def test_pyserial_deprecation_warnings_are_filtered_for_users(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_w="""
        import threading

        def test_pyserial_style_thread():
            t = threading.Thread(target=lambda: None)
            t.setDaemon(True)
            t.setName("rfc2217")
    """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1)
    assert "is deprecated" not in result.stdout.str()
