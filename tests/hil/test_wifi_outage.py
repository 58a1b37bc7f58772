"""The access point comes and goes (``device.wifi``): the link rides out a short outage, the
agent announces READY again after a long one. Twin only: a test cannot switch a real AP off
(docs/twin.md, "Board faults")."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from harness import Timeout
from harness.device.base import Device
from harness.device.errors import DeviceError
from harness.sim.wifi import AccessPoint

SHORT_OUTAGE_S = 1.5  # well inside the link's dead-peer bound (3 s) and the beacon timeout
LOST_WAIT = 20.0  # beacon timeout (6 s) plus room for a loaded machine


@pytest.fixture
def ap(device: Device) -> Iterator[AccessPoint]:
    try:
        wifi = device.wifi
    except DeviceError as exc:
        pytest.skip(str(exc))
    password, rssi = wifi.password, wifi.rssi
    try:
        yield wifi
    finally:
        wifi.restore()
        wifi.set_password(password)
        wifi.rssi = rssi


def test_session_survives_a_short_ap_outage(device: Device, ap: AccessPoint) -> None:
    link = device.connect()
    try:
        link.send("before")
        assert link.receive(timeout=5) == "before"
        mark = device.console.mark()
        ap.drop()
        try:
            link.send("during")
            with pytest.raises(Timeout):  # nothing crosses while the AP is away
                link.receive(timeout=0.5)
            time.sleep(SHORT_OUTAGE_S - 0.5)
        finally:
            ap.restore()
        assert link.receive(timeout=5) == "during"  # held back, not lost
        link.send("after")
        assert link.receive(timeout=5) == "after"
    finally:
        link.close()
    assert "WIFI lost" not in device.console.tail(1000, since=mark)


def test_agent_is_ready_again_after_a_long_outage(device: Device, ap: AccessPoint) -> None:
    mark = device.console.mark()
    ap.drop()
    try:
        device.console.expect(r"^ESP-HIL WIFI lost status=", LOST_WAIT, since=mark)
        lost = device.console.mark()
        time.sleep(1.0)  # auto-reconnect's attempts fail while the AP is away
        assert "ESP-HIL READY" not in device.console.tail(1000, since=lost)
    finally:
        ap.restore()
    device.wait_ready(since=mark, timeout=LOST_WAIT)
    link = device.connect()
    try:
        link.send("back")
        assert link.receive(timeout=5) == "back"
    finally:
        link.close()


def test_rssi_follows_the_test(device: Device, ap: AccessPoint) -> None:
    ap.rssi = -80
    assert device.info()["rssi"] == -80
    ap.rssi = -55
    assert device.info()["rssi"] == -55
