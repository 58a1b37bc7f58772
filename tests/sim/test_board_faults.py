"""The twin fails like a board: watchdogs, resets (docs/twin.md, "Board faults").

These drive the shim's test sketch (``firmware/sim/test/shim_test_sketch.cpp``) as a bare
firmware process; the device-level behaviour (banner, reboot, READY again) is in
``tests/hil/test_watchdog.py`` and in the chip tests below.
"""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.sim.build import build_firmware, firmware_root
from harness.sim.defaults import (
    EXIT_CONFIG_ERROR,
    EXIT_RESET_BASE,
    REASON_EXCEPTION_RST,
    REASON_SOFT_RESTART,
    REASON_SOFT_WDT_RST,
    REASON_WDT_RST,
    RESET_REASONS,
    reset_of_exit,
)
from harness.sim.firmware import allocate_ip
from harness.sim.wifi import AccessPoint
from tests.helpers.net import free_port
from tests.helpers.shim import (
    PASSWORD,
    SSID,
    TIMEOUT,
    Console,
    booted_console,
    make_process,
)
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.twin

API_SKETCH = firmware_root() / "sim" / "test" / "api_test_sketch.cpp"
SOFT_WDT_S = 3.2
HARD_WDT_S = 8.2


def _output(con: Console) -> str:
    lines = []
    while not con.lines.empty():
        lines.append(con.lines.get_nowait())
    return "\n".join(lines)


def test_loop_that_does_not_yield_is_reset_by_the_soft_watchdog(console: Console) -> None:
    t0 = time.monotonic()
    console.proc.write(b"spin 6000 none\n")
    code = console.exited.get(timeout=HARD_WDT_S + 10)
    elapsed = time.monotonic() - t0
    assert code == EXIT_RESET_BASE + REASON_SOFT_WDT_RST
    assert reset_of_exit(code) == REASON_SOFT_WDT_RST
    assert RESET_REASONS[REASON_SOFT_WDT_RST] == ("Software Watchdog", 2)
    out = _output(console)
    # The core's postmortem report (core_esp8266_postmortem.cpp), never the sketch's reply.
    assert "CUT HERE FOR EXCEPTION DECODER" in out
    assert "\nSoft WDT reset\n" in out
    assert "Exception (4):" in out
    assert ">>>stack>>>" in out and "<<<stack<<<" in out
    assert "spun" not in out
    # Never before the period (a lower bound only; the last feed, at the end of the idle
    # pass that read the command, may precede t0 by a poll period).
    assert elapsed >= SOFT_WDT_S - 0.1


@pytest.mark.parametrize("how", ["feed", "yield", "delay"])
def test_feeding_keeps_the_chip_alive(console: Console, how: str) -> None:
    line = console.command(f"spin 4000 {how}", "spun ", timeout=4.0 + TIMEOUT)
    assert int(line.split()[1]) >= 4000
    assert console.proc.alive


def test_soft_watchdog_disabled_leaves_the_hardware_one(console: Console) -> None:
    # 5 s: past the soft WDT's period, inside the hardware one's.
    console.command("spin 5000 hw", "spun ", timeout=5.0 + TIMEOUT)
    assert console.proc.alive
    t0 = time.monotonic()
    console.proc.write(b"spin 12000 hw\n")
    code = console.exited.get(timeout=HARD_WDT_S + 10)
    assert code == EXIT_RESET_BASE + REASON_WDT_RST
    assert time.monotonic() - t0 >= HARD_WDT_S - 0.1
    out = _output(console)
    assert "Soft WDT" not in out  # the hardware watchdog resets without a report
    assert "spun" not in out


def test_reset_exit_codes_map_to_reasons() -> None:
    assert reset_of_exit(3) == 4  # ESP.restart(): REASON_SOFT_RESTART
    assert reset_of_exit(0) is None
    assert reset_of_exit(4) is None  # orphaned: a power-off, not a reset
    assert reset_of_exit(-9) is None
    for reason, (text, cause) in RESET_REASONS.items():
        assert reset_of_exit(EXIT_RESET_BASE + reason) == reason
        assert text and cause in (1, 2, 4, 5)


# -- the access point comes and goes (device.wifi) -------------------------------------------

