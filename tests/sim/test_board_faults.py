"""The twin fails like a board: watchdogs, resets (docs/twin.md, "Board faults").

These drive the shim's test sketch (``firmware/sim/test/shim_test_sketch.cpp``) as a bare
firmware process; the device-level behaviour (banner, reboot, READY again) is in
``tests/hil/test_watchdog.py`` and in the chip tests below.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.sim.build import build_firmware
from harness.sim.defaults import (
    EXIT_RESET_BASE,
    REASON_SOFT_WDT_RST,
    REASON_WDT_RST,
    RESET_REASONS,
    reset_of_exit,
)
from harness.sim.firmware import FirmwareProcess, allocate_ip
from tests.sim.test_shim import SKETCH, Console, make_process

pytestmark = pytest.mark.twin

SOFT_WDT_S = 3.2
HARD_WDT_S = 8.2


@pytest.fixture(scope="module")
def sketch() -> Path:
    return build_firmware(sketch=SKETCH)


@pytest.fixture
def console(sketch: Path, tmp_path: Path) -> Iterator[Console]:
    ip, lock = allocate_ip()
    proc: FirmwareProcess = make_process(sketch, ip, tmp_path / "flash.bin")
    con = Console(proc)
    proc.start()
    try:
        con.expect("boot ")
        yield con
    finally:
        proc.stop()
        lock.release()


def _output(con: Console) -> str:
    lines = []
    while not con.lines.empty():
        lines.append(con.lines.get_nowait())
    return "\n".join(lines)


def test_loop_that_does_not_yield_is_reset_by_the_soft_watchdog(console: Console) -> None:
    t0 = time.monotonic()
    console.proc.write(b"spin 6000 none\n")
    code = console.exited.get(timeout=HARD_WDT_S + 10)
    elapsed = time.monotonic() - t0
    assert code == EXIT_RESET_BASE + REASON_SOFT_WDT_RST
    assert reset_of_exit(code) == REASON_SOFT_WDT_RST
    assert RESET_REASONS[REASON_SOFT_WDT_RST] == ("Software Watchdog", 2)
    out = _output(console)
    # The core's postmortem report (core_esp8266_postmortem.cpp), never the sketch's reply.
    assert "CUT HERE FOR EXCEPTION DECODER" in out
    assert "\nSoft WDT reset\n" in out
    assert "Exception (4):" in out
    assert ">>>stack>>>" in out and "<<<stack<<<" in out
    assert "spun" not in out
    assert elapsed >= SOFT_WDT_S  # never before the period (a lower bound only)


@pytest.mark.parametrize("how", ["feed", "yield", "delay"])
def test_feeding_keeps_the_chip_alive(console: Console, how: str) -> None:
    line = console.command(f"spin 4000 {how}", "spun ")
    assert int(line.split()[1]) >= 4000
    assert console.proc.alive


def test_soft_watchdog_disabled_leaves_the_hardware_one(console: Console) -> None:
    # 5 s: past the soft WDT's period, inside the hardware one's.
    console.command("spin 5000 hw", "spun ")
    assert console.proc.alive
    t0 = time.monotonic()
    console.proc.write(b"spin 12000 hw\n")
    code = console.exited.get(timeout=HARD_WDT_S + 10)
    assert code == EXIT_RESET_BASE + REASON_WDT_RST
    assert time.monotonic() - t0 >= HARD_WDT_S
    out = _output(console)
    assert "Soft WDT" not in out  # the hardware watchdog resets without a report
    assert "spun" not in out


def test_reset_exit_codes_map_to_reasons() -> None:
    assert reset_of_exit(3) == 4  # ESP.restart(): REASON_SOFT_RESTART
    assert reset_of_exit(0) is None
    assert reset_of_exit(4) is None  # orphaned: a power-off, not a reset
    assert reset_of_exit(-9) is None
    for reason, (text, cause) in RESET_REASONS.items():
        assert reset_of_exit(EXIT_RESET_BASE + reason) == reason
        assert text and cause in (1, 2, 4, 5)
