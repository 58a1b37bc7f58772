"""The twin's GPIO pins and A0, as the test sees them.

The native firmware keeps its pins in a 256-byte file beside its flash file,
``<flash>.pins``, mapped by both processes (``firmware/sim/sim_pins.cpp``). The sketch
writes its side (pin modes, the levels ``digitalWrite`` drives, ``analogWrite`` duty);
the test writes the other (levels on input pins that ``digitalRead`` sees, the value
``analogRead(A0)`` returns). Wiring stays when the firmware restarts, as on a bench;
the sketch's side goes back to power-on state (every pin an input, nothing driven).

Pins are ESP8266 GPIO numbers 0..16, or the NodeMCU names (``"D4"``, ``"LED_BUILTIN"``),
with the core's values (``D4 == LED_BUILTIN == 2``). GPIO 6..11 carry the flash chip
and are refused.

    pins = Pins.for_flash(flash_path)
    assert pins[LED_BUILTIN] == 0     # the level the sketch drives
    pins[D5] = 1                      # drive an input; digitalRead(D5) == HIGH
    del pins[D5]                      # let it float again
    pins.analog = 512                 # analogRead(A0) == 512
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.sim.worldfile import WorldFile

__all__ = [
    "A0",
    "D0",
    "D1",
    "D2",
    "D3",
    "D4",
    "D5",
    "D6",
    "D7",
    "D8",
    "FLASH_PINS",
    "LED_BUILTIN",
    "PIN_NAMES",
    "PinError",
    "Pins",
    "gpio_number",
    "pins_path",
]

# The core's names (variants/nodemcu/pins_arduino.h, variants/generic/common.h).
D0, D1, D2, D3, D4, D5, D6, D7, D8 = 16, 5, 4, 0, 2, 14, 12, 13, 15
LED_BUILTIN = 2
A0 = 17
PIN_NAMES: dict[str, int] = {
    **{f"D{i}": n for i, n in enumerate((D0, D1, D2, D3, D4, D5, D6, D7, D8, 3, 1))},
    **{f"GPIO{n}": n for n in range(17)},
    "LED_BUILTIN": LED_BUILTIN,
    "SDA": 4,
    "SCL": 5,
}
FLASH_PINS = range(6, 12)
ANALOG_MAX = 1023

# The file layout, shared with sim_pins.cpp (fixed offsets; one writer per field).
_SIZE = 256
_MODE, _OUT, _IN, _DUTY, _RANGE, _ANALOG = 0, 32, 64, 96, 136, 176
_IN_FLOATING, _IN_LOW, _IN_HIGH = 0, 1, 2
_MODES = {
    0: "INPUT",
    1: "OUTPUT",
    2: "INPUT_PULLUP",
    3: "OUTPUT_OPEN_DRAIN",
    4: "INPUT_PULLDOWN_16",
}
_OUTPUTS = ("OUTPUT", "OUTPUT_OPEN_DRAIN")


class PinError(ValueError):
    """A pin that does not exist on the twin, or a value it cannot take."""


def pins_path(flash: Path | str) -> Path:
    """The pins file of a twin whose flash file is ``flash``."""
    return Path(f"{os.fspath(flash)}.pins")


def gpio_number(pin: int | str) -> int:
    """The GPIO number of ``pin`` (a number or a name), or :class:`PinError`."""
    if isinstance(pin, str):
        number = PIN_NAMES.get(pin.strip().upper())
        if number is None:
            raise PinError(f"no pin named {pin!r} (GPIO0..GPIO16, D0..D10, LED_BUILTIN)")
        pin = number
    if isinstance(pin, bool) or not isinstance(pin, int):
        raise PinError(f"a pin is a GPIO number or a name, not {pin!r}")
    if pin == A0:
        raise PinError("A0 is the analog input: use .analog")
    if not 0 <= pin <= 16:
        raise PinError(f"GPIO {pin} does not exist on the ESP8266 (GPIO 0..16)")
    if pin in FLASH_PINS:
        raise PinError(f"GPIO {pin} is a flash pin (GPIO 6..11 carry the flash chip)")
    return pin


class Pins(WorldFile):
    """GPIO 0..16 and A0 of one twin, through its shared pins file.

    ``pins[n]`` is the level on GPIO ``n``: what the sketch drives on an output, else
    what the test drives, else the pull-up/pull-down the sketch configured (a floating
    input reads 0, as ``digitalRead`` does on the twin). ``pins[n] = 0 | 1`` drives an
    input; ``del pins[n]`` stops driving it. Creating the file is harmless: the
    firmware maps the same file when it starts, whichever side comes first.
    """

    SIZE = _SIZE
    SUFFIX = ".pins"


    def _u16(self, offset: int) -> int:
        with memoryview(self._m) as raw, raw.cast("H") as words:
            return int(words[offset // 2])

    def mode(self, pin: int | str) -> str:
        """The mode the sketch set with ``pinMode`` ("INPUT" at power-on), by the core's name."""
        n = gpio_number(pin)
        raw = self._m[_MODE + n]
        return _MODES.get(raw, f"0x{raw:02X}")

    def duty(self, pin: int | str) -> float | None:
        """The ``analogWrite`` duty cycle (0 < duty < 1) while PWM runs on ``pin``, else None."""
        n = gpio_number(pin)
        scale = self._u16(_RANGE + 2 * n)
        if scale == 0 or self.mode(n) not in _OUTPUTS:
            return None
        return self._u16(_DUTY + 2 * n) / scale

    def __getitem__(self, pin: int | str) -> int:
        n = gpio_number(pin)
        mode = self.mode(n)
        if mode in _OUTPUTS:
            duty = self.duty(n)
            if duty is not None:
                raise PinError(f"GPIO {n} runs PWM (duty {duty:.3f}): read .duty({n})")
            return self._m[_OUT + n]
        driven = self._m[_IN + n]
        if driven != _IN_FLOATING:
            return 1 if driven == _IN_HIGH else 0
        return 1 if mode == "INPUT_PULLUP" else 0

    def __setitem__(self, pin: int | str, value: int | bool) -> None:
        n = gpio_number(pin)
        if not isinstance(value, int) or value not in (0, 1):  # bool is an int
            raise PinError(f"GPIO {n}: a level is 0 or 1, not {value!r}")
        if self.mode(n) in _OUTPUTS:
            raise PinError(f"GPIO {n} is an output of the sketch: driving it would short it")
        self._m[_IN + n] = _IN_HIGH if value else _IN_LOW

    def __delitem__(self, pin: int | str) -> None:
        """Stop driving ``pin`` (it floats, or follows the sketch's pull-up)."""
        self._m[_IN + gpio_number(pin)] = _IN_FLOATING

    def release_all(self) -> None:
        """Stop driving every input and set A0 back to 0 (a bare board)."""
        for n in range(17):
            self._m[_IN + n] = _IN_FLOATING
        self.analog = 0

    @property
    def analog(self) -> int:
        """What ``analogRead(A0)`` returns: 0..1023 (the ADC's range)."""
        return self._u16(_ANALOG)

    @analog.setter
    def analog(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= ANALOG_MAX:
            raise PinError(f"A0 takes an integer 0..{ANALOG_MAX}, not {value!r}")
        # Through a 16-bit view: one aligned store, so the firmware never reads half of it.
        with memoryview(self._m) as raw, raw.cast("H") as words:
            words[_ANALOG // 2] = value

    def __repr__(self) -> str:
        if self.closed:
            return f"Pins({str(self.path)!r}, closed)"
        levels = []
        for n in range(17):
            if n in FLASH_PINS:
                continue
            try:
                levels.append(f"{n}={self[n]}")
            except PinError:
                levels.append(f"{n}=pwm")
        return f"Pins({' '.join(levels)} A0={self.analog})"