BEACON_MS = 1000
DHCP_MS = 300
RECONNECT_MS = 200


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[Console, AccessPoint]]:
    ip, lock = allocate_ip()
    flash = tmp_path / "flash.bin"
    proc = make_process(
        build_firmware(sketch=API_SKETCH),
        ip,
        flash,
        env={
            "ESP_HIL_BEACON_TIMEOUT_MS": str(BEACON_MS),
            "ESP_HIL_DHCP_MS": str(DHCP_MS),
            "ESP_HIL_RECONNECT_MS": str(RECONNECT_MS),
        },
    )
    ap = AccessPoint(flash, password=PASSWORD)
    con = Console(proc)
    proc.start()
    try:
        con.expect("boot reset=Power On")
        con.command(f"wifi {SSID} {PASSWORD}", "wifi begun")
        con.expect("event connected")
        con.expect("event gotip")
        yield con, ap
    finally:
        proc.stop()
        ap.close()
        lock.release()


def _shim_line(con: Console, start: str, timeout: float = 5.0) -> str:
    """The first line of the shim's stderr that starts with ``start`` (its reader thread may
    lag the console's)."""
    def found() -> list[str]:
        return [line for line in con.proc.stderr_tail() if line.startswith(start)]

    wait_until(lambda: bool(found()), f"a shim line starting {start!r}", timeout)
    return found()[0]


def _status(con: Console) -> int:
    return int(con.fields(con.command("info", "info "))["status"])


def test_ap_drop_loses_the_link_after_the_beacon_timeout_and_rejoins(
    api: tuple[Console, AccessPoint],
) -> None:
    con, ap = api
    t0 = time.monotonic()
    ap.drop()
    assert con.expect("event ", timeout=BEACON_MS / 1000 + 5) == "event disconnected reason=200"
    assert time.monotonic() - t0 >= BEACON_MS / 1000  # BEACON_TIMEOUT, never before
    lost = _shim_line(con, "[shim] station lost the AP: off the air for ")
    assert lost.endswith(" ms (beacon timeout, reason 200)")
    assert int(lost.split("off the air for ")[1].split()[0]) >= BEACON_MS
    # Auto-reconnect scans and finds nothing, again and again.
    assert con.expect("event ") == "event disconnected reason=201"  # NO_AP_FOUND
    assert _status(con) in (1, 7)  # WL_NO_SSID_AVAIL between attempts, else WL_DISCONNECTED
    ap.restore()
    assert con.expect("event connected") == f"event connected ssid={SSID} channel=1"
    t1 = time.monotonic()
    assert con.expect("event ") == f"event gotip ip={con.proc.ip}"
    assert time.monotonic() - t1 >= DHCP_MS / 1000 * 0.9  # the address comes after DHCP
    assert _status(con) == 3


def test_drops_shorter_than_the_beacon_timeout_never_lose_the_link(
    api: tuple[Console, AccessPoint],
) -> None:
    # Many short outages, so that the station's first two ticks off the air fall in one
    # microsecond now and then (an off-air time 1 µs ahead of such a tick made the unsigned
    # difference wrap: a beacon timeout at once; this caught it in 4 runs of 5).
    con, ap = api
    for _ in range(500):
        ap.drop()
        time.sleep(0.002)
        ap.restore()
        time.sleep(0.001)
    seen: list[str] = []
    info = con.command("info", "info ", seen=seen)
    assert con.fields(info)["status"] == "3", seen  # WL_CONNECTED all along
    assert not [line for line in seen if line.startswith("event ")], seen


def test_a_write_left_half_done_keeps_the_ap_as_last_seen(
    api: tuple[Console, AccessPoint],
) -> None:
    # A harness killed inside AccessPoint._write leaves the sequence odd; the station must
    # keep the last consistent view (off the air), not fall back to the environment's AP.
    con, ap = api
    ap.drop()
    assert con.expect("event ", timeout=BEACON_MS / 1000 + 5) == "event disconnected reason=200"
    with open(ap.path, "r+b") as f:
        f.seek(4)
        seq = int.from_bytes(f.read(4), "little")
        f.seek(4)
        f.write((seq | 1).to_bytes(4, "little"))
    seen: list[str] = []
    with pytest.raises(AssertionError, match="no line starting 'event connected'"):
        con.expect("event connected", timeout=(RECONNECT_MS + DHCP_MS) / 1000 * 4, seen=seen)
    assert seen and all(line == "event disconnected reason=201" for line in seen), seen


