"""``--device=sim``: a twin started here and driven through the real-board path.

The chip emulator serves the twin on an rfc2217 port; the serial backend flashes it with
esptool, resets it through DTR/RTS and provisions it over the console, as it would a board.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.device.base import Device
from harness.device.serial import SerialDevice
from harness.sim.build import build_firmware_info
from harness.sim.chip.registry import register_image
from harness.sim.chip.twin import Twin
from harness.sim.defaults import FIRMWARE_IDENTITY
from harness.sim.firmware import ShimLog
from harness.sim.world import TwinWorld

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


class TwinDevice(TwinWorld, SerialDevice):
    """A twin started here and driven through the real-board path over rfc2217."""

    def __init__(
        self, *, project: Project | None = None, sanitize: bool = False, flash: str = "auto"
    ) -> None:
        image = native_image(project=project, sanitize=sanitize)
        self.twin = Twin()
        super().__init__(
            "rfc2217://pending",
            ssid=self.twin.ssid,
            password=self.twin.password,
            image=image,
            flash=flash,
        )

    def start(self) -> Device:
        # A dead firmware ends every wait at once, as on sim-direct (a board has no such
        # state: its chip resets); the next reset waits again.
        self.twin.on_halt = self.console.close
        self.twin.start()
        self.port_name = self.twin.url
        return super().start()

    def hard_reset(self) -> None:
        self.console.reopen()
        super().hard_reset()

    @property
    def description(self) -> str:
        return f"twin {self.twin.ip} over {self.port_name}"

    def _world_files(self) -> tuple[Path, str]:
        return self.twin.flash_path, self.twin.password

    def _shim_log(self) -> ShimLog:
        return self.twin.shim_log

    def kill(self) -> None:
        """Cut the power: the twin and its serial port vanish, as an unplugged board's would."""
        self.twin.stop()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.twin.stop()
            self._close_world()
