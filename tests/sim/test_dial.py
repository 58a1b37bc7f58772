"""The other topology: the device dials the host (docs/console.md, `dial`).

The seed project's set-up: the PC listens (``WiFiSocket.serve``), the board connects, and
redials by itself when the link is cut; the session resumes on the new connection. Here
the echo service is told to dial over the console (or the control service), and `dial off`
puts it back to listening on its port.

Marked ``twin``: the device must reach the test machine's listener; on a desk the host's
address and firewall are the user's business (the twin dials 127.0.0.1).
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from harness.device.base import Device
from harness.netem import Proxy
from harness.wifisocket import WiFiSocket
from harness.wifisocket.frame import Frame, FrameDecoder, FrameType, Hello, encode_frame
from tests.helpers.dial import ANSWER, DialControl
from tests.helpers.net import free_port

pytestmark = pytest.mark.twin

HOST = "127.0.0.1"
TIMEOUT = 10.0  # the device redials after 0.5, 1, 2, 4, 5, 5 ... s


@pytest.fixture
def dial(device: Device) -> Iterator[DialControl]:
    """Tells the device to dial; always puts the echo service back to listening."""
    control = DialControl(device)
    try:
        yield control
    finally:
        control.off()
        # The echo service listens again for the tests that follow.
        with device.connect(timeout=ANSWER) as sock:
            sock.send("listening again")
            assert sock.receive(timeout=ANSWER) == "listening again"


def _wait_lines(device: Device, mark: int, match: Callable[[str], bool], count: int) -> None:
    """Wait until ``count`` console lines since ``mark`` satisfy ``match``."""
    deadline = time.monotonic() + TIMEOUT
    while sum(match(ln.text) for ln in device.console.since(mark)) < count:
        assert time.monotonic() < deadline, device.console.tail(since=mark)
        time.sleep(0.05)


def _listener() -> socket.socket:
    return socket.create_server((HOST, 0))


def test_device_dials_a_serving_host(device: Device, dial: DialControl) -> None:
    """WiFiSocket.serve on the host, `dial` on the device: messages both ways."""
    port = free_port(HOST)
    served: list[WiFiSocket] = []
    failed: list[BaseException] = []

    def serve() -> None:
        try:
            served.append(WiFiSocket.serve(port=port, host=HOST, timeout=TIMEOUT, key=device.key))
        except BaseException as exc:  # reported below
            failed.append(exc)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    mark = device.console.mark()
    dial.to(HOST, port)  # whether serve already listens or not: the device redials
    t.join(timeout=TIMEOUT + ANSWER)
    assert not failed, failed
    assert served, "serve() did not return"
    with served[0] as host:
        device.console.expect(rf"^WS DIAL {HOST}:{port} connected", timeout=ANSWER, since=mark)
        host.send("hi from the host")
        assert host.receive(timeout=ANSWER) == "hi from the host"
        host.send(b"\x00\xffbinary")
        assert host.receive(timeout=ANSWER) == b"\x00\xffbinary"
        # Messages the device sends on its own (its control service's source mode).
        reply = device.control("source 3 16")
        assert reply.get("ok") is True, reply
        for i in range(3):
            msg = host.receive(timeout=ANSWER)
            assert isinstance(msg, bytes) and len(msg) == 16
            assert int.from_bytes(msg[:4], "big") == i
        assert device.control("echo").get("mode") == "echo"
        host.send("echo again")
        assert host.receive(timeout=ANSWER) == "echo again"


def test_dial_off_listens_again_and_the_dialled_host_is_let_go(
    device: Device, dial: DialControl
) -> None:
    with _listener() as listener:
        dial.to(HOST, listener.getsockname()[1])
        host = WiFiSocket.accept(listener, timeout=TIMEOUT, reconnect=False, key=device.key)
        with host:
            host.send("x")
            assert host.receive(timeout=ANSWER) == "x"
            assert dial.command("dial off") == "ESP-HIL OK dial"
            with device.connect(timeout=ANSWER) as sock:
                sock.send("listening")
                assert sock.receive(timeout=ANSWER) == "listening"
        # No redial to the old host once it is off: nothing more is accepted.
        listener.settimeout(1.5)
        with pytest.raises(TimeoutError):
            listener.accept()


def test_device_dials_back_after_a_cut_and_nothing_is_lost(
    device: Device, dial: DialControl
) -> None:
    """A stream of messages across link cuts (a proxy taken down and up again), dial topology.

    Every echo comes back exactly once and in order, over the same sessions (resumed, not
    restarted): no SessionLost, the device's session id unchanged.
    """
    count = 60
    with _listener() as listener:
        proxy = Proxy(upstream=listener.getsockname()[:2], seed=8)
        with proxy:
            mark = device.console.mark()
            dial.to(*proxy.address)
            host = WiFiSocket.accept(listener, timeout=TIMEOUT, key=device.key)
            with host:
                device_session = host.peer_session_id
                # One thread, pipelined: a
                # few messages stay in flight both ways, so each cut catches some mid-way.
                in_flight = 4
                got: list[str | bytes] = []
                timers: list[threading.Timer] = []
                for i in range(count):
                    host.send(f"m{i}", timeout=3 * TIMEOUT)
                    if i in (10, 35):  # cut twice in mid-stream ...
                        proxy.disable()
                        # ... and keep sending while it is down: those messages are unacked
                        # (written into a dead connection, or queued) and must be resent.
                        reopen = threading.Timer(0.3, proxy.enable)
                        reopen.start()
                        timers.append(reopen)
                    if i >= in_flight:
                        got.append(host.receive(timeout=3 * TIMEOUT))
                while len(got) < count:
                    got.append(host.receive(timeout=3 * TIMEOUT))
                for reopen in timers:
                    reopen.join(timeout=ANSWER)
                assert got == [f"m{i}" for i in range(count)]
                assert host.reconnects >= 2
                assert host.peer_session_id == device_session
                device.console.expect(r"^WS LOST", timeout=ANSWER, since=mark)
    # The device redialled: one line per connection (console lines may trail the data).
    _wait_lines(device, mark, lambda t: t.startswith("WS DIAL") and t.endswith(" connected"), 3)


def test_device_dials_until_the_host_listens(device: Device, dial: DialControl) -> None:
    """The board boots before the PC's script: refused dials are retried with backoff."""
    port = free_port(HOST)
    mark = device.console.mark()
    dial.to(HOST, port)
    failed = f"WS DIAL {HOST}:{port} failed, retry in "
    _wait_lines(device, mark, lambda t: t.startswith(failed), 2)
    with (
        socket.create_server((HOST, port)) as listener,
        WiFiSocket.accept(listener, timeout=TIMEOUT, reconnect=False, key=device.key) as host,
    ):
        host.send("late")
        assert host.receive(timeout=ANSWER) == "late"
    delays = [
        int(ln.text.rsplit(" ", 2)[-2])
        for ln in device.console.since(mark)
        if ln.text.startswith(failed)
    ]
    assert delays[:2] == [500, 1000], delays  # doubling from 0.5 s
    assert all(d <= 5000 for d in delays), delays


