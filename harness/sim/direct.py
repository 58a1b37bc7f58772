"""``--device=sim-direct``: the twin's firmware process alone, without the emulated chip.

This backend talks to the firmware process directly (its stdin/stdout are the UART). It is
the quickest way to a running device; ``--device=sim`` (:mod:`harness.sim.board`) drives the
same firmware through the emulated chip over ``rfc2217://``, as a board.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from harness.device.base import Device
from harness.device.console import Console
from harness.device.errors import DeviceError
from harness.project import Project
from harness.sim.build import build_firmware
from harness.sim.defaults import (
    DEFAULT_PASSWORD,
    DEFAULT_SSID,
    RESET_REASONS,
    default_mac,
    reset_of_exit,
)
from harness.sim.firmware import FirmwareProcess, ShimLog, allocate_ip
from harness.sim.world import TwinWorld


class SimDevice(TwinWorld, Device):
    """A twin running the native build of ``project`` (default: the test firmware).

    ``ssid``/``password`` configure the simulated access point, and are also the credentials
    provisioned over the console (pass ``provision_password`` to provision a wrong one).
    """

    def __init__(
        self,
        *,
        ssid: str = DEFAULT_SSID,
        password: str = DEFAULT_PASSWORD,
        flash: Path | None = None,
        sanitize: bool = False,
        binary: Path | None = None,
        env: dict[str, str] | None = None,
        project: Project | None = None,
    ) -> None:
        super().__init__(Console(self._write))
        self.ssid = ssid
        self.password = password
        self.binary = binary or build_firmware(project=project, sanitize=sanitize)
        self._ip, self._ip_lock = allocate_ip()
        self._tmp = Path(tempfile.mkdtemp(prefix="esp-hil-twin-"))
        self.flash_path = flash or self._tmp / "flash.bin"
        self._env = dict(env or {})
        self._proc: Any = None
        self._log = ShimLog()  # one for every run: a reboot keeps what came before
        self._stopping = False
        self._lock = threading.Lock()
        self.restarts = 0

    @property
    def description(self) -> str:
        return f"twin {self._ip} ({self.binary.parent.name[:12]})"

    def _world_files(self) -> tuple[Path, str]:
        return self.flash_path, self.password

    def _shim_log(self) -> ShimLog:
        return self._log

    @property
    def sim_ip(self) -> str:
        """The loopback address this twin owns (known before READY)."""
        return self._ip

    # -- process supervision ----------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        proc = self._proc
        if proc is None or not proc.alive:
            raise DeviceError(
                "the twin's firmware is not running", console_tail=self.console.tail()
            )
        proc.write(data)

    def _spawn(self, reset_reason: str) -> None:
        proc = FirmwareProcess(
            self.binary,
            ip=self._ip,
            mac=default_mac(self._ip),
            flash=self.flash_path,
            ap_ssid=self.ssid,
            ap_password=self.password,
            reset_reason=reset_reason,
            on_output=self.console.feed,
            on_exit=lambda code: self._exited(proc, code),
            env=self._env,
            shim_log=self._log,
        )
        self._proc = proc
        self.console.reopen()
        proc.start()

    def _exited(self, proc: Any, code: int) -> None:
        # Runs on the process's reader thread; restarting joins that thread, so hand off.
        threading.Thread(target=self._after_exit, args=(proc, code), daemon=True).start()

    def _after_exit(self, proc: Any, code: int) -> None:
        with self._lock:
            if self._stopping or proc is not self._proc:
                return
            reason = reset_of_exit(code)
            if reason is not None:
                # The chip resetting itself (ESP.restart, a watchdog, an exception) is a
                # reboot, not a death: boot it again with the reason a board reports.
                self.restarts += 1
                proc.stop()
                self._spawn(RESET_REASONS[reason][0])
                return
        # The shim says why on stderr (a bad environment, an address in use): show it.
        tail = "\n".join(proc.stderr_tail(wait=1.0))
        self.console.close(f"the twin's firmware exited with code {code}\n{tail}".rstrip())

    def start(self) -> Device:
        """Boot the twin and bring it to READY (provisioning WiFi if the flash has none)."""
        mark = self.console.mark()
        t0 = time.monotonic()
        with self._lock:
            self._spawn("Power On")
        self.bring_up(since=mark, ssid=self.ssid, password=self.password, t0=t0)
        return self

    def hard_reset(self) -> None:
        with self._lock:
            old = self._proc
            self._proc = None
            if old is not None:
                old.stop()
            self._spawn("External System")

    def kill(self) -> None:
        """Cut the power: the firmware process dies and the console says so."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None:
                proc.stop(timeout=0.5)
        self.console.close("the twin's power was cut (firmware process killed)")

    def close(self) -> None:
        with self._lock:
            self._stopping = True
            if self._proc is not None:
                self._proc.stop()
                self._proc = None
        self.console.close("the twin was stopped")
        self._close_world()
        release = getattr(self._ip_lock, "release", None)
        if release is not None:
            release()
        if not os.environ.get("ESP_HIL_KEEP_TWIN"):
            shutil.rmtree(self._tmp, ignore_errors=True)
