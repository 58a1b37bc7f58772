"""``--device=sim``: a twin started here and driven through the real-board path.

The chip emulator serves the twin on an rfc2217 port; the serial backend flashes it with
esptool, resets it through DTR/RTS and provisions it over the console, as it would a board.
"""

from __future__ import annotations

from harness.device.base import Device
from harness.device.serial import SerialDevice
from harness.sim.build import build_firmware_info
from harness.sim.chip.registry import register_image
from harness.sim.chip.twin import Twin
from harness.sim.defaults import FIRMWARE_IDENTITY


def native_image(*, sanitize: bool = False) -> bytes:
    """Build the native test firmware (cached) and return the ESP8266 image that boots it."""
    build = build_firmware_info(sanitize=sanitize)
    return register_image(build.path, build.build_id, FIRMWARE_IDENTITY)


class TwinDevice(SerialDevice):
    """A twin started here and driven through the real-board path over rfc2217."""

    def __init__(self, *, sanitize: bool = False, flash: str = "auto") -> None:
        self.twin = Twin()
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

    def kill(self) -> None:
        """Cut the power: the twin and its serial port vanish, as an unplugged board's would."""
        self.twin.stop()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.twin.stop()
