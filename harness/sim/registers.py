"""Buses of register-map devices a test wires to a twin: the I2C bus (:mod:`harness.sim.i2c`)
and the SPI bus (:mod:`harness.sim.spi`).

Each is a file beside the twin's flash file with eight slots, mapped by the firmware too
(``Wire.cpp``, ``SPI.cpp``): a slot's key (an I2C address, a chip-select GPIO) and
``attached`` are the test's, its register pointer is the firmware's, both sides write its
registers (the test its readings, the sketch its configuration).
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator, Mapping
from typing import ClassVar, Generic, TypeVar

from harness.sim.worldfile import WorldFile

__all__ = ["RegisterBus", "RegisterDevice", "RegisterError"]

# The file layout: eight slots of (key, attached, pointer, firmware's byte, 256 registers).
_SLOTS = 8
_SLOT = 260
_KEY, _ATTACHED, _POINTER, _REGS = 0, 1, 2, 4


class RegisterError(ValueError):
    """A key or register the bus cannot take, or a device that is not there."""


class RegisterDevice:
    """One attached device: its registers (``device[reg]``, :meth:`read`, :meth:`write`)
    and where the sketch's next transfer starts (:attr:`pointer`)."""

    def __init__(self, bus: RegisterBus, slot: int, key: int) -> None:
        self._bus = bus
        self._base = slot * _SLOT
        self.key = key

    def _live(self) -> mmap.mmap:
        m = self._bus._m
        if m[self._base + _ATTACHED] != 1 or m[self._base + _KEY] != self.key:
            raise self._bus.Error(f"no device at {self._bus.name(self.key)} any more (detached)")
        return m

    def _register(self, register: int) -> int:
        return self._bus._register(register)

    def __getitem__(self, register: int) -> int:
        return self._live()[self._base + _REGS + self._register(register)]

    def __setitem__(self, register: int, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFF:
            raise self._bus.Error(
                f"register 0x{self._register(register):02X}: a byte 0..255, not {value!r}")
        self.write(register, bytes((value,)))

    def read(self, register: int, count: int) -> bytes:
        """``count`` registers from ``register`` on (wrapping as the device's pointer does)."""
        m = self._live()
        start = self._register(register)
        size = self._bus.REGISTERS
        return bytes(m[self._base + _REGS + (start + i) % size] for i in range(count))

    def write(self, register: int, data: bytes | bytearray) -> None:
        """Set registers from ``register`` on (wrapping) to ``data``."""
        if not data:
            raise self._bus.Error("write() takes one byte or more (0..255 each)")
        m = self._live()
        start = self._register(register)
        size = self._bus.REGISTERS
        for i, byte in enumerate(data):
            m[self._base + _REGS + (start + i) % size] = byte

    @property
    def pointer(self) -> int:
        """The register the sketch's next transfer starts at."""
        return self._live()[self._base + _POINTER]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._bus.name(self.key)})"


_D = TypeVar("_D", bound=RegisterDevice)


class RegisterBus(WorldFile, Generic[_D]):
    """Up to eight register-map devices, by key. Creating the file is harmless: the
    firmware maps the same file when the sketch first uses the bus."""

    SIZE = _SLOTS * _SLOT
    #: Registers a device has (its pointer wraps there).
    REGISTERS: ClassVar[int] = 256
    Error: ClassVar[type[RegisterError]] = RegisterError
    Device: ClassVar[type[RegisterDevice]] = RegisterDevice

    def _key(self, key: int | str) -> int:
        """``key`` checked, as the number the file holds (:attr:`Error` if the bus cannot
        take it)."""
        raise NotImplementedError

    def name(self, key: int) -> str:
        """How a device's key reads in a message ("0x76", "GPIO15")."""
        raise NotImplementedError

    def _register(self, register: int) -> int:
        top = self.REGISTERS - 1
        if isinstance(register, bool) or not isinstance(register, int) or not 0 <= register <= top:
            raise self.Error(f"a register is 0x00..0x{top:02X}, not {register!r}")
        return register

    def _slot_of(self, key: int) -> int | None:
        m = self._m
        for slot in range(_SLOTS):
            base = slot * _SLOT
            if m[base + _ATTACHED] == 1 and m[base + _KEY] == key:
                return slot
        return None

    def attach(self, key: int | str, registers: Mapping[int, int] | bytes | None = None) -> _D:
        """Wire a device at ``key``: its registers 0 unless ``registers`` gives them (a map
        of register to value, or all of them as bytes). Replaces a device already there."""
        key = self._key(key)
        self.detach(key)
        m = self._m
        free = next((s for s in range(_SLOTS) if m[s * _SLOT + _ATTACHED] != 1), None)
        if free is None:
            raise self.Error(f"the twin's bus holds {_SLOTS} devices: detach one first")
        image = bytearray(256)
        if isinstance(registers, (bytes, bytearray)):
            if len(registers) != self.REGISTERS:
                raise self.Error(f"registers as bytes are all {self.REGISTERS} of them, "
                                 f"not {len(registers)}")
            image[: self.REGISTERS] = registers
        elif registers is not None:
            for reg, value in registers.items():
                if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
                    raise self.Error(f"register 0x{self._register(reg):02X}: a byte, not {value!r}")
                image[self._register(reg)] = value
        base = free * _SLOT
        # Registers and key first, `attached` last: the sketch never sees half a device.
        m[base + _REGS:base + _REGS + 256] = bytes(image)
        m[base + _POINTER] = 0
        m[base + _KEY] = key
        m[base + _ATTACHED] = 1
        return self.Device(self, free, key)  # type: ignore[return-value]

    def detach(self, key: int | str) -> None:
        """Unwire the device at ``key`` (nothing happens if there is none)."""
        slot = self._slot_of(self._key(key))
        if slot is not None:
            self._m[slot * _SLOT + _ATTACHED] = 0

    def __getitem__(self, key: int | str) -> _D:
        number = self._key(key)
        slot = self._slot_of(number)
        if slot is None:
            raise self.Error(f"no device at {self.name(number)} (attach() one)")
        return self.Device(self, slot, number)  # type: ignore[return-value]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, int) and self._slot_of(key) is not None

    def __iter__(self) -> Iterator[_D]:
        m = self._m
        for slot in range(_SLOTS):
            if m[slot * _SLOT + _ATTACHED] == 1:
                yield self.Device(self, slot, m[slot * _SLOT + _KEY])  # type: ignore[misc]

    def release_all(self) -> None:
        """Unwire every device (a bare board)."""
        for slot in range(_SLOTS):
            self._m[slot * _SLOT + _ATTACHED] = 0

    def __repr__(self) -> str:
        if self.closed:
            return f"{type(self).__name__}({str(self.path)!r}, closed)"
        return f"{type(self).__name__}({' '.join(self.name(d.key) for d in self) or 'empty'})"
