"""tests/helpers/net.py: the ports tests listen on."""

from __future__ import annotations

import socket

from tests.helpers.net import _ephemeral_low, free_port


def test_free_ports_are_bindable_and_below_the_ephemeral_range() -> None:
    # bind(0) ports are the ones outgoing connections get too: a parallel run races for them.
    low = _ephemeral_low()
    ports = {free_port() for _ in range(50)}
    assert len(ports) > 40  # drawn at random, not handed out in order
    for port in ports:
        assert 1024 <= port < low
    with socket.create_server(("127.0.0.1", ports.pop())):
        pass
