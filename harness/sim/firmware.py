"""Run the twin's native firmware as a child process.

The process contract (environment variables, exit codes) is documented in
``firmware/sim/README.md``. This module only starts, feeds, watches and stops the process;
it does not parse the console (the chip emulator does that).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import os
import select
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from filelock import BaseFileLock, FileLock, Timeout

from harness.sim.defaults import EXIT_CONFIG_ERROR, EXIT_RESTART, chip_id_of

__all__ = [
    "EXIT_CONFIG_ERROR",
    "EXIT_RESTART",
    "FirmwareProcess",
    "FirmwareProcessError",
    "ShimLog",
    "allocate_ip",
]

log = logging.getLogger(__name__)

# Variables of the process contract; stale values from our own environment never leak in.
_CONTRACT_VARS = (
    "ESP_HIL_IP",
    "ESP_HIL_MAC",
    "ESP_HIL_CHIP_ID",
    "ESP_HIL_FLASH",
    "ESP_HIL_AP_SSID",
    "ESP_HIL_AP_PASSWORD",
    "ESP_HIL_RESET_REASON",
    "ESP_HIL_RSSI",
    "ESP_HIL_ASSOC_MS",
    "ESP_HIL_DHCP_MS",
    "ESP_HIL_BEACON_TIMEOUT_MS",
    "ESP_HIL_RECONNECT_MS",
    "ESP_HIL_TCP_MSS",
    "ESP_HIL_HEAP",
    "ESP_HIL_DEEP_SLEEP_SCALE",
    "ESP_HIL_SNTP_MS",
)
_READ_CHUNK = 65536
_STDERR_TAIL_LINES = 50


class ShimLog:
    """What a twin's firmware runs wrote to stderr (the emulation's own ``[shim]`` warnings:
    a refused allocation, a connection over the limit, a flash pin), timestamped, kept across
    reboots; the last ``maxlen`` lines."""

    def __init__(self, maxlen: int = 200, clock: Callable[[], float] = time.monotonic) -> None:
        self._lines: collections.deque[tuple[float, str]] = collections.deque(maxlen=maxlen)
        self._clock = clock

    def add(self, line: str) -> None:
        """Keep ``line``, stamped with the clock's time now."""
        self._lines.append((self._clock(), line))

    def since(self, t: float | None = None) -> list[str]:
        """The lines kept from the clock's time ``t`` on (None: all of them)."""
        lines = list(self._lines)  # a snapshot: the reader thread appends meanwhile
        return [line for at, line in lines if t is None or at >= t]


class FirmwareProcessError(RuntimeError):
    """The firmware process is not running or does not take input."""


