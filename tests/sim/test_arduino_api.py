"""The Arduino API a normal sketch uses, on the twin: Ticker, WiFi events, Stream parsing,
String, PROGMEM, WMath, a WiFiClient read as a Stream.

The sketch is firmware/sim/test/api_test_sketch.cpp, written as for the ESP8266 core.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.sim import build_firmware, firmware_root
from tests.helpers.shim import MAC, PASSWORD, SSID, Console, booted_console, cpu_share

SKETCH = firmware_root() / "sim" / "test" / "api_test_sketch.cpp"
TIMEOUT = 5.0

pytestmark = pytest.mark.twin


@pytest.fixture(scope="module")
def api_binary() -> Path:
    return build_firmware(sketch=SKETCH)


@pytest.fixture(scope="module")
def console(api_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    flash = tmp_path_factory.mktemp("api") / "flash.bin"
    with booted_console(api_binary, flash, "boot reset=Power On") as con:
        yield con


def test_ticker_repeats_never_early(console: Console) -> None:
    assert console.command("tick 20 6", "tick ") == "tick armed=1"
    line = console.expect("ticks ")
    fields = console.fields(line)
    assert fields["n"] == "6"
    at = [int(t) for t in fields["at"].split(",")]
    assert len(at) == 6 and at == sorted(at)
    # Tick k is due (k + 1) * 20 ms after attach: it may be late under load, never early
    # (1 ms of slack: millis() truncates both ends).
    assert all(t >= (k + 1) * 20 - 1 for k, t in enumerate(at)), at


def test_ticker_once_with_argument(console: Console) -> None:
    console.command("once 30 7", "once armed")
    fields = console.fields(console.expect("once value="))
    assert fields["value"] == "7"
    assert int(fields["late"]) >= 0


def test_ticker_rearmed_from_its_own_callback(console: Console) -> None:
    console.command("chain 5", "chain armed")
    assert console.expect("chain ") == "chain 5,4,3,2,1,0"


def test_ticker_runs_during_delay(console: Console) -> None:
    # A 10 ms Ticker inside delay(105): the callbacks run while the sketch sleeps.
    count = int(console.fields(console.command("delaytick 10 105", "delaytick "))["count"])
    assert 1 <= count <= 10


def test_idle_twin_with_a_ticker_sleeps(console: Console) -> None:
    # A 7 ms Ticker for 1.4 s: between its deadlines the twin waits in poll(), no busy loop.
    console.command("tick 7 200", "tick armed=1")
    assert cpu_share(console.proc.pid or 0) < 0.2
    assert console.fields(console.expect("ticks "))["n"] == "200"


def test_callback_that_delays_does_not_spin(console: Console) -> None:
    # A Ticker callback sleeps 1.5 s while a 5 ms Ticker falls due: that one must wait
    # (callbacks are not re-entered) without the delay() turning into a busy loop.
    console.command("nest 1500", "nest armed")
    assert cpu_share(console.proc.pid or 0, seconds=1.0) < 0.2
    assert console.expect("nest ") == "nest during=0"
    console.command("tick 100000 1", "tick armed=1")  # stops the 5 ms Ticker


def test_wifi_events_in_order(console: Console) -> None:
    # Another test may have joined already: that station leaves first (its own event).
    console.command(f"wifi {SSID} {PASSWORD}", "wifi begun")
    assert console.expect("event connected") == f"event connected ssid={SSID} channel=1"
    assert console.expect("event ") == f"event gotip ip={console.proc.ip}"
    info = console.fields(console.command("info", "info "))
    assert info["status"] == "3" and info["ip"] == console.proc.ip
    console.command("disconnect", "disconnect done")
    assert console.expect("event ") == "event disconnected reason=8"  # ASSOC_LEAVE
    console.command(f"wifi {SSID} wrong-password", "wifi begun")
    # The event handler runs inside waitForConnectResult (it lets the system run).
    assert console.command("waitwifi 5000", "event ") == "event disconnected reason=202"
    assert console.expect("waitwifi ") == "waitwifi 6"  # WL_WRONG_PASSWORD
    console.command("wifi other-net x", "wifi begun")
    assert console.expect("event ") == "event disconnected reason=201"  # NO_AP_FOUND


def test_info(console: Console) -> None:
    info = console.fields(console.command("info", "info "))
    assert info["mac"] == MAC.upper()
    assert int(info["chip"]) == 0x123456  # the MAC's last three bytes
    assert info["host"] == "ESP-123456"
    assert info["reset"] == "Power"  # "Power On", split at the space
    assert 0 < int(info["heap"]) <= 52 * 1024


def test_progmem_and_flash_strings(console: Console) -> None:
    line = console.command("flash", "lcpy=")
    assert line == "lcpy=progmem/12 flash f=yes pstr=7 copy=progmem text fp=progmem text"


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="abcABC 0123456789.-", min_size=1, max_size=30).map(str.strip).filter(bool))
def test_string_methods(console: Console, text: str) -> None:
    line = console.command(f"str {text}", "str ")
    replaced = text.replace("ab", "X")
    expected = (
        f"str upper={text.upper()} lower={text.lower()} first={text.find('b')} "
        f"last={text.rfind('b')} rep={replaced} rm={text[1:]} int={_c_strtol(text)} "
        f"float={_c_strtod(text):.3f} ab={int(text.startswith('ab'))} "
        f"eq={int(text.lower() == 'abc')}"
    )
    assert line == expected


def _c_strtol(text: str) -> int:
    """strtol(text, nullptr, 10) with the chip's 32-bit long: blanks, a sign, digits."""
    s = text.lstrip()
    sign = -1 if s[:1] == "-" else 1
    s = s[1:] if s[:1] in "+-" else s
    digits = ""
    for c in s:
        if not c.isdigit():
            break
        digits += c
    value = sign * int(digits) if digits else 0
    return max(-(2**31), min(2**31 - 1, value))


