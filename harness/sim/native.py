"""The twin as a board: a chip on an rfc2217 port, flashed and driven like a real ESP8266.

Glue between the native build, the flashable identity image, the chip emulator and the
serial backend. ``--device=twin`` runs the whole real-board path (esptool, DTR/RTS resets,
console provisioning) against a twin started here; ``esp-hil sim`` runs one in the foreground
for other tools (the esptool CLI, ``pytest --device=rfc2217://...``).
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

from harness.device.base import Device
from harness.device.serial import SerialDevice
from harness.sim.build import build_firmware_info, cache_root
from harness.sim.chip.registry import native_image as register_native_image
from harness.sim.pins import Pins

#: The identity the test firmware announces (without its ``+<build>`` suffix).
FIRMWARE_IDENTITY = "esp-hil-testfw/0.1.0"


def native_image(*, sanitize: bool = False) -> bytes:
    """Build the native test firmware (cached) and return the ESP8266 image that boots it."""
    build = build_firmware_info(sanitize=sanitize)
    return register_native_image(build.path, build.build_id, FIRMWARE_IDENTITY)


def _running_dir() -> Path:
    return cache_root() / "twin" / "running"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_twins() -> dict[str, dict[str, str]]:
    """The twins that ``esp-hil sim`` runs on this machine right now, by rfc2217 URL.

    Each has ``ip``, ``ssid`` and ``password`` (its simulated access point).
    """
    twins: dict[str, dict[str, str]] = {}
    folder = _running_dir()
    if not folder.is_dir():
        return twins
    for entry in folder.glob("*.json"):
        try:
            info = json.loads(entry.read_text())
        except (OSError, ValueError):
            continue
        if _alive(int(info.get("pid", 0))):
            twins[str(info["url"])] = info
        else:
            entry.unlink(missing_ok=True)
    return twins


class TwinDevice(SerialDevice):
    """A twin started here and driven through the real-board path over rfc2217."""

    def __init__(self, *, sanitize: bool = False, flash: str = "auto") -> None:
        from harness.sim.chip.twin import Twin

        self.twin = Twin()
        self._pins: Pins | None = None
        super().__init__(
            "rfc2217://pending",
            ssid=self.twin.ssid,
            password=self.twin.password,
            image=native_image(sanitize=sanitize),
            flash=flash,
        )

    def start(self) -> Device:
        self.twin.start()
        self.port_name = self.twin.url
        return super().start()

    @property
    def description(self) -> str:
        return f"twin {self.twin.ip} over {self.port_name}"

    @property
    def pins(self) -> Pins:
        """The twin's GPIO and A0, shared with its firmware through ``<flash>.pins``."""
        if self._pins is None:
            self._pins = Pins.for_flash(self.twin.flash_path)
        return self._pins

    def kill(self) -> None:
        """Cut the power: the twin and its serial port vanish, as an unplugged board's would."""
        self.twin.stop()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.twin.stop()
            if self._pins is not None:
                self._pins.close()


def run_twin(
    *,
    rfc2217_port: int = 0,
    flash_file: str | None = None,
    ssid: str | None = None,
    password: str | None = None,
    mac: str | None = None,
) -> int:
    """``esp-hil sim``: serve one twin until SIGINT/SIGTERM; print where it is."""
    from harness.sim.chip.twin import DEFAULT_PASSWORD, DEFAULT_SSID, Twin

    native_image()  # build and register, so an image flashed later finds its binary
    twin = Twin(
        flash_path=flash_file,
        rfc2217_port=rfc2217_port,
        mac=mac,
        ssid=ssid or DEFAULT_SSID,
        password=password or DEFAULT_PASSWORD,
    )
    twin.start()
    record = _running_dir() / f"{os.getpid()}.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "url": twin.url,
                "ip": twin.ip,
                "ssid": twin.ssid,
                "password": twin.password,
            }
        )
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        print(f"serial: {twin.url}", flush=True)
        print(f"ip: {twin.ip}", flush=True)
        print(f"mac: {twin.mac}", flush=True)
        print(f"wifi: ssid={twin.ssid} password={twin.password}", flush=True)
        print(f"flash: {twin.flash_path}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        record.unlink(missing_ok=True)
        twin.stop()
    return 0
