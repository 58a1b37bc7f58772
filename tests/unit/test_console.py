"""The console: lines from any byte chunks, expect with marks, timeouts that name the cause."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.device.console import Console
from harness.device.errors import DeviceTimeout


@given(
    lines=st.lists(
        st.text(
            st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=40
        ),
        max_size=20,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=10),
    crlf=st.booleans(),
)
def test_lines_survive_any_chunking(lines: list[str], cuts: list[int], crlf: bool) -> None:
    stream = "".join(line + ("\r\n" if crlf else "\n") for line in lines).encode()
    console = Console()
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    for a, b in itertools.pairwise(points):
        console.feed(stream[a:b])
    assert [ln.text for ln in console.lines] == lines


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    console = Console()
    console.feed(b"\xff\xfe garbage \x80\nESP-HIL READY x\n")
    assert console.expect(r"^ESP-HIL READY", timeout=0.1)
    assert "\ufffd" in console.lines[0].text


def test_expect_waits_for_a_line_fed_later() -> None:
    console = Console()
    threading.Timer(0.05, console.feed, args=(b"late line\n",)).start()
    assert console.expect("late", timeout=5).group(0) == "late"


def test_expect_since_ignores_earlier_lines() -> None:
    console = Console()
    console.feed(b"old READY\n")
    mark = console.mark()
    with pytest.raises(DeviceTimeout):
        console.expect("READY", timeout=0.05, since=mark)
    console.feed(b"new READY\n")
    assert console.expect("READY", timeout=0.05, since=mark).string == "new READY"


def test_timeout_names_the_pattern_and_shows_the_tail() -> None:
    console = Console()
    console.feed(b"ESP-HIL WIFI fail reason=wrong_password\npartial")
    t0 = time.monotonic()
    with pytest.raises(DeviceTimeout) as info:
        console.expect("READY", timeout=0.2)
    assert 0.15 < time.monotonic() - t0 < 2
    text = str(info.value)
    assert "'READY'" in text and "wrong_password" in text and "partial" in text


def test_closed_console_fails_waits_at_once_with_the_reason() -> None:
    console = Console()
    threading.Timer(0.05, console.close, args=("port went away",)).start()
    t0 = time.monotonic()
    with pytest.raises(DeviceTimeout, match="port went away"):
        console.expect("never", timeout=10)
    assert time.monotonic() - t0 < 2


def test_old_lines_are_dropped_but_marks_stay_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Console, "MAX_LINES", 5)
    console = Console()
    for i in range(3):
        console.feed(f"line {i}\n".encode())
    mark = console.mark()
    for i in range(3, 12):
        console.feed(f"line {i}\n".encode())
    assert len(console.lines) == 5
    assert [ln.text for ln in console.since(mark)] == [f"line {i}" for i in range(7, 12)]
    assert console.expect("line 11", timeout=0.1, since=mark)


def test_send_line_needs_a_writer() -> None:
    sent: list[bytes] = []
    Console(sent.append).send_line("wifi a b")
    assert sent == [b"wifi a b\n"]
    with pytest.raises(RuntimeError):
        Console().send_line("x")