def _c_strtod(text: str) -> float:
    """(float)strtod for the characters the strategy draws (no exponent, no inf/nan)."""
    s = text.lstrip()
    best = 0.0
    for end in range(1, len(s) + 1):
        try:
            best = float(s[:end])
        except ValueError:
            continue
    # String::toFloat() returns a float: single precision.
    return float(struct.unpack("f", struct.pack("f", best))[0])


def test_stream_parse_int_and_float(console: Console) -> None:
    console.command("parseint", "parseint ready")
    console.proc.write(b"  42,-17 x3.25\n")
    assert console.expect("parsed ") == "parsed 42 -17 3.25"


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=1023))
def test_map_and_dtostrf(console: Console, value: int) -> None:
    expected = (value * 100 + 1023 // 2) // 1023
    assert console.command(f"map {value}", "map ") == f"map {expected} {value / 4:.2f}"


def test_wifi_client_is_a_stream(console: Console) -> None:
    console.command(f"wifi {SSID} {PASSWORD}", "wifi begun")
    console.expect("event gotip")
    console.command("serve 4321", "serve 4321")
    with socket.create_connection((console.proc.ip, 4321), timeout=TIMEOUT) as sock:
        sock.settimeout(TIMEOUT)
        sock.sendall(b"hello there\n")
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = sock.recv(100)
            assert chunk, "connection closed early"
            reply += chunk
    assert reply == b"got hello there\r\n"


def test_loop_comes_round_at_once_after_a_pass_that_took_input(console: Console) -> None:
    # The sketch answers each line on the pass after the one that read it. Nothing is left
    # unread and no event is due, so only the idle service decides when that pass comes: it
    # may sleep up to 5 ms between passes, but on the chip loop() comes round again at once.
    console.command(f"wifi {SSID} {PASSWORD}", "wifi begun")
    console.expect("event gotip")
    console.command("serve 4322 1", "serve 4322")
    waits = []
    with socket.create_connection((console.proc.ip, 4322), timeout=TIMEOUT) as sock:
        sock.settimeout(TIMEOUT)
        reader = sock.makefile("rb")
        for i in range(10):
            sock.sendall(b"line %d\n" % i)
            reply = reader.readline()
            assert reply.startswith(b"got line %d us=" % i), reply
            waits.append(int(reply.split(b"us=")[1]))
    # The device's own clock, the least of ten: a slept-through pass is 5000 us or more
    # every time; a scheduler's hiccup on a loaded machine is not.
    assert min(waits) < 2500, waits
