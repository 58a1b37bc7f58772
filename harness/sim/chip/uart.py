"""The twin's UART as pyserial's RFC2217 ``PortManager`` sees it, and baud garbling.

:class:`BridgeSerial` plays the USB-serial bridge's port: the RFC2217 client's
SET_BAUDRATE, SET_CONTROL (DTR/RTS) and PURGE requests land on it and are
forwarded to a :class:`UartListener` (the twin). Data itself does not pass
through it; the RFC2217 server moves bytes directly.

Bytes sent at one rate and sampled at another arrive as garbage on a real
board. :func:`garble` reproduces that deterministically: a fixed, per-rate-pair
substitution in which no byte maps to itself. Real mismatches also change the
byte count; the twin keeps it (documented simplification).
"""

from __future__ import annotations

import random
import threading
from functools import lru_cache

import serial


class UartListener:
    """Receives what the RFC2217 client does to the bridge's lines."""

    def on_lines(self, dtr: bool, rts: bool) -> None:
        """DTR or RTS changed (pyserial's asserted flags)."""

    def on_baud(self, baud: int) -> None:
        """The host side of the bridge now runs at ``baud``."""


@lru_cache(maxsize=64)
def _table(sent_at: int, read_at: int) -> bytes:
    rng = random.Random(f"esp-hil-garble:{sent_at}:{read_at}")
    values = list(range(256))
    while True:
        rng.shuffle(values)
        if all(v != i for i, v in enumerate(values)):
            return bytes(values)


def garble(data: bytes, sent_at: int, read_at: int) -> bytes:
    """``data`` as seen by a receiver at ``read_at`` baud when sent at ``sent_at``."""
    if sent_at == read_at or not data:
        return data
    return data.translate(_table(sent_at, read_at))


class BridgeSerial:
    """The serial object handed to ``serial.rfc2217.PortManager``.

    Implements the attributes PortManager touches. Line and baud changes are
    reported to the listener outside this object's lock so the listener may
    block (e.g. stop a firmware process) without stalling readers of state.
    """

    def __init__(self, listener: UartListener, baudrate: int = 115200) -> None:
        self._listener = listener
        self._lock = threading.Lock()
        self._baudrate = baudrate
        self._dtr = False
        self._rts = False
        self.bytesize = serial.EIGHTBITS
        self.parity = serial.PARITY_NONE
        self.stopbits = serial.STOPBITS_ONE
        self.xonxoff = False
        self.rtscts = False
        self.break_condition = False
        # A NodeMCU wires none of the bridge's modem inputs.
        self.cts = False
        self.dsr = False
        self.ri = False
        self.cd = False

    @property
    def baudrate(self) -> int:
        """The host side's baud rate."""
        return self._baudrate

    @baudrate.setter
    def baudrate(self, value: int) -> None:
        if not 0 < int(value) < 2**32:
            raise ValueError(f"invalid baud rate {value!r}")
        with self._lock:
            self._baudrate = int(value)
        self._listener.on_baud(int(value))

    @property
    def dtr(self) -> bool:
        """DTR asserted by the host."""
        return self._dtr

    @dtr.setter
    def dtr(self, value: bool) -> None:
        self.set_lines(dtr=bool(value), rts=self._rts)

    @property
    def rts(self) -> bool:
        """RTS asserted by the host."""
        return self._rts

    @rts.setter
    def rts(self, value: bool) -> None:
        self.set_lines(dtr=self._dtr, rts=bool(value))

    def set_lines(self, *, dtr: bool, rts: bool) -> None:
        """Set both lines at once (used when a client goes away)."""
        with self._lock:
            changed = (dtr, rts) != (self._dtr, self._rts)
            self._dtr, self._rts = dtr, rts
        if changed:
            self._listener.on_lines(dtr, rts)

    def reset_input_buffer(self) -> None:
        """PURGE of the host's receive side: nothing is queued on ours."""

    def reset_output_buffer(self) -> None:
        """PURGE of the host's transmit side: bytes are delivered on arrival."""
