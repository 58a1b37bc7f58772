"""The EspHil agent's console core (``firmware/lib/EspHil/src/esphil``), checked from pytest.

Compiles ``firmware/test/test_console.cpp`` with the core under ASan/UBSan (as
``test_vectors_cpp`` does for WiFiSocket), runs its unit tests, and drives its ``--tool``
mode with hypothesis: percent-encoding agrees with :func:`urllib.parse`, the ``wifi`` line
the harness sends (:func:`harness.device.ready.wifi_command`) decodes to what was sent, the
JSON strings it writes parse back (or, cut short, to a prefix), line assembly matches a
model, and the ``key`` argument and the key's flash record match a model built on
:func:`zlib.crc32`.
"""

from __future__ import annotations

import json
import string
import subprocess
import zlib
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.device.ready import wifi_command
from tests.helpers.cpp import FW, Tool, build

SRC = FW / "lib" / "EspHil" / "src"
SOURCES = [FW / "test" / "test_console.cpp", SRC / "esphil" / "console.cpp"]
LINE_MAX = 256
HOST_MAX = 63
KEY_USAGE = "usage: key <32..64 hex digits> | key off"


@pytest.fixture(scope="module")
def tool() -> Iterator[Tool]:
    t = Tool(build("test_console", SOURCES, include=SRC), "--tool")
    yield t
    t.close()


def test_cpp_console_suite() -> None:
    proc = subprocess.run(
        [str(build("test_console", SOURCES, include=SRC))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    passed = [line for line in proc.stdout.splitlines() if line.startswith("PASS ")]
    assert len(passed) >= 9 and "FAIL" not in report, report


no_nul = st.binary(max_size=80).filter(lambda b: b"\0" not in b)


@given(data=no_nul)
def test_percent_encoding_matches_urllib(tool: Tool, data: bytes) -> None:
    assert tool.ask(f"enc {data.hex()}") == quote(data, safe="-._~")


@given(data=no_nul)
def test_percent_decoding_round_trips(tool: Tool, data: bytes) -> None:
    assert tool.ask(f"dec {quote(data, safe='')}") == f"OK {data.hex()}"


@given(
    prefix=st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="%")
    ),
    escape=st.sampled_from(["%", "%0", "%f", "%g0", "%0g", "%zz", "%-1"]),
)
def test_cut_or_malformed_escapes_are_refused(tool: Tool, prefix: str, escape: str) -> None:
    assert tool.ask(f"dec {prefix}{escape}") == "BAD"


ssids = st.binary(min_size=1, max_size=32).filter(lambda b: b"\0" not in b)
passwords = st.binary(max_size=64).filter(lambda b: b"\0" not in b)


@given(ssid=ssids, password=passwords)
def test_the_harness_wifi_line_decodes_to_what_was_sent(
    tool: Tool, ssid: bytes, password: bytes
) -> None:
    # wifi_command() encodes str; the firmware sees UTF-8 bytes, any of them.
    line = f"wifi {quote(ssid, safe='')} {quote(password, safe='')}"
    assert len(line) <= LINE_MAX
    assert tool.ask(line) == f"OK {ssid.hex()} {password.hex()}"


@given(ssid=st.text(min_size=1, max_size=8).filter(lambda s: "\0" not in s))
def test_wifi_command_helper_is_understood(tool: Tool, ssid: str) -> None:
    assert tool.ask(wifi_command(ssid, "pw")) == f"OK {ssid.encode().hex()} {b'pw'.hex()}"


@given(ssid=st.binary(min_size=33, max_size=40).filter(lambda b: b"\0" not in b))
def test_too_long_ssid_is_refused(tool: Tool, ssid: bytes) -> None:
    assert tool.ask(f"wifi {quote(ssid, safe='')} x") == "ERR bad ssid"


host_chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_"


@given(
    host=st.text(alphabet=host_chars, min_size=1, max_size=HOST_MAX + 3),
    port=st.integers(0, 70000),
)
def test_dial_targets(tool: Tool, host: str, port: int) -> None:
    answer = tool.ask(f"dial {host} {port}")
    if not 1 <= port <= 65535:
        assert answer == "ERR usage: dial <host> <port> | dial off"
    elif len(host) > HOST_MAX:
        assert answer == "ERR host name too long"
    else:
        assert answer == f"OK {host} {port}"


printable = st.characters(min_codepoint=0x21, max_codepoint=0x7E)


@given(
    host=st.text(alphabet=printable, min_size=1, max_size=20).filter(
        lambda h: any(c not in host_chars for c in h)
    )
)
def test_dial_refuses_other_characters(tool: Tool, host: str) -> None:
    assert tool.ask(f"dial {host} 80") == "ERR bad host name"


