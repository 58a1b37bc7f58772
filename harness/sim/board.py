"""``--device=sim``: a twin started here and driven through the real-board path.

The chip emulator serves the twin on an rfc2217 port; the serial backend flashes it with
esptool, resets it through DTR/RTS and provisions it over the console, as it would a board.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.device.base import Device
from harness.device.serial import SerialDevice
from harness.sim.build import build_firmware_info
from harness.sim.chip.registry import register_image
from harness.sim.chip.twin import Twin
from harness.sim.defaults import FIRMWARE_IDENTITY
from harness.sim.pins import Pins
from harness.sim.wifi import AccessPoint

if TYPE_CHECKING:
    from harness.project import Project


def native_image(*, project: Project | None = None, sanitize: bool = False) -> bytes:
    """Build the native firmware (cached) and return the ESP8266 image that boots it.

    The image names the build by its id (a hash of every source and flag), which the
    registry maps to the binary: a user's project and the test firmware never collide.
    """
    build = build_firmware_info(project=project, sanitize=sanitize)
    identity = FIRMWARE_IDENTITY if project is None else project.name
    return register_image(build.path, build.build_id, identity)


class TwinDevice(SerialDevice):
    """A twin started here and driven through the real-board path over rfc2217."""

    def __init__(
        self, *, project: Project | None = None, sanitize: bool = False, flash: str = "auto"
    ) -> None:
        image = native_image(project=project, sanitize=sanitize)
        self.twin = Twin()
        self._pins: Pins | None = None
        self._wifi: AccessPoint | None = None
        super().__init__(
            "rfc2217://pending",
            ssid=self.twin.ssid,
            password=self.twin.password,
            image=image,
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

    @property
    def wifi(self) -> AccessPoint:
        """The twin's access point (docs/twin.md, "Board faults")."""
        if self._wifi is None:
            self._wifi = AccessPoint(self.twin.flash_path, password=self.twin.password)
        return self._wifi

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
            if self._wifi is not None:
                self._wifi.close()
