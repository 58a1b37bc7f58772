"""The device announces itself and answers on its control service."""

from __future__ import annotations

import re
import time

import pytest

from harness.device.base import Device
from harness.errors import AuthenticationFailed


def test_ready_line_facts(device: Device) -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", device.ip)
    assert device.port != device.ctrl_port
    assert re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", device.mac)
    assert device.fw.startswith("esp-hil-testfw/")
    assert device.max_message >= 1024


def test_console_saw_boot(device: Device) -> None:
    device.console.expect(r"^ESP-HIL BOOT fw=esp-hil-testfw/", timeout=1)


def test_info_from_control_service(device: Device) -> None:
    info = device.info()
    assert info["fw"] == device.fw
    assert info["mac"].lower() == device.mac
    assert info["max_message"] == device.max_message
    assert info["echo_port"] == device.port
    assert 0 < info["heap"] < 100 * 1024
    assert info["uptime_ms"] >= 0
    assert isinstance(info["reset_reason"], str) and info["reset_reason"]


def test_uptime_advances(device: Device) -> None:
    first = device.info()["uptime_ms"]
    time.sleep(0.05)
    second = device.info()["uptime_ms"]
    assert second >= first + 40


def test_unknown_control_command(device: Device) -> None:
    reply = device.control("no-such-command")
    assert reply["error"] == "unknown command"
    assert reply["command"] == "no-such-command"


def test_links_are_authenticated_with_the_sessions_key(device: Device) -> None:
    # The test firmware takes a key (READY auth=1): the plugin gave it a fresh one, and a
    # peer without it, or with another, is refused at once (docs/security.md).
    if not device.ready.accepts_key:
        pytest.skip(f"{device.fw} takes no link key (no auth=1 in READY)")
    if device.key is None:
        pytest.skip("run keyless (--link-key none)")
    info = device.info()
    assert info["key"] is True
    assert device.key.hex() not in device.console.tail(1000)
    failures = info["auth_failures"]
    with pytest.raises(AuthenticationFailed, match="no key"):
        device.connect(key=None, timeout=5)
    with pytest.raises(AuthenticationFailed, match="authentication failed"):
        device.connect(key=bytes(b ^ 0xFF for b in device.key), timeout=5)
    with device.connect() as sock:
        sock.send("keyed")
        assert sock.receive(timeout=5) == "keyed"
    assert device.info()["auth_failures"] >= failures + 2
