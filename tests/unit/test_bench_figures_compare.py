"""``--esp-hil-save`` / ``--esp-hil-compare``: the throughput fixture's figures against a
stored baseline, at the end of a pytest run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]

TEST_FILE = """
import os

def test_records(throughput):
    throughput.record("bulk", float(os.environ["BULK"]), "MB/s")
    throughput.record("echo p50", float(os.environ["ECHO"]), "us")
"""


@pytest.fixture(autouse=True)
def _this_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    # pytester's subprocesses run elsewhere: make them import this checkout's harness.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, bulk: float, echo: float,
         *args: str) -> pytest.RunResult:
    monkeypatch.setenv("BULK", str(bulk))
    monkeypatch.setenv("ECHO", str(echo))
    return pytester.runpytest_subprocess("-p", "no:randomly", *args)


def test_save_appends_and_compare_names_the_worse_figure(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_x=TEST_FILE)
    baseline = pytester.path / "baseline.json"
    for bulk, echo in ((100, 50), (104, 52), (97, 49)):
        result = _run(pytester, monkeypatch, bulk, echo, f"--esp-hil-save={baseline}")
        assert result.ret == 0
    doc = json.loads(baseline.read_text())
    assert doc["figures"]["bulk"]["ours"] == [100, 104, 97]
    assert doc["figures"]["echo p50"]["higher_is_better"] is False

    same = _run(pytester, monkeypatch, 99, 51, f"--esp-hil-compare={baseline}")
    assert same.ret == 0
    assert "WORSE" not in same.stdout.str()

    halved = _run(pytester, monkeypatch, 50, 100, f"--esp-hil-compare={baseline}")
    assert halved.ret == pytest.ExitCode.TESTS_FAILED
    halved.stdout.fnmatch_lines([f"esp-hil: worse than {baseline}: bulk, echo p50"])


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such file"), ("{}", "not an esp-hil bench baseline")],
)
def test_a_bad_baseline_is_one_line(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                    content: str | None, message: str) -> None:
    pytester.makepyfile(test_x=TEST_FILE)
    baseline = pytester.path / "baseline.json"
    if content is not None:
        baseline.write_text(content)
    result = _run(pytester, monkeypatch, 1, 1, f"--esp-hil-compare={baseline}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines([f"esp-hil: {baseline}: {message}*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
