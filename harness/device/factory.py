"""From a ``--device`` spec to a READY device: the one place the plugin and the CLI share."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness.device.base import Device
from harness.device.errors import DeviceError


@dataclass
class DeviceOptions:
    """What the user said about the board (pytest options, CLI flags or environment)."""

    spec: str = "sim"
    ssid: str | None = None
    password: str | None = None
    firmware: str | None = None
    flash: str = "auto"
    pio_env: str = "nodemcuv2"
    sanitize: bool = False
    lock_timeout: float = 60.0

    @classmethod
    def from_env(cls, **overrides: object) -> DeviceOptions:
        """Defaults, with WiFi credentials from ESP_HIL_WIFI_SSID / ESP_HIL_WIFI_PASSWORD."""
        opts = cls(
            ssid=os.environ.get("ESP_HIL_WIFI_SSID"),
            password=os.environ.get("ESP_HIL_WIFI_PASSWORD"),
        )
        for key, value in overrides.items():
            if value is not None:
                setattr(opts, key, value)
        return opts


#: ``--device`` values that start a twin here: ``sim`` (and its alias ``twin``) drives it like a
#: board — esptool over rfc2217, DTR/RTS resets, console provisioning; ``sim-direct`` runs its
#: firmware process without the emulated chip (fastest boot, no flashing); ``sim-core`` runs
#: it on the ESP8266 core's own host emulation instead of our shim (docs/sim-core.md).
TWIN_SPECS = ("sim", "twin", "sim-direct", "sim-core")


def is_twin_spec(spec: str) -> bool:
    """True for the specs that start a twin here (no board involved)."""
    return spec in TWIN_SPECS


def firmware_image(opts: DeviceOptions) -> bytes:
    """The image to flash on a board: ``--firmware``, the twin's native image, or PlatformIO's."""
    from harness.sim.build import firmware_root

    if opts.firmware == "native" or (opts.firmware is None and _is_local_twin(opts.spec)):
        from harness.sim.native import native_image

        return native_image(sanitize=opts.sanitize)
    if opts.firmware is not None:
        path = Path(opts.firmware)
        if not path.is_file():
            raise DeviceError(f"--firmware {path}: no such file")
        return path.read_bytes()
    from harness.device.flashing import build_with_platformio

    return build_with_platformio(opts.pio_env, firmware_root()).read_bytes()


def _is_local_twin(spec: str) -> bool:
    from harness.sim.native import running_twins

    return spec in running_twins()


def open_device(opts: DeviceOptions) -> Device:
    """Start a twin or take a board, and bring it to READY. The caller closes it."""
    dev: Device
    if opts.spec == "sim-direct":
        from harness.device.sim import SimDevice

        sim = SimDevice(sanitize=opts.sanitize)
        dev = sim
        starter = sim.start
    elif opts.spec == "sim-core":
        from harness.sim.core.device import CoreDevice

        core = CoreDevice()
        dev = core
        starter = core.start
    elif opts.spec in ("sim", "twin"):
        from harness.sim.native import TwinDevice

        twin = TwinDevice(sanitize=opts.sanitize, flash=opts.flash)
        dev = twin
        starter = twin.start
    else:
        from harness.device.serial import SerialDevice
        from harness.sim.native import running_twins

        local_twin = running_twins().get(opts.spec)
        if local_twin is not None and opts.ssid is None:
            # A twin of this machine: its simulated access point is known.
            opts.ssid, opts.password = local_twin["ssid"], local_twin["password"]
        board = SerialDevice(
            opts.spec,
            ssid=opts.ssid,
            password=opts.password,
            image=None if opts.flash == "never" else firmware_image(opts),
            flash=opts.flash,
            lock_timeout=opts.lock_timeout,
        )
        dev = board
        starter = board.start
    try:
        starter()
    except BaseException:
        dev.close()
        raise
    return dev
