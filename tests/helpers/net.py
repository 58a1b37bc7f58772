"""Sockets for tests."""

from __future__ import annotations

import random
import socket
from pathlib import Path

# Seeded from os.urandom, apart from the global random that hypothesis seeds per test: two
# xdist workers running the same test must not draw the same ports.
_rng = random.Random()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port(ip: str = "127.0.0.1") -> int:
    """A TCP port free on ``ip`` right now (nothing listens on it when this returns).

    Drawn at random from below the kernel's ephemeral range: a port that ``bind(0)`` hands
    out is one the kernel also gives outgoing connections, and in a parallel run another
    test's connection took one between this check and the caller's listen (EADDRINUSE, seen
    in the ten-run check of issue 10). Below that range only explicit binds take ports.
    """
    high = _ephemeral_low()
    low = max(1024, high - 12000)
    for _ in range(500):
        port = _rng.randrange(low, high)
        with socket.socket() as s:
            try:
                s.bind((ip, port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free TCP port on {ip} in {low}..{high - 1}")
