"""Memory of the device under hostile traffic: nothing allocated after setup, no heap lost.

10,000 short TCP connections to the echo service, a few at a time, each carrying one kind
of malformed input (garbage, bad CRC, lies about lengths, wrong version, data before HELLO,
sequence gaps, bad acks, half frames, resets); then a storm of resets mid-frame. Before and
after: the free heap the device reports (``info["heap"]``) and, on the twin, the shim's
count of allocations (``info["allocs"]``, when the test firmware reports it) must be
identical, and the device must still answer and must not have rebooted.

On a keyed device (the plugin provisions a key by default) the strangers have no key: a
version 1 HELLO, or a version 2 HELLO followed by a forged AUTH, each refused with `AUTH`,
while the harness's authenticated link stays up through the whole flood, is never evicted
or replaced, and the console stays at a few lines per 10 s (docs/console.md).

On the twin ``heap`` is the simulated heap (``firmware/sim/sim_alloc.cpp``): 52 KiB minus
what the firmware's operator new and malloc/calloc/realloc hold and lwIP's PCBs of its open
connections, in umm_malloc's 8-byte blocks, so the two figures say the same thing on a desk
board and in CI. What the host's libc allocates for itself is not in it (docs/twin.md,
"heap ceiling").
"""

from __future__ import annotations

import os
import socket
import struct
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from harness.device.base import Device
from harness.errors import ProtocolError
from harness.wifisocket.frame import (
    FRAME_OVERHEAD,
    HELLO_SIZE,
    HELLO_V2_SIZE,
    KEYED_VERSION,
    CloseCode,
    FrameDecoder,
    FrameType,
    Hello,
    encode_frame,
)

pytestmark = pytest.mark.twin

CONNECTIONS = 10_000
IN_FLIGHT = 4  # the device's connection slots: most connections get served, a few refused
CONNECT_TIMEOUT = 5.0
CLOSE_TIMEOUT = 5.0  # the device answers bad input at once; its handshake bound is 2 s
CONSOLE_TIMEOUT = 10.0


def _hello(version: int = 1) -> bytes:
    hello = bytearray(Hello(max_message=1024, window=4096, keepalive_ms=0,
                            session=int.from_bytes(os.urandom(8), "big") | 1).encode())
    hello[0] = version
    nonce = os.urandom(16) if version == KEYED_VERSION else b""
    return encode_frame(FrameType.HELLO, bytes(hello) + nonce)


def _header(ftype: int, length: int, seq: int = 1) -> bytes:
    return b"WS" + struct.pack(">BBIII", ftype, 0, length, seq, 0)


def _bad_crc(frame: bytes) -> bytes:
    return frame[:-4] + struct.pack(">I", zlib.crc32(frame[:-4]) ^ 0x5A5A)


@dataclass(frozen=True)
class Kind:
    """One way of being wrong. ``code``: the CLOSE the device must answer with (None: the
    client hangs up itself, without waiting); ``reset``: hang up with a TCP RST."""

    name: str
    payload: bytes
    code: int | None
    reset: bool = False
    #: Sent once the device's HELLO is in (a forged AUTH).
    answer: bytes = b""


def _kinds(keyed: bool = False) -> list[Kind]:
    if keyed:
        return _strangers()
    return [
        Kind("garbage", b"GET / HTTP/1.1\r\n\r\n", CloseCode.PROTOCOL),
        Kind("bad-crc", _bad_crc(_hello()), CloseCode.BAD_CRC),
        Kind("huge-length", _header(FrameType.BINARY, 0x7FFFFFF0), CloseCode.TOO_LARGE),
        Kind("unknown-type", _header(0x42, 0, seq=0), CloseCode.UNKNOWN_TYPE),
        Kind("data-first", encode_frame(FrameType.TEXT, b"early", seq=1), CloseCode.PROTOCOL),
        Kind("version-9", _hello(version=9), CloseCode.VERSION),
        Kind("hello-garbage", _hello() + b"\x00junk", CloseCode.PROTOCOL),
        Kind("seq-gap", _hello() + encode_frame(FrameType.BINARY, b"x", seq=5),
             CloseCode.SEQUENCE),
        Kind("ack-unsent", _hello() + encode_frame(FrameType.ACK, ack=99), CloseCode.PROTOCOL),
        Kind("half-header", b"WS\x01\x00\x00", None),
        Kind("silent", b"", None),
        Kind("half-hello-reset", _hello()[:30], None, reset=True),
    ]


