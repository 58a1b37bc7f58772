"""The real-board backend against twins over rfc2217: flashing, locking, and how it fails.

Every failure must name its cause, show the console tail and come within its timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.device.errors import BoardBusy, DeviceError, DeviceTimeout, ProvisioningError
from harness.device.lock import BoardLock
from harness.device.serial import SerialDevice
from harness.sim.board import native_image
from harness.sim.chip.twin import Twin


@pytest.fixture(scope="module")
def image() -> bytes:
    return native_image()


@pytest.fixture
def blank_twin(tmp_path: Path) -> Iterator[Twin]:
    """A twin with an erased flash that boots the real firmware once flashed."""
    with Twin(flash_path=tmp_path / "flash.bin") as t:
        yield t


def _board(blank_twin: Twin, image: bytes | None, **kw: object) -> SerialDevice:
    opts: dict[str, object] = {
        "ssid": blank_twin.ssid,
        "password": blank_twin.password,
        "image": image,
    }
    opts.update(kw)
    return SerialDevice(blank_twin.url, **opts)  # type: ignore[arg-type]


def test_flash_provision_ready_then_second_start_writes_nothing(
    blank_twin: Twin, image: bytes
) -> None:
    with _board(blank_twin, image) as first:
        first.start()
        assert first.flashed is True
        assert first.ip == blank_twin.ip
        first.console.expect(r"^ESP-HIL WIFI none", timeout=1)  # fresh flash: provisioned
        with first.connect() as link:
            link.send("through esptool and rfc2217")
            assert link.receive(timeout=5) == "through esptool and rfc2217"
    with _board(blank_twin, image) as second:
        second.start()
        assert second.flashed is False  # MD5 matched: nothing written
        # Credentials came from flash this time: no provisioning step.
        assert not any("ESP-HIL OK wifi" in ln.text for ln in second.console.lines)


def test_reset_reboots_and_keeps_credentials(blank_twin: Twin, image: bytes) -> None:
    with _board(blank_twin, image) as board:
        board.start()
        before = board.info()["uptime_ms"]
        board.reset(timeout=10)
        info = board.info()
        assert info["reset_reason"] == "External System"
        assert info["uptime_ms"] < before + 5000


def test_wrong_wifi_password_names_the_cause(blank_twin: Twin, image: bytes) -> None:
    board = _board(blank_twin, image, password="not-the-password")
    t0 = time.monotonic()
    with pytest.raises(ProvisioningError) as info:
        board.start()
    assert time.monotonic() - t0 < 15
    assert "wrong_password" in str(info.value)
    assert "console tail" in str(info.value)


def test_no_credentials_at_all_fails_fast(blank_twin: Twin, image: bytes) -> None:
    board = _board(blank_twin, image, ssid=None, password=None)
    t0 = time.monotonic()
    with pytest.raises(ProvisioningError, match="ESP_HIL_WIFI_SSID"):
        board.start()
    assert time.monotonic() - t0 < 10


def test_corrupt_image_never_ready_shows_the_rom_complaint(blank_twin: Twin, image: bytes) -> None:
    corrupt = bytearray(image)
    corrupt[-1] ^= 0x5A  # the image's checksum byte
    board = _board(blank_twin, bytes(corrupt))
    board.ready_timeout = 3
    with pytest.raises(DeviceTimeout) as info:
        board.start()
    assert "the boot ROM said" in str(info.value)
    assert "csum err" in str(info.value)


def test_port_vanishing_mid_test_is_named(blank_twin: Twin, image: bytes) -> None:
    board = _board(blank_twin, image)
    board.start()
    try:
        blank_twin.stop()  # the board is unplugged
        t0 = time.monotonic()
        with pytest.raises(DeviceError) as info:
            board.console.expect(r"never printed", timeout=30)
        assert time.monotonic() - t0 < 10
        assert "went away" in str(info.value)
    finally:
        board.close()


def test_second_process_on_the_same_board_is_refused(tmp_path: Path) -> None:
    port = f"rfc2217://127.0.0.1:1/{tmp_path.name}"
    with BoardLock(port, timeout=1):
        t0 = time.monotonic()
        with pytest.raises(BoardBusy, match=f"pid {os.getpid()}"):
            BoardLock(port, timeout=0.3).acquire()
        assert time.monotonic() - t0 < 2


def test_lock_of_a_killed_process_is_released(tmp_path: Path) -> None:
    port = f"/dev/ttyFAKE-{tmp_path.name}"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import time
            from harness.device.lock import BoardLock
            held = BoardLock({port!r}, timeout=5).acquire()
            print("held", flush=True)
            time.sleep(60)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BoardBusy):
            BoardLock(port, timeout=0.2).acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=5)
        BoardLock(port, timeout=2).acquire().release()
    finally:
        holder.kill()
        holder.wait(timeout=5)


def test_cli_flash_and_reset_against_a_twin(blank_twin: Twin) -> None:
    env = {
        **os.environ,
        "ESP_HIL_WIFI_SSID": blank_twin.ssid,
        "ESP_HIL_WIFI_PASSWORD": blank_twin.password,
    }

    def esp_hil(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "harness.cli", *args, "--device", blank_twin.url],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done

    # `info` flashes the native image, provisions WiFi and asks the control service.
    assert '"fw": "esp-hil-testfw/' in esp_hil("info", "--firmware", "native").stdout
    assert "already flashed" in esp_hil("flash", "--firmware", "native").stdout
    assert f"READY ip={blank_twin.ip}" in esp_hil("reset").stdout
