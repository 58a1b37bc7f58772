"""esp-hil in a labgrid farm (issue 16): a real coordinator and exporter on loopback exporting two
twins, places created through labgrid's client API, the HIL suite through them on two xdist
workers, a second session waiting for a held place, and places coming back after an interrupted
and after a killed run.

The whole of tests/hil runs through the farm (about 20 s of the module's minute).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.device.errors import BoardBusy, DeviceError

pytest.importorskip("labgrid", reason="labgrid is not installed (pip install 'esp-hil[labgrid]')")
if not (shutil.which("labgrid-coordinator") and shutil.which("labgrid-exporter")):
    pytest.skip("labgrid's coordinator/exporter commands are not on PATH", allow_module_level=True)

from harness.device.labgrid import PlaceLease
from harness.sim.labgrid_export import exporter_config
from tests.helpers.labgrid_farm import (
    ROOT,
    Farm,
    acquire_as,
    group_alive,
    place_holder,
    process,
    pytest_command,
    release_as,
    run_pytest,
    wait_for_line,
)
from tests.helpers.net import free_port

pytestmark = pytest.mark.timeout(900)

#: One quick HIL test, for the sessions that only need to get a device.
ONE_TEST = "tests/hil/test_device.py::test_ready_line_facts"
#: Someone else, on another machine.
COLLEAGUE = "elsewhere/colleague"


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    with Farm(tmp_path_factory.mktemp("farm"), ["twin-a", "twin-b"]) as running:
        yield running
    # No coordinator, exporter, twin or firmware process outlives the farm.
    assert not [pgid for pgid in running.groups if group_alive(pgid)]


def _me() -> str:
    import getpass
    import socket

    return f"{socket.gethostname()}/{getpass.getuser()}"


def test_hil_suite_runs_on_two_places_over_two_workers(farm: Farm, tmp_path: Path) -> None:
    code, out = run_pytest(
        ["tests/hil", "--device=labgrid:twin-a", "--device=labgrid:twin-b", "-n", "2"],
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
    cmd = pytest_command(ONE_TEST, "--device=labgrid:twin-a")
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


@contextmanager
def _holding(farm: Farm, tmp_path: Path, place: str) -> Iterator[subprocess.Popen[bytes]]:
    """A pytest holding ``place``, yielded once its device is up; stopped on exit."""
    marker = tmp_path / "held"
    cmd = pytest_command("tests/helpers/labgrid_hold.py", f"--device=labgrid:{place}")
    env = farm.env(ESP_HIL_HOLD_MARKER=str(marker), ESP_HIL_HOLD_SECONDS="120")
    with process(cmd, tmp_path / "hold.log", cwd=ROOT, env=env) as proc:
        deadline = time.monotonic() + 120
        while not marker.exists():
            log = (tmp_path / "hold.log").read_text()
            assert proc.poll() is None, f"the holder ended without the device:\n{log}"
            assert time.monotonic() < deadline, f"the holder never got the device:\n{log}"
            time.sleep(0.1)
        yield proc


def test_an_interrupted_run_releases_its_place(farm: Farm, tmp_path: Path) -> None:
    with _holding(farm, tmp_path, "twin-b") as proc:
        assert place_holder(farm.address, "twin-b") == _me()
        proc.send_signal(signal.SIGINT)  # Ctrl-C: pytest tears the device down
        proc.wait(60)
    assert place_holder(farm.address, "twin-b") is None, (tmp_path / "hold.log").read_text()


def test_a_killed_runs_place_is_taken_over_by_the_next_run(farm: Farm, tmp_path: Path) -> None:
    with _holding(farm, tmp_path, "twin-b") as proc:
        os.killpg(proc.pid, signal.SIGKILL)  # no teardown at all
        proc.wait(10)
    # labgrid keeps the place acquired by the dead client...
    assert place_holder(farm.address, "twin-b") == _me()
    # ...and the next run by the same host/user takes it over.
    code, out = run_pytest(
        [ONE_TEST, "--device=labgrid:twin-b"], tmp_path / "next.log", farm.env(), timeout=300
    )
    assert code == 0, out
    assert "esp-hil: labgrid place twin-b was left acquired by" in out, out
    assert place_holder(farm.address, "twin-b") is None


# -- the exporter config ---------------------------------------------------------------------

_groups = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)
_hosts = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.from_regex(r"[a-z][a-z0-9-]{0,15}(\.[a-z][a-z0-9-]{0,10}){0,2}", fullmatch=True),
)
_urls = st.builds("rfc2217://{}:{}".format, _hosts, st.integers(1, 65535))


@given(twins=st.dictionaries(_groups, _urls, max_size=4))
def test_exporter_config_reads_back_in_labgrid(twins: dict[str, str]) -> None:
    from labgrid.remote.config import ResourceConfig

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "exporter.yaml"
        path.write_text(exporter_config(twins))
        data = ResourceConfig(str(path)).data
    expected = {}
    for group, url in twins.items():
        host, port = url.removeprefix("rfc2217://").rsplit(":", 1)
        expected[group] = {
            "NetworkSerialPort": {
                "host": host,
                "port": int(port),
                "speed": 115200,
                "protocol": "rfc2217",
            }
        }
    assert (data or {}) == expected


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["http://127.0.0.1:4000"], "not an rfc2217://host:port URL: http://127.0.0.1:4000"),
        (["rfc2217://127.0.0.1"], "not an rfc2217://host:port URL: rfc2217://127.0.0.1"),
    ],
)
def test_exporter_flag_refuses_bad_urls_in_one_line(
    argv: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli import main

    assert main(["sim", "--labgrid-exporter", *argv]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"esp-hil sim: {error}\n")


def test_exporter_config_refuses_odd_group_names() -> None:
    with pytest.raises(ValueError, match="group name"):
        exporter_config({"{{ evil }}": "rfc2217://127.0.0.1:4000"})


# -- leases: errors and waits, in this process ------------------------------------------------


def test_an_unknown_place_is_one_clear_error(farm: Farm) -> None:
    with pytest.raises(
        DeviceError, match=r"no labgrid place nope on .* \(places: twin-a, twin-b\)"
    ):
        PlaceLease("nope", coordinator=farm.address, timeout=5).acquire()


def test_an_unreachable_coordinator_is_one_clear_error() -> None:
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(DeviceError, match=f"cannot reach the labgrid coordinator at {address}"):
        PlaceLease("twin-a", coordinator=address, timeout=5).acquire()


def test_waiting_for_a_place_held_elsewhere_ends_at_the_timeout(farm: Farm) -> None:
    notes: list[str] = []
    acquire_as(farm.address, "twin-a", COLLEAGUE)
    try:
        lease = PlaceLease(
            "twin-a", coordinator=farm.address, timeout=2.0, interval=0.5, notify=notes.append
        )
        with pytest.raises(BoardBusy, match=f"acquired by {COLLEAGUE}; waited 2 s"):
            lease.acquire()
    finally:
        release_as(farm.address, "twin-a", COLLEAGUE)
    assert len(notes) >= 2, notes
    assert all(f"waiting for labgrid place twin-a (acquired by {COLLEAGUE})" in n for n in notes)


def test_a_run_on_this_machine_waits_for_another_live_run(farm: Farm) -> None:
    notes: list[str] = []
    with PlaceLease("twin-b", coordinator=farm.address, timeout=10) as first:
        assert first.url == farm.urls["twin-b"]
        second = PlaceLease(
            "twin-b", coordinator=farm.address, timeout=1.5, interval=0.5, notify=notes.append
        )
        # The live holder is not taken over, although labgrid sees the same host/user.
        with pytest.raises(
            BoardBusy, match=f"another esp-hil run here holds it \\(pid {os.getpid()}\\)"
        ):
            second.acquire()
        assert place_holder(farm.address, "twin-b") == _me()
    assert notes and all("another esp-hil run on this machine holds it" in n for n in notes)
    assert place_holder(farm.address, "twin-b") is None
