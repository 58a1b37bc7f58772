"""Throughput and latency, measured quickly on whatever --device names, with correctness checks.

The figures (WiFiSocket and the raw-TCP baseline of the same run) go to the terminal summary
and the JUnit XML through the ``throughput`` fixture. Nothing here asserts a speed: only
that both ends agree on what was moved. ``esp-hil bench`` is the full measurement.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import Timeout, WiFiSocket
from harness.bench import bench_device, raw_port_of
from harness.bench.measure import DOWN, OURS, RAW, UP, Bench, BenchError, Control, source_message
from harness.device.base import Device
from harness.figures import FigureRecorder


@pytest.fixture
def bench(device: Device, link: WiFiSocket) -> Iterator[Bench]:
    """Control link + raw connection beside ``link``; both services back to echo after."""
    with Bench(device.ip, device.port, device.ctrl_port, raw_port_of(device), link=link,
               key=device.key) as b:
        yield b


@pytest.fixture
def control(device: Device) -> Iterator[Control]:
    ctrl = Control(device.ip, device.ctrl_port, key=device.key)
    try:
        yield ctrl
    finally:
        ctrl.command("echo")
        ctrl.command("raw echo")
        ctrl.close()


def test_the_raw_port_is_announced(device: Device) -> None:
    assert raw_port_of(device) == device.info()["raw_port"]
    assert raw_port_of(device) not in (device.port, device.ctrl_port)


@pytest.mark.parametrize("size", [64, "max"])
def test_host_to_device_counts_match(
    bench: Bench, device: Device, throughput: FigureRecorder, size: int | str
) -> None:
    n_bytes = device.max_message if size == "max" else int(size)
    count = 100 if size == "max" else 1000
    for service in (OURS, RAW):
        t = bench.up(service, n_bytes, count=count)  # raises BenchError if the ends disagree
        assert t.messages == count and t.nbytes == count * n_bytes
        assert t.device_bytes == t.nbytes
        if service == OURS:
            assert t.device_messages == count
        throughput.record(f"{service} {UP} {n_bytes} B", t.mb_per_s, "MB/s")
        throughput.record(f"{service} {UP} {n_bytes} B rate", t.msg_per_s, "msg/s")


@pytest.mark.parametrize("size", [64, "max"])
def test_device_to_host_delivers_every_message(
    bench: Bench, device: Device, throughput: FigureRecorder, size: int | str
) -> None:
    n_bytes = device.max_message if size == "max" else int(size)
    count = 100 if size == "max" else 1000
    checked = bench.down(OURS, n_bytes, count=count, verify=True)  # every message, in order
    assert checked.messages == checked.device_messages == count
    assert checked.nbytes == checked.device_bytes == count * n_bytes
    # The figures come from runs that, like the raw one, do not compare every byte.
    ours = bench.down(OURS, n_bytes, count=count)
    assert ours.messages == ours.device_messages == count
    raw = bench.down(RAW, n_bytes, count=count)
    assert raw.nbytes == raw.device_bytes == count * n_bytes
    for t in (ours, raw):
        throughput.record(f"{t.service} {DOWN} {n_bytes} B", t.mb_per_s, "MB/s")
    throughput.record(f"{OURS} {DOWN} {n_bytes} B rate", ours.msg_per_s, "msg/s")


def test_echo_round_trips(bench: Bench, throughput: FigureRecorder) -> None:
    for service in (OURS, RAW):
        e = bench.echo(service, 64, count=300)  # every reply is compared with what was sent
        assert e.count == e.device_messages == 300
        assert 0 < e.p50 <= e.p99
        throughput.record(f"{service} echo 64 B p50", e.p50 * 1e6, "us")
        throughput.record(f"{service} echo 64 B p99", e.p99 * 1e6, "us")


def test_source_messages_carry_index_and_pattern(control: Control, link: WiFiSocket) -> None:
    control.command("source 3 6")
    got = [link.receive(timeout=10) for _ in range(3)]
    assert got == [bytes([0, 0, 0, i, 4, 5]) for i in range(3)]
    assert got == [source_message(i, 6) for i in range(3)]
    st = control.stats()
    assert (st["mode"], st["messages"], st["bytes"], st["source_left"]) == ("source", 3, 18, 0)
    # Messages shorter than the index carry the pattern only; an empty one is empty.
    control.command("source 2 3")
    assert [link.receive(timeout=10) for _ in range(2)] == [b"\x00\x01\x02"] * 2
    control.command("source 1 0")
    assert link.receive(timeout=10) == b""


def test_sink_consumes_and_echo_comes_back(control: Control, link: WiFiSocket) -> None:
    control.command("sink")
    for i in range(5):
        link.send(f"sunk {i}")
    st = control.wait_stats(lambda s: s["messages"] >= 5, 10, "sink")
    assert (st["mode"], st["messages"], st["bytes"]) == ("sink", 5, 5 * len("sunk 0"))
    with pytest.raises(Timeout):
        link.receive(timeout=0.2)  # nothing was echoed
    reply = control.command("echo")
    assert reply == {"ok": True, "service": "link", "mode": "echo"}
    assert control.stats()["messages"] == 0  # every mode command resets the counters
    link.send(b"back")
    assert link.receive(timeout=10) == b"back"
    st = control.stats()
    assert (st["mode"], st["messages"], st["bytes"]) == ("echo", 1, 4)
    assert st["elapsed_us"] == 0  # one message: no time between first and last


def test_what_arrives_while_sourcing_is_dropped_and_counted(
    control: Control, link: WiFiSocket
) -> None:
    control.command("source 0 16")
    link.send(b"ignored")
    st = control.wait_stats(lambda s: s["ignored"] >= 1, 10, "ignored")
    assert (st["ignored"], st["messages"]) == (1, 0)
    # The pattern is rebuilt after the drop overwrote it.
    control.command("source 1 8")
    assert link.receive(timeout=10) == source_message(0, 8)


def _raw_connect(device: Device) -> socket.socket:
    sock = socket.create_connection((device.ip, raw_port_of(device)), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, f"connection closed after {len(data)} of {n} bytes"
        data += chunk
    return bytes(data)


def test_raw_port_echo_sink_and_source(control: Control, device: Device) -> None:
    with _raw_connect(device) as sock:
        payload = os.urandom(5000)  # several of the device's 1460-byte buffers
        sock.sendall(payload)
        assert _recv_exactly(sock, len(payload)) == payload
        assert control.stats()["raw"]["bytes"] == len(payload)

        control.command("raw sink")
        sock.sendall(payload)
        st = control.wait_stats(lambda s: s["raw"]["bytes"] >= len(payload), 10, "raw sink")
        assert (st["raw"]["mode"], st["raw"]["bytes"]) == ("sink", len(payload))

        control.command("raw source 3000 7")
        data = _recv_exactly(sock, 3000)
        assert data == bytes(i & 0xFF for i in range(7)) * (3000 // 7) + bytes(range(3000 % 7))
        st = control.wait_stats(lambda s: s["raw"]["source_left"] == 0, 10, "raw source")
        assert (st["raw"]["bytes"], st["raw"]["chunks"]) == (3000, -(-3000 // 7))
        sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # exactly the bytes asked for, not one more


def test_raw_source_waits_for_a_connection(control: Control, device: Device) -> None:
    # Earlier tests' raw connections are closed; wait until the device has noticed.
    control.wait_stats(lambda s: not s["raw"]["connected"], 10, "raw idle")
    control.command("raw source 100")
    time.sleep(0.05)
    with _raw_connect(device) as sock:
        assert len(_recv_exactly(sock, 100)) == 100
    st = control.wait_stats(lambda s: s["raw"]["source_left"] == 0, 10, "raw source")
    assert st["raw"]["connections"] >= 1


@pytest.mark.parametrize(
    "command",
    [
        "source", "source 1", "source x 16", "source 1 16 9", "source -1 16",
        "source 99999999999 16", "source 1 99999", "raw source", "raw source 10 0",
        "raw source 10 1461", "raw source 1 2 3", "raw stats", "sink now", "stats please",
        "raw", "raw info", "SOURCE 1 1",
    ],
)
def test_malformed_control_commands_are_refused(device: Device, command: str) -> None:
    reply = device.control(command)
    assert "error" in reply and reply["command"] == command
    assert device.control("stats")["mode"] == "echo"  # nothing changed


def test_source_needs_a_host_on_the_echo_service(device: Device) -> None:
    # Connect and close a link: an orderly close leaves nobody on the echo service.
    device.connect().close()
    try:
        deadline = time.monotonic() + 10
        while True:
            reply = device.control("source 1 16")
            if "error" in reply or time.monotonic() > deadline:
                break
            time.sleep(0.01)  # the device had not yet read the CLOSE
        assert "no host" in reply.get("error", ""), json.dumps(reply)
    finally:
        device.control("echo")


def test_size_over_max_message_is_refused(device: Device, link: WiFiSocket) -> None:
    reply = device.control(f"source 1 {device.max_message + 1}")
    assert "max_message" in reply["error"]
    with (
        Bench(device.ip, device.port, device.ctrl_port, raw_port_of(device), link=link,
              key=device.key) as b,
        pytest.raises(BenchError, match="outside"),
    ):
        b.up(OURS, device.max_message + 1, count=1)


def test_bench_end_to_end_writes_tables_and_json(device: Device, tmp_path: Path) -> None:
    # The plot is left to tests/unit/test_bench.py: matplotlib alone takes seconds.
    args = argparse.Namespace(sizes="16,max", duration=0.05, json=str(tmp_path / "b.json"),
                              plot=None)
    out, err = io.StringIO(), io.StringIO()
    assert bench_device(device, args, out=out, err=err) == 0, err.getvalue()
    assert err.getvalue().count("] ") >= 12  # one progress line per measurement
    doc = json.loads((tmp_path / "b.json").read_text())
    assert doc["schema"] == "esp-hil-bench/1"
    assert doc["settings"]["sizes"] == [16, device.max_message]
    assert len(doc["transfers"]) == 8 and len(doc["echo"]) == 4
    for t in doc["transfers"]:
        assert t["device_bytes"] == t["nbytes"] > 0
    assert {r["metric"] for r in doc["ratios"]} >= {"up_mb_per_s", "down_mb_per_s", "echo_p50_us"}
    text = out.getvalue()
    assert "ratio" in text and f"{device.max_message} B" in text
