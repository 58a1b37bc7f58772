"""``esp-hil sim``: serve one twin in the foreground, and find the twins served on this machine.

Each running twin leaves a record (its rfc2217 URL, IP and access point) under the cache, so
``--device=rfc2217://...`` of a local twin knows its WiFi credentials and its firmware image.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

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
) -> int:
    """``esp-hil sim``: serve one twin until SIGINT/SIGTERM; print where it is."""
    native_image()  # build and register, so an image flashed later finds its binary
    twin = Twin(
        flash_path=flash_file,
        rfc2217_port=rfc2217_port,
        mac=mac,
        ssid=ssid or DEFAULT_SSID,
        password=password or DEFAULT_PASSWORD,
    )
    twin.start()
    record = _running_dir() / f"{os.getpid()}.json"
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
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        print(f"serial: {twin.url}", flush=True)
        print(f"ip: {twin.ip}", flush=True)
        print(f"mac: {twin.mac}", flush=True)
        print(f"wifi: ssid={twin.ssid} password={twin.password}", flush=True)
        print(f"flash: {twin.flash_path}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        record.unlink(missing_ok=True)
        twin.stop()
    return 0
