"""sensor-node as its PC sees it: the WiFiSocket commands of README.md, its LED and its A0.

``pytest`` runs these on a twin (this sketch compiled for the PC, with a simulated WiFi, LED
pin and A0); ``pytest --device=/dev/ttyUSB0`` on a board (PlatformIO builds and flashes it,
esp-hil provisions its WiFi: ``--wifi-ssid``/``--wifi-password``). Tests that set the A0
input or read the LED pin are marked ``twin``: a board has no test rig wired to them.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import WiFiSocket
from harness.backends import open_device
from harness.pytest_plugin import device_options

LED = 2  # the ESP-12's blue LED: lit while GPIO2 is LOW
ANSWER = 5.0  # seconds a reply may take


def ask(link: WiFiSocket, request: str) -> object:
    link.send(request)
    return link.receive(timeout=ANSWER)


def test_ready_names_the_sketch_and_its_port(device) -> None:
    assert device.fw.startswith("sensor-node/")
    assert device.port == 8080  # -DSENSOR_PORT=8080 of the `listen` env
    assert device.info()["fw"] == device.fw  # the agent's console `info`


def test_a0_reply_is_a_reading(link) -> None:
    reply = ask(link, "a0")
    m = re.fullmatch(r"a0=(\d+)", str(reply))
    assert m and 0 <= int(m.group(1)) <= 1023, reply


@pytest.mark.twin
# No deadline: a reply over WiFi (or from a twin on a busy machine) has no fixed latency.
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(level=st.integers(min_value=0, max_value=1023))
def test_a0_tracks_the_analog_input(device, link, level: int) -> None:
    device.analog = level
    assert ask(link, "a0") == f"a0={level}"


def test_led_commands_answer_the_led_state(link) -> None:
    assert ask(link, "led on") == "led=on"
    assert ask(link, "led") == "led=on"
    assert ask(link, "led off") == "led=off"
    assert ask(link, "led") == "led=off"


@pytest.mark.twin
def test_led_on_drives_gpio2_low(device, link) -> None:
    assert ask(link, "led on") == "led=on"
    assert device.pins[LED] == 0
    assert ask(link, "led off") == "led=off"
    assert device.pins[LED] == 1


def test_unknown_command_is_answered_with_an_error(link) -> None:
    assert ask(link, "blink 3") == "error unknown command: blink 3"
    assert ask(link, "led") in ("led=on", "led=off")  # and it keeps serving


@pytest.mark.twin
def test_console_sensor_command(device, link) -> None:
    device.analog = 321
    assert ask(link, "led on") == "led=on"
    mark = device.console.mark()
    device.console.send_line("sensor")
    device.console.expect(r"^ESP-HIL OK sensor led=on a0=321$", timeout=ANSWER, since=mark)


def test_credentials_survive_a_reset(device) -> None:
    mark = device.console.mark()
    ready = device.reset()  # no provisioning: READY must come from the stored credentials
    assert ready.port == 8080
    lines = [line.text for line in device.console.since(mark)]
    assert not any(text.startswith("ESP-HIL WIFI none") for text in lines), lines
    with device.connect(timeout=ANSWER) as link:
        assert ask(link, "led") in ("led=on", "led=off")


@pytest.fixture
def dialer(request: pytest.FixtureRequest) -> Iterator[object]:
    """A second device running the `dial` env of this project (the board dials the PC)."""
    with open_device(device_options(request.config, pio_env="dial")) as dev:
        yield dev


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.twin  # a board would dial the PC's address; the twin dials this machine
def test_dial_env_reports_to_a_serving_pc(dialer) -> None:
    assert dialer.port == 0 and "dial" in dialer.ready.extra  # READY port=0 dial=<host>:<port>
    port = _free_port()
    mark = dialer.console.mark()
    dialer.console.send_line(f"dial 127.0.0.1 {port}")
    dialer.console.expect(r"^ESP-HIL OK dial", timeout=ANSWER, since=mark)
    dialer.analog = 42
    # The node redials by itself until the PC listens.
    with WiFiSocket.serve(port=port, host="127.0.0.1", timeout=15.0, key=dialer.key) as pc:
        assert ask(pc, "a0") == "a0=42"
        assert ask(pc, "led on") == "led=on"
        assert dialer.pins[LED] == 0
