"""The unmodified esptool against a twin over rfc2217://, with and without its stub."""

from __future__ import annotations

import hashlib
import random
import re
import time
from pathlib import Path

import pytest
import serial
from esptool.util import FatalError

from harness.device.flashing import flash_image
from harness.sim.chip import Twin
from harness.sim.chip.loader import SerialLoader
from tests.helpers.chip import (
    EEPROM_OFFSET,
    STANDIN_ID,
    run_esptool,
    run_esptool_cli,
    standin_image,
)

pytestmark = pytest.mark.twin


BOOT_TIMEOUT = 10


def _payload(size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    # Half compressible, half not: exercises deflate blocks of both kinds.
    return bytes(rng.getrandbits(8) for _ in range(size // 2)) + bytes(size - size // 2)


@pytest.mark.parametrize("stub", [True, False], ids=["stub", "no-stub"])
def test_chip_id_mac_and_flash_id(twin: Twin, stub: bool) -> None:
    extra = [] if stub else ["--no-stub"]
    out = run_esptool(twin.url, *extra, "chip-id")
    assert f"Chip ID: {twin.chip_id:#010x}" in out
    assert re.search(rf"MAC:\s+{twin.mac}", out)
    out = run_esptool(twin.url, *extra, "flash-id")
    assert "Manufacturer: ef" in out
    assert "Device: 4016" in out
    assert "Detected flash size: 4MB" in out


def test_write_verify_read_round_trip_with_stub(twin: Twin, tmp_path: Path) -> None:
    image = tmp_path / "fw.bin"
    image.write_bytes(standin_image())
    data = tmp_path / "data.bin"
    data.write_bytes(_payload(48 * 1024, 1))
    mark = twin.tx_mark()
    out = run_esptool(twin.url, "write-flash", "0x0", str(image), "0x10000", str(data))
    assert out.count("Hash of data verified.") == 2
    # after esptool's hard reset the identity image boots the (stand-in) firmware
    twin.wait_for_tx(
        f"ESP-HIL BOOT fw={STANDIN_ID} reset=External System".encode(), BOOT_TIMEOUT, mark
    )
    out = run_esptool(twin.url, "verify-flash", "0x10000", str(data))
    assert "Verification successful (digest matched)." in out
    back = tmp_path / "back.bin"
    run_esptool(twin.url, "read-flash", "0x10000", str(48 * 1024), str(back))
    assert back.read_bytes() == data.read_bytes()


def test_verify_flash_detects_a_difference(twin: Twin, tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(_payload(8192, 2))
    run_esptool(twin.url, "write-flash", "0x20000", str(data))
    assert twin.flash is not None
    twin.flash.store(0x20000 + 100, b"\x00")  # one bad byte
    with pytest.raises(FatalError, match="Verification failed"):
        run_esptool(twin.url, "verify-flash", "--diff", "0x20000", str(data))


def test_write_flash_skips_what_is_already_flashed(twin: Twin, tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(_payload(16 * 1024, 3))
    run_esptool(twin.url, "write-flash", "0x30000", str(data))
    out = run_esptool(twin.url, "write-flash", "--skip-flashed", "0x30000", str(data))
    assert "already in flash, skipping write" in out


def test_write_without_stub_then_rom_limits(twin: Twin, tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    payload = _payload(5000, 4)  # not a multiple of the ROM's 1 KiB block
    data.write_bytes(payload)
    assert twin.flash is not None
    twin.flash.store(0x40000, b"\x00" * 0x3000)  # stale data the ROM erase must clear
    out = run_esptool(twin.url, "--no-stub", "write-flash", "0x40000", str(data))
    assert "Wrote 5000 bytes" in out
    assert twin.flash.read(0x40000, len(payload)) == payload
    assert twin.flash.read(0x40000 + len(payload), 0x2000 - len(payload)) == b"\xff" * (
        0x2000 - len(payload)
    )
    # The ESP8266 ROM has no MD5, no read and no chip erase: esptool itself refuses.
    for args in (
        ["verify-flash", "0x40000", str(data)],
        ["read-flash", "0x40000", "16", str(tmp_path / "x.bin")],
        ["erase-flash"],
    ):
        with pytest.raises(FatalError, match="ESP8266 ROM does not support"):
            run_esptool(twin.url, "--no-stub", *args)
    # ...and the stub reads back what the ROM wrote.
    out = run_esptool(twin.url, "verify-flash", "0x40000", str(data))
    assert "digest matched" in out


def test_erase_flash_forgets_credentials_and_bricks(twin: Twin, tmp_path: Path) -> None:
    image = tmp_path / "fw.bin"
    image.write_bytes(standin_image())
    mark = twin.tx_mark()
    run_esptool(twin.url, "write-flash", "0x0", str(image))
    twin.wait_for_tx(b"ESP-HIL WIFI none", BOOT_TIMEOUT, mark)
    assert twin.flash is not None
    twin.flash.store(EEPROM_OFFSET, b"MyNet\x00")  # what provisioning leaves behind
    twin.power_cycle()
    twin.wait_for_tx(b"ESP-HIL WIFI stored MyNet", BOOT_TIMEOUT, mark)
    mark = twin.tx_mark()
    run_esptool(twin.url, "erase-flash")
    assert twin.flash.md5(0, twin.flash.size) == hashlib.md5(b"\xff" * twin.flash.size).digest()
    twin.wait_for_tx(b"ets_main.c", BOOT_TIMEOUT, mark)
    assert twin.state == "bricked"
    assert b"ESP-HIL" not in twin.tx_since(mark)


def test_erase_region(twin: Twin) -> None:
    assert twin.flash is not None
    twin.flash.store(0x50000, b"\x00" * 0x3000)
    run_esptool(twin.url, "erase-region", "0x51000", "0x1000")
    assert twin.flash.read(0x50000, 0x1000) == b"\x00" * 0x1000
    assert twin.flash.read(0x51000, 0x1000) == b"\xff" * 0x1000
    assert twin.flash.read(0x52000, 0x1000) == b"\x00" * 0x1000


def test_high_baud_write_changes_the_chip_uart(twin: Twin, tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(_payload(32 * 1024, 5))
    out = run_esptool(twin.url, "--baud", "921600", "write-flash", "0x60000", str(data))
    assert "Changing baud rate to 921600" in out
    assert "Hash of data verified." in out


@pytest.fixture
def late_mem_end(monkeypatch: pytest.MonkeyPatch) -> None:
    """The twin answers MEM_END after 0.5 s, as a twin on a loaded CI machine can.

    esptool's own 0.2 s would miss the answer and then fail to read the stub's greeting.
    """
    answer = SerialLoader._mem_end

    def late(self: SerialLoader, data: bytes, chk: int) -> tuple[int, bytes]:
        time.sleep(0.5)
        return answer(self, data, chk)

    monkeypatch.setattr(SerialLoader, "_mem_end", late)


@pytest.mark.usefixtures("late_mem_end")
def test_the_stub_starts_when_the_twin_answers_mem_end_late(twin: Twin) -> None:
    out = run_esptool(twin.url, "chip-id")
    assert f"Chip ID: {twin.chip_id:#010x}" in out


@pytest.mark.usefixtures("late_mem_end")
def test_flash_image_starts_the_stub_when_the_twin_answers_mem_end_late(twin: Twin) -> None:
    assert flash_image(twin.url, standin_image(), mode="always") is True
    assert twin.flash is not None
    assert twin.flash.read(0, 16) == standin_image()[:16]


def test_unmodified_cli_with_ign_set_control(twin: Twin) -> None:
    # The CLI in a subprocess, and pyserial's ?ign_set_control style (100 ms
    # after every line change) through the strapping window.
    done = run_esptool_cli(twin.url + "?ign_set_control", "--no-stub", "read-mac")
    assert done.returncode == 0, done.stdout + done.stderr
    assert twin.mac in done.stdout


def test_real_native_firmware_flashed_by_esptool(tmp_path: Path) -> None:
    """The harness path on the twin: flash the identity image, boot, provision, READY."""
    from harness.sim.build import build_firmware_info
    from harness.sim.chip import FirmwareRegistry
    from harness.sim.chip.registry import register_image

    try:
        build = build_firmware_info()
    except Exception as e:  # no host compiler: nothing to boot
        pytest.skip(f"native firmware does not build here: {e}")
    registry = FirmwareRegistry(tmp_path / "registry.json")
    image = tmp_path / "native.bin"
    image.write_bytes(register_image(build.path, build.build_id, "esp-hil-testfw/0.1.0", registry))
    twin = Twin(flash_path=tmp_path / "flash.bin", firmware_registry=registry).start()
    try:
        mark = twin.tx_mark()
        run_esptool(twin.url, "write-flash", "0x0", str(image))
        twin.wait_for_tx(b"ESP-HIL WIFI none", 15, mark)
        with serial.serial_for_url(twin.url, baudrate=115200, timeout=0.2) as port:
            port.write(f"wifi {twin.ssid} {twin.password}\n".encode())
            twin.wait_for_tx(re.compile(rb"ESP-HIL READY .*ip=" + twin.ip.encode()), 15, mark)
        mark = twin.tx_mark()
        # The SDK station config sector, where the EspHil agent keeps the credentials
        run_esptool(twin.url, "erase-region", "0x3FD000", "0x1000")
        # esptool's hard reset boots the same firmware, which has forgotten the network
        twin.wait_for_tx(b"ESP-HIL WIFI none", 15, mark)
    finally:
        twin.stop()
