"""The twin's mDNS responder (firmware/sim/ESP8266mDNS.cpp): unicast queries to the twin's
address, port 5353, answered for "<host>.local" (A) and DNS-SD (PTR, SRV, TXT).

The sketch is the shim's test sketch (its ``mdns`` console command; loop() calls update()).
The queries and answers are built and read here by hand: a DNS message is a short format.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.helpers.shim import Console

pytestmark = pytest.mark.twin

A, PTR, TXT, SRV = 1, 12, 16, 33


def _name(dotted: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in dotted.split(".")) + b"\0"


def _read_name(msg: bytes, at: int) -> tuple[str, int]:
    labels = []
    while msg[at]:
        assert msg[at] < 64, "the twin writes no compressed names"
        labels.append(msg[at + 1:at + 1 + msg[at]].decode())
        at += 1 + msg[at]
    return ".".join(labels), at + 1


def query(ip: str, name: str, qtype: int, *, ident: int = 0x1234,
          timeout: float = 2.0) -> tuple[int, list[tuple[str, int, bytes]], list]:
    """Ask once; (id, answers, additional) as (name, type, rdata), or (-1, [], []) on no reply."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(struct.pack(">6H", ident, 0, 1, 0, 0, 0) + _name(name)
                    + struct.pack(">2H", qtype, 1), (ip, 5353))
        try:
            msg, _ = sock.recvfrom(2048)
        except TimeoutError:
            return -1, [], []
    rid, flags, qd, an, ns, ar = struct.unpack_from(">6H", msg)
    assert flags & 0x8000 and ns == 0
    at = 12
    for _ in range(qd):
        _, at = _read_name(msg, at)
        at += 4
    records: list[tuple[str, int, bytes]] = []
    for _ in range(an + ar):
        owner, at = _read_name(msg, at)
        rtype, _, _, length = struct.unpack_from(">HHIH", msg, at)
        at += 10
        records.append((owner, rtype, msg[at:at + length]))
        at += length
    return rid, records[:an], records[an:]


@pytest.fixture
def joined(console: Console) -> Iterator[Console]:
    console.join_wifi()
    yield console


def test_the_hostname_answers_with_the_twins_address(joined: Console) -> None:
    ip = joined.proc.ip
    assert query(ip, "node.local", A, timeout=0.3)[0] == -1  # not begun: no responder
    assert joined.command("mdns begin Node", "mdns ") == "mdns begin=1"
    rid, answers, _ = query(ip, "node.local", A)
    assert rid == 0x1234
    assert answers == [("node.local", A, socket.inet_aton(ip))]
    assert query(ip, "other.local", A, timeout=0.3)[0] == -1  # not ours: no answer


def test_a_service_is_found_by_dns_sd(joined: Console) -> None:
    ip = joined.proc.ip
    joined.command("mdns begin node", "mdns ")
    assert joined.command("mdns service Kitchen http tcp 8080 path /api", "mdns ") == (
        "mdns service=1")
    _, answers, extra = query(ip, "_http._tcp.local", PTR)
    assert answers == [("_http._tcp.local", PTR, _name("Kitchen._http._tcp.local"))]
    kinds = {(owner, rtype): data for owner, rtype, data in extra}
    assert kinds[("Kitchen._http._tcp.local", SRV)] == struct.pack(">3H", 0, 0, 8080) + _name(
        "node.local")
    assert kinds[("Kitchen._http._tcp.local", TXT)] == b"\x09path=/api"
    assert kinds[("node.local", A)] == socket.inet_aton(ip)
    _, answers, _ = query(ip, "kitchen._http._tcp.local", SRV)
    assert [(o, t) for o, t, _ in answers] == [("Kitchen._http._tcp.local", SRV)]


def test_nothing_is_answered_while_the_station_is_down(console: Console) -> None:
    assert console.command("mdns begin node", "mdns ") == "mdns begin=1"
    assert query(console.proc.ip, "node.local", A, timeout=0.3)[0] == -1


def test_bad_names_are_refused(joined: Console) -> None:
    assert joined.command("mdns begin no.dots", "mdns ") == "mdns begin=0"
    assert joined.command(f"mdns begin {'x' * 64}", "mdns ") == "mdns begin=0"


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # one responder for all
@given(garbage=st.binary(max_size=64))
@example(garbage=b"\xc0\x0c")  # a name that points at itself
@example(garbage=b"\x3f" + b"a" * 10)  # a label longer than the datagram
@example(garbage=b"\x04node\x05local\x00\x00")  # a question cut short
def test_malformed_queries_are_dropped_and_the_responder_keeps_answering(
    joined: Console, garbage: bytes
) -> None:
    ip = joined.proc.ip
    joined.command("mdns begin node", "mdns ")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        # A header that claims questions, then anything: names may point anywhere.
        sock.sendto(struct.pack(">6H", 7, 0, 3, 0, 0, 0) + garbage, (ip, 5353))
    assert query(ip, "node.local", A)[1] == [("node.local", A, socket.inet_aton(ip))]


def test_arduino_ota_announces_its_service_as_the_core_does(joined: Console) -> None:
    """The twin takes no update; the sketch's OTA setup builds and is found as on a board."""
    assert joined.command("mdns ota lamp secret", "mdns ") == "mdns ota=1"
    ip = joined.proc.ip
    _, answers, extra = query(ip, "_arduino._tcp.local", PTR)
    assert answers == [("_arduino._tcp.local", PTR, _name("lamp._arduino._tcp.local"))]
    kinds = {(owner, rtype): data for owner, rtype, data in extra}
    assert kinds[("lamp._arduino._tcp.local", SRV)][4:6] == struct.pack(">H", 8266)
    txt = kinds[("lamp._arduino._tcp.local", TXT)]
    assert b"auth_upload=yes" in txt and b"tcp_check=no" in txt