def _strangers() -> list[Kind]:
    """What a keyed device meets from peers without its key (docs/protocol.md §6)."""
    forged = encode_frame(FrameType.AUTH, os.urandom(32))
    return [
        Kind("no-key", _hello(), CloseCode.AUTH),
        Kind("wrong-key", _hello(KEYED_VERSION), CloseCode.AUTH, answer=forged),
        Kind("data-instead-of-auth",
             _hello(KEYED_VERSION), CloseCode.PROTOCOL,
             answer=encode_frame(FrameType.TEXT, b"no proof", seq=1)),
        Kind("garbage", b"GET / HTTP/1.1\r\n\r\n", CloseCode.PROTOCOL),
        Kind("bad-crc", _bad_crc(_hello(KEYED_VERSION)), CloseCode.BAD_CRC),
        Kind("huge-length", _header(FrameType.BINARY, 0x7FFFFFF0), CloseCode.TOO_LARGE),
        Kind("data-first", encode_frame(FrameType.TEXT, b"early", seq=1), CloseCode.PROTOCOL),
        Kind("version-9", _hello(version=9), CloseCode.VERSION),
        Kind("half-header", b"WS\x01\x00\x00", None),
        Kind("hello-then-reset", _hello(KEYED_VERSION), None, reset=True),
    ]


def _close(data: bytes) -> tuple[int | None, str]:
    """Code and reason of the device's CLOSE among the frames in ``data`` (None, "")."""
    frames, _ = FrameDecoder(1 << 16).decode(data)
    for frame in frames:
        if frame.type == FrameType.CLOSE and frame.payload:
            return frame.payload[0], frame.payload[1:].decode("utf-8", "replace")
    return None, ""


def _one(host: str, port: int, kind: Kind) -> str:
    """One connection. Returns "served" (the expected CLOSE came), "hung-up" (we closed
    first, on purpose), "refused" (dropped at once: no free slot), "evicted" (closed
    unread to make room for a newer connection, docs/protocol.md §5), or "wrong:<details>".
    """
    try:
        sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        return f"wrong:connect failed: {exc}"
    try:
        if kind.reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        try:
            if kind.payload:
                sock.sendall(kind.payload)
            if kind.answer:
                sock.settimeout(CLOSE_TIMEOUT)
                if not sock.recv(FRAME_OVERHEAD + HELLO_V2_SIZE, socket.MSG_WAITALL):
                    return "refused"
                sock.sendall(kind.answer)
        except (BrokenPipeError, ConnectionResetError):
            return "refused"
        except TimeoutError:
            return f"wrong:{kind.name}: no HELLO within {CLOSE_TIMEOUT} s"
        if kind.code is None:
            return "hung-up"
        got = bytearray()
        deadline = time.monotonic() + CLOSE_TIMEOUT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return f"wrong:{kind.name}: no close within {CLOSE_TIMEOUT} s"
            sock.settimeout(left)
            try:
                chunk = sock.recv(4096)
            except ConnectionResetError:
                chunk = b""
            except TimeoutError:
                continue
            if not chunk:
                break
            got += chunk
        if not got:
            return "refused"  # accepted and dropped at once: every slot was busy
        code, reason = _close(bytes(got))
        if code == kind.code:
            return "served"
        if code == CloseCode.TIMEOUT and reason.startswith("evicted"):
            return "evicted"
        return f"wrong:{kind.name}: close code {code} ({reason!r}), expected {kind.code}"
    finally:
        sock.close()


def _still_serves(device: Device) -> None:
    with device.connect() as sock:
        sock.send(b"\x01still here")
        assert sock.receive(timeout=5) == b"\x01still here"


