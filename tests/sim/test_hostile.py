"""Hostile peers against the twin's echo service (issue 17, docs/protocol.md §2 Strangers).

A stranger who can reach the port learns nothing of the host's session and cannot
continue or end it: the device says nothing before the dialer's HELLO, refuses another
peer's HELLO with BUSY while the host's session is held, and the host's link carries on.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness.device.base import Device
from harness.errors import ProtocolError
from harness.wifisocket import WiFiSocket
from harness.wifisocket.frame import CloseCode, Frame, FrameDecoder, FrameType, Hello, encode_frame
from tests.helpers.dial import DialControl

pytestmark = pytest.mark.twin

TIMEOUT = 5.0


def _frames_within(sock: socket.socket, decoder: FrameDecoder, seconds: float) -> list[Frame]:
    """Every frame the device sends within ``seconds`` (stops early at its close)."""
    frames: list[Frame] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            break
        if not data:
            break
        frames.extend(decoder.feed(data))
    return frames


def _u64s(frames: list[Frame]) -> set[int]:
    """Every 8-byte big-endian window of every payload: what a frame could reveal."""
    seen = set()
    for f in frames:
        p = f.payload
        seen.update(int.from_bytes(p[i:i + 8], "big") for i in range(len(p) - 7))
    return seen


def _hello(session: int, resume: int = 0, ack: int = 0) -> bytes:
    return encode_frame(FrameType.HELLO, Hello(4096, 8240, 0, session, resume).encode(), ack=ack)


def test_a_stranger_learns_nothing_and_cannot_continue_the_hosts_session(
        device: Device) -> None:
    # A keyed device refuses the key-less stranger's HELLO with AUTH before anything else.
    refusal = CloseCode.AUTH if device.key is not None else CloseCode.BUSY
    with device.connect(timeout=TIMEOUT) as host:
        for i in range(3):
            host.send(f"host {i}")
            assert host.receive(timeout=TIMEOUT) == f"host {i}"
        secret, ack = host.session_id, host._session.delivered
        device_id = host.peer_session_id

        # 1. A stranger that connects and listens hears nothing: the device speaks second.
        with socket.create_connection((device.ip, device.port), timeout=TIMEOUT) as s:
            decoder = FrameDecoder(1 << 20)
            before = _frames_within(s, decoder, 0.5)
            assert before == [], f"the device spoke before the dialer's HELLO: {before}"
            # 2. Its fresh HELLO is refused: no HELLO, so no session id and no ack.
            s.sendall(_hello(int.from_bytes(os.urandom(8), "big") | 1))
            got = _frames_within(s, decoder, TIMEOUT)
        assert [f.type for f in got] == [FrameType.CLOSE], got
        assert got[0].payload[0] == refusal
        assert secret not in _u64s(before + got)

        # 3. The replay of the issue with everything a stranger could know (the device's
        # id from an earlier session of its own, a plausible ack), then an injected TEXT.
        with socket.create_connection((device.ip, device.port), timeout=TIMEOUT) as s:
            decoder = FrameDecoder(1 << 20)
            s.sendall(_hello(int.from_bytes(os.urandom(8), "big") | 1, device_id, ack)
                      + encode_frame(FrameType.TEXT, b"INJECTED-BY-ATTACKER", seq=ack + 1,
                                     ack=ack))
            got = _frames_within(s, decoder, TIMEOUT)
        assert [f.type for f in got] == [FrameType.CLOSE], got
        assert got[0].payload[0] == refusal
        assert secret not in _u64s(got)

        # The host's session went on untouched: same connection, nothing injected.
        host.send("host after")
        assert host.receive(timeout=TIMEOUT) == "host after"
        assert host.reconnects == 0 and host.connected
        assert host.peer_session_id == device_id
    assert not [ln for ln in device.console.lines if f"{secret:x}" in ln.text.lower()]


def test_a_new_host_gets_the_session_once_the_old_one_closed(device: Device) -> None:
    with device.connect(timeout=TIMEOUT) as first:
        first.send("first")
        assert first.receive(timeout=TIMEOUT) == "first"
    with device.connect(timeout=TIMEOUT) as second:
        second.send("second")
        assert second.receive(timeout=TIMEOUT) == "second"


def test_the_control_service_answers_concurrent_clients(device: Device) -> None:
    """4 threads x 10 (connect, stats, receive): every request answered (issue 17)."""
    threads, rounds = 4, 10

    def client(_: int) -> int:
        answered = 0
        for _ in range(rounds):
            with device.connect(device.ctrl_port, timeout=3 * TIMEOUT) as sock:
                sock.send("stats")
                reply = sock.receive(timeout=TIMEOUT)
            assert isinstance(reply, str) and reply.startswith('{"mode"'), reply
            answered += 1
        return answered

    with ThreadPoolExecutor(threads) as pool:
        answered = sum(pool.map(client, range(threads)))
    assert answered == threads * rounds
    # The device's own retrying helper too, side by side.
    with ThreadPoolExecutor(threads) as pool:
        replies = list(pool.map(lambda _: device.control("stats"), range(threads * rounds)))
    assert all("mode" in r for r in replies)


def test_serve_refuses_an_impostor_and_serves_the_device(device: Device) -> None:
    """The issue's impostor dials the serving host first; ``allow`` names the device."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        # The impostor, from another address, dials first and says HELLO.
        impostor = socket.socket()
        impostor.bind(("127.0.0.250", 0))
        impostor.connect(("127.0.0.1", port))
        with impostor:
            impostor.sendall(_hello(int.from_bytes(os.urandom(8), "big") | 1))
            # Each command's answer is awaited before the next is sent: both answer "ESP-HIL OK
            # dial", and the console can lag the device by more than this test's 0.3 s wait.
            dial = DialControl(device)
            dial.to("127.0.0.1", port)
            try:
                with WiFiSocket.accept(listener, timeout=10.0, allow=[device.ip],
                                       key=device.key) as host:
                    host.send("secret-for-device")
                    assert host.receive(timeout=TIMEOUT) == "secret-for-device"
                    host.flush(timeout=TIMEOUT)
                    assert host.peer_address[0] == device.ip
                    got = _frames_within(impostor, FrameDecoder(1 << 20), 0.3)
                    assert got == [], f"the impostor heard {got}"
            finally:
                assert dial.command("dial off") == "ESP-HIL OK dial"
    with device.connect(timeout=TIMEOUT) as sock:  # listening again for the next tests
        sock.send("listening again")
        assert sock.receive(timeout=TIMEOUT) == "listening again"


