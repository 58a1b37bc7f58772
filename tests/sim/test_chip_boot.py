"""Boot ROM, auto-reset, baud rates, firmware lifecycle and the RFC2217 port of a twin."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from harness.sim.chip import Twin
from harness.sim.chip.uart import garble
from harness.sim.firmware import FirmwareProcessError
from tests.helpers.chip import (
    STANDIN_ID,
    StandInFirmware,
    run_esptool,
    standin_image,
    standin_twin,
)

pytestmark = pytest.mark.twin

TIMEOUT = 10
BANNER_POWER_ON_FLASH = b"\r\n ets Jan  8 2013,rst cause:1, boot mode:(3,6)\r\n"


@pytest.fixture
def flashed(tmp_path: Path) -> Iterator[Twin]:
    """A twin whose flash holds the stand-in firmware's identity image."""
    twin = standin_twin(flash_path=tmp_path / "flash.bin")
    assert twin.flash is not None
    twin.flash.store(0, standin_image())
    twin.power_cycle()
    twin.wait_for_tx(b"ESP-HIL BOOT", TIMEOUT)
    try:
        yield twin
    finally:
        twin.stop()


def _open(twin: Twin, baud: int = 115200) -> serial.SerialBase:
    return serial.serial_for_url(twin.url, baudrate=baud, timeout=0.2)


def _read_until(port: serial.SerialBase, needle: bytes, timeout: float = TIMEOUT) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    while needle not in got:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{needle!r} not read; got {got[-200:]!r}")
        got += port.read(4096)
    return got


def _hard_reset(port: serial.SerialBase) -> None:
    # pyserial opens with DTR and RTS asserted (both pins released); esptool's
    # hard reset assumes DTR is deasserted, so that RTS alone pulls EN low.
    port.dtr = False
    port.rts = True  # EN low
    time.sleep(0.05)
    port.rts = False


def test_power_on_erased_flash_prints_banner_and_halts(twin: Twin) -> None:
    log = twin.wait_for_tx(b"ets_main.c", TIMEOUT)
    assert log.startswith(BANNER_POWER_ON_FLASH)
    assert twin.state == "bricked"
    assert twin.boot_problem == "no image at flash offset 0"


def test_identity_image_boots_the_firmware_with_power_on_reason(flashed: Twin) -> None:
    log = flashed.tx_since(0)
    assert log.startswith(BANNER_POWER_ON_FLASH)
    assert b"load 0x40100000" in log and b"csum err" not in log
    assert f"ESP-HIL BOOT fw={STANDIN_ID} reset=Power On".encode() in log
    assert flashed.state == "running"
    fw = StandInFirmware.instances[-1]
    assert fw.kwargs["ip"] == flashed.ip and fw.kwargs["mac"] == flashed.mac
    assert fw.kwargs["chip_id"] == flashed.chip_id


def test_console_round_trip_and_garbage_at_the_wrong_baud(flashed: Twin) -> None:
    with _open(flashed) as port:
        port.write(b"hello\n")
        assert b"echo hello\n" in _read_until(port, b"echo hello\n")
        port.baudrate = 9600
        fw = StandInFirmware.instances[-1]
        before = len(fw.received)
        port.write(b"hello\n")
        deadline = time.monotonic() + TIMEOUT
        while len(fw.received) < before + 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert bytes(fw.received[before:]) == garble(b"hello\n", 9600, 115200)
        assert bytes(fw.received[before:]) != b"hello\n"


def test_hard_reset_reboots_with_reset_pin_cause(flashed: Twin) -> None:
    with _open(flashed, baud=74880) as port:
        mark = flashed.tx_mark()
        _hard_reset(port)
        got = _read_until(port, b"boot mode:(3,6)")
        # Read at 74880 the ROM's banner is legible; the firmware then talks at 115200.
        assert b"ets Jan  8 2013,rst cause:2, boot mode:(3,6)" in got
        flashed.wait_for_tx(b"reset=External System", TIMEOUT, mark)
        assert flashed.chip_baud == 115200


def test_banner_is_garbage_at_115200(flashed: Twin) -> None:
    with _open(flashed, baud=115200) as port:
        mark = flashed.tx_mark()
        _hard_reset(port)
        got = _read_until(port, b"ESP-HIL BOOT")
        banner = b"\r\n ets Jan  8 2013,rst cause:2, boot mode:(3,6)\r\n"
        assert banner not in got
        assert garble(banner, 74880, 115200) in got
        assert banner in flashed.tx_since(mark)  # what the chip actually sent


def test_en_held_low_stops_the_firmware_until_released(flashed: Twin) -> None:
    fw = StandInFirmware.instances[-1]
    with _open(flashed) as port:
        port.dtr = False
        port.rts = True
        deadline = time.monotonic() + TIMEOUT
        while flashed.state != "reset" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert flashed.state == "reset" and not fw.alive
        time.sleep(0.4)  # longer than the strapping window: still held in reset
        assert flashed.state == "reset"
        mark = flashed.tx_mark()
        port.rts = False
        flashed.wait_for_tx(b"ESP-HIL BOOT", TIMEOUT, mark)
        assert StandInFirmware.instances[-1] is not fw


def test_classic_reset_enters_the_rom_loader(twin: Twin) -> None:
    with _open(twin) as port:
        mark = twin.tx_mark()
        # esptool's classic reset, by hand: EN low, then through DTR=RTS=1 to IO0 low.
        port.dtr = False
        port.rts = True
        time.sleep(0.1)
        port.dtr = True
        port.rts = False
        time.sleep(0.05)
        port.dtr = False
        twin.wait_for_tx(b"boot mode:(1,6)", TIMEOUT, mark)
        assert twin.state == "download"


