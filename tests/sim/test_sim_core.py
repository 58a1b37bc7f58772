"""``--device=sim-core``: the test firmware on the ESP8266 core's host emulation.

Each test here checks one of our overrides of the core's mock (``firmware/sim-core``,
``docs/sim-core.md``) on a behaviour the mock alone gets wrong; the device contract itself is
``tests/hil`` run with ``--device=sim-core``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.backends import is_twin_spec
from harness.device.errors import DeviceError
from harness.errors import WiFiSocketError
from harness.sim.build import FirmwareBuildError
from harness.sim.core.build import build_core_firmware, core_root
from harness.sim.core.device import CoreDevice
from tests.helpers.wait import wait_until

pytestmark = [
    pytest.mark.twin,
    pytest.mark.skipif(
        not (core_root() / "tests" / "host" / "Makefile").is_file(),
        reason=f"no ESP8266 core snapshot at {core_root()} (set ESP_HIL_CORE_DIR)",
    ),
]

TIMEOUT = 5.0


@pytest.fixture(scope="module")
def dev() -> Iterator[CoreDevice]:
    device = CoreDevice()
    try:
        device.start()
        yield device
    finally:
        device.close()


def _raw(dev: CoreDevice) -> socket.socket:
    sock = socket.create_connection((dev.ip, dev.info()["raw_port"]), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def test_sim_core_is_a_twin_spec() -> None:
    assert is_twin_spec("sim-core")


def test_boots_on_its_own_address_with_the_cores_identity(dev: CoreDevice) -> None:
    assert dev.ip == dev.sim_ip
    assert dev.ip.startswith("127.0.0.")
    # The core's WiFi code reports the mock's fixed station MAC.
    assert dev.mac == "de:ba:7a:b1:e0:42"
    assert dev.info()["mac"].lower() == dev.mac


def test_a_short_message_is_read_at_once(dev: CoreDevice) -> None:
    # The mock's read(buf, n) returns 0 until n bytes are buffered: the raw echo, which reads
    # up to 1460 bytes, would never answer one byte.
    with _raw(dev) as sock:
        for payload in (b"x", b"hello", bytes(range(200))):
            sock.sendall(payload)
            got = b""
            while len(got) < len(payload):
                chunk = sock.recv(4096)
                assert chunk, "the device closed the connection"
                got += chunk
            assert got == payload


def test_a_peer_closing_is_noticed(dev: CoreDevice) -> None:
    # The mock never sees a FIN: the raw port would stay "connected" forever.
    sock = _raw(dev)
    wait_until(lambda: dev.control("stats")["raw"]["connected"], "raw connection accepted")
    sock.close()
    wait_until(lambda: not dev.control("stats")["raw"]["connected"], "the FIN noticed")


def test_a_full_send_buffer_stalls_the_source_not_the_sketch(dev: CoreDevice) -> None:
    # With the mock's constant availableForWrite() of 512, writes beyond the room block the
    # sketch for their timeout; here the source waits for room and the sketch keeps serving.
    total = 4 * 1024 * 1024
    with _raw(dev) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reply = dev.control(f"raw source {total}")
        assert reply.get("ok") is True, reply
        time.sleep(0.3)  # the host reads nothing: the connection fills up
        t0 = time.monotonic()
        stats = dev.control("stats", timeout=2.0)
        assert time.monotonic() - t0 < 2.0
        assert stats["raw"]["mode"] == "source"
        assert 0 < stats["raw"]["source_left"] < total
        got = 0
        while got < total:
            chunk = sock.recv(65536)
            assert chunk, f"the device closed the connection after {got} bytes"
            got += len(chunk)
        assert got == total
    wait_until(lambda: dev.control("stats")["raw"]["source_left"] == 0, "the source done")
    dev.control("raw echo")


def test_credentials_survive_a_reset_in_the_instances_station_config(dev: CoreDevice) -> None:
    assert dev.station_config_path.is_file()
    mark = dev.console.mark()
    dev.reset()
    lines = [ln.text for ln in dev.console.since(mark)]
    assert any(t.startswith("ESP-HIL BOOT ") for t in lines), lines
    assert not any(t.startswith(("ESP-HIL WIFI none", "ESP-HIL OK wifi")) for t in lines), lines


def test_reboot_from_the_console_boots_again(dev: CoreDevice) -> None:
    before = dev.restarts
    mark = dev.console.mark()
    dev.console.send_line("reboot")
    dev.console.expect(r"^ESP-HIL OK reboot", TIMEOUT, since=mark)
    dev.console.expect(r"^ESP-HIL READY ", TIMEOUT, since=mark)
    assert dev.restarts == before + 1
    wait_until(lambda: _answers(dev), "the control service back")
    # The new run's mock messages, once per server it opened; the runs before stay in the log.
    server = "(mock) =====> WiFiServer port: 8080 <====="
    assert dev.twin_log(since=dev.booted_at).count(server) == 1
    assert dev.twin_log().count(server) >= 2


def _answers(dev: CoreDevice) -> bool:
    try:
        return "fw" in dev.info(timeout=1.0)
    except (OSError, WiFiSocketError):  # still booting: refused or reset
        return False


def test_two_instances_have_their_own_address_and_eeprom(dev: CoreDevice) -> None:
    other = CoreDevice()
    try:
        mark = other.console.mark()
        other.start()
        # A fresh working directory: no credentials yet, whatever the first instance stored.
        other.console.expect(r"^ESP-HIL WIFI none", 1.0, since=mark)
        assert other.ip != dev.ip
        assert other.workdir != dev.workdir
        for d in (dev, other):
            with _raw(d) as sock:
                sock.sendall(d.ip.encode())
                assert sock.recv(64) == d.ip.encode()
    finally:
        other.close()


def test_a_missing_core_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ESP_HIL_CORE_DIR", str(tmp_path))
    with pytest.raises(FirmwareBuildError, match="no ESP8266 core host emulation"):
        build_core_firmware()
    with pytest.raises(DeviceError, match="ESP_HIL_CORE_DIR"):
        CoreDevice()


@pytest.mark.parametrize("value", ["535", "1461", "big", "-1"])
def test_a_bad_segment_size_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("ESP_HIL_CORE_TCP_MSS", value)
    with pytest.raises(FirmwareBuildError, match="536 to 1460"):
        build_core_firmware()


_ORPHAN_PARENT = """
import time
from harness.sim.core.device import CoreDevice
d = CoreDevice()
d.start()
print(d._run.proc.pid, flush=True)
time.sleep(60)
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")  # exited; whoever adopted it has not reaped it yet


def test_an_instance_whose_harness_died_powers_off() -> None:
    # Otherwise it would keep its address's ports while the address lock is free again.
    parent = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_PARENT],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
        text=True,
    )
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert not _gone(pid)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=TIMEOUT)
        wait_until(lambda: _gone(pid), "the orphaned firmware exited", timeout=2.0)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=TIMEOUT)