def _hammer(device: Device, count: int) -> Counter[str]:
    kinds = _kinds(device.key is not None)
    with ThreadPoolExecutor(max_workers=IN_FLIGHT) as pool:
        results = pool.map(lambda i: _one(device.ip, device.port, kinds[i % len(kinds)]),
                           range(count))
        return Counter(results)


def test_heap_and_allocations_unchanged_after_10000_malformed_connections(
    device: Device,
) -> None:
    # One round first: anything the firmware sets up lazily happens before the baseline.
    kinds = _kinds(device.key is not None)
    warmup = _hammer(device, 3 * len(kinds))
    assert not [r for r in warmup if r.startswith("wrong:")], warmup
    _still_serves(device)
    before = device.info()

    # On a keyed device the harness's own authenticated link lives through the flood.
    owner = device.connect() if device.key is not None else None
    mark = device.console.mark()
    t0 = time.monotonic()
    outcome = _hammer(device, CONNECTIONS)
    elapsed = time.monotonic() - t0
    # What the strangers caused (none of them closes NORMAL; the harness's own links do).
    lines = [ln for ln in device.console.since(mark)
             if ln.text.startswith("WS ") and not ln.text.startswith("WS PEER-CLOSE code=0 ")]
    if owner is not None:
        with owner:
            for i in range(3):
                owner.send(f"still mine {i}")
            assert [owner.receive(timeout=5) for _ in range(3)] == [
                f"still mine {i}" for i in range(3)]
            assert owner.reconnects == 0
        # Rate-limited: at most 6 distinct lines and one summary per 10 s window.
        assert len(lines) <= 7 * (int(elapsed // 10) + 2), "\n".join(ln.text for ln in lines)

    wrong = {r: n for r, n in outcome.items() if r.startswith("wrong:")}
    assert not wrong, wrong
    assert sum(outcome.values()) == CONNECTIONS
    # Most connections were really parsed, not just refused for want of a slot.
    waiting = sum(1 for i in range(CONNECTIONS) if kinds[i % len(kinds)].code is not None)
    assert outcome["served"] >= waiting // 2, outcome

    _still_serves(device)
    after = device.info()
    print(f"\n{CONNECTIONS} malformed connections in {elapsed:.1f} s: {dict(outcome)}; "
          f"{len(lines)} console lines; "
          f"heap {before['heap']} -> {after['heap']}, "
          f"allocs {before.get('allocs')} -> {after.get('allocs')}")
    assert after["reset_reason"] == before["reset_reason"]
    assert after["uptime_ms"] >= before["uptime_ms"]  # no reboot in between
    assert after["heap"] == before["heap"]
    if "allocs" in before:
        assert after["allocs"] == before["allocs"]
    _no_sanitizer_report(device)


def _no_sanitizer_report(device: Device) -> None:
    """With --sanitize, ASan/UBSan write to the firmware's stderr: there must be nothing.

    Only where the backend offers the firmware's stderr (``stderr_tail()``); an ASan abort
    also kills the firmware, which fails the checks above anyway.
    """
    tail = getattr(device, "stderr_tail", None)
    if not callable(tail):
        return
    lines = [str(line) for line in tail()]
    reports = [ln for ln in lines if "runtime error:" in ln or "Sanitizer" in ln]
    assert not reports, "\n".join(lines[-40:])


def test_no_allocation_after_setup(device: Device) -> None:
    """The shim counts every operator new and malloc/calloc/realloc of the firmware; the test
    firmware reports the count in info."""
    first = device.info()
    if "allocs" not in first:
        pytest.skip("the test firmware's info has no 'allocs' field (the shim's "
                    "esp_hil_sim_alloc_count()): allocation-free operation is only checked "
                    "through the heap figure")
    # Valid traffic too: echo round trips of every size class, text and binary.
    with device.connect() as sock:
        for size in (0, 1, 100, 1000, device.max_message):
            payload = bytes((i * 7) & 0xFF for i in range(size))
            sock.send(payload)
            assert sock.receive(timeout=5) == payload
            sock.send("é" * (size // 2))
            assert sock.receive(timeout=5) == "é" * (size // 2)
    _hammer(device, 200)
    second = device.info()
    assert second["allocs"] == first["allocs"]
    assert second["heap"] == first["heap"]


# One host session redialling: the device answers its HELLO every time (a stranger's would
# be refused while the session is held, docs/protocol.md §2).
def _storm_hello(keyed: bool) -> bytes:
    if keyed:  # a fresh nonce each time: an unproven v2 HELLO is still answered with HELLO
        hello = Hello(1024, 4096, 0, 0x5707, version=KEYED_VERSION, nonce=os.urandom(16))
        return encode_frame(FrameType.HELLO, hello.encode())
    return encode_frame(FrameType.HELLO, Hello(1024, 4096, 0, 0x5707).encode())


def _reset_after_device_hello(host: str, port: int, keyed: bool) -> str:
    """HELLO and half a frame, wait for the device's HELLO (so it has taken the connection),
    then RST."""
    try:
        sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        return f"wrong:connect failed: {exc}"
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.sendall(_storm_hello(keyed) + encode_frame(FrameType.BINARY, b"x" * 32, seq=1)[:10])
        got = b""
        while len(got) < FRAME_OVERHEAD + (HELLO_V2_SIZE if keyed else HELLO_SIZE):
            chunk = sock.recv(4096)  # the socket's timeout bounds the wait
            if not chunk:
                return "refused" if not got else "evicted"
            got += chunk
        return "reset"
    except (ConnectionResetError, BrokenPipeError):
        return "refused"
    except TimeoutError:
        return "wrong:no HELLO from the device"
    finally:
        sock.close()


def test_reset_storm_is_logged_and_leaks_nothing(device: Device) -> None:
    """500 connections cut with RST in the middle of a frame: logged as lost, nothing leaks."""
    before = device.info()
    mark = device.console.mark()
    with ThreadPoolExecutor(max_workers=IN_FLIGHT) as pool:
        keyed = device.key is not None
        results = Counter(pool.map(
            lambda _: _reset_after_device_hello(device.ip, device.port, keyed), range(500)))
    assert set(results) <= {"reset", "refused", "evicted"}, results
    assert results["reset"] >= 250, results
    # The storm's session ends with a CLOSE NORMAL, so the next host need not wait for it.
    with socket.create_connection((device.ip, device.port), timeout=CONNECT_TIMEOUT) as sock:
        sock.sendall(_storm_hello(keyed))
        assert FrameDecoder(1 << 16).feed(sock.recv(FRAME_OVERHEAD + HELLO_V2_SIZE))
        sock.sendall(encode_frame(FrameType.CLOSE, bytes([CloseCode.NORMAL])))
    _still_serves(device)
    after = device.info()
    assert after["heap"] == before["heap"]
    if "allocs" in before:
        assert after["allocs"] == before["allocs"]
    # The device saw the resets: its console (the console of the device we talk to) says
    # so, and it kept serving. Console lines may lag a little on a busy machine.
    # Lines about connections that never completed a handshake are rate-limited (one per
    # distinct line per 10 s window, docs/console.md): after an earlier flood in the same
    # window the storm shows as the window's summary line instead.
    assert device.console.expect(r"^WS (LOST|\d+ more closes)", timeout=CONSOLE_TIMEOUT + 10,
                                 since=mark)


def test_decoder_of_this_test_reads_device_closes() -> None:
    """Guard for the helper above: a CLOSE is found, garbage is not taken for one."""
    close = encode_frame(FrameType.CLOSE, bytes([CloseCode.BAD_CRC]) + b"CRC mismatch")
    assert _close(_hello() + close) == (CloseCode.BAD_CRC, "CRC mismatch")
    assert _close(b"") == (None, "")
    assert _close(b"junk") == (None, "")
    with pytest.raises(ProtocolError):
        FrameDecoder(16).feed(b"junk")
