"""The twin's I2C bus, as the test wires it: devices that are register maps.

The sketch's ``Wire`` (``firmware/sim/Wire.cpp``) talks to up to eight devices kept in a
file beside the twin's flash file, ``<flash>.i2c``, mapped by both processes. Each is a
7-bit address and 256 registers. A write from the sketch sets the device's register
pointer from its first byte and stores the rest from there on; a read returns bytes from
the pointer on; both advance it, wrapping at 256: the register map of most I2C sensors
(BME280, MPU-6050, SHT3x, ...). An address with no device NACKs, as on a board with
nothing wired (``endTransmission()`` returns 2, ``requestFrom()`` 0).

The test sets what a device reports and reads what the sketch configured::

    bme = device.i2c.attach(0x76, {0xD0: 0x60})   # the chip-id register
    bme.write(0xF7, bytes([0x65, 0x5A, 0xC0]))     # a pressure reading, three registers
    assert bme[0xF4] == 0x27                       # what the sketch wrote to ctrl_meas
    device.i2c.detach(0x76)

Wiring stays when the firmware restarts, as on a bench; register pointers go back to 0.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.sim.registers import RegisterBus, RegisterDevice, RegisterError

__all__ = ["I2cBus", "I2cDevice", "I2cError", "i2c_path"]


class I2cError(RegisterError):
    """An address or register the bus cannot take, or a device that is not there."""


def i2c_path(flash: Path | str) -> Path:
    """The I2C bus file of a twin whose flash file is ``flash``."""
    return Path(f"{os.fspath(flash)}{I2cBus.SUFFIX}")


class I2cDevice(RegisterDevice):
    """One attached device: its 256 registers (``device[reg]``, :meth:`read`,
    :meth:`write`) and where the sketch's next transfer starts (:attr:`pointer`)."""

    @property
    def address(self) -> int:
        """Its 7-bit address."""
        return self.key


class I2cBus(RegisterBus[I2cDevice]):
    """The twin's I2C bus through its shared file: up to eight register-map devices, by
    7-bit address (``Wire.cpp`` is the firmware's side)."""

    SUFFIX = ".i2c"
    Error = I2cError
    Device = I2cDevice


    def _key(self, key: int | str) -> int:
        if isinstance(key, bool) or not isinstance(key, int) or not 0x08 <= key <= 0x77:
            raise I2cError(f"an I2C address is 7 bits, 0x08..0x77, not {key!r}")
        return key

    def name(self, key: int) -> str:
        return f"0x{key:02X}"
