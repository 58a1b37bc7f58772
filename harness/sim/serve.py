"""``esp-hil sim``: serve one twin in the foreground; find the twins served on this machine.

Each running twin leaves a record (its rfc2217 URL, IP and access point) under the cache, so
``--device=rfc2217://...`` of a local twin knows its WiFi credentials and its firmware image.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

from harness.device.errors import DeviceError, with_twin_log
from harness.device.ready import Ready
from harness.device.serial import SerialDevice
from harness.sim.board import native_image
from harness.sim.build import cache_root
from harness.sim.chip.twin import Twin
from harness.sim.defaults import DEFAULT_PASSWORD, DEFAULT_SSID


def _running_dir() -> Path:
    return cache_root() / "twin" / "running"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_twins() -> dict[str, dict[str, str]]:
    """The twins that ``esp-hil sim`` runs on this machine right now, by rfc2217 URL.

    Each has ``ip``, ``ssid`` and ``password`` (its simulated access point).
    """
    twins: dict[str, dict[str, str]] = {}
    folder = _running_dir()
    if not folder.is_dir():
        return twins
    for entry in folder.glob("*.json"):
        try:
            info = json.loads(entry.read_text())
        except (OSError, ValueError):
            continue
        if _alive(int(info.get("pid", 0))):
            twins[str(info["url"])] = info
        else:
            entry.unlink(missing_ok=True)
    return twins


def run_twin(
    *,
    rfc2217_port: int = 0,
    flash_file: str | None = None,
    ssid: str | None = None,
    password: str | None = None,
    mac: str | None = None,
    blank: bool = False,
) -> int:
    """``esp-hil sim``: serve one twin until SIGINT/SIGTERM; print where it is.

    Unless ``blank``, the twin is first brought up as the plugin would a board (the test
    firmware flashed if its flash differs, WiFi provisioned, READY), so its echo service
    answers at once.
    """
    image = native_image()  # also registers the build, so an image flashed later finds it
    twin = Twin(
        flash_path=flash_file,
        rfc2217_port=rfc2217_port,
        mac=mac,
        ssid=ssid or DEFAULT_SSID,
        password=password or DEFAULT_PASSWORD,
    )
    try:
        twin.start()
    except OSError as exc:
        twin.stop()
        raise DeviceError(
            f"cannot serve the twin's serial line on port {rfc2217_port}: {exc.strerror or exc}"
        ) from None
    record = _running_dir() / f"{os.getpid()}.json"
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        ready = None if blank else _bring_up(twin, image)
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "url": twin.url,
                    "ip": twin.ip,
                    "ssid": twin.ssid,
                    "password": twin.password,
                }
            )
        )
        print(f"serial: {twin.url}", flush=True)
        print(f"ip: {twin.ip}", flush=True)
        print(f"mac: {twin.mac}", flush=True)
        print(f"wifi: ssid={twin.ssid} password={twin.password}", flush=True)
        print(f"flash: {twin.flash_path}", flush=True)
        if ready is not None:
            print(f"echo: {ready.ip}:{ready.port}  (fw={ready.fw})", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        record.unlink(missing_ok=True)
        twin.stop()
    return 0


def _bring_up(twin: Twin, image: bytes) -> Ready:
    """Flash (if needed), reset and provision the twin over its serial line, then let go of
    the line: closing it leaves DTR/RTS released, so the firmware keeps running."""
    board = SerialDevice(twin.url, ssid=twin.ssid, password=twin.password, image=image)
    try:
        board.start()
        return board.ready
    except DeviceError as exc:
        raise with_twin_log(exc, twin.shim_log.since()) from None
    finally:
        board.close()
