"""The console vocabulary: READY parsing and the provisioning command."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.device.console import Console
from harness.device.errors import ProvisioningError
from harness.device.ready import Ready, parse_fields, provision, wifi_command

LINE = (
    "ESP-HIL READY fw=esp-hil-testfw/0.1.0+abc ip=192.168.1.57 port=8080 ctrl=8081 "
    "mac=5C:CF:7F:00:00:01 max=4096 raw=8082"
)


def test_ready_line_parsed_with_unknown_keys_kept() -> None:
    ready = Ready.parse(LINE)
    assert (ready.ip, ready.port, ready.ctrl_port, ready.max_message) == (
        "192.168.1.57",
        8080,
        8081,
        4096,
    )
    assert ready.mac == "5c:cf:7f:00:00:01"
    assert ready.extra == {"raw": "8082"}


def test_sketch_ready_lines_without_control_service() -> None:
    # EspHil.ready() / readyDialing() in a sketch other than the test firmware.
    listening = Ready.parse(
        "ESP-HIL READY fw=node/1 ip=10.0.0.2 port=9000 mac=aa:bb:cc:dd:ee:ff max=512"
    )
    assert (listening.port, listening.ctrl_port, listening.max_message) == (9000, 0, 512)
    dialing = Ready.parse(
        "ESP-HIL READY fw=node/1 ip=10.0.0.2 port=0 dial=10.0.0.1:9000 mac=aa:bb:cc:dd:ee:ff max=64"
    )
    assert (dialing.port, dialing.ctrl_port, dialing.extra) == (0, 0, {"dial": "10.0.0.1:9000"})


@pytest.mark.parametrize(
    "line",
    [
        "ESP-HIL READY ip=1.2.3.4 port=8080",  # fields missing
        LINE.replace("port=8080", "port=eighty"),  # not a number
        "ESP-HIL BOOT fw=x",  # not READY
    ],
)
def test_malformed_ready_lines_are_named(line: str) -> None:
    with pytest.raises(ValueError, match="READY"):
        Ready.parse(line)


@given(ssid=st.text(min_size=1, max_size=32), password=st.text(max_size=63))
def test_wifi_command_always_splits_into_three_fields(ssid: str, password: str) -> None:
    parts = wifi_command(ssid, password).split(" ")
    assert len(parts) == 3 and parts[0] == "wifi"
    assert unquote(parts[1]) == ssid and unquote(parts[2]) == password
    assert all(c not in parts[1] + parts[2] for c in " \r\n\t")


@given(
    st.dictionaries(
        st.from_regex(r"[a-z]{1,8}", fullmatch=True), st.from_regex(r"[!-~]{0,12}", fullmatch=True)
    )
)
def test_fields_round_trip(fields: dict[str, str]) -> None:
    assert parse_fields(" ".join(f"{k}={v}" for k, v in fields.items())) == fields


def _scripted(reply: str) -> Console:
    console: Console

    def device(data: bytes) -> None:
        console.feed(b"ESP-HIL OK wifi\n" + reply.encode() + b"\n")

    console = Console(device)
    return console


def test_provision_returns_ready() -> None:
    assert provision(_scripted(LINE), "net", "pw", timeout=1).ip == "192.168.1.57"


def test_provision_names_a_wrong_password() -> None:
    console = _scripted("ESP-HIL WIFI fail status=6 reason=wrong_password ssid=net")
    with pytest.raises(ProvisioningError, match="wrong_password"):
        provision(console, "net", "bad", timeout=1)
