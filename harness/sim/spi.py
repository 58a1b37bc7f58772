"""The twin's SPI bus, as the test wires it: register-map devices on chip-select GPIOs.

The sketch's ``SPI`` (``firmware/sim/SPI.cpp``) talks to up to eight devices kept in
``<flash>.spi``. A transaction starts when the sketch drives a device's chip select low
(``digitalWrite``; with ``SPI.setHwCs(true)``, each transfer call on GPIO15): its first byte
names the register, bit 7 set for a read, as BME280, MPU-9250 or ADXL345 do; each byte
after it reads or writes the next register, the pointer wrapping at 128. With no device
selected the sketch reads 0xFF.

    bme = device.spi.attach(D8, {0x50: 0x60})   # chip select on GPIO15
    assert bme[0x74] == 0x27                     # what the sketch wrote to register 0x74

Wiring stays when the firmware restarts, as on a bench; register pointers go back to 0.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.sim.pins import PinError, gpio_number
from harness.sim.registers import RegisterBus, RegisterDevice, RegisterError

__all__ = ["SpiBus", "SpiDevice", "SpiError", "spi_path"]


class SpiError(RegisterError):
    """A chip select or register the bus cannot take, or a device that is not there."""


def spi_path(flash: Path | str) -> Path:
    """The SPI bus file of a twin whose flash file is ``flash``."""
    return Path(f"{os.fspath(flash)}{SpiBus.SUFFIX}")


class SpiDevice(RegisterDevice):
    """One attached device: its 128 registers (``device[reg]``, :meth:`read`,
    :meth:`write`) and where the sketch's next byte goes (:attr:`pointer`)."""

    @property
    def cs(self) -> int:
        """The GPIO of its chip select."""
        return self.key


class SpiBus(RegisterBus[SpiDevice]):
    """The twin's SPI bus through its shared file: up to eight register-map devices, by
    chip-select GPIO (a number or a name such as ``"D8"``)."""

    SUFFIX = ".spi"
    REGISTERS = 128
    Error = SpiError
    Device = SpiDevice


    def _key(self, key: int | str) -> int:
        try:
            return gpio_number(key)
        except PinError as exc:
            raise SpiError(f"chip select: {exc}") from None

    def name(self, key: int) -> str:
        return f"GPIO{key}"
