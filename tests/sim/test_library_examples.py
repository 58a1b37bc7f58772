"""The Arduino examples of firmware/lib/EspHil and firmware/lib/WiFiSocket on the twin.

The EspHil examples run as the device (provisioned over the console, READY from the agent)
and are talked to from the host; the plain WiFiSocket examples, which hard-code a WiFi
network, are only compiled. An ``.ino`` is compiled as the C++ file it is (the examples
include <Arduino.h> themselves).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.sim.build import build_firmware, firmware_root
from harness.sim.direct import SimDevice
from harness.wifisocket import WiFiSocket
from tests.helpers.net import free_port

pytestmark = pytest.mark.twin

LIB = firmware_root() / "lib"
ANSWER = 5.0
HOST = "127.0.0.1"


def _build_example(path: Path, tmp: Path, flags: tuple[str, ...] = ()) -> Path:
    sketch = tmp / (path.stem + ".cpp")
    shutil.copyfile(path, sketch)
    return build_firmware(sketch=sketch, extra_flags=flags)


def _command(device: SimDevice, line: str, answer: str) -> str:
    mark = device.console.mark()
    device.console.send_line(line)
    return device.console.expect(answer, timeout=ANSWER, since=mark).group(0)


@pytest.fixture(scope="module")
def echo_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimDevice]:
    binary = _build_example(
        LIB / "EspHil" / "examples" / "EchoService" / "EchoService.ino",
        tmp_path_factory.mktemp("echo"),
    )
    device = SimDevice(binary=binary)
    try:
        device.start()  # fresh flash: WIFI none, provisioned over the console, READY
        yield device
    finally:
        device.close()


def test_echo_service_announces_its_port(echo_service: SimDevice) -> None:
    ready = echo_service.ready
    assert ready.fw.startswith("echo-service/1.0+")
    assert (ready.port, ready.ctrl_port, ready.max_message) == (8080, 0, 1024)
    assert any("ESP-HIL WIFI none" in ln.text for ln in echo_service.console.lines)


def test_echo_service_echoes_text_and_binary(echo_service: SimDevice) -> None:
    with echo_service.connect(timeout=ANSWER) as link:
        link.send("Hi")  # the String form on the device
        assert link.receive(timeout=ANSWER) == "Hi"
        link.send("")
        assert link.receive(timeout=ANSWER) == ""
        link.send(b"\x00\xff binary")
        assert link.receive(timeout=ANSWER) == b"\x00\xff binary"
        big = "x" * 1024  # the buffer form, WiFiSocket's default max_message
        link.send(big)
        assert link.receive(timeout=ANSWER) == big


def test_agent_console_and_sketch_commands(echo_service: SimDevice) -> None:
    counted = _command(echo_service, "count", r"^ESP-HIL OK count \d+$")
    assert int(counted.split()[-1]) >= 0
    assert _command(echo_service, "frobnicate now", r"^ESP-HIL ERR frobnicate.*$") == (
        "ESP-HIL ERR frobnicate unknown command"
    )
    # No `dial` hook in this sketch: the agent does not know the command either.
    assert _command(echo_service, "dial 127.0.0.1 9", r"^ESP-HIL ERR dial.*$") == (
        "ESP-HIL ERR dial unknown command"
    )
    info = _command(echo_service, "info", r"^ESP-HIL INFO .*$")
    assert '"max_message": 1024' in info and '"fw": "echo-service/1.0+' in info
    assert (
        _command(echo_service, "wifi", r"^ESP-HIL ERR wifi.*$") == "ESP-HIL ERR wifi missing ssid"
    )
    assert (
        _command(echo_service, "wifi %zz", r"^ESP-HIL ERR wifi.*$") == "ESP-HIL ERR wifi bad ssid"
    )
    assert _command(echo_service, "x" * 300, r"^ESP-HIL ERR line.*$") == "ESP-HIL ERR line too long"


def test_credentials_survive_reboot_until_forget(echo_service: SimDevice) -> None:
    # Stored where the SDK keeps its station config: a reboot joins without `wifi`.
    mark = echo_service.console.mark()
    echo_service.console.send_line("reboot")
    echo_service.wait_ready(since=mark)
    assert not any("WIFI none" in ln.text for ln in echo_service.console.since(mark))
    _command(echo_service, "forget", r"^ESP-HIL OK forget$")
    mark = echo_service.console.mark()
    echo_service.console.send_line("reboot")
    echo_service.console.expect(r"^ESP-HIL WIFI none$", timeout=ANSWER, since=mark)
    echo_service.bring_up(since=mark, ssid=echo_service.ssid, password=echo_service.password)
    with echo_service.connect(timeout=ANSWER) as link:
        link.send("back")
        assert link.receive(timeout=ANSWER) == "back"


def test_dial_service_dials_the_serving_pc(tmp_path: Path) -> None:
    port = free_port(HOST)
    binary = _build_example(
        LIB / "EspHil" / "examples" / "DialService" / "DialService.ino",
        tmp_path,
        (f'-DPC_HOST="{HOST}"', f"-DPC_PORT={port}"),
    )
    device = SimDevice(binary=binary)
    served: list[WiFiSocket] = []
    failed: list[BaseException] = []

    def serve() -> None:
        try:
            served.append(WiFiSocket.serve(port=port, host=HOST, timeout=20.0))
        except BaseException as exc:  # reported below
            failed.append(exc)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        ready = device.start().ready
        assert (ready.port, ready.extra.get("dial")) == (0, f"{HOST}:{port}")
        t.join(timeout=25.0)
        assert not failed, failed
        assert served, "serve() did not return"
        with served[0] as pc:
            pc.send("ping")
            assert pc.receive(timeout=ANSWER) == "pong"
            pc.send("anything")
            assert pc.receive(timeout=ANSWER) == "anything"
        assert _command(device, "dial off", r"^ESP-HIL ERR dial.*$") == (
            "ESP-HIL ERR dial this sketch always dials"
        )
        assert _command(device, "dial 127.0.0.1 0", r"^ESP-HIL ERR dial.*$") == (
            "ESP-HIL ERR dial usage: dial <host> <port> | dial off"
        )
        # Pointed elsewhere over the console: READY names the new target.
        mark = device.console.mark()
        device.console.send_line(f"dial localhost {port}")
        device.console.expect(
            rf"^ESP-HIL READY .* dial=localhost:{port} ", timeout=ANSWER, since=mark
        )
    finally:
        device.close()


@pytest.mark.parametrize("example", ["Echo", "DialPC"])
def test_wifisocket_examples_compile(example: str, tmp_path: Path) -> None:
    path = LIB / "WiFiSocket" / "examples" / example / f"{example}.ino"
    assert _build_example(path, tmp_path).is_file()
