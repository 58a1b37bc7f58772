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

import mmap
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from harness.sim.worldfile import WorldFile

__all__ = ["I2cBus", "I2cDevice", "I2cError", "i2c_path"]

# The file layout, shared with Wire.cpp: eight slots of (address, attached, pointer, pad,
# 256 registers).
_SLOTS = 8
_SLOT = 260
_SIZE = _SLOTS * _SLOT
_ADDRESS, _ATTACHED, _POINTER, _REGS = 0, 1, 2, 4


class I2cError(ValueError):
    """An address or register the bus cannot take, or a device that is not there."""


def i2c_path(flash: Path | str) -> Path:
    """The I2C bus file of a twin whose flash file is ``flash``."""
    return Path(f"{os.fspath(flash)}.i2c")


def _address(address: int) -> int:
    if isinstance(address, bool) or not isinstance(address, int) or not 0x08 <= address <= 0x77:
        raise I2cError(f"an I2C address is 7 bits, 0x08..0x77, not {address!r}")
    return address


def _register(register: int) -> int:
    if isinstance(register, bool) or not isinstance(register, int) or not 0 <= register <= 0xFF:
        raise I2cError(f"a register is 0x00..0xFF, not {register!r}")
    return register


class I2cDevice:
    """One attached device: its 256 registers (``device[reg]``, :meth:`read`,
    :meth:`write`) and where the sketch's next transfer starts (:attr:`pointer`)."""

    def __init__(self, bus: I2cBus, slot: int, address: int) -> None:
        self._bus = bus
        self._base = slot * _SLOT
        self.address = address

    def _live(self) -> mmap.mmap:
        m = self._bus._m
        if m[self._base + _ATTACHED] != 1 or m[self._base + _ADDRESS] != self.address:
            raise I2cError(f"no device at 0x{self.address:02X} any more (detached)")
        return m

    def __getitem__(self, register: int) -> int:
        return self._live()[self._base + _REGS + _register(register)]

    def __setitem__(self, register: int, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFF:
            raise I2cError(f"register 0x{_register(register):02X}: a byte 0..255, not {value!r}")
        self.write(register, bytes((value,)))

    def read(self, register: int, count: int) -> bytes:
        """``count`` registers from ``register`` on (wrapping at 0xFF, as the device's
        pointer does)."""
        m = self._live()
        start = _register(register)
        return bytes(m[self._base + _REGS + (start + i) % 256] for i in range(count))

    def write(self, register: int, data: bytes | bytearray) -> None:
        """Set registers from ``register`` on (wrapping at 0xFF) to ``data``."""
        if not data:
            raise I2cError("write() takes one byte or more (0..255 each)")
        m = self._live()
        start = _register(register)
        for i, byte in enumerate(data):
            m[self._base + _REGS + (start + i) % 256] = byte

    @property
    def pointer(self) -> int:
        """The register the sketch's next read starts at (it last wrote or read up to here)."""
        return self._live()[self._base + _POINTER]

    def __repr__(self) -> str:
        return f"I2cDevice(0x{self.address:02X})"


class I2cBus(WorldFile):
    """The twin's I2C bus through its shared file: up to eight register-map devices.

    Creating the file is harmless: the firmware maps the same file when the sketch first
    uses ``Wire``, whichever side comes first.
    """

    SIZE = _SIZE

    @classmethod
    def for_flash(cls, flash: Path | str) -> I2cBus:
        """The bus of the twin whose flash file is ``flash``."""
        return cls(i2c_path(flash))

    def _slot_of(self, address: int) -> int | None:
        m = self._m
        for slot in range(_SLOTS):
            base = slot * _SLOT
            if m[base + _ATTACHED] == 1 and m[base + _ADDRESS] == address:
                return slot
        return None

    def attach(self, address: int, registers: Mapping[int, int] | bytes | None = None
               ) -> I2cDevice:
        """Wire a device at ``address``: its registers 0 unless ``registers`` gives them
        (a map of register to value, or all 256 as bytes). Replaces a device already
        there."""
        _address(address)
        self.detach(address)
        m = self._m
        free = next((s for s in range(_SLOTS) if m[s * _SLOT + _ATTACHED] != 1), None)
        if free is None:
            raise I2cError(f"the twin's bus holds {_SLOTS} devices: detach one first")
        image = bytearray(256)
        if isinstance(registers, (bytes, bytearray)):
            if len(registers) != 256:
                raise I2cError(f"registers as bytes are all 256 of them, not {len(registers)}")
            image[:] = registers
        elif registers is not None:
            for reg, value in registers.items():
                if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
                    raise I2cError(f"register 0x{_register(reg):02X}: a byte, not {value!r}")
                image[_register(reg)] = value
        base = free * _SLOT
        # Registers and address first, `attached` last: the sketch never sees half a device.
        m[base + _REGS:base + _REGS + 256] = bytes(image)
        m[base + _POINTER] = 0
        m[base + _ADDRESS] = address
        m[base + _ATTACHED] = 1
        return I2cDevice(self, free, address)

    def detach(self, address: int) -> None:
        """Unwire the device at ``address`` (nothing happens if there is none)."""
        slot = self._slot_of(_address(address))
        if slot is not None:
            self._m[slot * _SLOT + _ATTACHED] = 0

    def __getitem__(self, address: int) -> I2cDevice:
        slot = self._slot_of(_address(address))
        if slot is None:
            raise I2cError(f"no device at 0x{address:02X} (attach() one)")
        return I2cDevice(self, slot, address)

    def __contains__(self, address: object) -> bool:
        return isinstance(address, int) and self._slot_of(address) is not None

    def __iter__(self) -> Iterator[I2cDevice]:
        m = self._m
        for slot in range(_SLOTS):
            if m[slot * _SLOT + _ATTACHED] == 1:
                yield I2cDevice(self, slot, m[slot * _SLOT + _ADDRESS])

    def release_all(self) -> None:
        """Unwire every device (a bare board)."""
        for slot in range(_SLOTS):
            self._m[slot * _SLOT + _ATTACHED] = 0

    def __repr__(self) -> str:
        if self.closed:
            return f"I2cBus({str(self.path)!r}, closed)"
        return f"I2cBus({' '.join(f'0x{d.address:02X}' for d in self) or 'empty'})"
