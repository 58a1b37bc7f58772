"""The plugin as a user meets it: options, fixtures listed, markers, figures in the summary."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


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