# ASCII with every control character: the escapes are what can be cut. (A cut may split a
# UTF-8 sequence of longer text; the device's strings are ASCII in practice.)
ascii_text = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=0x7F), max_size=60)


@settings(max_examples=150)
@given(text=ascii_text, cap=st.integers(1, 200))
def test_json_strings_parse_or_are_a_clean_prefix(tool: Tool, text: str, cap: int) -> None:
    truncated, _, out = tool.ask(f"json {cap} {text.encode().hex()}").partition(" ")
    assert truncated in ("0", "1"), out  # MISMATCH: the F() overload wrote something else
    if cap < 3:
        assert out == "" and truncated == "1"
        return
    assert len(out) < cap
    decoded = json.loads(out)  # a cut never splits an escape: what is there parses
    if truncated == "0":
        assert decoded == text
    else:
        assert text.startswith(decoded) and decoded != text


def _model_lines(data: bytes) -> list[str]:
    out, cur, over = [], b"", False
    for b in data:
        if b == 0x00:  # skipped: a line is a C string
            continue
        if b == 0x0A:
            line = cur[:-1] if cur.endswith(b"\r") else cur
            out.append("T" if over else f"L:{line.hex()}")
            cur, over = b"", False
        elif len(cur) < LINE_MAX:
            cur += bytes([b])
        else:
            over = True
    return out


@given(
    data=st.lists(
        st.one_of(st.binary(max_size=40), st.just(b"\n"), st.just(b"\r\n"), st.just(b"x" * 300)),
        max_size=12,
    ).map(b"".join)
)
def test_line_assembly_matches_the_model(tool: Tool, data: bytes) -> None:
    assert tool.ask(f"lines {data.hex()}").split() == (_model_lines(data) or ["-"])


def _key_record(key: bytes) -> bytes:
    """docs/console.md, "Where the key lives": magic, length, padding, key, CRC-32."""
    body = b"EHK1" + bytes([len(key), 0, 0, 0]) + key.ljust(32, b"\0")
    return body + zlib.crc32(body).to_bytes(4, "little")


def _model_key(arg: str) -> str:
    words = arg.split(" ")
    words = [w for w in words if w]
    if len(words) != 1:
        return f"ERR {KEY_USAGE}"
    word = words[0]
    if word == "off":
        return "OFF"
    if any(c not in string.hexdigits for c in word):
        return "ERR not hex"
    if len(word) % 2:
        return "ERR odd number of hex digits"
    if len(word) < 32:
        return "ERR too short"
    if len(word) > 64:
        return "ERR too long"
    key = bytes.fromhex(word)
    return f"OK {key.hex()} {_key_record(key).hex()}"


key_words = st.one_of(
    st.text(alphabet=string.hexdigits, max_size=80),
    st.binary(min_size=16, max_size=32).map(bytes.hex),
    st.binary(min_size=16, max_size=32).map(lambda b: b.hex().upper()),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=70),
    st.just("off"),
)


KEY_REASONS = {KEY_USAGE, "not hex", "odd number of hex digits", "too short", "too long"}


@given(words=st.lists(key_words, max_size=3), pad=st.sampled_from(["", " ", "  "]))
def test_key_argument_matches_the_model(tool: Tool, words: list[str], pad: str) -> None:
    arg = pad + " ".join(words) + pad
    answer = tool.ask(f"key {arg}")
    assert answer == _model_key(arg)
    # A refusal is one of the fixed reasons: it never quotes the (secret) argument.
    assert not answer.startswith("ERR") or answer.removeprefix("ERR ") in KEY_REASONS


@given(key=st.binary(min_size=16, max_size=32))
def test_key_record_round_trips(tool: Tool, key: bytes) -> None:
    assert tool.ask(f"rec {_key_record(key).hex()}") == f"OK {key.hex()}"


@given(key=st.binary(min_size=16, max_size=32), data=st.data())
def test_a_damaged_key_record_is_no_key(tool: Tool, key: bytes, data: st.DataObject) -> None:
    record = bytearray(_key_record(key))
    at = data.draw(st.integers(0, len(record) - 1))
    record[at] ^= data.draw(st.integers(1, 255))
    assert tool.ask(f"rec {bytes(record).hex()}") == "NONE"


@given(record=st.binary(min_size=44, max_size=44))
def test_garbage_is_no_key(tool: Tool, record: bytes) -> None:
    if record[:4] == b"EHK1":  # only a record whose CRC holds is a key
        return
    assert tool.ask(f"rec {record.hex()}") == "NONE"
