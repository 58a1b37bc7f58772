"""The twin's WiFiUDP (firmware/sim/WiFiUdp.cpp): real datagrams between the sketch and a
UDP peer of the test, on the twin's own address; nothing while the station is down.

The sketch is the shim's test sketch (its ``udp`` console command).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.helpers.shim import Console
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.twin


@pytest.fixture
def peer() -> Iterator[socket.socket]:
    """The test's UDP peer on the PC's loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        yield sock


def _fields(line: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in line.split()[1:] if "=" in part)


def _receive(console: Console) -> dict[str, str]:
    """Poll parsePacket until a datagram is there (each command is one loop() pass)."""
    got: dict[str, str] = {}

    def arrived() -> bool:
        got.update(_fields(console.command("udp recv", "udp ")))
        return got["size"] != "0"

    wait_until(arrived, timeout=5, what="a datagram at the sketch")
    return got


def test_datagrams_both_ways_from_the_twins_address(console: Console, peer: socket.socket
                                                     ) -> None:
    console.join_wifi()
    assert _fields(console.command("udp begin 4210", "udp ")) == {"begin": "1", "port": "4210"}
    host, port = peer.getsockname()
    sent = _fields(console.command(f"udp send {host} {port} ntp?", "udp "))
    assert sent == {"began": "1", "sent": "1", "port": "4210"}
    data, source = peer.recvfrom(2048)
    assert (data, source) == (b"ntp?", (console.proc.ip, 4210))
    # The answer comes back to the port the sketch sent from; a second datagram waits for
    # the next parsePacket, which drops what the sketch did not read of the first.
    peer.sendto(b"x" * 80, source)
    peer.sendto(b"second", source)
    first = _receive(console)
    assert first["size"] == "80" and first["from"] == f"{host}:{port}"
    assert (first["read"], first["left"]) == ("63", "17")
    assert _receive(console)["data"] == "second"
    assert _fields(console.command("udp recv", "udp "))["size"] == "0"


def test_a_sketch_may_send_without_begin_from_an_ephemeral_port(
    console: Console, peer: socket.socket
) -> None:
    console.join_wifi()
    host, port = peer.getsockname()
    sent = _fields(console.command(f"udp send {host} {port} hello", "udp "))
    assert sent["began"] == "1" and sent["sent"] == "1" and int(sent["port"]) > 0
    data, source = peer.recvfrom(2048)
    assert data == b"hello" and source == (console.proc.ip, int(sent["port"]))


def test_nothing_goes_out_or_comes_in_while_the_station_is_down(
    console: Console, peer: socket.socket
) -> None:
    assert _fields(console.command("udp begin 4211", "udp "))["begin"] == "1"
    host, port = peer.getsockname()
    # Not joined yet: the packet is built, not sent.
    assert _fields(console.command(f"udp send {host} {port} early", "udp "))["sent"] == "0"
    peer.sendto(b"lost", (console.proc.ip, 4211))
    assert _fields(console.command("udp recv", "udp "))["size"] == "0"
    console.join_wifi()
    peer.sendto(b"kept", (console.proc.ip, 4211))
    assert _receive(console)["data"] == "kept"
    with pytest.raises(TimeoutError):
        peer.settimeout(0.2)
        peer.recvfrom(2048)  # "early" never left


def test_an_unknown_host_fails_begin_packet(console: Console) -> None:
    console.join_wifi()
    sent = _fields(console.command("udp send no.such.host.invalid 9 x", "udp "))
    assert sent["began"] == "0" and sent["sent"] == "0"
