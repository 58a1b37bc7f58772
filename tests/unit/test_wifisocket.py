"""WiFiSocket over real loopback TCP against a small Python peer built from Session."""

from __future__ import annotations

import socket
import time

import pytest

from harness import (
    ConnectionLost,
    MessageTooLarge,
    ProtocolError,
    Timeout,
    WiFiSocket,
    WiFiSocketError,
)
from harness.wifisocket.frame import CloseCode, FrameType, Hello, encode_frame
from harness.wifisocket.session import PeerClosed
from tests.helpers.net import free_port
from tests.helpers.peer import LOCAL, WAIT, Peer, device, dial, echo

# --- round trips and topologies ------------------------------------------------------------


def test_round_trip_keeps_boundaries_and_types(pool, listener) -> None:
    port, fut = device(pool, listener, echo)
    with WiFiSocket(LOCAL, port, timeout=WAIT) as ws:
        assert ws.max_message == 4096
        assert ws.peer_address == (LOCAL, port)
        assert ws.local_address[0] == LOCAL
        assert ws.session_id != 0 and ws.peer_session_id != 0
        assert ws.session_id != ws.peer_session_id
        for msg in ["Hi", "", "héllo ✓ 🎉", b"", b"\x00\xffbin", bytearray(b"ba"),
                    memoryview(b"mv"), b"x" * 4096]:
            ws.send(msg)
            got = ws.receive()
            expected = msg if isinstance(msg, str) else bytes(msg)
            assert got == expected and type(got) is type(expected)
    closed = fut.result(WAIT)
    assert closed == PeerClosed(0, "")


def test_serve_accepts_a_device_that_dials_in(pool) -> None:
    port = free_port()
    fut = pool.submit(dial, port, echo)
    with WiFiSocket.serve(port, LOCAL, timeout=WAIT) as ws:
        assert ws.timeout == WAIT
        ws.send("from the host")
        assert ws.receive() == "from the host"
        assert ws.peer_address[0] == LOCAL and ws.local_address == (LOCAL, port)
    assert fut.result(WAIT) == PeerClosed(0, "")


def test_serve_without_timeout_uses_default_op_timeout(pool) -> None:
    port = free_port()
    fut = pool.submit(dial, port, echo)
    ws = WiFiSocket.serve(port, LOCAL)
    try:
        assert ws.timeout == 5.0
        ws.send(b"ok")
        assert ws.receive() == b"ok"
    finally:
        ws.close()
    fut.result(WAIT)


def test_accept_on_own_listener(pool, listener) -> None:
    port = listener.getsockname()[1]
    fut = pool.submit(dial, port, echo)
    with WiFiSocket.accept(listener, timeout=WAIT) as ws:
        ws.send("a")
        assert ws.receive() == "a"
    fut.result(WAIT)
    assert listener.fileno() != -1  # the caller's listener stays open


def test_serve_times_out_without_a_device() -> None:
    t0 = time.monotonic()
    with pytest.raises(Timeout) as info:
        WiFiSocket.serve(free_port(), LOCAL, timeout=0.2)
    assert isinstance(info.value, TimeoutError)
    assert 0.15 < time.monotonic() - t0 < WAIT


def test_connection_refused_is_connection_lost() -> None:
    with pytest.raises(ConnectionLost, match="cannot connect"):
        WiFiSocket(LOCAL, free_port(), timeout=WAIT)


def test_unknown_option_fails_before_connecting() -> None:
    with pytest.raises(TypeError):
        WiFiSocket(LOCAL, free_port(), timeout=WAIT, no_such_option=1)


# --- handshake failures -----------------------------------------------------------------


def test_no_hello_times_out_and_says_why(pool, listener) -> None:
    def silent(peer: Peer) -> list:
        while peer.pump():
            pass
        return peer.frames_received()

    port, fut = device(pool, listener, silent)
    t0 = time.monotonic()
    with pytest.raises(Timeout, match="HELLO"):
        WiFiSocket(LOCAL, port, timeout=0.3)
    assert time.monotonic() - t0 < WAIT
    frames = fut.result(WAIT)
    assert [f.type for f in frames] == [FrameType.HELLO, FrameType.CLOSE]
    assert frames[1].payload[0] == CloseCode.TIMEOUT


def test_bad_hello_version_is_protocol_error(pool, listener) -> None:
    def bad_hello(peer: Peer) -> list:
        payload = bytearray(Hello(4096, 8192, 0, 99).encode())
        payload[0] = 3
        peer.conn.sendall(encode_frame(FrameType.HELLO, bytes(payload)))
        while peer.pump():
            pass
        return peer.frames_received()

    port, fut = device(pool, listener, bad_hello)
    with pytest.raises(ProtocolError) as info:
        WiFiSocket(LOCAL, port, timeout=WAIT)
    assert info.value.code == CloseCode.VERSION
    frames = fut.result(WAIT)
    assert frames[-1].type == FrameType.CLOSE and frames[-1].payload[0] == CloseCode.VERSION


# --- errors on an open link ------------------------------------------------------------------