def test_the_twin_listens_with_a_boards_backlog(device: Device) -> None:
    """5 pending connections per port, as the core's WiFiServer (MAX_PENDING_CLIENTS_PER_PORT;
    Linux queues backlog + 1, so the listener's backlog is 4)."""
    out = subprocess.run(
        ["ss", "-ltnH", f"src {device.ip}:{device.port}"],
        capture_output=True, text=True, timeout=TIMEOUT, check=True,
    ).stdout.split()
    assert out, f"no listener on {device.ip}:{device.port}"
    # State Recv-Q Send-Q Local Peer: for a listener, Send-Q is its backlog.
    assert int(out[2]) == 4, out


def test_an_echo_the_host_cannot_take_closes_with_a_reason(device: Device) -> None:
    mark = device.console.mark()
    with device.connect(timeout=TIMEOUT, max_message=1, window=64) as host:
        host.send(b"x" * 50)
        with pytest.raises(ProtocolError) as closed:
            host.receive(timeout=TIMEOUT)
    assert closed.value.code == CloseCode.TOO_LARGE
    assert "max_message" in str(closed.value)
    device.console.expect(r"^WS CLOSE code=3 reason=echo larger than the host's max_message",
                          timeout=TIMEOUT, since=mark)
    with device.connect(timeout=TIMEOUT) as sock:  # the next host is served at once
        sock.send("next")
        assert sock.receive(timeout=TIMEOUT) == "next"
