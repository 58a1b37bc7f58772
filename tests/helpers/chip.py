"""For the twin's chip tests: a stand-in firmware, twins that run it, and esptool runners."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import esptool
import serial
from esptool.cmds import detect_chip

from harness.device.flashing import patient_mem_end
from harness.sim.chip import Twin, make_native_image

EEPROM_OFFSET = 0x3FB000
STANDIN_ID = "standin/1.0"
STANDIN_BUILD = "standin0001"


class StandInFirmware:
    """A tiny Python "firmware" with FirmwareProcess's shape.

    It prints a BOOT line with its reset reason, reports whether the EEPROM
    sector of the flash file holds credentials, echoes lines, stores ``wifi``
    credentials in that sector and exits with 3 (ESP.restart) on ``reboot``.
    """

    instances: ClassVar[list[StandInFirmware]] = []

    def __init__(
        self,
        binary: Path,
        *,
        on_output: Callable[[bytes], None],
        on_exit: Callable[[int], None],
        reset_reason: str,
        flash: Path,
        **kwargs: Any,
    ) -> None:
        self.binary = binary
        self.on_output = on_output
        self.on_exit = on_exit
        self.reset_reason = reset_reason
        self.flash = Path(flash)
        self.kwargs = kwargs
        self.alive = False
        self.exit_code: int | None = None
        self.received = bytearray()
        self._line = b""
        self._lock = threading.Lock()
        StandInFirmware.instances.append(self)

    def start(self) -> None:
        self.alive = True
        with open(self.flash, "rb") as f:
            f.seek(EEPROM_OFFSET)
            stored = f.read(32)
        wifi = "none" if stored[0] == 0xFF else "stored " + stored.rstrip(b"\x00\xff").decode()
        self.on_output(f"ESP-HIL BOOT fw={STANDIN_ID} reset={self.reset_reason}\n".encode())
        self.on_output(f"ESP-HIL WIFI {wifi}\n".encode())

    def write(self, data: bytes) -> None:
        with self._lock:
            self.received += data
            self._line += data
            while b"\n" in self._line:
                line, self._line = self._line.split(b"\n", 1)
                self._command(line.strip())

    def _command(self, line: bytes) -> None:
        if line == b"reboot":
            self.on_output(b"ESP-HIL OK reboot\n")
            self.alive = False
            self.exit_code = 3
            threading.Thread(target=self.on_exit, args=(3,)).start()
        elif line.startswith(b"wifi "):
            with open(self.flash, "r+b") as f:
                f.seek(EEPROM_OFFSET)
                f.write(line[5:37].ljust(32, b"\x00"))
            self.on_output(b"ESP-HIL OK wifi\n")
        else:
            self.on_output(b"echo " + line + b"\n")

    def stop(self) -> int | None:
        if self.alive:
            self.alive = False
            self.exit_code = -15
        return self.exit_code


def standin_twin(**kwargs: Any) -> Twin:
    """A started twin whose registry maps the stand-in build id to a dummy path."""
    kwargs.setdefault("firmware_factory", StandInFirmware)
    kwargs.setdefault("firmware_registry", {STANDIN_BUILD: "/nonexistent/standin"})
    return Twin(**kwargs).start()


def standin_image() -> bytes:
    return make_native_image(STANDIN_ID, STANDIN_BUILD)


@contextlib.contextmanager
def esptool_session(url: str, baud: int = 115200) -> Iterator[Any]:
    """An esptool connection (reset into the ROM loader included) on a fast port.

    pyserial's RFC2217 client renegotiates every port setting each time esptool
    changes the read timeout, which costs ~0.2 s per command; opening the port
    with esptool's default command timeout already set avoids most of them.
    """
    port = serial.serial_for_url(url, timeout=3, baudrate=baud)
    try:
        yield detect_chip(port, baud=baud)
    finally:
        port.close()


def run_esptool(url: str, *args: str, baud: int = 115200) -> str:
    """Run an esptool command in-process against ``url``; returns its console output."""
    out = io.StringIO()
    with esptool_session(url, baud) as esp, contextlib.redirect_stdout(out), patient_mem_end():
        esptool.main(["--baud", str(baud), *args], esp=esp)
    return out.getvalue()


def run_esptool_cli(url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The unmodified esptool CLI in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "esptool", "--port", url, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
