"""Sockets for tests."""

from __future__ import annotations

import socket


def free_port(ip: str = "127.0.0.1") -> int:
    """A TCP port free on ``ip`` right now (nothing listens on it when this returns)."""
    with socket.socket() as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])
