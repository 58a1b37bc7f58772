"""esp-hil in a labgrid farm (issue 16): a real coordinator and exporter on loopback exporting two
twins, places created through labgrid's client API, the HIL suite through them on two xdist
workers, a second session waiting for a held place, and places coming back after an interrupted
and after a killed run.

The HIL subset (to keep CI time down): tests/hil/test_device.py and tests/hil/test_echo.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("labgrid", reason="labgrid is not installed (pip install 'esp-hil[labgrid]')")
if not (shutil.which("labgrid-coordinator") and shutil.which("labgrid-exporter")):
    pytest.skip("labgrid's coordinator/exporter commands are not on PATH", allow_module_level=True)

from tests.helpers.labgrid_farm import (  # noqa: E402
    ROOT,
    Farm,
    acquire_as,
    place_holder,
    process,
    release_as,
    run_pytest,
    wait_for_line,
)

pytestmark = pytest.mark.timeout(900)

HIL_SUBSET = ["tests/hil/test_device.py", "tests/hil/test_echo.py"]
#: One quick HIL test, for the sessions that only need to get a device.
ONE_TEST = "tests/hil/test_device.py::test_ready_line_facts"
#: Someone else, on another machine.
COLLEAGUE = "elsewhere/colleague"


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    with Farm(tmp_path_factory.mktemp("farm"), ["twin-a", "twin-b"]) as running:
        yield running


def _me() -> str:
    import getpass
    import socket

    return f"{socket.gethostname()}/{getpass.getuser()}"


def test_hil_suite_runs_on_two_places_over_two_workers(farm: Farm, tmp_path: Path) -> None:
    code, out = run_pytest(
        [*HIL_SUBSET, "--device=labgrid:twin-a", "--device=labgrid:twin-b", "-n", "2"],
        tmp_path / "hil.log",
        farm.env(),
        timeout=600,
    )
    assert code == 0, out
    # Each worker reports the device it used: both places served tests.
    for name in ("twin-a", "twin-b"):
        assert f"labgrid place {name} ({farm.urls[name]})" in out, out
        assert place_holder(farm.address, name) is None


def test_a_second_session_waits_for_the_held_place(farm: Farm, tmp_path: Path) -> None:
    acquire_as(farm.address, "twin-a", COLLEAGUE)
    log = tmp_path / "waiting.log"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", ONE_TEST]
    cmd += ["--device=labgrid:twin-a"]
    try:
        with process(cmd, log, cwd=ROOT, env=farm.env()) as proc:
            wait_for_line(
                log,
                rf"^(esp-hil: waiting for labgrid place twin-a \(acquired by {COLLEAGUE}\))",
                proc,
                timeout=120,
            )
            time.sleep(1.0)
            assert proc.poll() is None, log.read_text()
            release_as(farm.address, "twin-a", COLLEAGUE)
            code = proc.wait(300)
    finally:
        if place_holder(farm.address, "twin-a") == COLLEAGUE:
            release_as(farm.address, "twin-a", COLLEAGUE)
    assert code == 0, log.read_text()
    assert place_holder(farm.address, "twin-a") is None


def _hold(farm: Farm, tmp_path: Path, place: str) -> tuple[subprocess.Popen[bytes], Path]:
    """Start a pytest holding ``place``; return it once the device is up."""
    marker = tmp_path / "held"
    log = tmp_path / "hold.log"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    cmd += ["tests/helpers/labgrid_hold.py", f"--device=labgrid:{place}"]
    env = farm.env(ESP_HIL_HOLD_MARKER=str(marker), ESP_HIL_HOLD_SECONDS="120")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 120
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            raise AssertionError(f"the holder never got the device:\n{log.read_text()}")
        time.sleep(0.1)
    return proc, log


def test_an_interrupted_run_releases_its_place(farm: Farm, tmp_path: Path) -> None:
    proc, log = _hold(farm, tmp_path, "twin-b")
    try:
        assert place_holder(farm.address, "twin-b") == _me()
        proc.send_signal(signal.SIGINT)  # Ctrl-C: pytest tears the device down
        proc.wait(60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert place_holder(farm.address, "twin-b") is None, log.read_text()


def test_a_killed_runs_place_is_taken_over_by_the_next_run(farm: Farm, tmp_path: Path) -> None:
    proc, log = _hold(farm, tmp_path, "twin-b")
    os.killpg(proc.pid, signal.SIGKILL)  # no teardown at all
    proc.wait(10)
    # labgrid keeps the place acquired by the dead client...
    assert place_holder(farm.address, "twin-b") == _me(), log.read_text()
    # ...and the next run by the same host/user takes it over.
    code, out = run_pytest(
        [ONE_TEST, "--device=labgrid:twin-b"], tmp_path / "next.log", farm.env(), timeout=300
    )
    assert code == 0, out
    assert "esp-hil: labgrid place twin-b was left acquired by" in out, out
    assert place_holder(farm.address, "twin-b") is None
