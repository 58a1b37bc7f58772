"""``esp-hil monitor``: the board's console with timestamps, on pyserial's miniterm.

Miniterm already does the terminal handling (raw keys, Ctrl-] to leave, Ctrl-T menu); we add
one transformation that stamps each received line with the time since the monitor started.
"""

from __future__ import annotations

import contextlib
import sys
import time

import serial
from esptool.reset import HardReset
from serial.tools import miniterm

from harness.device.errors import DeviceError
from harness.device.lock import BoardLock


class _Timestamp(miniterm.Transform):  # type: ignore[misc]
    """Prefix every received line with ``[seconds]``."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()
        self._at_line_start = True

    def rx(self, text: str) -> str:
        out = []
        for ch in text:
            if self._at_line_start and ch not in "\r\n":
                out.append(f"[{time.monotonic() - self._t0:9.3f}] ")
                self._at_line_start = False
            out.append(ch)
            if ch == "\n":
                self._at_line_start = True
        return "".join(out)


def monitor(port: str, *, baud: int = 115200, reset: bool = False) -> int:
    """Show ``port``'s console until Ctrl-]; optionally hard-reset the board first.

    Raises :class:`DeviceError` when the port does not open or stdin is not a terminal.
    """
    miniterm.TRANSFORMATIONS.setdefault("esp-hil-time", _Timestamp)
    with BoardLock(port, timeout=5.0):
        try:
            ser = serial.serial_for_url(port, baudrate=baud, timeout=0.1, do_not_open=True)
            ser.dtr = False
            ser.rts = False
            ser.open()
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceError(f"cannot open {port}: {exc}") from None
        if not sys.stdin.isatty():
            ser.close()
            # miniterm puts the terminal in raw mode to pass keys through one by one.
            raise DeviceError("stdin is not a terminal: the monitor reads keys from one")
        term = miniterm.Miniterm(ser, eol="lf", filters=["esp-hil-time"])
        term.set_rx_encoding("utf-8", errors="replace")
        term.set_tx_encoding("utf-8")
        sys.stderr.write(f"--- esp-hil monitor on {port} at {baud} baud; Ctrl-] leaves ---\n")
        if reset:
            HardReset(ser)()
        term.start()
        with contextlib.suppress(KeyboardInterrupt):
            term.join(True)
        sys.stderr.write("\n--- left ---\n")
        term.join()
        term.close()
    return 0