def test_redial_backs_off_until_a_session_is_up(device: Device, dial: DialControl) -> None:
    """A host that accepts and drops at once is redialled ever more slowly (doubling);
    once a connection completed HELLO, the next loss redials after the minimum again."""
    with _listener() as listener:
        port = listener.getsockname()[1]
        mark = device.console.mark()
        dial.to(HOST, port)
        listener.settimeout(TIMEOUT)
        for _ in range(3):
            conn, _ = listener.accept()
            conn.close()
        closed = f"WS DIAL {HOST}:{port} closed, redial in "
        _wait_lines(device, mark, lambda t: t.startswith(closed), 3)
        with WiFiSocket.accept(listener, timeout=TIMEOUT, reconnect=False, key=device.key) as host:
            host.send("up")
            assert host.receive(timeout=ANSWER) == "up"
        _wait_lines(device, mark, lambda t: t.startswith(closed), 4)
    delays = [
        int(ln.text.rsplit(" ", 2)[-2])
        for ln in device.console.since(mark)
        if ln.text.startswith(closed)
    ]
    assert delays[:3] == [500, 1000, 2000], delays
    assert delays[3] == 500, delays


# --- the resume at the protocol level, with a hand-driven host ------------------------------
# These read and write version 1 frames byte for byte, so the device runs keyless for them
# (the keyed handshake and tags have their own tests: tests/unit/test_keyed*.py, the C++
# test_session.cpp, and the keyed contract suite).


