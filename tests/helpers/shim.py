"""The shim's test sketch driven over its console (firmware/sim/test/shim_test_sketch.cpp):
the process, its console and what several test modules measure of it."""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from harness.sim import FirmwareProcess, allocate_ip, firmware_root

SKETCH = firmware_root() / "sim" / "test" / "shim_test_sketch.cpp"
SSID = "esp-hil-net"
PASSWORD = "correct-horse-battery"
MAC = "5c:cf:7f:12:34:56"
TIMEOUT = 5.0


class Console:
    """A FirmwareProcess with its stdout split into lines, for request/answer tests."""

    def __init__(self, proc: FirmwareProcess) -> None:
        self.proc = proc
        self.lines: queue.Queue[str] = queue.Queue()
        self._partial = b""
        self._lock = threading.Lock()
        self.exited: queue.Queue[int] = queue.Queue()
        proc.on_output = self._feed
        proc.on_exit = self.exited.put

    def _feed(self, data: bytes) -> None:
        with self._lock:
            self._partial += data
            *complete, self._partial = self._partial.split(b"\n")
        for raw in complete:
            self.lines.put(raw.rstrip(b"\r").decode("latin-1"))

    def expect(self, prefix: str, timeout: float = TIMEOUT, seen: list[str] | None = None) -> str:
        """The next line starting with prefix (earlier other lines are skipped, and appended
        to ``seen`` with it when given)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"no line starting {prefix!r} within {timeout} s; "
                    f"stderr: {self.proc.stderr_tail()}"
                )
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if seen is not None:
                seen.append(line)
            if line.startswith(prefix):
                return line

    def command(self, text: str, answer: str, timeout: float = TIMEOUT,
                seen: list[str] | None = None) -> str:
        self.proc.write(text.encode("latin-1") + b"\n")
        return self.expect(answer, timeout, seen)

    def fields(self, line: str) -> dict[str, str]:
        return dict(part.split("=", 1) for part in line.split() if "=" in part)

    def join_wifi(self, ssid: str = SSID, password: str = PASSWORD) -> dict[str, str]:
        self.command(f"wifi {ssid} {password}", "wifi begin=")
        return self.fields(self.expect("wifi status="))


def make_process(binary: Path, ip: str, flash: Path, **kwargs: object) -> FirmwareProcess:
    args: dict[str, object] = {
        "ip": ip,
        "mac": MAC,
        "flash": flash,
        "ap_ssid": SSID,
        "ap_password": PASSWORD,
    }
    args.update(kwargs)
    return FirmwareProcess(binary, **args)  # type: ignore[arg-type]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of stat(5); index from after the comm field.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_share(pid: int, seconds: float = 1.0) -> float:
    before, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.monotonic() - t0)


@contextlib.contextmanager
def booted_console(
    binary: Path, flash: Path, boot: str = "boot ", **kwargs: object
) -> Iterator[Console]:
    """A firmware process of ``binary`` on a loopback address of its own, its console once
    the line starting ``boot`` came; stopped and the address released afterwards.
    ``kwargs`` go to :func:`make_process` (``env``, ``reset_reason``, ...)."""
    ip, lock = allocate_ip()
    try:
        proc = make_process(binary, ip, flash, **kwargs)
        con = Console(proc)
        proc.start()
        try:
            con.expect(boot)
            yield con
        finally:
            proc.stop()
    finally:
        lock.release()