class FirmwareProcess:
    """One run of the native firmware: stdin is the UART's RX line, stdout its TX line.

    ``on_output`` receives stdout bytes as they arrive, from a reader thread.
    ``on_exit`` is called once, from that thread, when the process ends on its own
    (not through :meth:`stop`), with its exit code. A reset is ``stop()`` then
    ``start()`` with another ``reset_reason``; :meth:`start` may be called again once the
    previous run has ended.
    """

    def __init__(
        self,
        binary: Path,
        *,
        ip: str,
        mac: str,
        flash: Path,
        ap_ssid: str | None,
        ap_password: str | None,
        reset_reason: str = "Power On",
        chip_id: int | None = None,
        rssi: int = -55,
        on_output: Callable[[bytes], None] | None = None,
        on_exit: Callable[[int], None] | None = None,
        env: dict[str, str] | None = None,
        shim_log: ShimLog | None = None,
    ) -> None:
        self.binary = Path(binary)
        self.ip = ip
        self.mac = mac
        self.flash = Path(flash)
        self.ap_ssid = ap_ssid
        self.ap_password = ap_password
        self.reset_reason = reset_reason
        self.chip_id = chip_id_of(mac) if chip_id is None else chip_id
        self.rssi = rssi
        self.on_output = on_output
        self.on_exit = on_exit
        self.extra_env = dict(env or {})
        self._proc: subprocess.Popen[bytes] | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._write_lock = threading.Lock()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL_LINES)
        #: Every run's stderr, for test reports (``Device.twin_log``); the caller may share
        #: one across the processes of a twin's reboots.
        self.shim_log = shim_log if shim_log is not None else ShimLog()

    # ----------------------------------------------------------------- lifecycle

    def environment(self) -> dict[str, str]:
        """The environment the process is started with."""
        env = {k: v for k, v in os.environ.items() if k not in _CONTRACT_VARS}
        env.update(
            ESP_HIL_IP=self.ip,
            ESP_HIL_MAC=self.mac,
            ESP_HIL_CHIP_ID=str(self.chip_id),
            ESP_HIL_FLASH=str(self.flash),
            ESP_HIL_RESET_REASON=self.reset_reason,
            ESP_HIL_RSSI=str(self.rssi),
        )
        if self.ap_ssid is not None:
            env["ESP_HIL_AP_SSID"] = self.ap_ssid
        if self.ap_password is not None:
            env["ESP_HIL_AP_PASSWORD"] = self.ap_password
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        """Start the firmware ("power on"). Raises if it is already running."""
        if self.alive:
            raise FirmwareProcessError(f"firmware already running (pid {self.pid})")
        self._reap_previous()
        self._stopping = False
        self._stderr_tail.clear()
        proc = subprocess.Popen(
            [str(self.binary)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.environment(),
            bufsize=0,
            close_fds=True,
            # Its own process group: a Ctrl-C meant for pytest does not hit the firmware first.
            start_new_session=True,
        )
        assert proc.stdin is not None
        # Writes must never block forever when the firmware stops reading.
        os.set_blocking(proc.stdin.fileno(), False)
        self._proc = proc
        out = threading.Thread(
            target=self._pump_stdout, args=(proc,), name=f"fw-stdout-{proc.pid}", daemon=True
        )
        err = threading.Thread(
            target=self._pump_stderr, args=(proc,), name=f"fw-stderr-{proc.pid}", daemon=True
        )
        self._threads = [out, err]
        out.start()
        err.start()

    def stop(self, timeout: float = 2.0) -> int | None:
        """Stop the firmware: SIGTERM, then SIGKILL after ``timeout``. Always reaps.

        Returns the exit code (negative = killed by that signal), or None if never started.
        """
        proc = self._proc
        if proc is None:
            return None
        self._stopping = True
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                # SIGKILL cannot be ignored; this only waits for the kernel to finish it.
                proc.wait(timeout=10.0)
        self._reap_previous()
        return proc.returncode

    def wait(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for the process to end; its exit code, or None."""
        proc = self._proc
        if proc is None:
            return None
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def write(self, data: bytes, timeout: float = 2.0) -> None:
        """Send bytes to the firmware's UART RX (its stdin).

        Raises :class:`FirmwareProcessError` if the process is gone, or if it takes no
        input for ``timeout`` seconds (the pipe stays full).
        """
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise FirmwareProcessError("firmware not started")
        if proc.stdin.closed or proc.poll() is not None:
            raise FirmwareProcessError(f"firmware is not running (exit code {proc.poll()})")
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        with self._write_lock:
            try:
                fd = proc.stdin.fileno()
            except ValueError as exc:  # closed by stop() in another thread meanwhile
                raise FirmwareProcessError("firmware was stopped") from exc
            while view:
                try:
                    n = os.write(fd, view)
                    view = view[n:]
                    continue
                except BlockingIOError:
                    pass
                except (BrokenPipeError, OSError) as exc:
                    if isinstance(exc, BrokenPipeError) or exc.errno in (errno.EPIPE, errno.EBADF):
                        raise FirmwareProcessError(
                            f"firmware is not running (exit code {proc.poll()})"
                        ) from exc
                    raise
                left = deadline - time.monotonic()
                if left <= 0:
                    raise FirmwareProcessError(
                        f"firmware took no console input for {timeout} s ({len(view)} bytes left)"
                    )
                select.select([], [fd], [], left)

    # ----------------------------------------------------------------- state

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id of the current (or last) run."""
        return self._proc.pid if self._proc is not None else None

    @property
    def exit_code(self) -> int | None:
        """Exit code of the last run once it ended (negative = signal), else None."""
        return self._proc.poll() if self._proc is not None else None

    @property
    def restart_requested(self) -> bool:
        """True if the last run ended through ``ESP.restart()`` (exit code 3)."""
        return self.exit_code == EXIT_RESTART

    def stderr_tail(self, wait: float = 0.0) -> list[str]:
        """The last lines the shim wrote to stderr (diagnostics, ``[shim] ...``).

        ``wait``: after the process ended, up to this many seconds for its last lines to be
        read off the pipe first.
        """
        reader = self._threads[1] if len(self._threads) == 2 else None
        if wait > 0 and reader is not None and reader is not threading.current_thread():
            reader.join(timeout=wait)
        return list(self._stderr_tail)

    def __enter__(self) -> FirmwareProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ----------------------------------------------------------------- internals

    def _pump_stdout(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        while True:
            try:
                data = os.read(fd, _READ_CHUNK)
            except OSError:
                break
            if not data:
                break
            if self.on_output is not None:
                try:
                    self.on_output(data)
                except Exception:
                    log.exception("on_output callback failed")
        # stdout EOF: the process has exited (or is about to); collect its code.
        try:
            code = proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            return  # it closed stdout but lives on; stop() will deal with it
        if not self._stopping and self.on_exit is not None and proc is self._proc:
            try:
                self.on_exit(code)
            except Exception:
                log.exception("on_exit callback failed")

    def _pump_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in iter(proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self._stderr_tail.append(line)
            self.shim_log.add(line)
            log.debug("firmware %d: %s", proc.pid, line)

    def _reap_previous(self) -> None:
        """Join the reader threads of an ended run and close its pipes."""
        proc = self._proc
        if proc is None or proc.poll() is None:
            return
        current = threading.current_thread()
        for t in self._threads:
            if t is not current:
                t.join(timeout=5.0)
        self._threads = []
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _listening_ipv4() -> set[str]:
    """The IPv4 addresses something listens on now (Linux: /proc/net/tcp; elsewhere none)."""
    found: set[str] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":  # TCP_LISTEN
                addr = int(fields[1].split(":")[0], 16)  # host byte order (little-endian)
                found.add(".".join(str((addr >> s) & 0xFF) for s in (0, 8, 16, 24)))
    return found


def ip_lock_dir() -> Path:
    """Where loopback address reservations live: ``/tmp/esp-hil-ip-locks``.

    Not under :func:`harness.cache.cache_root`: the addresses belong to the machine, and
    processes with different caches (``ESP_HIL_CACHE``, pytester's moved ``HOME``, another
    user) would not see each other's reservations there and would start twins on one
    address.
    """
    tmp = Path("/tmp")
    root = tmp if tmp.is_dir() else Path(tempfile.gettempdir())
    path = root / "esp-hil-ip-locks"
    if not path.is_dir():
        path.mkdir(exist_ok=True)
        # Every user reserves here; the sticky bit keeps them from removing each other's files.
        with contextlib.suppress(PermissionError):
            path.chmod(0o1777)
    return path


def allocate_ip(*, first: int = 2, last: int = 254) -> tuple[str, BaseFileLock]:
    """Reserve a loopback address 127.0.0.N for one twin; returns it with the held lock.

    The reservation is a file lock in :func:`ip_lock_dir`, so parallel processes
    (pytest-xdist workers, other sessions, other users) never pick the same address. Release
    the lock (``lock.release()``) to give the address back; it is also freed when the process
    dies. An address something still listens on is skipped even when its lock is free: a
    twin of a process that was killed lives on for up to 0.1 s (until it notices it is
    orphaned), and a twin started beside it would find its ports taken.
    """
    lock_dir = ip_lock_dir()
    busy: set[str] | None = None
    for n in range(first, last + 1):
        ip = f"127.0.0.{n}"
        lock = FileLock(str(lock_dir / f"{ip}.lock"), timeout=0, mode=0o666)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        if busy is None:
            busy = _listening_ipv4()
        if ip in busy:
            lock.release()
            continue
        return ip, lock
    raise FirmwareProcessError(f"no free loopback address in 127.0.0.{first}..{last}")