class RawHost:
    """One accepted connection from the device, frames encoded and decoded by hand."""

    def __init__(self, listener: socket.socket) -> None:
        listener.settimeout(TIMEOUT)
        self.sock, _ = listener.accept()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.decoder = FrameDecoder(1 << 20)
        self.frames: list[Frame] = []
        self.raw = bytearray()

    def next_frame(self, timeout: float = ANSWER) -> Frame:
        deadline = time.monotonic() + timeout
        while not self.frames:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame from the device")
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the device closed the connection")
            self.raw += data
            self.frames.extend(self.decoder.feed(data))
        return self.frames.pop(0)

    def next_data(self) -> Frame:
        while True:
            frame = self.next_frame()
            if frame.is_data:
                return frame

    def reset(self) -> None:
        """Vanish with a TCP RST, as a crashed host program or a cut link does."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


def _hello(session: int, resume: int, ack: int = 0) -> bytes:
    hello = Hello(max_message=4096, window=65536, keepalive_ms=0, session=session, resume=resume)
    return encode_frame(FrameType.HELLO, hello.encode(), ack=ack)


def test_dialled_session_resumes_byte_for_byte(keyless: Device, dial: DialControl) -> None:
    """Cut after the device's echo left it but before we acknowledged it: the device dials
    back, names our session, resends that echo byte-for-byte and drops our duplicate."""
    ours = int.from_bytes(os.urandom(8), "big") | 1
    with _listener() as listener:
        dial.to(HOST, listener.getsockname()[1])
        first = RawHost(listener)
        hello = first.next_frame()
        assert hello.type == FrameType.HELLO
        dev = Hello.decode(hello.payload)
        first.sock.sendall(_hello(ours, 0))
        ping1 = encode_frame(FrameType.TEXT, b"ping-1", seq=1)
        first.sock.sendall(ping1)
        echo1 = first.next_data()
        assert (echo1.type, echo1.seq, echo1.ack, echo1.payload) == (
            FrameType.TEXT,
            1,
            1,
            b"ping-1",
        )
        echo1_bytes = encode_frame(FrameType.TEXT, b"ping-1", seq=1, ack=1)
        first.reset()  # never acknowledged

        second = RawHost(listener)  # the device dials back by itself
        hello2 = second.next_frame()
        assert hello2.type == FrameType.HELLO
        again = Hello.decode(hello2.payload)
        assert again.session == dev.session  # the same device session ...
        assert again.resume == ours  # ... resuming ours ...
        assert hello2.ack == 1  # ... having delivered our seq 1
        second.sock.sendall(_hello(ours, dev.session, ack=0))
        resent = second.next_data()
        assert (resent.seq, resent.payload) == (1, b"ping-1")
        assert echo1_bytes in bytes(second.raw)  # as first sent, stale ack and all
        # Our seq 1 again (we pretend not to know it arrived): a duplicate, not echoed again.
        second.sock.sendall(ping1)
        second.sock.sendall(encode_frame(FrameType.TEXT, b"ping-2", seq=2, ack=1))
        echo2 = second.next_data()
        assert (echo2.seq, echo2.payload) == (2, b"ping-2")
        second.sock.sendall(encode_frame(FrameType.ACK, ack=2))
        second.sock.sendall(encode_frame(FrameType.CLOSE, b"\x00bye", ack=2))
        second.sock.close()


def test_a_new_host_session_gets_a_fresh_stream(keyless: Device, dial: DialControl) -> None:
    """The host program restarted (a new session) while the device had unconfirmed echoes:
    the device starts its stream over at seq 1 for the new host (nothing old is resent)."""
    with _listener() as listener:
        dial.to(HOST, listener.getsockname()[1])
        first = RawHost(listener)
        assert first.next_frame().type == FrameType.HELLO
        first.sock.sendall(_hello(0x1111, 0))
        first.sock.sendall(encode_frame(FrameType.TEXT, b"old", seq=1))
        assert first.next_data().payload == b"old"
        first.reset()

        second = RawHost(listener)
        hello2 = second.next_frame()
        assert Hello.decode(hello2.payload).resume == 0x1111
        # A new host session that even names the device (it read the HELLO above).
        dev = Hello.decode(hello2.payload).session
        second.sock.sendall(_hello(0x2222, dev))
        second.sock.sendall(encode_frame(FrameType.TEXT, b"new", seq=1))
        echo = second.next_data()
        assert (echo.seq, echo.ack, echo.payload) == (1, 1, b"new")
        second.sock.sendall(encode_frame(FrameType.CLOSE, b"\x00bye", ack=1))
        second.sock.close()


def test_dial_command_errors(device: Device, dial: DialControl) -> None:
    assert dial.command("dial").startswith("ESP-HIL ERR dial usage")
    assert dial.command("dial 127.0.0.1").startswith("ESP-HIL ERR dial usage")
    assert dial.command("dial 127.0.0.1 0").startswith("ESP-HIL ERR dial usage")
    assert dial.command("dial 127.0.0.1 65536").startswith("ESP-HIL ERR dial usage")
    assert dial.command("dial 127.0.0.1 80x").startswith("ESP-HIL ERR dial usage")
    assert dial.command("dial 127.0.0.1 80 extra").startswith("ESP-HIL ERR dial usage")
    assert dial.command("dial bad/host 80") == "ESP-HIL ERR dial bad host name"
    assert dial.command("dial " + "h" * 64 + " 80") == "ESP-HIL ERR dial host name too long"
    # Refused requests changed nothing: the echo service still listens.
    with device.connect(timeout=ANSWER) as sock:
        sock.send("still listening")
        assert sock.receive(timeout=ANSWER) == "still listening"


def test_dial_over_the_control_service(device: Device, dial: DialControl) -> None:
    with _listener() as listener:
        port = listener.getsockname()[1]
        assert device.control(f"dial {HOST} {port}") == {
            "ok": True,
            "service": "link",
            "dial": f"{HOST}:{port}",
        }
        with WiFiSocket.accept(listener, timeout=TIMEOUT, reconnect=False, key=device.key) as host:
            host.send("via control")
            assert host.receive(timeout=ANSWER) == "via control"
            assert device.control("dial off") == {"ok": True, "service": "link", "dial": "off"}
    for bad, why in [
        ("dial", "usage: dial <host> <port> | dial off"),
        ("dial nowhere", "usage: dial <host> <port> | dial off"),
        (f"dial {HOST} 123456789", "usage: dial <host> <port> | dial off"),
        ('dial a"b 80', "bad host name"),
        ("dial " + "h" * 80 + " 80", "host name too long"),
    ]:
        assert device.control(bad) == {"error": why, "command": bad}
    with device.connect(timeout=ANSWER) as sock:  # still listening
        sock.send("still")
        assert sock.receive(timeout=ANSWER) == "still"
