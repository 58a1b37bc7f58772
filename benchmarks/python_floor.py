#!/usr/bin/env python3
"""How close can a Python host come to raw TCP on the echo? Three clients, one twin.

In alternating blocks of round trips, against one keyless twin:

* ``raw``: the bench's baseline, a TCP socket to the twin's raw echo port;
* ``floor``: the least Python that speaks the protocol: a HELLO each way, then per message
  one header pack, two CRC-32s, a send, a ``poll``, a ``recv_into``, one header unpack and
  a CRC check. No session state, no resend buffer, no timers, no locks: what any Python
  implementation of the protocol costs at least;
* ``wifisocket``: :class:`harness.WiFiSocket`, ``send`` then ``receive``.

Prints each client's median round trip (p50 of each block, then the median of the
blocks), its host CPU per round trip (this thread) and raw / client, the ratio of
``esp-hil bench``. An echo target above the floor's ratio is out of reach of any Python
host: it needs the per-message path in compiled code.

    python benchmarks/python_floor.py [--size 64] [--blocks 10] [--block 2000]
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import statistics
import struct
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.backends import DeviceOptions, open_device
from harness.bench import raw_port_of
from harness.wifisocket.frame import FRAME_OVERHEAD, CloseCode, FrameType, Hello, encode_frame

_HEADER = struct.Struct(">2sBBIII")
_CRC = struct.Struct(">I")
TIMEOUT = 5.0

Block = Callable[[bytes, int], list[int]]


def _recv_frame(sock: socket.socket) -> tuple[int, bytes]:
    """One whole frame from a blocking socket: (type, payload)."""
    head = sock.recv(16, socket.MSG_WAITALL)
    _, ftype, _, length, _, _ = _HEADER.unpack(head)
    rest = sock.recv(length + 4, socket.MSG_WAITALL)
    return ftype, rest[:length]


def floor_block(ip: str, port: int) -> Block:
    """Round trips by hand on a fresh connection (closed again after the block)."""

    def run(payload: bytes, count: int) -> list[int]:
        sock = socket.create_connection((ip, port), timeout=TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        hello = Hello(max_message=1 << 16, window=1 << 20, keepalive_ms=0, session=7)
        sock.sendall(encode_frame(FrameType.HELLO, hello.encode()))
        ftype, body = _recv_frame(sock)
        if ftype != FrameType.HELLO:
            raise SystemExit(f"the twin answered a HELLO with frame type {ftype}: {body[1:]!r}")
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        sock.setblocking(False)
        buf = bytearray(65536)
        view = memoryview(buf)
        size = len(payload)
        delivered = 0
        samples = []
        clock = time.perf_counter_ns
        for seq in range(1, count + 1):
            t0 = clock()
            header = _HEADER.pack(b"WS", FrameType.BINARY, 0, size, seq, delivered)
            crc = zlib.crc32(payload, zlib.crc32(header))
            sock.send(b"".join((header, payload, _CRC.pack(crc))))
            got = 0
            while got < FRAME_OVERHEAD + size:  # a 1 KiB reply may come in two reads
                poller.poll(TIMEOUT * 1000)
                got += sock.recv_into(view[got:])
            _, ftype, _, length, rseq, _ = _HEADER.unpack_from(buf)
            stop = 16 + length
            if zlib.crc32(view[:stop]) != _CRC.unpack_from(buf, stop)[0] or rseq != delivered + 1:
                raise SystemExit(f"floor: unexpected reply (type {ftype}, seq {rseq})")
            delivered = rseq
            bytes(view[16:stop])  # the message, as a client gets it
            samples.append(clock() - t0)
        sock.setblocking(True)
        sock.sendall(encode_frame(FrameType.CLOSE, bytes((CloseCode.NORMAL,)), ack=delivered))
        sock.close()
        return samples

    return run


def raw_block(sock: socket.socket) -> Block:
    def run(payload: bytes, count: int) -> list[int]:
        view = memoryview(bytearray(len(payload)))
        samples = []
        clock = time.perf_counter_ns
        for _ in range(count):
            t0 = clock()
            sock.sendall(payload)
            got = 0
            while got < len(payload):
                got += sock.recv_into(view[got:])
            samples.append(clock() - t0)
        return samples

    return run


def wifisocket_block(dev: Any) -> Block:
    def run(payload: bytes, count: int) -> list[int]:
        samples = []
        clock = time.perf_counter_ns
        with dev.connect(timeout=TIMEOUT) as ws:
            for _ in range(count):
                t0 = clock()
                ws.send(payload)
                ws.receive()
                samples.append(clock() - t0)
        return samples

    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=64, help="message size in bytes (default 64)")
    ap.add_argument("--blocks", type=int, default=10, help="blocks per client (default 10)")
    ap.add_argument("--block", type=int, default=2000, help="round trips per block (2000)")
    args = ap.parse_args()
    payload = bytes(i & 0xFF for i in range(args.size))
    with open_device(DeviceOptions(spec="sim", link_key="none")) as dev:
        if args.size > dev.max_message:
            ap.error(f"--size: the twin's max_message is {dev.max_message}")
        dev.control("echo")
        dev.control("raw echo")
        raw = socket.create_connection((dev.ip, raw_port_of(dev)), timeout=TIMEOUT)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        clients = {"raw": raw_block(raw), "floor": floor_block(dev.ip, dev.port),
                   "wifisocket": wifisocket_block(dev)}
        p50: dict[str, list[float]] = {name: [] for name in clients}
        cpu: dict[str, list[float]] = {name: [] for name in clients}
        for run in clients.values():
            run(payload, args.block // 4)  # warm up
        for _ in range(args.blocks):
            for name, run in clients.items():
                c0 = time.thread_time()
                samples = run(payload, args.block)
                cpu[name].append((time.thread_time() - c0) / args.block * 1e6)
                p50[name].append(statistics.median(samples) / 1000)
        raw.close()
    med = statistics.median
    print(f"echo {args.size} B, {args.blocks} blocks of {args.block} round trips each, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name in clients:
        ratio = med([r / c for r, c in zip(p50["raw"], p50[name], strict=True)])
        print(f"  {name:10s} p50 {med(p50[name]):6.1f} us   host CPU {med(cpu[name]):5.1f} us"
              f"   raw/{name} p50 x{ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
