"""Measure what the proxy costs on loopback: ``python -m harness.netem.overhead``.

Prints bulk throughput straight to a sink and through a :class:`Proxy` with no toxics,
and the round-trip time of a small message with and without the proxy. Figures only:
nothing here is asserted, the machine's load decides the numbers.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import threading
import time
from collections.abc import Callable

from harness.netem.proxy import Proxy


def _serve_once(
    handler: Callable[[socket.socket], None],
) -> tuple[tuple[str, int], threading.Thread]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def run() -> None:
        with listener:
            conn, _ = listener.accept()
        with conn:
            conn.settimeout(30)
            handler(conn)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return listener.getsockname()[:2], thread


def _sink(conn: socket.socket) -> None:
    while conn.recv(1 << 20):
        pass


def _echo(conn: socket.socket) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := conn.recv(1 << 16):
        conn.sendall(data)


def throughput(megabytes: int, via_proxy: bool) -> float:
    """MB/s of one bulk upload of ``megabytes`` MiB to a sink."""
    address, server = _serve_once(_sink)
    proxy = Proxy(address).start() if via_proxy else None
    try:
        target = proxy.address if proxy else address
        block = bytes(1 << 20)
        with socket.create_connection(target, timeout=30) as sock:
            t0 = time.perf_counter()
            for _ in range(megabytes):
                sock.sendall(block)
            sock.shutdown(socket.SHUT_WR)
            sock.recv(1)  # returns at EOF: the sink has everything
            elapsed = time.perf_counter() - t0
        server.join(30)
    finally:
        if proxy:
            proxy.stop()
    return megabytes / elapsed


def round_trip_us(count: int, via_proxy: bool) -> float:
    """Median microseconds for a 16-byte echo round trip."""
    address, server = _serve_once(_echo)
    proxy = Proxy(address).start() if via_proxy else None
    samples = []
    try:
        target = proxy.address if proxy else address
        with socket.create_connection(target, timeout=30) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(count):
                t0 = time.perf_counter()
                sock.sendall(b"0123456789abcdef")
                got = 0
                while got < 16:
                    got += len(sock.recv(16 - got))
                samples.append(time.perf_counter() - t0)
        server.join(30)
    finally:
        if proxy:
            proxy.stop()
    return statistics.median(samples) * 1e6


def main(argv: list[str] | None = None) -> None:
    """Run the measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=int, default=1000)
    parser.add_argument("--round-trips", type=int, default=2000)
    args = parser.parse_args(argv)
    direct = throughput(args.megabytes, via_proxy=False)
    proxied = throughput(args.megabytes, via_proxy=True)
    print(f"bulk, direct:        {direct:8.0f} MB/s")
    print(f"bulk, through proxy: {proxied:8.0f} MB/s")
    rtt_direct = round_trip_us(args.round_trips, via_proxy=False)
    rtt_proxy = round_trip_us(args.round_trips, via_proxy=True)
    print(f"16-byte echo RTT, direct:        {rtt_direct:7.0f} us (median)")
    print(f"16-byte echo RTT, through proxy: {rtt_proxy:7.0f} us (median)")


if __name__ == "__main__":
    main()
