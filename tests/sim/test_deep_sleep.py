"""Deep sleep and its wake through RST, and the RTC user memory that outlives it
(docs/twin.md, "deep sleep" and "RTC user memory").

The firmware process side drives the shim's test sketch; the chip side (banner, baud rate,
reason) uses the stand-in firmware behind a :class:`~harness.sim.chip.Twin`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import serial

from harness.sim.chip import Twin
from harness.sim.chip.bootrom import ROM_BAUD
from harness.sim.chip.uart import garble
from harness.sim.defaults import (
    EXIT_CONFIG_ERROR,
    EXIT_RESET_BASE,
    REASON_DEEP_SLEEP_AWAKE,
    RESET_REASONS,
    reset_of_exit,
)
from harness.sim.firmware import allocate_ip
from tests.helpers.chip import StandInFirmware, standin_image, standin_twin
from tests.helpers.shim import Console, booted_console, make_process

pytestmark = pytest.mark.twin

WAKE = EXIT_RESET_BASE + REASON_DEEP_SLEEP_AWAKE
TIMEOUT = 10.0


@pytest.fixture
def boot(sketch: Path, tmp_path: Path) -> Iterator[Callable[..., Console]]:
    """Boots the sketch on ``flash.bin`` with a reset reason and environment; stops them all."""
    with contextlib.ExitStack() as runs:

        def run(reason: str, **env: str) -> Console:
            return runs.enter_context(
                booted_console(sketch, tmp_path / "flash.bin", reset_reason=reason, env=env)
            )

        yield run


def _output(con: Console) -> str:
    lines = []
    while not con.lines.empty():
        lines.append(con.lines.get_nowait())
    return "\n".join(lines)


def test_wake_is_a_reset_with_the_deep_sleep_reason() -> None:
    assert reset_of_exit(WAKE) == REASON_DEEP_SLEEP_AWAKE
    # Esp.cpp getResetReason(); ROM cause 5 = DEEPSLEEP_RESET (hwdt_app_entry.cpp).
    assert RESET_REASONS[REASON_DEEP_SLEEP_AWAKE] == ("Deep-Sleep Wake", 5)


@pytest.mark.parametrize("how", ["", " instant"])
def test_deep_sleep_sleeps_then_resets(console: Console, how: str) -> None:
    t0 = time.monotonic()
    console.proc.write(f"sleep 500000{how}\n".encode())
    assert console.exited.get(timeout=TIMEOUT) == WAKE
    assert time.monotonic() - t0 >= 0.5 - 0.05
    out = _output(console)
    assert "sleeping" in out
    assert "awake in the same run" not in out  # deepSleep never returns


def test_the_watchdogs_sleep_too(console: Console) -> None:
    # Longer than the soft WDT's 3.2 s: the CPU is off, nothing bites.
    console.proc.write(b"sleep 4000000\n")
    assert console.exited.get(timeout=TIMEOUT) == WAKE


def test_nothing_runs_while_asleep(console: Console) -> None:
    console.proc.write(b"sleep 0\n")  # 0: until an external reset
    console.expect("sleeping")
    console.proc.write(b"info\n")
    with pytest.raises(AssertionError, match="no line starting"):
        console.expect("info ", timeout=1.5)
    assert console.proc.alive


def test_time_scale_shortens_a_long_sleep(boot: Callable[..., Console]) -> None:
    con = boot("Power On", ESP_HIL_DEEP_SLEEP_SCALE="0.0001")
    con.proc.write(b"sleep 3600000000\n")  # an hour, at 1/10000
    assert con.exited.get(timeout=TIMEOUT) == WAKE


@pytest.mark.parametrize("bad", ["-0.5", "2", "fast", "0.5x"])
def test_bad_time_scale_is_refused(sketch: Path, tmp_path: Path, bad: str) -> None:
    ip, lock = allocate_ip()
    env = {"ESP_HIL_DEEP_SLEEP_SCALE": bad}
    proc = make_process(sketch, ip, tmp_path / "flash.bin", env=env)
    con = Console(proc)
    try:
        proc.start()
        assert con.exited.get(timeout=TIMEOUT) == EXIT_CONFIG_ERROR
    finally:
        proc.stop()
        lock.release()


def test_deep_sleep_max_is_the_sdk_formula(console: Console) -> None:
    line = console.command("dsmax", "dsmax ")
    us = int(line.split()[1])
    # cali * (2^31 - 1) / 2^12 with the RTC period (cali / 4096 us) of a ~150 kHz clock.
    assert 3 * 3600e6 < us < 4.5 * 3600e6
    assert (us * 0x1000) % (0x80000000 - 1) < 0x80000000 - 1


# -- RTC user memory ---------------------------------------------------------------------


def _rtc(con: Console, args: str) -> dict[str, str]:
    return con.fields(con.command(f"rtc {args}", "rtc "))


def test_rtc_memory_survives_the_wake_up(boot: Callable[..., Console]) -> None:
    con = boot("Power On")
    assert _rtc(con, "0 512 305419896") == {"wrote": "1", "read": "1", "first": "305419896"}
    con.proc.write(b"sleep 100000\n")
    assert con.exited.get(timeout=TIMEOUT) == WAKE
    woke = boot("Deep-Sleep Wake")
    assert _rtc(woke, "127 4") == {"wrote": "-1", "read": "1", "first": "305419896"}
    # Any other reset keeps it too (the RTC stays powered), the reset pin's for one.
    assert _rtc(boot("External System"), "5 4")["first"] == "305419896"


def test_rtc_memory_is_undefined_after_power_on(boot: Callable[..., Console]) -> None:
    con = boot("Power On")
    _rtc(con, "0 512 305419896")
    con.proc.stop()
    firsts = {_rtc(boot("Power On"), f"{k} 4")["first"] for k in (0, 64, 127)}
    # Random bytes: a stale 0x12345678 in all three words is a 2^-96 chance.
    assert firsts != {"305419896"}


@pytest.mark.parametrize(
    ("args", "ok"),
    [("0 4", True), ("127 4", True), ("0 512", True), ("127 8", False), ("128 4", False),
     ("0 516", False), ("0 0", False), ("4294967295 4", False)],
)
def test_rtc_memory_bounds(console: Console, args: str, ok: bool) -> None:
    # Esp.cpp: offset (4-byte words) * 4 + size must stay within the 512 user bytes.
    assert _rtc(console, f"{args} 7")["wrote"] == ("1" if ok else "0")
    assert _rtc(console, args)["read"] == ("1" if ok else "0")


# -- the chip: the wake-up's banner ------------------------------------------------------


class SleepingFirmware(StandInFirmware):
    """The stand-in, plus ``sleep``: it ends as the shim does when its deep sleep is over."""

    def _command(self, line: bytes) -> None:
        if line != b"sleep":
            super()._command(line)
            return
        self.alive = False
        self.exit_code = WAKE
        threading.Thread(target=self.on_exit, args=(WAKE,)).start()


def test_wake_up_banner_is_cause_5_at_the_rom_rate(tmp_path: Path) -> None:
    twin: Twin = standin_twin(flash_path=tmp_path / "flash.bin", firmware_factory=SleepingFirmware)
    try:
        assert twin.flash is not None
        twin.flash.store(0, standin_image())
        twin.power_cycle()
        twin.wait_for_tx(b"ESP-HIL BOOT", TIMEOUT)
        banner = b"\r\n ets Jan  8 2013,rst cause:5, boot mode:(3,6)\r\n"
        with serial.serial_for_url(twin.url, baudrate=115200, timeout=0.2) as port:
            mark = twin.tx_mark()
            port.write(b"sleep\n")
            log = twin.wait_for_tx(b"reset=Deep-Sleep Wake", TIMEOUT, mark)
            got = b""
            deadline = time.monotonic() + TIMEOUT
            while b"reset=Deep-Sleep Wake" not in got and time.monotonic() < deadline:
                got += port.read(4096)
        assert log.startswith(banner)
        assert b"load 0x" in log  # the ROM loads the image again, as after any reset
        assert twin.reset_reason == "Deep-Sleep Wake"
        # The banner goes out at the ROM's rate after a hardware reset: garbage at 115200.
        assert banner not in got
        assert garble(banner, ROM_BAUD, 115200) in got
        assert twin.chip_baud == 115200  # the firmware talks at its own rate again
    finally:
        twin.stop()


def test_power_cycle_of_the_chip_clears_rtc_memory(tmp_path: Path) -> None:
    # Even when no firmware runs at power-on (here: an erased flash), RTC memory is gone.
    rtc = tmp_path / "flash.bin.rtc"
    twin: Twin = standin_twin(flash_path=tmp_path / "flash.bin")
    try:
        rtc.write_bytes(b"\x5a" * 512)
        mark = twin.tx_mark()
        twin.power_cycle()
        twin.wait_for_tx(b"ets_main.c", TIMEOUT, mark)
        assert not rtc.exists()
    finally:
        twin.stop()