def test_ap_password_change_kicks_the_station(api: tuple[Console, AccessPoint]) -> None:
    con, ap = api
    ap.set_password("another-password")
    assert con.expect("event ") == "event disconnected reason=2"  # AUTH_EXPIRE: deauthenticated
    assert _shim_line(con, "[shim] station lost the AP: ") == (
        "[shim] station lost the AP: it changed its password (reason 2)")
    assert con.expect("event ") == "event disconnected reason=202"  # AUTH_FAIL on rejoin
    assert _status(con) in (6, 7)  # WL_WRONG_PASSWORD between attempts
    ap.set_password(PASSWORD)
    con.expect("event gotip")
    assert _status(con) == 3


def test_rssi_is_what_the_test_sets(api: tuple[Console, AccessPoint]) -> None:
    con, ap = api
    assert con.fields(con.command("info", "info "))["rssi"] == "-55"
    ap.rssi = -80
    assert con.fields(con.command("info", "info "))["rssi"] == "-80"
    with pytest.raises(ValueError):
        ap.rssi = 5


def test_ap_state_outlives_the_controller(tmp_path: Path) -> None:
    ap = AccessPoint(tmp_path / "f.bin", password="one")
    ap.drop()
    ap.set_password("two")
    ap.rssi = -70
    ap.close()
    again = AccessPoint(tmp_path / "f.bin", password="ignored")
    assert (again.on_air, again.password, again.rssi) == (False, "two", -70)
    again.close()
    with pytest.raises(ValueError):
        again.set_password("x" * 65)


# -- lwIP's send buffer and segment size -------------------------------------------------------


@pytest.mark.parametrize("mss", [None, "536", "1460"])
def test_send_buffer_is_two_segments(sketch: Path, tmp_path: Path, mss: str | None) -> None:
    ip, lock = allocate_ip()
    env = {} if mss is None else {"ESP_HIL_TCP_MSS": mss}
    proc = make_process(sketch, ip, tmp_path / "flash.bin", env=env)
    con = Console(proc)
    proc.start()
    try:
        con.expect("boot ")
        con.join_wifi()
        port = free_port(ip)
        con.command(f"listen {port}", "listen status=1")
        with socket.create_connection((ip, port), timeout=5) as sock:
            con.expect("accepted ")
            segment = int(mss or 536)  # the core's default variant: "v2 Lower Memory"
            # lwIP's TCP_SND_BUF = 2 x TCP_MSS: all a write can take at once.
            assert int(con.command("afw", "afw ").split()[1]) == 2 * segment
            # The twin's segments are no larger than the variant's MSS.
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) <= segment
    finally:
        proc.stop()
        lock.release()


def test_bad_mss_is_refused(sketch: Path, tmp_path: Path) -> None:
    ip, lock = allocate_ip()
    proc = make_process(sketch, ip, tmp_path / "flash.bin", env={"ESP_HIL_TCP_MSS": "1000"})
    try:
        proc.start()
        assert proc.wait(5) == EXIT_CONFIG_ERROR
    finally:
        proc.stop()  # joins the stderr reader
        lock.release()
    assert any("ESP_HIL_TCP_MSS" in line for line in proc.stderr_tail())


# -- the heap's ceiling ----------------------------------------------------------------------


def test_heap_switch_shrinks_the_ceiling(sketch: Path, tmp_path: Path) -> None:
    ip, lock = allocate_ip()
    proc = make_process(sketch, ip, tmp_path / "flash.bin", env={"ESP_HIL_HEAP": "8192"})
    con = Console(proc)
    proc.start()
    try:
        con.expect("boot ")
        free = int(con.fields(con.command("info", "info "))["heap"])
        assert 0 < free <= 8192
        assert con.fields(con.command("alloc 4000", "alloc "))["ok"] == "1"
        failed = con.fields(con.command("alloc 9000", "alloc "))  # fits 52 KiB, not 8 KiB
        assert failed["ok"] == "0"
        assert failed["after"] == failed["before"]  # nothing leaked by the failed new
    finally:
        proc.stop()
        lock.release()


def _heap(con: Console) -> dict[str, int]:
    fields = {k: int(v) for k, v in con.fields(con.command("heap", "heap ")).items()}
    # getHeapStats and the three getters agree.
    assert (fields["free"], fields["max"], fields["frag"]) == (
        fields["getfree"], fields["getmax"], fields["getfrag"])
    return fields


