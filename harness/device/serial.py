"""A board behind a serial port: a local one (/dev/ttyUSB0) or an ``rfc2217://`` URL.

One code path for both, and for a twin served over RFC2217: lock the board, flash it with
esptool when its flash differs, open the console, hard-reset through DTR/RTS, provision WiFi,
wait for READY.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from harness.device.base import Device
from harness.device.console import Console
from harness.device.errors import DeviceError, DeviceTimeout
from harness.device.flashing import flash_image
from harness.device.lock import BoardLock
from harness.device.ready import agent_booted

CONSOLE_BAUD = 115200
#: The ESP8266 boot ROM prints at 74880 baud (26 MHz crystal, 115200 * 26/40).
ROM_BAUD = 74880


# The ROM prints about ten lines per boot: a board that boot-loops needs no more than that.
_ROM_LINES = 12


def _readable(text: str) -> bool:
    """A line of text rather than bytes read at the wrong baud rate (mostly printable ASCII)."""
    if not text:
        return False
    printable = sum(1 for ch in text if " " <= ch <= "~")
    return printable >= 0.9 * len(text)


class SerialDevice(Device):
    """The test firmware on a board reached through ``port`` (a path or a pyserial URL)."""

    def __init__(
        self,
        port: str,
        *,
        ssid: str | None,
        password: str | None,
        image: bytes | None = None,
        flash: str = "auto",
        lock_timeout: float = 60.0,
    ) -> None:
        super().__init__(Console(self._write))
        self.port_name = port
        self.ssid = ssid
        self.password = password
        self.image = image
        self.flash_mode = flash
        self.flashed: bool | None = None
        self.lock_timeout = lock_timeout
        self._lock: BoardLock | None = None
        self._serial: Any = None
        self._reader: threading.Thread | None = None
        self._closing = False

    @property
    def description(self) -> str:
        return self.port_name

    def summary(self) -> str:
        flash = {None: "not checked", True: "written", False: "already there (MD5 matched)"}
        return f"{super().summary()}  flash: {flash[self.flashed]}"

    def _acquire(self) -> None:
        self._lock = BoardLock(self.port_name, timeout=self.lock_timeout).acquire()

    def attach(self) -> SerialDevice:
        """Lock the board and open its console, without resetting it."""
        self._acquire()
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def start(self) -> Device:
        """Lock, flash if needed, reset, provision and wait for READY."""
        self._acquire()
        try:
            if self.image is not None:
                self.flashed = flash_image(self.port_name, self.image, mode=self.flash_mode)
            self._open()
            mark = self.console.mark()
            t0 = time.monotonic()
            self.hard_reset()
            try:
                self.bring_up(since=mark, ssid=self.ssid, password=self.password, t0=t0)
            except DeviceTimeout as exc:
                if agent_booted(ln.text for ln in self.console.since(mark)):
                    raise  # the firmware runs: what the ROM says does not matter
                raise DeviceTimeout(
                    f"{exc.args[0].splitlines()[0]}; the boot ROM said: {self.boot_rom_output()!r}",
                    console_tail=exc.console_tail,
                ) from None
        except BaseException:
            self.close()
            raise
        return self

    def boot_rom_output(self, listen: float = 1.0) -> str:
        """Reset the board with the console at the ROM's 74880 baud and return what it printed.

        The ROM reports why it cannot boot (``csum err``, a bad image header) at a rate the
        firmware's console does not read, so a board that never gets READY is asked again.
        """
        ser = self._serial
        if ser is None:
            return ""
        mark = self.console.mark()
        try:
            ser.baudrate = ROM_BAUD
            self.hard_reset()
            time.sleep(listen)
        finally:
            ser.baudrate = CONSOLE_BAUD
        # At 74880 baud the firmware's own 115200 output is noise: keep the ROM's lines.
        lines = [text for ln in self.console.since(mark) if _readable(text := ln.text.strip())]
        return " | ".join(lines[:_ROM_LINES])

    # -- the port ---------------------------------------------------------------------------
    def _open(self) -> None:
        import serial

        try:
            # rts/dtr False before open: a board must not sit in reset or in the ROM loader.
            ser = serial.serial_for_url(
                self.port_name, baudrate=CONSOLE_BAUD, timeout=0.05, do_not_open=True
            )
            ser.dtr = False
            ser.rts = False
            ser.open()
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceError(f"cannot open {self.port_name}: {exc}") from None
        self._serial = ser
        self.console.reopen()
        self._reader = threading.Thread(
            target=self._read_loop, args=(ser,), name=f"console-{self.port_name}", daemon=True
        )
        self._reader.start()

    def _read_loop(self, ser: Any) -> None:
        import serial

        while not self._closing:
            try:
                # What is there, or wait for one byte: read(4096) would wait out the whole
                # timeout whenever fewer bytes came, holding every line back up to 50 ms.
                data = ser.read(ser.in_waiting or 1)
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                if not self._closing:
                    self.console.close(f"the serial port {self.port_name} went away: {exc}")
                return
            if data:
                self.console.feed(data)

    def _write(self, data: bytes) -> None:
        if self._serial is None:
            raise DeviceError(f"{self.port_name} is not open", console_tail=self.console.tail())
        self._serial.write(data)

    def hard_reset(self) -> None:
        from esptool.reset import HardReset

        HardReset(self._serial)()

    def close(self) -> None:
        self._closing = True
        ser, self._serial = self._serial, None
        if ser is not None:
            # Closing a port that vanished must not mask why it vanished.
            with contextlib.suppress(Exception):
                ser.close()
        if self._reader is not None:
            self._reader.join(timeout=2.0)
        self.console.close(f"{self.port_name} was closed")
        if self._lock is not None:
            self._lock.release()
            self._lock = None
