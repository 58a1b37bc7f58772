"""``--device=sim-core``: the test firmware built on the ESP8266 core's own host emulation.

A second opinion on our shim (``firmware/sim``): the sketch and its libraries run on the real
core's ``WiFiClient``/``WiFiServer``/``ESP8266WiFi`` sources over the core's mocks
(``tests/host``), with our overrides for the mock's gaps (``firmware/sim-core``). The console is
a pty (the mock puts its stdin in raw mode and polls it; a pipe would block it), EEPROM is the
file ``eeprom`` in the instance's own working directory, and the instance's servers bind to
its own loopback address 127.0.0.N. What the emulation cannot do (WiFi always connected, a
fixed MAC, chip id and reset reason) is in ``docs/sim-core.md``.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import os
import pty
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path

from harness.device.base import Device
from harness.device.console import Console
from harness.device.errors import DeviceError
from harness.project import Project
from harness.sim.defaults import DEFAULT_PASSWORD, DEFAULT_SSID
from harness.sim.firmware import ShimLog, allocate_ip

__all__ = ["CoreDevice"]

log = logging.getLogger(__name__)

#: The simulated network: the emulation joins any, so these are only what gets provisioned.

# The mock's options: no SPIFFS/LittleFS image files (the firmware uses no file system).
_ARGS = ("-S", "0", "-L", "0")
_READ_CHUNK = 65536
_STDERR_TAIL_LINES = 50
_WRITE_TIMEOUT_S = 2.0


# The mock's exit handler shows the terminal's cursor again; on our console that is noise
# which would glue itself to the next boot's first line.
_SHOW_CURSOR = b"\x1b[?25h"


class _Run:
    """One run of the firmware process, its console on a pty.

    ``on_output`` gets the console's bytes, ``on_exit(run, code)`` is called once if the
    process ends by itself (not through :meth:`stop`); both from the run's reader thread.
    """

    def __init__(
        self,
        argv: list[str],
        *,
        cwd: Path,
        env: dict[str, str],
        on_output: Callable[[bytes], None],
        on_exit: Callable[[_Run, int], None],
        log: ShimLog,
    ) -> None:
        master, slave = pty.openpty()
        # Raw from the first byte: no echo, no line editing before the mock sets its own mode.
        tty.setraw(slave)
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=slave,
                stdout=slave,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=env,
                close_fds=True,
                # Its own session: a Ctrl-C meant for pytest does not reach the firmware.
                start_new_session=True,
            )
        except OSError:
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        self.master = master
        self.stopping = False
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL_LINES)
        self._log = log
        self._on_output = on_output
        self._on_exit = on_exit
        self._write_lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._pump_console, name="sim-core-console", daemon=True),
            threading.Thread(target=self._pump_stderr, name="sim-core-stderr", daemon=True),
        ]
        for t in self._threads:
            t.start()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + _WRITE_TIMEOUT_S
        with self._write_lock:
            while view:
                if not self.alive:
                    raise DeviceError("the sim-core firmware is not running")
                try:
                    view = view[os.write(self.master, view) :]
                    continue
                except BlockingIOError:
                    pass
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DeviceError(
                        f"the sim-core firmware took no console input for {_WRITE_TIMEOUT_S} s"
                    )
                select.select([], [self.master], [], min(left, 0.1))

    def stop(self, timeout: float = 2.0) -> None:
        """SIGTERM (the mock leaves its loop and exits), then SIGKILL; always reaps."""
        self.stopping = True
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                self.proc.wait(timeout=10.0)
        current = threading.current_thread()
        for t in self._threads:
            if t is not current:
                t.join(timeout=5.0)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        with contextlib.suppress(OSError):
            os.close(self.master)

    def _pump_console(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self.master], [], [], 0.2)
            except (OSError, ValueError):
                break
            if not ready:
                if self.alive:
                    continue
                break  # it ended and left nothing more to read
            try:
                data = os.read(self.master, _READ_CHUNK)
            except BlockingIOError:
                continue
            except OSError as exc:  # EIO: the last holder of the pty's other end is gone
                if exc.errno != errno.EIO:
                    log.debug("sim-core console: %s", exc)
                break
            if not data:
                break
            self._on_output(data.replace(_SHOW_CURSOR, b""))
        try:
            code = self.proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            return
        if not self.stopping:
            self._on_exit(self, code)

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.stderr_tail.append(line)
            self._log.add(line)
            log.debug("sim-core %d: %s", self.proc.pid, line)


class CoreDevice(Device):
    """The test firmware (or ``project``) on the ESP8266 core's host emulation, run here.

    ``ssid``/``password`` are what gets provisioned over the console (the emulation joins any
    network). The instance owns a loopback address 127.0.0.N (reserved like the twin's) and a
    working directory holding its EEPROM, which survives resets until :meth:`close`.
    """

    def __init__(
        self,
        *,
        ssid: str = DEFAULT_SSID,
        password: str = DEFAULT_PASSWORD,
        project: Project | None = None,
    ) -> None:
        from harness.sim.build import FirmwareBuildError
        from harness.sim.core.build import build_core_firmware

        super().__init__(Console(self._write))
        self.ssid = ssid
        self.password = password
        try:
            self.binary = build_core_firmware(project=project).path
        except FirmwareBuildError as exc:
            raise DeviceError(f"sim-core: {exc}") from None
        self._ip, self._ip_lock = allocate_ip()
        self.workdir = Path(tempfile.mkdtemp(prefix="esp-hil-sim-core-"))
        self._run: _Run | None = None
        self._log = ShimLog()  # every run's stderr: a reboot keeps what came before
        self._closed = False
        self._lock = threading.Lock()
        #: Reboots the firmware asked for itself (``ESP.restart()``).
        self.restarts = 0
        #: ``time.monotonic()`` when the current run started. Every line of the runs before
        #: is in :meth:`twin_log` by then (their readers are joined first); a ``since`` taken
        #: earlier may still see some, stamped late on a loaded machine.
        self.booted_at = 0.0

    @property
    def description(self) -> str:
        return f"sim-core {self._ip} ({self.binary.parent.name[:12]})"

    @property
    def sim_ip(self) -> str:
        """The loopback address this instance owns (known before READY)."""
        return self._ip

    @property
    def eeprom_path(self) -> Path:
        """The mock's EEPROM file (``./eeprom`` in the instance's working directory)."""
        return self.workdir / "eeprom"

    @property
    def station_config_path(self) -> Path:
        """The SDK's stored station config (the WiFi credentials EspHil keeps), as a file."""
        return self.workdir / "station_config"

    def twin_log(self, since: float | None = None) -> list[str]:
        """The emulation's own stderr lines (the core's ``(mock)`` messages) from
        ``time.monotonic()`` value ``since`` on; the plugin adds them to a failed test's
        report."""
        return self._log.since(since)

    # -- process supervision ----------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        run = self._run
        if run is None:
            raise DeviceError(
                "the sim-core firmware is not running", console_tail=self.console.tail()
            )
        run.write(data)

    def _spawn(self) -> None:
        env = dict(os.environ, ESP_HIL_IP=self._ip)
        self.console.reopen()
        self.booted_at = time.monotonic()
        self._run = _Run(
            [str(self.binary), *_ARGS],
            cwd=self.workdir,
            env=env,
            on_output=self.console.feed,
            on_exit=self._exited,
            log=self._log,
        )

    def _exited(self, run: _Run, code: int) -> None:
        # Called on the run's reader thread; a restart joins that thread, so hand off.
        threading.Thread(target=self._after_exit, args=(run, code), daemon=True).start()

    def _after_exit(self, run: _Run, code: int) -> None:
        with self._lock:
            if self._closed or run is not self._run:
                return
            run.stop()
            if code == 0:
                # The mock's ESP.restart() is exit(0): a reboot, not a death. Boot again.
                self.restarts += 1
                self._spawn()
                return
            self._run = None
        tail = "\n".join(run.stderr_tail)
        self.console.close(f"the sim-core firmware exited with code {code}\n{tail}".rstrip())

    def start(self) -> Device:
        """Boot the firmware and bring it to READY (provisioning WiFi if EEPROM has none)."""
        mark = self.console.mark()
        t0 = time.monotonic()
        with self._lock:
            self._spawn()
        self.bring_up(since=mark, ssid=self.ssid, password=self.password, t0=t0)
        return self

    def hard_reset(self) -> None:
        with self._lock:
            old, self._run = self._run, None
            if old is not None:
                old.stop()
            self._spawn()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            run, self._run = self._run, None
        if run is not None:
            run.stop()
        self.console.close("the sim-core instance was stopped")
        self._ip_lock.release()
        if not os.environ.get("ESP_HIL_KEEP_TWIN"):
            shutil.rmtree(self.workdir, ignore_errors=True)
