"""The twin's wall clock (firmware/sim/sim_time.cpp): from 1970 at boot, as on a board,
until SNTP (configTime) or settimeofday() sets it; the PC's clock is never touched.

The sketch is the shim's test sketch (its ``clock`` console command).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.sim.defaults import EXIT_CONFIG_ERROR
from tests.helpers.shim import Console, booted_console, make_process
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.twin


def _clock(console: Console, args: str = "") -> dict[str, int]:
    line = console.command(f"clock {args}".strip(), "clock ")
    return {k: int(v) for k, v in (part.split("=", 1) for part in line.split()[1:])}


def test_the_clock_counts_from_1970_until_sntp_sets_it_after_the_join(console: Console) -> None:
    before = _clock(console)
    assert before["time"] < 60 and before["tv"] < 60 and before["sets"] == 0
    console.command("clock ntp CET-1CEST,M3.5.0,M10.5.0/3", "clock ")
    time.sleep(0.3)
    assert _clock(console)["time"] < 60  # no station yet: SNTP cannot answer
    console.join_wifi()
    wait_until(lambda: _clock(console)["sets"] == 1, timeout=5, what="SNTP set the clock")
    after = _clock(console)
    assert abs(after["time"] - time.time()) < 5 and after["sntp"] == 1
    # The TZ string applies to local time.
    assert console.command("clock local 0", "clock ").startswith("clock local=1 at=")


def test_local_time_is_not_there_before_the_clock_is_set(console: Console) -> None:
    assert console.command("clock local 50", "clock ").startswith("clock local=0 at=1970-")


def test_settimeofday_sets_the_chips_clock_not_the_pcs(console: Console) -> None:
    pc = time.time()
    assert console.command("clock set 2000000000", "clock ") == "clock set=0"
    wait_until(lambda: _clock(console)["sets"] == 1, timeout=5, what="the callback")
    got = _clock(console)
    assert 2_000_000_000 <= got["time"] < 2_000_000_060 and got["sntp"] == 0
    assert abs(time.time() - pc) < 60  # the PC's clock did not move


def test_the_offset_form_and_a_server_that_never_answers(sketch: Path, tmp_path: Path) -> None:
    with booted_console(sketch, tmp_path / "flash.bin", env={"ESP_HIL_SNTP_MS": "never"}) as con:
        con.join_wifi()
        con.command("clock gmt 3600", "clock ")
        time.sleep(0.3)
        assert _clock(con)["time"] < 60 and _clock(con)["sets"] == 0
        con.command("clock set 1700000000", "clock ")  # 2023-11-14T22:13:20Z
        assert con.command("clock local 0", "clock ") == "clock local=1 at=2023-11-14T23:13:20"


def test_a_bad_sntp_delay_is_refused_at_start(sketch: Path, tmp_path: Path) -> None:
    proc = make_process(sketch, "127.0.0.1", tmp_path / "flash.bin",
                        env={"ESP_HIL_SNTP_MS": "soon"})
    exits: list[int] = []
    proc.on_exit = exits.append
    proc.start()
    try:
        wait_until(lambda: bool(exits), timeout=5, what="the firmware to exit")
    finally:
        proc.stop()
    assert exits == [EXIT_CONFIG_ERROR]
    assert proc.stderr_tail() == ["[shim] bad ESP_HIL_SNTP_MS=soon"]
