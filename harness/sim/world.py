"""``device.pins``, ``device.i2c``, ``device.spi``, ``device.fs`` and ``device.wifi`` for both
twin backends (``sim`` and ``sim-direct``).

Both live in files beside the twin's flash file, so a backend only says where that file is and
what its access point's password is.
"""

from __future__ import annotations

from pathlib import Path

from harness.sim.firmware import ShimLog
from harness.sim.i2c import I2cBus
from harness.sim.pins import Pins
from harness.sim.spi import SpiBus
from harness.sim.wifi import AccessPoint


class TwinWorld:
    """The twin's pins, buses, files and access point, opened on first use; mixed in before
    ``Device``."""

    _pins: Pins | None = None
    _i2c: I2cBus | None = None
    _spi: SpiBus | None = None
    _wifi: AccessPoint | None = None

    def _world_files(self) -> tuple[Path, str]:
        """The twin's flash file and its access point's password."""
        raise NotImplementedError

    def _shim_log(self) -> ShimLog:
        """Where the twin's firmware runs write their stderr."""
        raise NotImplementedError

    def twin_log(self, since: float | None = None) -> list[str]:
        """The emulation's own warnings (``[shim] ...`` lines on the firmware's stderr: a
        refused allocation, a connection over the limit, the access point lost), from
        ``time.monotonic()`` value ``since`` on; the plugin adds them to a failed test's
        report."""
        return self._shim_log().since(since)

    @property
    def pins(self) -> Pins:
        """The twin's GPIO and A0, shared with its firmware through ``<flash>.pins``."""
        if self._pins is None:
            self._pins = Pins.for_flash(self._world_files()[0])
        return self._pins

    @property
    def fs(self) -> Path:
        """The twin's LittleFS: the directory ``<flash>.fs`` the firmware keeps its files in
        (created, i.e. formatted, if it was not). Put a file there before the sketch reads
        it; read what the sketch wrote."""
        path = Path(f"{self._world_files()[0]}.fs")
        path.mkdir(exist_ok=True)
        return path

    @property
    def i2c(self) -> I2cBus:
        """The twin's I2C bus (``Wire``), shared with its firmware through ``<flash>.i2c``."""
        if self._i2c is None:
            self._i2c = I2cBus.for_flash(self._world_files()[0])
        return self._i2c

    @property
    def spi(self) -> SpiBus:
        """The twin's SPI bus (``SPI``), shared with its firmware through ``<flash>.spi``."""
        if self._spi is None:
            self._spi = SpiBus.for_flash(self._world_files()[0])
        return self._spi

    @property
    def wifi(self) -> AccessPoint:
        """The twin's access point (docs/twin.md, "Board faults")."""
        if self._wifi is None:
            flash, password = self._world_files()
            self._wifi = AccessPoint(flash, password=password)
        return self._wifi

    def _close_world(self) -> None:
        if self._pins is not None:
            self._pins.close()
        if self._i2c is not None:
            self._i2c.close()
        if self._spi is not None:
            self._spi.close()
        if self._wifi is not None:
            self._wifi.close()