def _umm_blocks(size: int) -> int:
    """umm_malloc.cpp umm_blocks(): 8-byte blocks, 4 data bytes in the first."""
    return 1 if size <= 4 else 2 + (size - 4 - 1) // 8


def _umm_fragmentation(runs: list[int]) -> int:
    """umm_info.c umm_fragmentation_metric_core over free runs (in blocks)."""
    total = sum(runs)
    return 0 if total == 0 else 100 - math.isqrt(sum(r * r for r in runs)) * 100 // total


def test_heap_fragments_like_umm_malloc(console: Console) -> None:
    before = _heap(console)
    assert before["frag"] == 0 and before["max"] == before["free"]  # one free run
    count, size = 40, 1000
    assert console.command(f"fragment {count} {size}", "fragment ") == f"fragment made={count}"
    after = _heap(console)
    hole = _umm_blocks(size)  # 126 blocks: the twenty freed ones are holes of this size
    tail = before["free"] // 8 - count * hole
    runs = [hole] * (count // 2) + [tail]
    assert after["free"] == sum(runs) * 8
    assert after["max"] == max(runs) * 8 < after["free"]
    assert after["frag"] == _umm_fragmentation(runs) > 0
    # Larger than the largest free block, smaller than the free heap: the core's new fails.
    want = after["max"] + 1000
    assert want < after["free"]
    failed = console.fields(console.command(f"alloc {want}", "alloc "))
    assert failed["ok"] == "0" and int(failed["after"]) == after["free"]
    # A block that fits a hole goes into the smallest one that holds it (best fit): the
    # tail, the largest run, stays whole.
    fits = console.fields(console.command(f"alloc {size}", "alloc "))
    assert fits["ok"] == "1" and int(fits["before"]) - int(fits["during"]) == hole * 8
    console.command("unfragment", "unfragment")
    assert _heap(console) == before  # freed blocks coalesce: one run again


class UmmModel:
    """The layout rules docs/twin.md cites for umm_malloc, in blocks: best fit (lowest
    address among equal runs), taken from the run's front, merged with free neighbours."""

    def __init__(self, blocks: int) -> None:
        self.runs: list[tuple[int, int]] = [(0, blocks)]  # free (start, length), by address

    def take(self, n: int) -> int | None:
        fits = [(length, start) for start, length in self.runs if length >= n]
        if not fits:
            return None
        length, start = min(fits)
        self.runs.remove((start, length))
        if length > n:
            self.runs.append((start + n, length - n))
            self.runs.sort()
        return start

    def give(self, start: int, n: int) -> None:
        self.runs.append((start, n))
        self.runs.sort()
        merged: list[tuple[int, int]] = []
        for s, length in self.runs:
            if merged and merged[-1][0] + merged[-1][1] == s:
                merged[-1] = (merged[-1][0], merged[-1][1] + length)
            else:
                merged.append((s, length))
        self.runs = merged

    def figures(self) -> tuple[int, int, int]:
        lengths = [length for _, length in self.runs]
        return sum(lengths) * 8, max(lengths, default=0) * 8, _umm_fragmentation(lengths)


HEAP_SLOTS = 16
heap_ops = st.lists(
    st.one_of(
        st.tuples(st.just("new"), st.integers(0, HEAP_SLOTS - 1), st.integers(1, 600)),
        st.tuples(st.just("del"), st.integers(0, HEAP_SLOTS - 1), st.just(0)),
    ),
    min_size=10,
    max_size=60,
)


def test_heap_layout_follows_umm_malloc_for_any_sequence(sketch: Path, tmp_path: Path) -> None:
    """Any sequence of new/delete leaves the free, max-block and fragmentation figures the
    umm_malloc model predicts, failures included (a 4 KiB heap: runs out often)."""
    with booted_console(sketch, tmp_path / "flash.bin", env={"ESP_HIL_HEAP": "4096"}) as con:
        assert _heap(con)["free"] == 4096

        @settings(max_examples=200, deadline=None)
        @given(heap_ops)
        def run(ops: list[tuple[str, int, int]]) -> None:
            assert con.fields(con.command("hdel all", "hdel"))["free"] == "4096"
            model = UmmModel(4096 // 8)
            held: dict[int, tuple[int, int]] = {}
            for op, slot, size in ops:
                if op == "new":
                    if slot in held:
                        continue
                    n = _umm_blocks(size)
                    start = model.take(n)
                    line = con.command(f"hnew {slot} {size}", "hnew ")
                    assert line.startswith(f"hnew ok={0 if start is None else 1} "), line
                    if start is not None:
                        held[slot] = (start, n)
                else:
                    if slot in held:
                        model.give(*held.pop(slot))
                    line = con.command(f"hdel {slot}", "hdel")
                got = con.fields(line)
                assert (int(got["free"]), int(got["max"]), int(got["frag"])) == model.figures()

        run()


def test_heap_in_crumbs_refuses_all_but_small_blocks(sketch: Path, tmp_path: Path) -> None:
    with booted_console(sketch, tmp_path / "flash.bin", env={"ESP_HIL_HEAP": "1024"}) as con:
        assert _heap(con) == {"free": 1024, "max": 1024, "frag": 0,
                              "getfree": 1024, "getmax": 1024, "getfrag": 0}
        # 64 blocks of 12 bytes (2 umm blocks each) fill the 128 blocks; every other is freed.
        assert con.command("fragment 64 12", "fragment ") == "fragment made=64"
        crumbs = _heap(con)
        assert (crumbs["free"], crumbs["max"]) == (512, 16)
        assert crumbs["frag"] == _umm_fragmentation([2] * 32) == 83
        assert con.fields(con.command("alloc 13", "alloc "))["ok"] == "0"  # 3 blocks: no room
        assert con.fields(con.command("alloc 12", "alloc "))["ok"] == "1"


def test_plain_new_past_the_heap_resets_with_the_cores_oom_report(
    sketch: Path, tmp_path: Path,
) -> None:
    """abi.cpp: a failed plain new is __unhandled_exception("OOM"), not a nullptr."""
    with booted_console(sketch, tmp_path / "flash.bin", env={"ESP_HIL_HEAP": "4096"}) as con:
        assert con.fields(con.command("oom 1000", "oom ")) == {"ok": "1"}  # fits: no reset
        con.proc.write(b"oom 5000\n")
        code = con.exited.get(timeout=10)
        out = _output(con)
    # A reset the supervisors reboot (not a death that halts the twin).
    assert code == EXIT_RESET_BASE + REASON_SOFT_RESTART
    assert reset_of_exit(code) == REASON_SOFT_RESTART
    assert "oom ok=" not in out  # the new never returned to the sketch
    report = out[out.index("User exception (panic/abort/assert)"):]
    assert report.count("CUT HERE FOR EXCEPTION DECODER") == 2
    assert "\nUnhandled C++ exception: OOM\n" in report
    assert "\nlast failed alloc call: 00000000(5000)\n" in report
    assert report.index("<<<stack<<<") < report.index("last failed alloc call")
    assert "last failed alloc caller: 0x00000000" in report
    # The SDK's restart: ROM cause 2, the reason ESP.restart() leaves; getResetInfo() is that
    # reason alone (only 1..3 get the fatal-exception line).
    assert RESET_REASONS[REASON_SOFT_RESTART] == ("Software/System restart", 2)
    info = _restart_with(sketch, tmp_path / "flash.bin", "Software/System restart")
    assert info == "Software/System restart"


def _assert_line() -> int:
    source = (firmware_root() / "sim" / "test" / "shim_test_sketch.cpp").read_text()
    return source.splitlines().index("    assert(value == 42);") + 1


@pytest.mark.parametrize(("command", "reason"), [
    ("abort", "Abort called"),
    # newlib's assert passes __PRETTY_FUNCTION__ in C++, as glibc's does.
    ("assert 7", f"shim_test_sketch.cpp:{_assert_line()} void {{anonymous}}::handle_line(char*): "
                 "Assertion 'value == 42' failed."),
])
def test_abort_and_a_failed_assert_reset_with_the_cores_report(
    console: Console, command: str, reason: str
) -> None:
    """core_esp8266_postmortem.cpp: abort() and assert() (via __panic_func) print the user
    exception report and restart the chip; libc's would have killed the process (the twin
    halted, a board reboots)."""
    assert console.command("assert 42", "assert ") == "assert held 42"  # holds: goes on
    console.proc.write(command.encode() + b"\n")
    code = console.exited.get(timeout=10)
    out = _output(console)
    assert code == EXIT_RESET_BASE + REASON_SOFT_RESTART
    report = out[out.index("User exception (panic/abort/assert)"):]
    assert report.count("CUT HERE FOR EXCEPTION DECODER") == 2
    got = next(ln for ln in report.splitlines() if ln.startswith(("Abort", "Panic")))
    # Panic names the source file as the compiler got it (here an absolute path).
    assert got == reason or (got.startswith("Panic /") and got.endswith("/" + reason)), got
    assert report.index(got) < report.index(">>>stack>>>") < report.index("<<<stack<<<")


def test_nothrow_new_past_the_heap_returns_null_and_the_sketch_goes_on(
    sketch: Path, tmp_path: Path,
) -> None:
    with booted_console(sketch, tmp_path / "flash.bin", env={"ESP_HIL_HEAP": "4096"}) as con:
        failed = con.fields(con.command("alloc 5000", "alloc "))
        assert failed["ok"] == "0" and failed["after"] == failed["before"] == "4096"
        assert con.fields(con.command("alloc 1000", "alloc "))["ok"] == "1"  # still serving
        assert con.exited.empty()


def test_sketch_malloc_takes_from_the_same_heap(sketch: Path, tmp_path: Path) -> None:
    """The sketch's malloc/calloc/realloc come from the heap new uses; NULL past it."""
    with booted_console(sketch, tmp_path / "flash.bin", env={"ESP_HIL_HEAP": "4096"}) as con:
        for how in ("malloc", "calloc"):
            got = {k: int(v) for k, v in con.fields(con.command(f"{how} 1000", f"{how} ")).items()}
            assert got["ok"] == 1 and got["count"] == 1
            assert got["before"] - got["during"] == _umm_blocks(1000) * 8
            assert got["after"] == got["before"] == 4096
            refused = con.fields(con.command(f"{how} 5000", f"{how} "))
            assert (refused["ok"], refused["count"], refused["after"]) == ("0", "0", "4096")
        grown = {k: int(v) for k, v in con.fields(con.command("realloc 2000", "realloc ")).items()}
        assert grown["ok"] == 1 and grown["count"] == 2  # the 16-byte block, then its move
        assert grown["before"] - grown["during"] == _umm_blocks(2000) * 8
        kept = con.fields(con.command("realloc 5000", "realloc "))
        assert (kept["ok"], kept["after"]) == ("0", "4096")
        # libc's own allocation (strdup's copy) is not the heap's, even freed by the sketch.
        dup = con.fields(con.command("strdup 1500", "strdup "))
        assert (dup["ok"], dup["count"], dup["during"], dup["after"]) == ("1", "0", "4096", "4096")
        assert con.exited.empty()


# -- exceptions and what the next boot says about the reset ----------------------------------


def _restart_with(sketch: Path, flash: Path, reason: str) -> str:
    """Boot the sketch again on the same flash with ``reason``; its getResetInfo() line."""
    ip, lock = allocate_ip()
    proc = make_process(sketch, ip, flash, reset_reason=reason)
    con = Console(proc)
    proc.start()
    try:
        con.expect("boot ")
        return con.command("rstinfo", "rstinfo ")[len("rstinfo ") :]
    finally:
        proc.stop()
        lock.release()


def test_null_store_is_an_exception_reset(console: Console, sketch: Path) -> None:
    console.proc.write(b"crash\n")
    code = console.exited.get(timeout=10)
    assert code == EXIT_RESET_BASE + REASON_EXCEPTION_RST
    assert RESET_REASONS[REASON_EXCEPTION_RST] == ("Exception", 2)
    out = _output(console)
    assert "CUT HERE FOR EXCEPTION DECODER" in out
    assert "Exception (29):" in out  # StoreProhibited
    assert "excvaddr=0x00000000" in out
    info = _restart_with(sketch, console.proc.flash, "Exception")
    assert info.startswith("Fatal exception:29 flag:2 (Exception) epc1:0x00000000")
    assert "excvaddr:0x00000000" in info


def test_reset_info_after_a_soft_watchdog(console: Console, sketch: Path) -> None:
    console.proc.write(b"spin 6000 none\n")
    assert console.exited.get(timeout=15) == EXIT_RESET_BASE + REASON_SOFT_WDT_RST
    info = _restart_with(sketch, console.proc.flash, "Software Watchdog")
    assert info.startswith("Fatal exception:4 flag:3 (Software Watchdog)")
    # Other reasons: the reason alone, as the core's getResetInfo() returns it.
    assert _restart_with(sketch, console.proc.flash, "External System") == "External System"
