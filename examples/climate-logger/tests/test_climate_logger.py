"""climate-logger as its PC sees it: the requests of its sketch's header comment.

``pytest`` runs these on a twin, where the TMP102 on the I2C bus and the files of LittleFS
are the test's (``device.i2c``, ``device.fs``; marked ``twin``); ``pytest
--device=/dev/ttyUSB0`` runs the rest on a board with whatever sensor is wired to it.
"""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import WiFiSocket

TMP102 = 0x48
ANSWER = 5.0  # seconds a reply may take


def ask(link: WiFiSocket, request: str) -> str:
    link.send(request)
    return str(link.receive(timeout=ANSWER))


def centi_celsius(msb: int, lsb: int) -> int:
    """What the sketch computes from the sensor's two bytes: 12 bits, 0.0625 degrees each,
    truncated to hundredths as C's integer division does."""
    raw = ((msb << 8) | lsb) >> 4
    if raw >= 0x800:
        raw -= 0x1000
    sixteenths = raw * 625
    return -(-sixteenths // 100) if sixteenths < 0 else sixteenths // 100


def as_text(centi: int) -> str:
    return f"{'-' if centi < 0 else ''}{abs(centi) // 100}.{abs(centi) % 100:02d}"


def test_a_reading_or_why_not(link) -> None:
    reply = ask(link, "read")
    assert re.fullmatch(r"t=-?\d+\.\d\d at=(unset|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)|"
                        r"error=no sensor", reply), reply


@pytest.mark.twin
def test_no_sensor_on_the_bus_is_an_error_not_a_reading(device, link) -> None:
    device.i2c.detach(TMP102)
    assert ask(link, "read") == "error=no sensor"


@pytest.mark.twin
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(msb=st.integers(0, 255), lsb=st.sampled_from([0x00, 0x10, 0x80, 0xF0]))
def test_the_reading_is_the_sensors_temperature(device, link, msb: int, lsb: int) -> None:
    device.i2c.attach(TMP102, {0x00: msb, 0x01: lsb})
    reply = ask(link, "read")
    assert reply.startswith(f"t={as_text(centi_celsius(msb, lsb))} at="), reply


@pytest.mark.twin
def test_readings_are_logged_with_the_time_sntp_set(device, link) -> None:
    device.i2c.attach(TMP102, {0x00: 0x19, 0x01: 0x00})  # 25.00 degrees
    deadline = time.monotonic() + 10  # SNTP answers a while after the join, as on a board
    while (at := ask(link, "read").split("at=", 1)[1]) == "unset":
        assert time.monotonic() < deadline, "SNTP never set the clock"
        time.sleep(0.05)
    stamp = time.strptime(at, "%Y-%m-%dT%H:%M:%SZ")  # the clock was set, not "unset"
    assert abs(time.mktime(stamp) - time.mktime(time.gmtime())) < 60
    last = (device.fs / "log.csv").read_bytes().splitlines()[-1]
    assert last == f"{at},25.00".encode()
    assert ask(link, "log").endswith(f" last={at},25.00")


@pytest.mark.twin
def test_the_name_comes_from_the_file_system(device) -> None:
    (device.fs / "name.txt").write_text("greenhouse\n")
    device.reset()  # the sketch reads it in setup()
    with device.connect(timeout=ANSWER) as link:
        assert ask(link, "name") == "name=greenhouse"
