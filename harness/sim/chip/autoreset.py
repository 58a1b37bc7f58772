"""NodeMCU / D1 mini auto-reset circuit and the ESP8266's strapping sample.

The two transistors on these boards turn the USB bridge's DTR and RTS into EN
and GPIO0. In *line levels* (a modem line asserted by the host is electrically
low): DTR=1,RTS=0 holds EN low; DTR=0,RTS=1 pulls GPIO0 low; equal levels
release both. pyserial's ``dtr``/``rts`` attributes are the asserted flags, so
``rts=True, dtr=False`` is EN low and ``dtr=True, rts=False`` is GPIO0 low.

The chip samples GPIO0 shortly after EN rises. Over RFC2217 each line change
is a network round trip (and ``?ign_set_control`` clients sleep 100 ms after
every change), so esptool's classic reset, which releases EN through
DTR=RTS=asserted and only then pulls GPIO0 low, arrives spread out in time.
The twin therefore treats GPIO0 as strapped low if it is low at any moment of a
``window`` after EN rises (default 0.25 s): it boots into download mode the
moment GPIO0 goes low, and into flash mode when the window closes with GPIO0
high throughout. EN falling again inside the window starts over.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

DEFAULT_STRAP_WINDOW = 0.25


@dataclass(frozen=True)
class Pins:
    """Pin levels on the chip side; True is high (released)."""

    en: bool
    gpio0: bool


def nodemcu_pins(dtr: bool, rts: bool) -> Pins:
    """EN and GPIO0 for pyserial's asserted flags ``dtr`` and ``rts``."""
    if rts and not dtr:
        return Pins(en=False, gpio0=True)
    if dtr and not rts:
        return Pins(en=True, gpio0=False)
    return Pins(en=True, gpio0=True)


class Strap(enum.Enum):
    """What the sampler decided, or which edge it saw."""

    RESET = "reset"  # EN went low: the chip stops
    RELEASED = "released"  # EN went high: the strapping window opens
    DOWNLOAD = "download"  # GPIO0 low within the window: UART download mode
    FLASH = "flash"  # window closed with GPIO0 high: boot from flash


class StrapSampler:
    """Turns pin changes and the passage of time into boot decisions.

    Pure logic: the caller passes the current time and arms a timer for
    :attr:`deadline`, calling :meth:`expire` when it fires.
    """

    def __init__(self, window: float = DEFAULT_STRAP_WINDOW) -> None:
        if window < 0:
            raise ValueError("strap window must not be negative")
        self.window = window
        self.pins = Pins(en=True, gpio0=True)
        #: When the open window closes (monotonic seconds), or None.
        self.deadline: float | None = None

    def power_on(self, now: float) -> list[Strap]:
        """Supply comes up: EN rises with the current pins."""
        self.deadline = now + self.window
        events = [Strap.RELEASED]
        if self.pins.en and not self.pins.gpio0:
            events.append(self._decide(Strap.DOWNLOAD))
        elif not self.pins.en:
            self.deadline = None
            events = [Strap.RESET]
        return events

    def update(self, pins: Pins, now: float) -> list[Strap]:
        """New pin levels; returns what they caused, in order."""
        before, self.pins = self.pins, pins
        events: list[Strap] = []
        if before.en and not pins.en:
            self.deadline = None
            events.append(Strap.RESET)
        elif not before.en and pins.en:
            self.deadline = now + self.window
            events.append(Strap.RELEASED)
        if self.deadline is not None and pins.en and not pins.gpio0:
            events.append(self._decide(Strap.DOWNLOAD))
        return events

    def expire(self, now: float) -> Strap | None:
        """The timer fired: decide flash boot if the window has closed."""
        if self.deadline is None or now < self.deadline:
            return None
        return self._decide(Strap.FLASH)

    def _decide(self, mode: Strap) -> Strap:
        self.deadline = None
        return mode
