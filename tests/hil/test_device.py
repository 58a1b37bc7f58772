"""The device announces itself and answers on its control service."""

from __future__ import annotations

import re
import time

from harness.device.base import Device


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
