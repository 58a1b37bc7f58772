"""Throughput and latency measurements against the esp-hil test firmware.

Each measurement runs between the same two endpoints twice: once over the WiFiSocket
protocol (the echo service on the device, switched to sink or source through the control
service) and once over plain TCP (the firmware's raw port, same modes, no framing). The
device counts what it sends and receives (``stats``), so every figure is cross-checked
from both ends: a transfer whose counts disagree raises :class:`BenchError`.

The control commands are documented in ``docs/console.md``. Nothing here asserts a speed;
callers compare the two services of the same run.
"""

from __future__ import annotations

import json
import math
import os
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.device.errors import DeviceError
from harness.wifisocket import WiFiSocket

#: The two services a figure is measured on.
OURS = "wifisocket"
RAW = "raw"

#: Directions of a one-way transfer: host to device (the device sinks) and back (it sources).
UP = "up"
DOWN = "down"

#: How often the host asks the device whether a transfer has fully arrived.
_STATS_POLL = 0.002
#: Bound on the wait for the last bytes of a transfer after the host is done with it.
_DRAIN_TIMEOUT = 30.0
#: Default bound on every single receive.
IO_TIMEOUT = 10.0


class BenchError(DeviceError):
    """A measurement could not be made, or the two ends disagree about what was moved."""


def source_message(index: int, size: int) -> bytes:
    """The message the device's source sends as number ``index`` (docs/console.md).

    Byte ``i`` is ``i & 0xFF``, except bytes 0..3 of a message of 4 bytes or more: the
    index, big-endian.
    """
    body = bytes(i & 0xFF for i in range(size))
    if size < 4:
        return body
    return (index & 0xFFFFFFFF).to_bytes(4, "big") + body[4:]


# --- results -------------------------------------------------------------------------------


@dataclass
class Transfer:
    """One one-way stream: ``size``-byte messages (raw: ``size``-byte writes/reads)."""

    service: str
    direction: str
    size: int
    #: Messages moved (for raw: the byte count divided by ``size``).
    messages: int
    nbytes: int
    #: Host clock: from the first byte sent (up) or the request to send (down) to the
    #: moment the receiver had everything.
    seconds: float
    #: The device's own counters for the same stream.
    device_messages: int
    device_bytes: int
    #: The device's clock: between its first and last message (raw: chunk) of the stream.
    device_seconds: float

    @property
    def mb_per_s(self) -> float:
        """Throughput in MB/s (10^6 bytes per second), host clock."""
        return self.nbytes / self.seconds / 1e6 if self.seconds > 0 else 0.0

    @property
    def msg_per_s(self) -> float:
        """Messages per second (raw: ``size``-byte units per second), host clock."""
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    @property
    def device_mb_per_s(self) -> float:
        """Throughput by the device's clock (0 if it saw too little to time)."""
        return self.device_bytes / self.device_seconds / 1e6 if self.device_seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Fields and derived figures, for JSON."""
        out = asdict(self)
        out.update(
            mb_per_s=self.mb_per_s,
            msg_per_s=self.msg_per_s,
            device_mb_per_s=self.device_mb_per_s,
        )
        return out


@dataclass
class Echo:
    """Round trips of ``size``-byte messages, one at a time."""

    service: str
    size: int
    count: int
    seconds: float
    #: Every round-trip time, in seconds, in the order measured.
    samples: list[float] = field(repr=False, default_factory=list)
    #: Round trips the device counted (echo mode), for the cross-check.
    device_messages: int = 0

    def percentile(self, q: float) -> float:
        """The ``q``-quantile (0..1) of the round-trip times, nearest rank, in seconds."""
        if not self.samples:
            return 0.0
        ordered = sorted(self.samples)
        # Nearest rank: the smallest sample with at least q of all samples at or below it.
        rank = math.ceil(q * len(ordered) - 1e-9)
        return ordered[min(len(ordered), max(1, rank)) - 1]

    @property
    def p50(self) -> float:
        """Median round trip (s)."""
        return self.percentile(0.50)

    @property
    def p99(self) -> float:
        """99th percentile round trip (s)."""
        return self.percentile(0.99)

    @property
    def per_s(self) -> float:
        """Round trips per second (closed loop: one message in flight)."""
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Summary figures (not the samples), for JSON."""
        return {
            "service": self.service,
            "size": self.size,
            "count": self.count,
            "seconds": self.seconds,
            "p50_us": self.p50 * 1e6,
            "p99_us": self.p99 * 1e6,
            "mean_us": statistics.fmean(self.samples) * 1e6 if self.samples else 0.0,
            "per_s": self.per_s,
            "device_messages": self.device_messages,
        }


