"""A loop that stops yielding is reset by the watchdog, on a board as on the twin.

The control service's ``block <ms> [hw]`` stops the sketch's loop without yielding. Past
3.2 s the SDK's software watchdog resets the chip (the core prints its "Soft WDT reset"
report; the chip reboots, ``ESP.getResetReason()`` = "Software Watchdog", ROM cause 2);
with the soft watchdog disabled the hardware one does it after about 8.2 s ("Hardware
Watchdog", ROM cause 4, "wdt reset"). Either way the link's session dies with the chip.
docs/twin.md cites the board facts.
"""

from __future__ import annotations

import pytest

from harness import ConnectionLost, SessionLost
from harness.device.base import Device
from harness.device.serial import SerialDevice
from harness.sim.core.device import CoreDevice

WDT_WAIT = 20.0  # period + report + reboot + WiFi join, with room for a loaded machine


@pytest.fixture
def watchdogs(device: Device) -> None:
    if isinstance(device, CoreDevice):
        pytest.skip("sim-core: the ESP8266 core's host emulation has no watchdog")


def _reset_by_watchdog(device: Device, command: str) -> tuple[int, dict[str, object]]:
    """Send ``command`` (a ``block``), wait for the reboot; the console mark and new info."""
    link = device.connect()
    link.send("before")
    assert link.receive(timeout=5) == "before"
    mark = device.console.mark()
    reply = device.control(command)
    assert reply["ok"] is True
    device.wait_ready(since=mark, timeout=WDT_WAIT)
    # The chip that held the session is gone: the link says so instead of carrying on.
    with pytest.raises((SessionLost, ConnectionLost)):
        link.send("after")
        link.receive(timeout=10)
    link.close()
    fresh = device.connect()
    fresh.send("again")
    assert fresh.receive(timeout=5) == "again"
    fresh.close()
    return mark, device.info()


@pytest.mark.usefixtures("watchdogs")
def test_block_past_the_soft_watchdog_resets_the_chip(device: Device) -> None:
    mark, info = _reset_by_watchdog(device, "block 5000")
    assert info["reset_reason"] == "Software Watchdog"
    device.console.expect(r"^Soft WDT reset", 1, since=mark)
    device.console.expect(r"CUT HERE FOR EXCEPTION DECODER", 1, since=mark)
    if isinstance(device, SerialDevice):  # a chip: the ROM's banner at the sketch's rate
        device.console.expect(r"rst cause:2, boot mode:\(3,\d\)", 1, since=mark)


@pytest.mark.usefixtures("watchdogs")
def test_block_with_soft_watchdog_off_meets_the_hardware_one(device: Device) -> None:
    mark, info = _reset_by_watchdog(device, "block 12000 hw")
    assert info["reset_reason"] == "Hardware Watchdog"
    tail = device.console.tail(1000, since=mark)
    assert "Soft WDT" not in tail
    if isinstance(device, SerialDevice):
        device.console.expect(r"rst cause:4, boot mode:\(3,\d\)", 1, since=mark)
        device.console.expect(r"^wdt reset", 1, since=mark)


def test_short_block_is_survived(device: Device) -> None:
    before = device.info()["uptime_ms"]
    link = device.connect()
    try:
        assert device.control("block 1000")["ok"] is True
        link.send("still here")
        assert link.receive(timeout=10) == "still here"
    finally:
        link.close()
    assert device.info()["uptime_ms"] >= before + 1000  # the same run: no reboot


@pytest.mark.parametrize("command", ["block", "block 0", "block 60001", "block 10 sw", "block x"])
def test_block_usage(device: Device, command: str) -> None:
    reply = device.control(command)
    assert reply["error"] == "usage: block <ms 1..60000> [hw]"