def test_message_too_large_keeps_the_link_usable(pool, listener) -> None:
    port, fut = device(pool, listener, echo)
    with WiFiSocket(LOCAL, port, timeout=WAIT) as ws:
        with pytest.raises(MessageTooLarge) as info:
            ws.send(b"x" * 4097)
        assert (info.value.size, info.value.limit, info.value.code) == (4097, 4096, 3)
        assert isinstance(info.value, ProtocolError)
        with pytest.raises(MessageTooLarge):
            ws.send("é" * 2049)  # 4098 bytes of UTF-8
        ws.send("still fine")
        assert ws.receive() == "still fine"
    fut.result(WAIT)


def test_peer_garbage_raises_protocol_error_and_we_send_close(pool, listener) -> None:
    def garbage(peer: Peer) -> list:
        peer.open()
        peer.send("before")
        peer.conn.sendall(b"GET / HTTP/1.1\r\n\r\n")
        while peer.pump():
            pass
        return peer.frames_received()

    port, fut = device(pool, listener, garbage)
    ws = WiFiSocket(LOCAL, port, timeout=WAIT)
    assert ws.receive() == "before"  # what arrived intact is still delivered
    with pytest.raises(ProtocolError) as info:
        ws.receive()
    assert info.value.code == CloseCode.PROTOCOL and "magic" in info.value.reason
    with pytest.raises(ProtocolError):
        ws.send("after")  # the link is gone for good
    ws.close()
    frames = fut.result(WAIT)
    assert frames[-1].type == FrameType.CLOSE and frames[-1].payload[0] == CloseCode.PROTOCOL


def test_invalid_utf8_text_from_peer(pool, listener) -> None:
    def bad_text(peer: Peer) -> None:
        peer.open()
        peer.conn.sendall(encode_frame(FrameType.TEXT, b"\xc3\x28", seq=1))
        while peer.pump():
            pass

    port, fut = device(pool, listener, bad_text)
    with WiFiSocket(LOCAL, port, timeout=WAIT) as ws, pytest.raises(ProtocolError) as info:
        ws.receive()
    assert info.value.code == CloseCode.INVALID_TEXT
    fut.result(WAIT)


def test_receive_timeout_then_link_still_works(pool, listener) -> None:
    port, fut = device(pool, listener, echo)
    with WiFiSocket(LOCAL, port, timeout=WAIT) as ws:
        t0 = time.monotonic()
        with pytest.raises(Timeout) as info:
            ws.receive(timeout=0.2)
        assert isinstance(info.value, TimeoutError)
        assert 0.15 < time.monotonic() - t0 < WAIT
        ws.send(b"later")
        assert ws.receive() == b"later"
    fut.result(WAIT)


def test_peer_close_normal_ends_iteration(pool, listener) -> None:
    def talk_and_close(peer: Peer) -> None:
        peer.open()
        for m in ("one", b"two", "three"):
            peer.send(m)
        peer.conn.sendall(peer.s.close(CloseCode.NORMAL, "done"))

    port, fut = device(pool, listener, talk_and_close)
    with WiFiSocket(LOCAL, port, timeout=WAIT) as ws:
        assert list(ws) == ["one", b"two", "three"]
        with pytest.raises(ConnectionLost, match="done"):
            ws.receive()
    fut.result(WAIT)


def test_peer_close_with_code_is_protocol_error(pool, listener) -> None:
    def replace(peer: Peer) -> None:
        peer.open()
        peer.conn.sendall(peer.s.close(CloseCode.REPLACED, "a newer connection"))

    port, fut = device(pool, listener, replace)
    with WiFiSocket(LOCAL, port, timeout=WAIT) as ws:
        with pytest.raises(ProtocolError, match="peer closed: a newer connection") as info:
            ws.receive()
        assert info.value.code == CloseCode.REPLACED
        with pytest.raises(ProtocolError):
            list(ws)  # iteration ends quietly only on a NORMAL close
    fut.result(WAIT)


def test_abrupt_tcp_close_is_connection_lost_without_reconnect(pool, listener) -> None:
    def vanish(peer: Peer) -> None:
        peer.open()
        peer.conn.close()

    port, fut = device(pool, listener, vanish)
    with WiFiSocket(LOCAL, port, timeout=WAIT, reconnect=False) as ws:
        fut.result(WAIT)
        with pytest.raises(ConnectionLost):
            ws.receive()
        with pytest.raises(ConnectionLost):
            ws.send("x")


def test_close_sends_close_normal_and_is_idempotent(pool, listener) -> None:
    port, fut = device(pool, listener, echo)
    ws = WiFiSocket(LOCAL, port, timeout=WAIT)
    ws.close()
    ws.close()
    assert fut.result(WAIT) == PeerClosed(0, "")
    with pytest.raises(ConnectionLost, match="closed"):
        ws.send("x")
    with pytest.raises(ConnectionLost, match="closed"):
        ws.receive()