def test_firmware_restart_prints_banner_at_115200(flashed: Twin) -> None:
    with _open(flashed) as port:
        mark = flashed.tx_mark()
        port.write(b"reboot\n")
        got = _read_until(port, b"reset=Software/System restart")
        # A software reset keeps the UART divider: the banner is legible at 115200.
        assert b"ets Jan  8 2013,rst cause:2, boot mode:(3,6)" in got
    assert flashed.boot_count >= 2
    assert b"ESP-HIL OK reboot" in flashed.tx_since(mark)


def test_corrupt_image_bricks_with_checksum_error(tmp_path: Path) -> None:
    bad = bytearray(standin_image())
    bad[20] ^= 0x01  # a segment byte: the stored checksum no longer matches
    image = tmp_path / "bad.bin"
    image.write_bytes(bytes(bad))
    twin = standin_twin(flash_path=tmp_path / "flash.bin")
    try:
        mark = twin.tx_mark()
        run_esptool(twin.url, "write-flash", "0x0", str(image))
        log = twin.wait_for_tx(b"ets_main.c", TIMEOUT, mark)
        assert b"csum err" in log
        time.sleep(0.3)
        assert b"ESP-HIL" not in twin.tx_since(mark)
        assert twin.state == "bricked" and twin.boot_problem == "image checksum error"
    finally:
        twin.stop()


def test_unregistered_build_does_not_boot(tmp_path: Path) -> None:
    twin = standin_twin(flash_path=tmp_path / "flash.bin", firmware_registry={})
    try:
        assert twin.flash is not None
        twin.flash.store(0, standin_image())
        twin.power_cycle()
        deadline = time.monotonic() + TIMEOUT
        while twin.state != "unknown-image" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert twin.state == "unknown-image"
        assert "no native build registered" in (twin.boot_problem or "")
    finally:
        twin.stop()


def test_named_flash_survives_a_twin_restart(tmp_path: Path) -> None:
    flash = tmp_path / "persist.bin"
    first = standin_twin(flash_path=flash)
    assert first.flash is not None
    first.flash.store(0, standin_image())
    mac = first.mac
    first.stop()
    second = standin_twin(flash_path=flash)
    try:
        second.wait_for_tx(b"ESP-HIL BOOT", TIMEOUT)
        assert second.mac == mac  # derived from the named flash file: stable
    finally:
        second.stop()


def test_port_survives_disconnects_and_serves_one_client_at_a_time(flashed: Twin) -> None:
    for _ in range(2):
        with _open(flashed) as port:
            port.write(b"ping\n")
            _read_until(port, b"echo ping\n")
    first = _open(flashed)
    try:
        second = serial.serial_for_url(flashed.url, do_not_open=True, timeout=0.2, baudrate=115200)
        opened: list[BaseException | None] = []

        def open_second() -> None:
            try:
                second.open()
                opened.append(None)
            except Exception as e:  # the second client must wait, not share
                opened.append(e)

        t = threading.Thread(target=open_second)
        t.start()
        time.sleep(0.5)
        assert not opened  # still waiting for the first client to leave
        first.close()
        t.join(TIMEOUT)
        assert opened == [None]
        second.write(b"pong\n")
        _read_until(second, b"echo pong\n")
        second.close()
    finally:
        first.close()


def test_watchdog_reset(flashed: Twin) -> None:
    mark = flashed.tx_mark()
    flashed.watchdog_reset()
    log = flashed.wait_for_tx(b"reset=Hardware Watchdog", TIMEOUT, mark)
    assert b"rst cause:4, boot mode:(3,6)\r\n\r\nwdt reset" in log


class CrashingFirmware(StandInFirmware):
    """The stand-in, plus ``crash``: the process dies with an exception reset (16 + 2), and,
    as a real process's reader thread can, reports its end a moment later. Until then a
    write fails as FirmwareProcess.write does on a dead process."""

    def _command(self, line: bytes) -> None:
        if line != b"crash":
            super()._command(line)
            return
        self.alive = False
        self.exit_code = 18

        def report() -> None:
            time.sleep(0.5)
            self.on_exit(18)

        threading.Thread(target=report).start()

    def write(self, data: bytes) -> None:
        if not self.alive:
            raise FirmwareProcessError(f"firmware is not running (exit code {self.exit_code})")
        super().write(data)


def test_serial_line_survives_bytes_sent_while_the_firmware_resets(tmp_path: Path) -> None:
    """A user's sketch that crashes boot-loops; the harness's console must stay usable (the
    USB bridge of a board does not go away while its chip resets)."""
    twin = standin_twin(flash_path=tmp_path / "flash.bin", firmware_factory=CrashingFirmware)
    try:
        assert twin.flash is not None
        twin.flash.store(0, standin_image())
        twin.power_cycle()
        twin.wait_for_tx(b"ESP-HIL BOOT", TIMEOUT)
        with _open(twin) as port:
            mark = twin.tx_mark()
            port.write(b"crash\n")
            deadline = time.monotonic() + TIMEOUT
            while CrashingFirmware.instances[-1].alive and time.monotonic() < deadline:
                time.sleep(0.01)
            port.write(b"lost while the chip resets\n")  # before the reset is reported
            port.baudrate = 74880  # pyserial waits for the server to accept this
            port.baudrate = 115200
            twin.wait_for_tx(b"reset=Exception", TIMEOUT, mark)
            port.write(b"hello\n")
            assert b"echo hello\n" in _read_until(port, b"echo hello\n")
    finally:
        twin.stop()
