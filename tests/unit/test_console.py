"""The console: lines from any byte chunks, expect with marks, timeouts that name the cause."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.device.console import Console
from harness.device.errors import DeviceTimeout, FirmwareCrashed
from harness.device.postmortem import BOOT_LOOP, CrashWatch, crash_reasons, reason_of


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


# What core_esp8266_postmortem.cpp prints, one report per reason (stack words cut short).
def _report(reason: list[str]) -> list[str]:
    return ["", "--------------- CUT HERE FOR EXCEPTION DECODER ---------------", *reason, "",
            ">>>stack>>>", "", "ctx: cont", "sp: 3ffffe00 end: 3fffffd0 offset: 0150",
            "<<<stack<<<", "", "--------------- CUT HERE FOR EXCEPTION DECODER ---------------"]


_REPORTS = {
    "Exception (29)": _report(["", "Exception (29):",
                               "epc1=0x4020104e epc2=0x00000000 epc3=0x00000000 "
                               "excvaddr=0x00000000 depc=0x00000000"]),
    "Soft WDT reset": _report(["", "Soft WDT reset", "", "Exception (4):",
                               "epc1=0x40201050 epc2=0x00000000 epc3=0x00000000 "
                               "excvaddr=0x00000000 depc=0x00000000"]),
    # abort(), panic() and assert() print their generic line before the report begins.
    "Abort called": ["User exception (panic/abort/assert)", *_report(["", "Abort called"])],
    "Panic main.cpp:12 setup: Assertion 'x' failed.": [
        "User exception (panic/abort/assert)",
        *_report(["", "Panic main.cpp:12 setup: Assertion 'x' failed."])],
    "Unhandled C++ exception: std::bad_alloc": [
        "User exception (panic/abort/assert)",
        *_report(["", "Unhandled C++ exception: std::bad_alloc"])],
}
_BOOT = [" ets Jan  8 2013,rst cause:2, boot mode:(3,6)", "", "load 0x40100000, len 44",
         "ESP-HIL BOOT fw=x/1 reset=Exception", "ESP-HIL WIFI none"]
_NOT_A_REPORT = st.text(max_size=40).filter(
    lambda t: ">>>stack>>>" not in t and reason_of(t) is None)


@given(st.lists(st.tuples(st.sampled_from(sorted(_REPORTS)), st.lists(_NOT_A_REPORT,
                                                                       max_size=5)),
                max_size=4),
       st.lists(_NOT_A_REPORT, max_size=5))
def test_crash_watch_counts_reports_and_names_the_first_reason_of_each(
    crashes: list[tuple[str, list[str]]], before: list[str]
) -> None:
    """Anything but a report is never a crash; the second report is the boot loop, named by
    the reason line the core prints first (a soft watchdog's report goes on with
    "Exception (4)"), or by the one after the generic "User exception" line."""
    watch = CrashWatch()
    said = [watch(t) for t in before]
    assert said == [None] * len(before) and watch.crashes == 0
    for n, (reason, noise) in enumerate(crashes, 1):
        said = [watch(t) for t in [*_BOOT, *noise, *_REPORTS[reason]]]
        assert watch.crashes == n
        assert watch.reason == reason
        fired = [s for s in said if s is not None]
        if n >= BOOT_LOOP:
            assert fired == [f"the firmware crashed {n} times while booting (a boot loop): "
                             f"{reason}; its report is in the console tail"]
        else:
            assert fired == []


def test_expect_with_a_watch_stops_at_the_boot_loop_not_at_its_timeout() -> None:
    c = Console()
    mark = c.mark()
    for _ in range(2):
        c.feed("\n".join([*_BOOT, *_REPORTS["Exception (29)"]]).encode() + b"\n")
    t0 = time.monotonic()
    with pytest.raises(FirmwareCrashed, match=r"crashed 2 times .*: Exception \(29\)") as exc:
        c.expect("^ESP-HIL READY", timeout=60, since=mark, watch=CrashWatch())
    assert time.monotonic() - t0 < 30  # a guard against waiting out the 60 s, not a target
    assert "Exception (29):" in exc.value.console_tail


def test_expect_with_a_watch_returns_a_match_before_the_crash() -> None:
    c = Console()
    c.feed("\n".join(["ESP-HIL READY ip=1", *_REPORTS["Abort called"] * 2]).encode() + b"\n")
    assert c.expect("^ESP-HIL READY", timeout=1, since=0, watch=CrashWatch()).group(0)


def test_crash_reasons_lists_every_report_in_order() -> None:
    lines = [*_BOOT, *_REPORTS["Soft WDT reset"], *_BOOT, "ESP-HIL READY ip=1",
             *_REPORTS["Abort called"]]
    assert crash_reasons(lines) == ["Soft WDT reset", "Abort called"]
    assert crash_reasons(_BOOT) == []