def test_send_rejects_other_types(pool, listener) -> None:
    port, fut = device(pool, listener, echo)
    with WiFiSocket(LOCAL, port, timeout=WAIT) as ws, pytest.raises(TypeError):
        ws.send(42)  # type: ignore[arg-type]
    fut.result(WAIT)


# --- flow control ------------------------------------------------------------------------


def test_pipelined_sends_do_not_deadlock_with_a_small_window_echo(pool, listener) -> None:
    """Send much more than the peer's window and the socket buffers without receiving."""

    def small_echo(peer: Peer) -> PeerClosed | None:
        # Small kernel buffers: the peer blocks in sendall as soon as we stop reading.
        peer.conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        peer.conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        return echo(peer)

    port, fut = device(pool, listener, small_echo, max_message=1024, window=2048)
    msgs = [bytes([i % 256]) * (200 + i % 800) for i in range(3000)]
    with WiFiSocket(LOCAL, port, timeout=WAIT) as ws:
        for m in msgs:
            ws.send(m)
        got = [ws.receive() for _ in msgs]
    assert got == msgs
    assert fut.result(WAIT) == PeerClosed(0, "")


def test_window_full_send_times_out_without_sending(pool, listener) -> None:
    def reader_that_never_acks(peer: Peer) -> int:
        # Raw from the start (no Session reading our frames): nothing is ever acknowledged.
        peer.hello()
        n = 0
        try:
            while True:
                data = peer.conn.recv(65536)
                if not data:
                    return n
                n += len(data)
        except TimeoutError:
            return n

    port, fut = device(pool, listener, reader_that_never_acks, max_message=1000, window=2040)
    with WiFiSocket(LOCAL, port, timeout=WAIT) as ws:
        ws.send(b"a" * 1000)
        ws.send(b"b" * 1000)  # 2040 bytes in flight: the window is full
        t0 = time.monotonic()
        with pytest.raises(Timeout, match="window"):
            ws.send(b"c", timeout=0.2)
        assert 0.15 < time.monotonic() - t0 < WAIT
    assert fut.result(WAIT) >= 2040


# --- keepalive ------------------------------------------------------------------------------


def test_idle_socket_answers_pings(pool, listener) -> None:
    def pinger(peer: Peer) -> float:
        peer.open()
        t0 = time.monotonic()
        peer.conn.sendall(encode_frame(FrameType.PING, b"\x01" * 8))
        while True:
            assert peer.pump()
            for f in peer.frames_received():
                if f.type == FrameType.PONG and f.payload == b"\x01" * 8:
                    return time.monotonic() - t0

    port, fut = device(pool, listener, pinger)
    with WiFiSocket(LOCAL, port, timeout=WAIT, keepalive_ms=0):
        # The application does nothing: the keepalive thread must answer.
        assert fut.result(WAIT) < WAIT


def test_idle_socket_pings_and_measures_rtt(pool, listener) -> None:
    port, fut = device(pool, listener, echo)
    with WiFiSocket(LOCAL, port, timeout=WAIT, keepalive_ms=30) as ws:
        assert ws.rtt is None
        deadline = time.monotonic() + WAIT
        while ws.rtt is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ws.rtt is not None and 0 <= ws.rtt < WAIT
    fut.result(WAIT)


def test_silent_peer_is_declared_dead(pool, listener) -> None:
    def mute(peer: Peer) -> list:
        # Not even PONGs: read raw bytes and never feed the session.
        peer.open()
        while True:
            data = peer.conn.recv(65536)
            if not data:
                return peer.frames_received()
            peer.raw_log += data

    port, fut = device(pool, listener, mute)
    with WiFiSocket(LOCAL, port, timeout=WAIT, keepalive_ms=50, dead_after=0.3,
                    reconnect=False) as ws:
        t0 = time.monotonic()
        with pytest.raises(ConnectionLost, match="silent"):
            ws.receive(timeout=WAIT)
        assert 0.25 < time.monotonic() - t0 < WAIT
    frames = fut.result(WAIT)
    assert FrameType.PING in [f.type for f in frames]
    assert frames[-1].type == FrameType.CLOSE and frames[-1].payload[0] == CloseCode.TIMEOUT


def test_messages_arriving_while_idle_are_acked_by_the_keepalive_thread(pool, listener) -> None:
    def burst(peer: Peer) -> int:
        peer.open()
        # 6 messages of 2000 bytes need acks to fit the host's window of 8192.
        for i in range(6):
            while not peer.s.can_send(2000):
                assert peer.pump()
            peer.send(bytes([i]) * 2000)
        return peer.s.unacked_bytes

    port, fut = device(pool, listener, burst)
    with WiFiSocket(LOCAL, port, timeout=WAIT, max_message=2000, window=8192) as ws:
        fut.result(WAIT)  # the peer got its acks while the app was not calling anything
        assert [ws.receive() for _ in range(6)] == [bytes([i]) * 2000 for i in range(6)]


def test_errors_are_wifisocket_errors() -> None:
    for cls in (ConnectionLost, ProtocolError, MessageTooLarge, Timeout):
        assert issubclass(cls, WiFiSocketError)
