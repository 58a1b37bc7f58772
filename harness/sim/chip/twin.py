"""The twin's chip: a NodeMCU-like ESP8266 on an RFC2217 port.

Ties together the RFC2217 server and bridge (:mod:`.rfc2217`, :mod:`.uart`),
the auto-reset circuit (:mod:`.autoreset`), the boot ROM (:mod:`.bootrom`),
the serial loader (:mod:`.loader`), the flash file (:mod:`.flash`) and the
native firmware process that an identity image in flash selects.

Threads: the RFC2217 server thread delivers client bytes and line changes;
a timer closes the strapping window; the firmware's reader thread delivers its
output; a small supervisor notices the firmware exiting. Chip state is guarded
by one re-entrant lock. Output paths never take it, so stopping a firmware
process while holding the lock cannot deadlock with that process's reader.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from harness.sim.defaults import (
    DEFAULT_PASSWORD,
    DEFAULT_SSID,
    REASON_DEEP_SLEEP_AWAKE,
    REASON_WDT_RST,
    RESET_REASONS,
    chip_id_of,
    death_of_exit,
    default_mac,
    reset_of_exit,
)
from harness.sim.firmware import FirmwareProcess, FirmwareProcessError, ShimLog, allocate_ip

from . import bootrom
from .autoreset import DEFAULT_STRAP_WINDOW, Strap, StrapSampler, nodemcu_pins
from .flash import DEFAULT_SIZE, FlashFile
from .image import parse_image
from .loader import Exit, LoaderHost, SerialLoader
from .memory import ChipMemory, parse_mac
from .registry import FirmwareRegistry, default_registry
from .rfc2217 import Rfc2217Server
from .spi import SpiFlashController
from .uart import BridgeSerial, UartListener, garble

FIRMWARE_BAUD = 115200
IMAGE_READ_LIMIT = 1024 * 1024
TX_LOG_LIMIT = 4 * 1024 * 1024

#: ROM rst cause -> ESP.getResetReason() for the resets the pins or the power cause.
ROM_REASONS = {
    bootrom.POWER_ON: "Power On",
    bootrom.EXTERNAL_RESET: "External System",
    bootrom.WATCHDOG: "Hardware Watchdog",
}
WDT_RESET_LINE = "\r\nwdt reset\r\n"


class FirmwareLike(Protocol):
    """The shape of ``harness.sim.firmware.FirmwareProcess`` the chip relies on."""

    def start(self) -> None: ...
    def write(self, data: bytes) -> None: ...
    def stop(self) -> int | None: ...
    @property
    def alive(self) -> bool: ...
    @property
    def exit_code(self) -> int | None: ...


FirmwareFactory = Callable[..., FirmwareLike]


def default_firmware_factory(binary: Path, **kwargs: Any) -> FirmwareLike:
    """Start the real native firmware."""
    process: FirmwareLike = FirmwareProcess(binary, **kwargs)
    return process


class Twin(LoaderHost, UartListener):
    """One simulated NodeMCU board.

    ``flash_path`` names the flash file (kept across restarts); without it a
    temporary file is used and removed on :meth:`stop`. ``firmware_registry``
    maps the build id found in a flashed identity image to a native binary;
    ``firmware_factory`` creates the firmware process (tests inject stand-ins).
    """

    def __init__(
        self,
        flash_path: str | os.PathLike[str] | None = None,
        rfc2217_port: int = 0,
        ip: str | None = None,
        mac: str | None = None,
        ssid: str = DEFAULT_SSID,
        password: str = DEFAULT_PASSWORD,
        firmware_factory: FirmwareFactory | None = None,
        firmware_registry: FirmwareRegistry | Mapping[str, str | os.PathLike[str]] | None = None,
        *,
        flash_size: int = DEFAULT_SIZE,
        strap_window: float = DEFAULT_STRAP_WINDOW,
        host: str = "127.0.0.1",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._tmpdir: str | None = None
        if flash_path is None:
            self._tmpdir = tempfile.mkdtemp(prefix="esp-hil-twin-")
            flash_path = Path(self._tmpdir) / "flash.bin"
        self.flash_path = Path(flash_path)
        self._ip_lock: Any = None
        if ip is None:
            ip, self._ip_lock = allocate_ip()
        self.ip = ip
        seed = str(self.flash_path.resolve()) if self._tmpdir is None else self.ip
        self._mac_raw = parse_mac(mac or default_mac(seed))
        self.mac = self._mac_raw.hex(":")
        self.chip_id = chip_id_of(self.mac)
        self.ssid = ssid
        self.password = password
        self._factory = firmware_factory or default_firmware_factory
        #: What the firmware's runs wrote to stderr, across reboots.
        self.shim_log = ShimLog()
        if isinstance(firmware_registry, FirmwareRegistry):
            self.registry = firmware_registry
        elif firmware_registry is None:
            self.registry = default_registry()
        else:
            self.registry = FirmwareRegistry(entries=dict(firmware_registry))
        self._flash_size = flash_size
        self._rfc2217_port = rfc2217_port
        self._host = host
        self._env = dict(env or {})  # extra variables for the firmware process
        #: Called with one line when the firmware process dies without a reset of the chip
        #: (a signal, an exit code that is no reset): the chip halts, a board never would.
        self.on_halt: Callable[[str], None] | None = None

        self._lock = threading.RLock()
        self._sampler = StrapSampler(strap_window)
        self._timer: threading.Timer | None = None
        self._chip_baud = bootrom.ROM_BAUD
        self._host_baud = FIRMWARE_BAUD
        self._state = "off"
        self._pending_cause = bootrom.POWER_ON
        self.reset_reason = ROM_REASONS[bootrom.POWER_ON]
        self._loader: SerialLoader | None = None
        self._fw: FirmwareLike | None = None
        self._fw_gen = 0
        self._stopped = threading.Event()
        #: Number of times the chip came out of reset (any cause).
        self.boot_count = 0
        #: Exit code of a firmware process that ended on its own (not a restart).
        self.last_exit_code: int | None = None
        #: Why the last flash boot did not start a firmware, if it did not.
        self.boot_problem: str | None = None

        self._tx = bytearray()
        self._tx_base = 0
        self._tx_cond = threading.Condition()
        self._tx_listeners: list[Callable[[bytes], None]] = []

        self.flash: FlashFile | None = None
        self._memory: ChipMemory | None = None
        self._server: Rfc2217Server | None = None
        self._bridge = BridgeSerial(self, baudrate=FIRMWARE_BAUD)

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> Twin:
        """Open the flash, start serving RFC2217 and power the chip on."""
        self.flash = FlashFile(self.flash_path, self._flash_size)
        spi = SpiFlashController(self._flash_size)
        self._memory = ChipMemory(self._mac_raw, spi, lambda: self._chip_baud)
        self._server = Rfc2217Server(
            self._bridge, self._on_client_data, host=self._host, port=self._rfc2217_port
        )
        self._server.start()
        self.power_cycle()
        return self

    def stop(self) -> None:
        """Power off: stop the firmware and the server; remove a temporary flash."""
        with self._lock:
            self._stopped.set()
            self._cancel_timer()
            self._halt_chip("off")
        if self._server is not None:
            self._server.stop()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        if self._ip_lock is not None:
            self._ip_lock.release()
            self._ip_lock = None

    def __enter__(self) -> Twin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``rfc2217://127.0.0.1:<port>`` of the twin's UART."""
        if self._server is None:
            raise RuntimeError("twin not started")
        return self._server.url

    @property
    def port(self) -> int:
        """The RFC2217 TCP port."""
        if self._server is None:
            raise RuntimeError("twin not started")
        return self._server.port

    @property
    def state(self) -> str:
        """off, reset, strapping, download, running, bricked, unknown-image, halted or ram."""
        return self._state

    @property
    def chip_baud(self) -> int:
        """The chip UART's current rate."""
        return self._chip_baud

    @property
    def host_baud(self) -> int:
        """The rate the RFC2217 client set on the bridge."""
        return self._host_baud

    def power_cycle(self) -> None:
        """Cut and restore power: boots with reset cause 1 (power-on)."""
        with self._lock:
            self._halt_chip("reset")
            self._pending_cause = bootrom.POWER_ON
            self._apply(self._sampler.power_on(time.monotonic()))

    def watchdog_reset(self) -> None:
        """Reset the chip as the hardware watchdog does (cause 4).

        The UART keeps its rate, as after a hardware WDT reset on a board (the core's
        hwdt_app_entry.cpp: the ROM's "wdt reset" is legible at the sketch's 115200).
        """
        with self._lock:
            self._restart(bootrom.WATCHDOG, ROM_REASONS[bootrom.WATCHDOG], WDT_RESET_LINE)

    # -- UART observation (for tests and tools) --------------------------------

    def tx_mark(self) -> int:
        """A position in the chip's transmit log; pass it to the readers below."""
        with self._tx_cond:
            return self._tx_base + len(self._tx)

    def tx_since(self, mark: int = 0) -> bytes:
        """Raw bytes the chip transmitted since ``mark`` (as sent, never garbled)."""
        with self._tx_cond:
            start = max(0, mark - self._tx_base)
            return bytes(self._tx[start:])

    def wait_for_tx(
        self, pattern: bytes | re.Pattern[bytes], timeout: float, since: int = 0
    ) -> bytes:
        """Wait until the transmit log after ``since`` contains ``pattern``.

        Returns the log from ``since`` up to the end of the match; raises
        TimeoutError with the tail of the log otherwise.
        """
        regex = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        deadline = time.monotonic() + timeout
        with self._tx_cond:
            while True:
                data = self.tx_since(since)
                found = regex.search(data)
                if found:
                    return data[: found.end()]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{regex.pattern!r} not transmitted within {timeout}s; "
                        f"tail: {data[-300:]!r}"
                    )
                self._tx_cond.wait(left)

    def add_tx_listener(self, callback: Callable[[bytes], None]) -> None:
        """Call ``callback`` with every chunk the chip transmits (raw, from any thread)."""
        self._tx_listeners.append(callback)

    def _transmit(self, data: bytes) -> None:
        if not data:
            return
        with self._tx_cond:
            self._tx += data
            if len(self._tx) > TX_LOG_LIMIT:
                drop = len(self._tx) - TX_LOG_LIMIT
                del self._tx[:drop]
                self._tx_base += drop
            self._tx_cond.notify_all()
        for listener in list(self._tx_listeners):
            listener(data)
        server = self._server
        if server is not None:
            server.send(garble(data, self._chip_baud, self._host_baud))

    # -- LoaderHost --------------------------------------------------------------

    def transmit(self, data: bytes) -> None:
        """Loader output onto the UART."""
        self._transmit(data)

    def uart_baud(self) -> int:
        """The chip UART's rate."""
        return self._chip_baud

    def set_uart_baud(self, baud: int) -> None:
        """The stub reprograms the UART (CHANGE_BAUDRATE)."""
        self._chip_baud = baud

    def leave_loader(self, how: Exit) -> None:
        """The loader hands over: run flash, reboot, or hang in RAM code."""
        with self._lock:
            self._loader = None
            if how is Exit.RUN_FLASH:
                self._boot_flash()
            elif how is Exit.REBOOT:
                self._restart(bootrom.EXTERNAL_RESET, self.reset_reason)
            else:
                self._state = "ram"

    # -- UartListener --------------------------------------------------------------

    def on_lines(self, dtr: bool, rts: bool) -> None:
        """DTR/RTS changed: run them through the auto-reset circuit."""
        with self._lock:
            if self._stopped.is_set():
                return
            self._apply(self._sampler.update(nodemcu_pins(dtr, rts), time.monotonic()))

    def on_baud(self, baud: int) -> None:
        """The client changed the bridge's rate."""
        self._host_baud = baud

    def _on_client_data(self, data: bytes) -> None:
        fw: FirmwareLike | None = None
        wire = b""
        with self._lock:
            loader = self._loader
            if self._state == "download" and loader is not None and loader.active:
                if not loader.synced and self._host_baud != self._chip_baud:
                    # The ROM measures the bit time of the incoming SYNC (auto-baud).
                    self._chip_baud = self._host_baud
                loader.feed(garble(data, self._host_baud, self._chip_baud))
                return
            if self._state == "running":
                fw = self._fw
                wire = garble(data, self._host_baud, self._chip_baud)
        if fw is not None:
            # The process just ended (its reset is on its way) or takes no input: on a board
            # those bytes reach a chip in reset or an overrun FIFO and are lost. The serial
            # line itself stays up, as the USB bridge does.
            with contextlib.suppress(FirmwareProcessError):
                fw.write(wire)

    # -- boot logic (called with the lock held) ----------------------------------

    def _apply(self, events: list[Strap]) -> None:
        for event in events:
            if event is Strap.RESET:
                self._halt_chip("reset")
                self._pending_cause = bootrom.EXTERNAL_RESET
            elif event is Strap.RELEASED:
                self._state = "strapping"
                self._arm_timer()
            elif event is Strap.DOWNLOAD:
                self._cancel_timer()
                self._boot(download=True)
            elif event is Strap.FLASH:
                self._boot(download=False)

    def _arm_timer(self) -> None:
        self._cancel_timer()
        deadline = self._sampler.deadline
        if deadline is None:
            return
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._on_timer)
        self._timer.daemon = True
        self._timer.start()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        with self._lock:
            if self._stopped.is_set() or self._state != "strapping":
                return
            event = self._sampler.expire(time.monotonic())
            if event is None:
                self._arm_timer()  # woke a hair early
            else:
                self._apply([event])

    def _halt_chip(self, state: str) -> None:
        """Everything stops: loader gone, firmware process killed."""
        self._fw_gen += 1
        self._loader = None
        fw, self._fw = self._fw, None
        self._state = state
        if fw is not None:
            fw.stop()

    def _boot(self, download: bool) -> None:
        cause = self._pending_cause
        self._pending_cause = bootrom.EXTERNAL_RESET
        if cause == bootrom.POWER_ON:
            # RTC memory loses its power with the chip, whatever boots next (the firmware
            # keeps it in <flash>.rtc: firmware/sim/README.md, "Deep sleep and RTC memory").
            Path(f"{self.flash_path}.rtc").unlink(missing_ok=True)
        self.reset_reason = ROM_REASONS[cause]
        self._chip_baud = bootrom.ROM_BAUD  # a hardware reset resets the UART divider
        self._come_up(cause, download)

    def _restart(self, cause: int, reason: str, extra: str = "") -> None:
        """A reset that keeps the UART rate (software restart, loader reboot, WDT)."""
        self._halt_chip("reset")
        self.reset_reason = reason
        self._come_up(cause, download=not self._sampler.pins.gpio0, extra=extra)

    def _come_up(self, cause: int, download: bool, extra: str = "") -> None:
        self.boot_count += 1
        self.boot_problem = None
        mode = bootrom.MODE_UART if download else bootrom.MODE_FLASH
        self._transmit((bootrom.banner(cause, mode) + extra).encode())
        if download:
            assert self.flash is not None and self._memory is not None
            self._loader = SerialLoader(self.flash, self._memory, self)
            self._state = "download"
        else:
            self._boot_flash()

    def _boot_flash(self) -> None:
        assert self.flash is not None
        head = self.flash.read(0, min(self.flash.size, IMAGE_READ_LIMIT))
        image = parse_image(head)
        if image is None:
            self._transmit(bootrom.no_image_trace().encode())
            self._state = "bricked"
            self.boot_problem = "no image at flash offset 0"
            return
        self._transmit(bootrom.load_trace(image).encode())
        if not image.checksum_ok:
            self._state = "bricked"
            self.boot_problem = "image checksum error"
            return
        if image.identity is None:
            self._state = "unknown-image"
            self.boot_problem = "image carries no native firmware identity"
            return
        identity, build_id = image.identity
        binary = self.registry.lookup(build_id)
        if binary is None:
            self._state = "unknown-image"
            self.boot_problem = f"no native build registered for fw={identity} build={build_id}"
            return
        self._start_firmware(binary)

    def _start_firmware(self, binary: Path) -> None:
        gen = self._fw_gen = self._fw_gen + 1
        self._chip_baud = FIRMWARE_BAUD  # the sketch's Serial.begin(115200)

        def on_output(data: bytes) -> None:
            if gen == self._fw_gen:
                self._transmit(data)

        def on_exit(code: int) -> None:
            # Called on the firmware's reader thread; handling the exit stops
            # that process (joining its readers), so hand it to a thread of its own.
            threading.Thread(
                target=self._firmware_exited, args=(gen, code), name="twin-fw-exit", daemon=True
            ).start()

        try:
            fw = self._factory(
                binary,
                ip=self.ip,
                mac=self.mac,
                flash=self.flash_path,
                ap_ssid=self.ssid,
                ap_password=self.password,
                reset_reason=self.reset_reason,
                chip_id=self.chip_id,
                on_output=on_output,
                on_exit=on_exit,
                shim_log=self.shim_log,
                **({"env": self._env} if self._env else {}),
            )
            fw.start()
        except Exception as e:  # a firmware that cannot start leaves a halted chip
            self._state = "halted"
            self.boot_problem = f"firmware failed to start: {e}"
            return
        self._fw = fw
        self._state = "running"
        if not fw.alive:  # ended before on_exit could be wired in
            self._firmware_exited(gen, fw.exit_code)

    def _firmware_exited(self, gen: int, code: int | None) -> None:
        halted = False
        with self._lock:
            if gen != self._fw_gen or self._stopped.is_set():
                return  # a process we stopped ourselves, or an older run
            reason = reset_of_exit(code)
            if reason is not None:
                # The chip reset itself: the ROM banner with the cause a board prints
                # (2 for restart, soft WDT and exception; 4 for the hardware WDT; 5 for a
                # deep sleep's wake-up).
                text, cause = RESET_REASONS[reason]
                extra = WDT_RESET_LINE if reason == REASON_WDT_RST else ""
                if reason == REASON_DEEP_SLEEP_AWAKE:
                    # The wake-up pulls RST (GPIO16 wired to it): the digital core was off,
                    # so the UART is back at the ROM's rate, as after any hardware reset.
                    self._chip_baud = bootrom.ROM_BAUD
                self._restart(cause, text, extra)
            else:
                self.last_exit_code = code
                self._halt_chip("halted")
                halted = True
        if halted and self.on_halt is not None:
            # After the state change, outside this call's lock (the boot path may still hold
            # its own): the listener may wake waiters that then ask the twin things.
            self.on_halt(f"the twin's firmware died ({death_of_exit(code)}) and the chip halted; a "
                         "reset boots it again")
