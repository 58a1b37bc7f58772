"""The console vocabulary: READY parsing and the provisioning command."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.device.console import Console
from harness.device.errors import DeviceTimeout, ProvisioningError
from harness.device.ready import (
    Ready,
    parse_fields,
    parse_link_key,
    provision,
    provision_key,
    why_not_ready,
    wifi_command,
)
from tests.helpers.stub import StubDevice

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


# -- the link key (docs/protocol.md §6, docs/console.md `key`) ------------------------------


def _answering(answer: str, sent: list[bytes]) -> Console:
    console: Console

    def device(data: bytes) -> None:
        sent.append(data)
        console.feed(answer.encode() + b"\n")

    console = Console(device)
    return console


@given(st.binary(min_size=16, max_size=32))
def test_link_key_hex_round_trips(key: bytes) -> None:
    assert parse_link_key(key.hex()) == key
    assert parse_link_key(key.hex().upper()) == key


@pytest.mark.parametrize("text", ["auto", "none"])
def test_link_key_words(text: str) -> None:
    assert parse_link_key(text) == text


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("00" * 15, "16..32 bytes"),
        ("00" * 33, "16..32 bytes"),
        ("0" * 33, "hex digits"),
        ("zz" * 16, "hex digits"),
        ("", "16..32 bytes"),
    ],
)
def test_bad_link_keys_are_named_without_echoing_them(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as info:
        parse_link_key(text)
    assert text == "" or text not in str(info.value)


def test_provision_key_sends_it_and_waits_for_ok() -> None:
    sent: list[bytes] = []
    provision_key(_answering("ESP-HIL OK key", sent), bytes(range(16)), timeout=1)
    assert sent == [b"key 000102030405060708090a0b0c0d0e0f\n"]
    provision_key(_answering("ESP-HIL OK key", sent), None, timeout=1)
    assert sent[-1] == b"key off\n"


def test_provision_key_refused() -> None:
    with pytest.raises(ProvisioningError, match="refused its link key"):
        provision_key(_answering("ESP-HIL ERR key bad length", []), bytes(16), timeout=1)


def test_ready_announces_key_support() -> None:
    assert Ready.parse(LINE + " auth=1").accepts_key
    assert not Ready.parse(LINE).accepts_key


# -- a bring-up that gets no READY says which agent call the sketch most likely lacks ------

BOOT = "ESP-HIL BOOT fw=node/1 reset=Power%20On"


@pytest.mark.parametrize(("lines", "hint"), [
    ([], "does its setup() call EspHil.begin"),
    (["hello from my sketch", "ESP-HIL BOOTX"], "does its setup() call EspHil.begin"),
    ([BOOT, "ESP-HIL WIFI none"], "does the sketch's loop() call EspHil.loop()?"),
    ([BOOT, "ESP-HIL WIFI none", "ESP-HIL WIFI connecting ssid=net"],
     "does setup() call EspHil.ready(port, maxMessage)"),
    ([BOOT, "ESP-HIL WIFI connecting ssid=net"], "does setup() call EspHil.ready("),
    ([BOOT, "ESP-HIL WIFI connecting ssid=net", "ESP-HIL WIFI fail status=1 reason=timeout"],
     None),
])
def test_why_not_ready(lines: list[str], hint: str | None) -> None:
    said = why_not_ready(lines)
    assert (said is None) if hint is None else (said is not None and hint in said)


class _Silent(StubDevice):
    """A device whose sketch booted the agent but never runs its loop: nothing answers."""

    def __init__(self) -> None:
        super().__init__(Console(lambda data: None))
        self.ready_timeout = 0.2
        self.console.feed(f"{BOOT}\nESP-HIL WIFI none\n".encode())


def test_bring_up_names_the_missing_agent_call_when_no_ready_comes() -> None:
    with pytest.raises(DeviceTimeout) as exc:
        _Silent().bring_up(since=0, ssid="net", password="pw")
    assert str(exc.value).splitlines()[0] == (
        "no READY within 0 s: the agent did not take the 'wifi' command: does the sketch's "
        "loop() call EspHil.loop()?")