# --- talking to the firmware ---------------------------------------------------------------


class Control:
    """A persistent link to the control service (one TEXT request, one JSON reply)."""

    def __init__(
        self, host: str, port: int, *, timeout: float = IO_TIMEOUT, key: bytes | None = None
    ) -> None:
        self.timeout = timeout
        self._sock = WiFiSocket(host, port, timeout=timeout, key=key)

    def command(self, cmd: str) -> dict[str, Any]:
        """Send ``cmd``; return the JSON reply. Raises :class:`BenchError` on an error reply."""
        self._sock.send(cmd)
        reply = self._sock.receive(timeout=self.timeout)
        if not isinstance(reply, str):
            raise BenchError(f"control service answered {cmd!r} with binary data")
        data: dict[str, Any] = json.loads(reply)
        if "error" in data:
            raise BenchError(f"control service refused {cmd!r}: {data['error']}")
        return data

    def stats(self) -> dict[str, Any]:
        """The device's counters (``stats``)."""
        return self.command("stats")

    def wait_stats(
        self, done: Callable[[dict[str, Any]], bool], timeout: float, what: str
    ) -> dict[str, Any]:
        """Poll ``stats`` until ``done(stats)``; BenchError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.stats()
            if done(st):
                return st
            if time.monotonic() >= deadline:
                raise BenchError(f"{what}: the device did not get there within {timeout:.0f} s: "
                                 f"{json.dumps(st)}")
            time.sleep(_STATS_POLL)

    def close(self) -> None:
        """Close the control link."""
        self._sock.close()


def _device_seconds(counters: dict[str, Any]) -> float:
    us = int(counters.get("elapsed_us", 0))
    ms = int(counters.get("elapsed_ms", 0))
    # micros() wraps after 71.6 minutes; millis() then still tells the truth.
    if ms > 4_000_000:
        return ms / 1e3
    return us / 1e6


class Bench:
    """Measurements on one device: a WiFiSocket link to its echo service, a raw TCP
    connection to its raw port and a control link.

    Args:
        host: the device's address.
        echo_port, ctrl_port, raw_port: its services (READY line: ``port``, ``ctrl``, ``raw``).
        echo_address, raw_address: where to reach the echo service and the raw port instead
            of ``(host, port)``, e.g. a :mod:`harness.netem` proxy that shapes the link (the
            control service is always reached directly: it only steers and counts).
        link: an already connected WiFiSocket to the echo service (the bench opens one if
            None, and then closes it).
        timeout: bound on every single wait for the device.
        key: the device's link key (``device.key``), None for keyless links.
    """

    def __init__(
        self,
        host: str,
        echo_port: int,
        ctrl_port: int,
        raw_port: int,
        *,
        link: WiFiSocket | None = None,
        timeout: float = IO_TIMEOUT,
        echo_address: tuple[str, int] | None = None,
        raw_address: tuple[str, int] | None = None,
        key: bytes | None = None,
    ) -> None:
        self.host = host
        self.timeout = timeout
        self.control = Control(host, ctrl_port, timeout=timeout, key=key)
        self._own_link = link is None
        self.link: WiFiSocket | None = None
        self.raw: socket.socket | None = None
        try:
            echo_host, echo_at = echo_address or (host, echo_port)
            self.link = link if link is not None else WiFiSocket(echo_host, echo_at,
                                                                 timeout=timeout, key=key)
            self.raw = socket.create_connection(raw_address or (host, raw_port),
                                                timeout=timeout)
            self.raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.control.command("echo")
            self.control.command("raw echo")
        except BaseException:
            self.close()
            raise
        self.max_message = self.link.max_message
        #: The raw port's buffer: its source writes min(size, this) bytes per write().
        self.raw_buffer = int(self.control.stats()["raw"].get("buffer", 1460))
        self._rbuf = bytearray(1 << 20)

    def close(self) -> None:
        """Put the services back to echo (best effort) and close the connections."""
        try:
            self.control.command("echo")
            self.control.command("raw echo")
        except Exception:
            pass
        if self.raw is not None:
            self.raw.close()
        if self.link is not None and self._own_link:
            self.link.close()
        self.control.close()

    def __enter__(self) -> Bench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- host -> device ------------------------------------------------------------------

    def up(self, service: str, size: int, *, duration: float | None = None,
           count: int | None = None) -> Transfer:
        """The host sends ``size``-byte messages for ``duration`` s (or ``count`` of them);
        the device sinks them. Timed until the device has counted the last byte."""
        payload, limit, end_at = self._begin(service, "sink", size, duration, count)
        raw = service == RAW
        send = self._raw().sendall if raw else self._link().send
        n = 0
        t0 = time.perf_counter()
        while n < limit:
            send(payload)
            n += 1
            if not n & 15 and time.perf_counter() >= end_at:
                break
        nbytes = n * size
        key = "raw" if raw else None

        def arrived(st: dict[str, Any]) -> bool:
            counters = st["raw"] if key else st
            return int(counters["bytes"]) >= nbytes

        st = self.control.wait_stats(arrived, _DRAIN_TIMEOUT + (duration or 0.0), "sink")
        t1 = time.perf_counter()
        counters = st["raw"] if raw else st
        result = Transfer(
            service=service, direction=UP, size=size, messages=n, nbytes=nbytes,
            seconds=t1 - t0,
            device_messages=int(counters["chunks" if raw else "messages"]),
            device_bytes=int(counters["bytes"]),
            device_seconds=_device_seconds(counters),
        )
        self._cross_check(result)
        self.control.command("raw echo" if raw else "echo")
        return result

    # --- device -> host ------------------------------------------------------------------

    def down(self, service: str, size: int, *, count: int, verify: bool = False) -> Transfer:
        """The device sends ``count`` messages of ``size`` bytes (raw: ``count * size``
        bytes) as fast as the link takes them; timed from the request to the last byte in.

        ``verify`` checks every message against :func:`source_message` (slower; for tests).
        """
        self._check_size(size)
        if count < 1:
            raise ValueError("count must be at least 1")
        if service == RAW:
            result = self._down_raw(size, count)
        else:
            result = self._down_ours(size, count, verify)
        self._cross_check(result)
        return result

    def _down_ours(self, size: int, count: int, verify: bool) -> Transfer:
        link = self._link()
        receive = link.receive
        timeout = self.timeout
        nbytes = 0
        last: str | bytes = b""
        t0 = time.perf_counter()
        self.control.command(f"source {count} {size}")
        for i in range(count):
            last = receive(timeout=timeout)
            nbytes += len(last)
            if verify and last != source_message(i, size):
                raise BenchError(f"source message {i} of {count} is not what the device sent")
        t1 = time.perf_counter()
        if not isinstance(last, bytes):
            raise BenchError("the source sent TEXT; it sends BINARY")
        if size >= 4 and int.from_bytes(last[:4], "big") != (count - 1) & 0xFFFFFFFF:
            raise BenchError("the last source message has the wrong index: messages lost")
        st = self.control.wait_stats(lambda s: int(s["source_left"]) == 0, timeout, "source")
        self.control.command("echo")
        return Transfer(
            service=OURS, direction=DOWN, size=size, messages=count, nbytes=nbytes,
            seconds=t1 - t0,
            device_messages=int(st["messages"]), device_bytes=int(st["bytes"]),
            device_seconds=_device_seconds(st),
        )

    def _down_raw(self, size: int, count: int) -> Transfer:
        sock = self._raw()
        want = size * count
        buf = self._rbuf
        got = 0
        t0 = time.perf_counter()
        # One write() per message, as a sketch would; pieces of the raw buffer's size for
        # messages larger than it.
        self.control.command(f"raw source {want} {min(size, self.raw_buffer)}")
        while got < want:
            n = sock.recv_into(buf, min(len(buf), want - got))
            if n == 0:
                raise BenchError(f"raw source: connection closed after {got} of {want} bytes")
            got += n
        t1 = time.perf_counter()
        st = self.control.wait_stats(lambda s: int(s["raw"]["source_left"]) == 0, self.timeout,
                                     "raw source")
        self.control.command("raw echo")
        counters = st["raw"]
        return Transfer(
            service=RAW, direction=DOWN, size=size, messages=got // size, nbytes=got,
            seconds=t1 - t0,
            device_messages=int(counters["chunks"]), device_bytes=int(counters["bytes"]),
            device_seconds=_device_seconds(counters),
        )

    # --- round trips ---------------------------------------------------------------------

    def echo(self, service: str, size: int, *, duration: float | None = None,
             count: int | None = None) -> Echo:
        """Round trips of one ``size``-byte message at a time for ``duration`` s (or
        ``count`` of them); each reply is checked against what was sent."""
        payload, limit, end_at = self._begin(service, "echo", size, duration, count)
        raw = service == RAW
        samples: list[float] = []
        clock = time.perf_counter
        t0 = clock()
        if raw:
            sock = self._raw()
            view = memoryview(self._rbuf)[:size]
            while len(samples) < limit:
                t = clock()
                sock.sendall(payload)
                got = 0
                while got < size:
                    n = sock.recv_into(view[got:], size - got)
                    if n == 0:
                        raise BenchError("raw echo: connection closed")
                    got += n
                samples.append(clock() - t)
                if view != payload:
                    raise BenchError("raw echo: the reply differs from what was sent")
                if t >= end_at:
                    break
        else:
            link = self._link()
            send, receive = link.send, link.receive
            timeout = self.timeout
            while len(samples) < limit:
                t = clock()
                send(payload)
                reply = receive(timeout=timeout)
                samples.append(clock() - t)
                if reply != payload:
                    raise BenchError("echo: the reply differs from what was sent")
                if t >= end_at:
                    break
        seconds = clock() - t0
        st = self.control.stats()
        counters = st["raw"] if raw else st
        # The raw echo counts chunks, not messages: only the byte count can be checked.
        device_bytes = int(counters["bytes"])
        device_messages = len(samples) if raw else int(counters["messages"])
        if device_bytes != len(samples) * size or device_messages != len(samples):
            raise BenchError(
                f"{service} echo: the host had {len(samples)} messages ({len(samples) * size} "
                f"bytes) echoed, the device counted {device_messages} ({device_bytes} bytes)"
            )
        return Echo(
            service=service, size=size, count=len(samples), seconds=seconds, samples=samples,
            device_messages=device_messages,
        )

    # --- helpers ---------------------------------------------------------------------------

    def _link(self) -> WiFiSocket:
        assert self.link is not None
        return self.link

    def _raw(self) -> socket.socket:
        assert self.raw is not None
        return self.raw

    def _begin(self, service: str, mode: str, size: int, duration: float | None,
               count: int | None) -> tuple[bytes, int, float]:
        """Check a timed or counted run's arguments and put ``service`` in ``mode``: the
        payload to send, the most messages to send and the ``perf_counter`` time to stop."""
        self._check_size(size)
        if (duration is None) == (count is None):
            raise ValueError("give duration or count")
        self.control.command(f"raw {mode}" if service == RAW else mode)
        limit = count if count is not None else 1 << 62
        end_at = time.perf_counter() + (duration if duration is not None else 1e9)
        return os.urandom(size), limit, end_at

    def _check_size(self, size: int) -> None:
        if not 1 <= size <= self.max_message:
            raise BenchError(f"message size {size} is outside 1..{self.max_message} "
                             "(the device's max_message)")

    @staticmethod
    def _cross_check(t: Transfer) -> None:
        if t.device_bytes != t.nbytes:
            raise BenchError(
                f"{t.service} {t.direction} {t.size} B: the host counted {t.nbytes} bytes, "
                f"the device {t.device_bytes}"
            )
        if t.service == OURS and t.device_messages != t.messages:
            raise BenchError(
                f"{t.service} {t.direction} {t.size} B: the host counted {t.messages} "
                f"messages, the device {t.device_messages}"
            )
