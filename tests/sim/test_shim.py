"""The native firmware shim, driven through its own test sketch.

The sketch (firmware/sim/test/shim_test_sketch.cpp) answers one-line commands on its
console and runs a raw TCP echo server; these tests start it with FirmwareProcess.
"""

from __future__ import annotations

import ipaddress
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.device.errors import DeviceTimeout
from harness.sim import (
    EXIT_CONFIG_ERROR,
    EXIT_RESTART,
    FirmwareProcessError,
    allocate_ip,
    build_firmware,
)
from harness.sim.direct import SimDevice
from tests.helpers.net import free_port
from tests.helpers.shim import (
    MAC,
    PASSWORD,
    SKETCH,
    SSID,
    TIMEOUT,
    Console,
    booted_console,
    cpu_share,
    make_process,
)

EEPROM_OFFSET = 0x3FB000
FLASH_SIZE = 4 * 1024 * 1024

pytestmark = pytest.mark.twin


@pytest.fixture(scope="session")
def binary() -> Path:
    return build_firmware(sketch=SKETCH)


@pytest.fixture
def address() -> Iterator[str]:
    ip, lock = allocate_ip()
    try:
        yield ip
    finally:
        lock.release()


@pytest.fixture
def console(binary: Path, address: str, tmp_path: Path) -> Iterator[Console]:
    proc = make_process(binary, address, tmp_path / "flash.bin")
    con = Console(proc)
    proc.start()
    try:
        con.expect("boot ")
        yield con
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def shared_console(binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """One process for the property tests (hypothesis runs many examples against it)."""
    with booted_console(binary, tmp_path_factory.mktemp("shared") / "flash.bin") as con:
        yield con


def connect(ip: str, port: int) -> socket.socket:
    sock = socket.create_connection((ip, port), timeout=TIMEOUT)
    sock.settimeout(TIMEOUT)
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


# --------------------------------------------------------------------------- console


@settings(max_examples=60)
@given(st.binary(min_size=0, max_size=400).map(lambda b: bytes(c for c in b if c not in b"\r\n\0")))
def test_serial_round_trip(shared_console: Console, payload: bytes) -> None:
    shared_console.proc.write(b"echo " + payload + b"\n")
    line = shared_console.expect("echo ")
    assert line.encode("latin-1") == b"echo " + payload


def test_serial_lines_longer_than_rx_buffer_arrive_whole(console: Console) -> None:
    # 500 bytes in one write: twice the shim's RX buffer, so back-pressure must hold the rest.
    payload = "x" * 500
    assert console.command(f"echo {payload}", "echo ") == f"echo {payload}"


@settings(max_examples=60)
@given(st.integers(min_value=-(2**31), max_value=2**31 - 1))
def test_print_and_string_number_formatting(shared_console: Console, value: int) -> None:
    line = shared_console.command(f"num {value}", "num ")
    as_u32 = value & 0xFFFFFFFF
    assert line == f"num {value} {as_u32:X} {value} {as_u32:x}"


def _reference_ip(text: str) -> str | None:
    parts = text.split(".")
    if len(parts) != 4:
        return None
    if not all(p.isascii() and p.isdigit() and 1 <= len(p) <= 3 and int(p) <= 255 for p in parts):
        return None
    return ".".join(str(int(p)) for p in parts)


ip_texts = st.one_of(
    st.tuples(*[st.integers(0, 300)] * 4).map(lambda t: ".".join(map(str, t))),
    st.ip_addresses(v=4).map(str),
    st.text(alphabet="0123456789. x-", max_size=20),
)


@settings(max_examples=80)
@given(ip_texts)
def test_ipaddress_from_string_matches_reference(shared_console: Console, text: str) -> None:
    line = shared_console.command(f"ip {text}", "ip ok=")
    expected = _reference_ip(text)
    if expected is None:
        assert line == "ip ok=0 9.9.9.9"  # a failed parse leaves the address alone
    else:
        assert line == f"ip ok=1 {expected}"
        assert ipaddress.IPv4Address(expected)


def test_boot_reports_reset_reason_and_identity(binary: Path, address: str, tmp_path: Path) -> None:
    proc = make_process(
        binary,
        address,
        tmp_path / "f.bin",
        reset_reason="External System",
        chip_id=0xABCDEF,
        rssi=-61,
    )
    con = Console(proc)
    with proc:
        assert con.expect("boot ") == "boot reset=External System"
        info = con.fields(con.command("info", "info "))
        assert info["chip"] == str(0xABCDEF)
        assert info["mac"] == MAC.upper()
        assert info["ip"] == "0.0.0.0"
        assert info["rssi"] == "31"  # not connected yet: the core's "no value"
        con.join_wifi()
        info = con.fields(con.command("info", "info "))
        assert info["ip"] == address
        assert info["rssi"] == "-61"


def test_millis_advances_across_delay(console: Console) -> None:
    first = console.fields(console.command("millis 50", "millis "))
    assert int(first["slept"]) >= 50
    second = console.fields(console.command("millis 0", "millis "))
    assert int(second["start"]) >= int(first["start"]) + 50


def test_random_values_differ(console: Console) -> None:
    a, b = (int(v) for v in console.command("rand", "rand ").split()[1:])
    c, d = (int(v) for v in console.command("rand", "rand ").split()[1:])
    assert len({a, b, c, d}) == 4


def test_heap_counts_operator_new(console: Console) -> None:
    line = console.fields(console.command("alloc 1000", "alloc "))
    assert line["ok"] == "1"
    assert line["count"] == "1"
    before, during, after = int(line["before"]), int(line["during"]), int(line["after"])
    assert 1000 <= before - during <= 1024  # malloc_usable_size may round up a little
    assert after == before
    # More than the simulated 52 KiB heap: fails like on the chip, and leaves no trace.
    big = console.fields(console.command("alloc 100000", "alloc "))
    assert big["ok"] == "0"
    assert big["count"] == "0"
    assert int(big["after"]) == before


# --------------------------------------------------------------------------- EEPROM


def test_eeprom_persists_across_restart(binary: Path, address: str, tmp_path: Path) -> None:
    flash = tmp_path / "flash.bin"
    proc = make_process(binary, address, flash)
    con = Console(proc)
    proc.start()
    try:
        con.expect("boot reset=Power On")
        assert con.command("eeget", "eeget") == "eeget empty"
        assert flash.stat().st_size == FLASH_SIZE  # created on first use, erased
        assert con.command("eeput persisted text", "eeput ") == "eeput ok=1"
        sector = flash.read_bytes()[EEPROM_OFFSET : EEPROM_OFFSET + 4096]
        assert sector[0] == len("persisted text")
        assert sector[1:15] == b"persisted text"
        assert sector[300:304] == (0xC0DE5EED).to_bytes(4, "little")
        assert sector[512:] == b"\xff" * (4096 - 512)  # the commit erased the rest
        con.command("restart", "restart")
        assert proc.wait(TIMEOUT) == EXIT_RESTART
        assert proc.restart_requested
        assert con.exited.get(timeout=TIMEOUT) == EXIT_RESTART
        assert not proc.alive

        proc.reset_reason = "Software/System restart"
        proc.start()
        con.expect("boot reset=Software/System restart")
        assert con.command("eeget", "eeget") == "eeget persisted text"
    finally:
        proc.stop()
    # Only the EEPROM sector was touched.
    data = flash.read_bytes()
    assert data[:EEPROM_OFFSET] == b"\xff" * EEPROM_OFFSET
    assert data[EEPROM_OFFSET + 4096 :] == b"\xff" * (FLASH_SIZE - EEPROM_OFFSET - 4096)


# --------------------------------------------------------------------------- WiFi


@pytest.mark.parametrize(
    ("ssid", "password", "status"),
    [
        (SSID, PASSWORD, "3"),  # WL_CONNECTED
        (SSID, "wrong-password", "6"),  # WL_WRONG_PASSWORD
        ("other-net", PASSWORD, "1"),  # WL_NO_SSID_AVAIL
    ],
)
def test_wifi_join_outcomes(
    console: Console, address: str, ssid: str, password: str, status: str
) -> None:
    begin = console.fields(console.command(f"wifi {ssid} {password}", "wifi begin="))
    assert begin == {"begin": "7", "ip": "0.0.0.0"}  # WL_DISCONNECTED while joining
    result = console.fields(console.expect("wifi status="))
    assert result["status"] == status
    assert result["ip"] == (address if status == "3" else "0.0.0.0")


def test_wifi_without_access_point(binary: Path, address: str, tmp_path: Path) -> None:
    proc = make_process(binary, address, tmp_path / "f.bin", ap_ssid=None, ap_password=None)
    con = Console(proc)
    with proc:
        con.expect("boot ")
        assert con.join_wifi()["status"] == "1"


def test_wifi_disconnect_drops_ip(console: Console) -> None:
    assert console.join_wifi()["status"] == "3"
    assert console.command("disconnect", "disconnect ") == "disconnect status=0"
    assert console.fields(console.command("info", "info "))["ip"] == "0.0.0.0"


# --------------------------------------------------------------------------- TCP


def test_server_listens_on_own_address_only(console: Console, address: str) -> None:
    port = free_port(address)
    # begin() before WiFi is up: nothing listens yet.
    assert console.command(f"listen {port}", "listen ") == "listen status=0"
    with pytest.raises(ConnectionRefusedError):
        connect(address, port)
    assert console.join_wifi()["status"] == "3"
    with connect(address, port) as sock:
        accepted = console.fields(console.expect("accepted "))
        assert accepted["nodelay"] == "1"  # server.setNoDelay(true) reached the client
        sock.sendall(b"ping over tcp")
        assert recv_exactly(sock, 13) == b"ping over tcp"
    console.expect("closed")
    with pytest.raises(ConnectionRefusedError):
        connect("127.0.0.1", port)


def test_outgoing_connection_binds_source_address(console: Console, address: str) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(TIMEOUT)
        port = server.getsockname()[1]
        # Without WiFi the connect fails at once.
        assert console.command(f"dial 127.0.0.1 {port} x", "dial ").startswith("dial ok=0")
        console.join_wifi()
        line = console.fields(console.command(f"dial 127.0.0.1 {port} hello", "dial "))
        assert line["ok"] == "1"
        assert line["remote"] == f"127.0.0.1:{port}"
        peer, (peer_ip, peer_port) = server.accept()
        with peer:
            assert peer_ip == address
            assert str(peer_port) == line["local"]
            peer.settimeout(TIMEOUT)
            assert recv_exactly(peer, 5) == b"hello"
            peer.sendall(b"back")
            assert console.expect("dialrx ") == "dialrx back"


def test_connect_to_closed_port_fails(console: Console) -> None:
    console.join_wifi()
    port = free_port("127.0.0.1")
    assert console.command(f"dial 127.0.0.1 {port} x", "dial ").startswith("dial ok=0")


def test_client_copies_share_one_connection(console: Console, address: str) -> None:
    port = free_port(address)
    console.join_wifi()
    console.command(f"listen {port}", "listen status=1")
    with connect(address, port) as sock:
        console.expect("accepted ")
        line = console.command("copy", "copy ")
        assert line == "copy before=1 original=0 copy=0"
        assert sock.recv(1) == b""  # the shared socket is closed: EOF


def test_echo_never_writes_past_available_for_write(console: Console, address: str) -> None:
    port = free_port(address)
    console.join_wifi()
    console.command(f"listen {port}", "listen status=1")
    with socket.socket() as sock:
        # A small receive window (set before connecting), so both directions fill quickly.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(TIMEOUT)
        sock.connect((address, port))
        console.expect("accepted ")
        # Push data without reading the echo until the firmware's socket fills up.
        sock.setblocking(False)
        chunk = bytes(range(256)) * 64
        sent = 0
        deadline = time.monotonic() + 3 * TIMEOUT
        while time.monotonic() < deadline:
            try:
                # A partial send leaves the pattern where it stopped: go on from there.
                sent += sock.send(chunk[sent % len(chunk) :] + chunk[: sent % len(chunk)])
            except BlockingIOError:
                # Both directions are full: the echo stalled on availableForWrite().
                time.sleep(0.05)
                afw = int(console.command("afw", "afw ").split()[1])
                if afw < 1024:
                    break
        else:
            pytest.fail("the echo never stalled")
        assert sent > 0
        # Drain: everything comes back intact and in order.
        sock.setblocking(True)
        sock.settimeout(TIMEOUT)
        echoed = recv_exactly(sock, sent)
        expected = (chunk * (sent // len(chunk) + 1))[:sent]
        assert echoed == expected
    with pytest.raises(AssertionError):
        console.expect("shortwrite", timeout=0.2)


def test_stop_delivers_what_is_still_buffered(console: Console, address: str) -> None:
    port = free_port(address)
    console.join_wifi()
    console.command(f"listen {port}", "listen status=1")
    received = bytearray()
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(TIMEOUT)
        sock.connect((address, port))
        console.expect("accepted ")

        def drain() -> None:
            while chunk := sock.recv(1 << 16):
                received.extend(chunk)

        # The sketch fills its connection while we do not read, then holds 200 ms
        # without yielding (we drain the kernel meanwhile), then stop()s.
        console.proc.write(b"fillstop 200\n")
        filled = console.fields(console.expect("filled "))
        assert filled["afw"] == "0"  # the shim's send buffer was full at stop() time
        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        console.expect("stopped")
        reader.join(timeout=TIMEOUT)
        assert not reader.is_alive()  # stop() ended in EOF, not a reset
    total = int(filled["wrote"])
    assert len(received) == total
    assert received == bytes(range(256)) * (total // 256) + bytes(range(total % 256))
    with pytest.raises(AssertionError):
        console.expect("shortwrite", timeout=0.2)


# --------------------------------------------------------------------------- idling


def test_idle_firmware_uses_almost_no_cpu(console: Console, address: str) -> None:
    port = free_port(address)
    console.join_wifi()
    console.command(f"listen {port}", "listen status=1")
    with connect(address, port):
        console.expect("accepted ")
        pid = console.proc.pid
        assert pid is not None
        # A busy loop would be about 1.0; idle polling with a 5 ms timeout is ~0.
        assert cpu_share(pid) < 0.2


def test_peer_close_left_unnoticed_does_not_spin(console: Console, address: str) -> None:
    port = free_port(address)
    console.join_wifi()
    # The outgoing connection is never read or stopped by the sketch after the peer closes.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(TIMEOUT)
        console.command(f"dial 127.0.0.1 {server.getsockname()[1]} x", "dial ok=1")
        peer, _ = server.accept()
        peer.close()
    del port
    time.sleep(0.1)
    assert console.proc.pid is not None
    assert cpu_share(console.proc.pid) < 0.2


def test_stdin_eof_does_not_spin(binary: Path, address: str, tmp_path: Path) -> None:
    env = dict(os.environ, ESP_HIL_IP=address, ESP_HIL_FLASH=str(tmp_path / "f.bin"))
    proc = subprocess.Popen(
        [str(binary)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith(b"boot ")
        assert cpu_share(proc.pid) < 0.2
        assert proc.poll() is None  # EOF on the console is not a reason to exit
    finally:
        proc.kill()
        proc.wait(timeout=TIMEOUT)


# --------------------------------------------------------------------------- process runner


def test_stop_terminates_and_reaps(binary: Path, address: str, tmp_path: Path) -> None:
    proc = make_process(binary, address, tmp_path / "f.bin")
    con = Console(proc)
    proc.start()
    con.expect("boot ")
    pid = proc.pid
    assert proc.alive
    with pytest.raises(FirmwareProcessError):
        proc.start()  # already running
    assert proc.stop() == -15
    assert not proc.alive
    assert not proc.restart_requested
    assert not Path(f"/proc/{pid}").exists()  # reaped, not a zombie
    with pytest.raises(queue.Empty):
        con.exited.get(timeout=0.2)  # a deliberate stop is not reported as an exit
    with pytest.raises(FirmwareProcessError):
        proc.write(b"info\n")
    assert proc.wait(0.1) == -15


def test_bad_environment_exits_with_config_error(binary: Path, tmp_path: Path) -> None:
    proc = make_process(binary, "not-an-ip", tmp_path / "f.bin")
    proc.start()
    try:
        assert proc.wait(TIMEOUT) == EXIT_CONFIG_ERROR
    finally:
        proc.stop()
    assert any("ESP_HIL_IP" in line for line in proc.stderr_tail())


def test_device_whose_twin_refuses_its_environment_says_why() -> None:
    # The exit code alone ("2") tells a user nothing; the shim's own line names the cause.
    dev = SimDevice(env={"ESP_HIL_HEAP": "12"})
    try:
        with pytest.raises(DeviceTimeout) as info:
            dev.start()
    finally:
        dev.close()
    assert f"exited with code {EXIT_CONFIG_ERROR}" in str(info.value)
    assert "bad ESP_HIL_HEAP=12" in str(info.value)


def test_allocate_ip_gives_distinct_addresses_until_released() -> None:
    first_ip, first = allocate_ip()
    second_ip, second = allocate_ip()
    try:
        assert first_ip != second_ip
        for ip in (first_ip, second_ip):
            assert ip.startswith("127.0.0.")
            assert 2 <= int(ip.rsplit(".", 1)[1]) <= 254
    finally:
        first.release()
        second.release()


def test_allocate_ip_address_is_free_again_after_release() -> None:
    # A one-address range far above what parallel tests use, so no other worker races us.
    ip, lock = allocate_ip(first=251, last=251)
    try:
        assert ip == "127.0.0.251"
        with pytest.raises(FirmwareProcessError):
            allocate_ip(first=251, last=251)
    finally:
        lock.release()
    again_ip, again = allocate_ip(first=251, last=251)
    again.release()
    assert again_ip == ip


def test_allocate_ip_sees_a_reservation_made_under_another_cache(tmp_path: Path) -> None:
    # pytester moves HOME, a user may set ESP_HIL_CACHE: the addresses are still one
    # machine's. Held by another process with its own cache and HOME, 127.0.0.250 is taken.
    holder = (
        "import sys; from harness.sim.firmware import allocate_ip\n"
        "ip, lock = allocate_ip(first=250, last=250); print(ip, flush=True); sys.stdin.read()"
    )
    env = dict(os.environ, HOME=str(tmp_path / "home"), ESP_HIL_CACHE=str(tmp_path / "cache"))
    with subprocess.Popen(
        [sys.executable, "-c", holder], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as other:
        assert other.stdout is not None and other.stdin is not None
        try:
            assert other.stdout.readline() == b"127.0.0.250\n"
            with pytest.raises(FirmwareProcessError, match="no free loopback address"):
                allocate_ip(first=250, last=250)
        finally:
            other.stdin.close()
            other.wait(timeout=10)


def test_allocate_ip_skips_an_address_something_still_listens_on() -> None:
    # A twin whose harness was killed keeps its ports until it notices (0.1 s); its lock is
    # already free. Addresses far above what parallel tests use.
    with socket.create_server(("127.0.0.252", 0)):
        ip, lock = allocate_ip(first=252, last=253)
        lock.release()
    assert ip == "127.0.0.253"


# --------------------------------------------------------------------------- sanitizers


def test_shim_under_address_and_ub_sanitizers(address: str, tmp_path: Path) -> None:
    binary = build_firmware(sketch=SKETCH, sanitize=True)
    env = {
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
        "ASAN_OPTIONS": "abort_on_error=1",
    }
    proc = make_process(binary, address, tmp_path / "flash.bin", env=env)
    con = Console(proc)
    proc.start()
    try:
        con.expect("boot ")
        assert con.command("echo sanitized", "echo ") == "echo sanitized"
        assert con.fields(con.command("alloc 5000", "alloc "))["ok"] == "1"
        assert con.fields(con.command("alloc 100000", "alloc "))["ok"] == "0"
        # The wrapped C allocator hands the sanitizer's blocks through (strdup's is libc's).
        for how in ("malloc", "calloc", "realloc", "strdup"):
            assert con.fields(con.command(f"{how} 3000", f"{how} "))["ok"] == "1"
        assert con.fields(con.command("malloc 100000", "malloc "))["ok"] == "0"
        assert con.command("eeput under asan", "eeput ") == "eeput ok=1"
        assert con.command("eeget", "eeget ") == "eeget under asan"
        assert con.join_wifi()["status"] == "3"
        port = free_port(address)
        con.command(f"listen {port}", "listen status=1")
        payload = bytes(range(256)) * 40
        with connect(address, port) as sock:
            con.expect("accepted ")
            sock.sendall(payload)
            assert recv_exactly(sock, len(payload)) == payload
        con.expect("closed")
        with connect(address, port):
            con.expect("accepted ")
            assert con.command("copy", "copy ") == "copy before=1 original=0 copy=0"
        con.command("restart", "restart")
        assert proc.wait(TIMEOUT) == EXIT_RESTART
    finally:
        proc.stop()
    report = "\n".join(proc.stderr_tail())
    assert "AddressSanitizer" not in report
    assert "runtime error" not in report
