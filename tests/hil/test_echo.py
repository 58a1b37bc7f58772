"""Messages round-trip through the echo service whole, with their type."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import MessageTooLarge, ProtocolError, WiFiSocket
from harness.device.base import Device
from harness.wifisocket.frame import CloseCode

# One link serves every example: reusing it is part of what is tested.
reuse_link = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def test_hello_world(link: WiFiSocket) -> None:
    link.send("Hi")
    assert link.receive(timeout=5) == "Hi"


@reuse_link
@given(data=st.data())
def test_binary_round_trip(link: WiFiSocket, data: st.DataObject) -> None:
    payload = data.draw(st.binary(max_size=link.max_message), label="payload")
    link.send(payload)
    got = link.receive(timeout=5)
    assert isinstance(got, bytes)
    assert got == payload


@reuse_link
@given(text=st.text(max_size=1024))
def test_text_round_trip(link: WiFiSocket, text: str) -> None:
    if len(text.encode()) > link.max_message:
        return
    link.send(text)
    got = link.receive(timeout=5)
    assert isinstance(got, str)
    assert got == text


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_empty_and_maximum_sizes(link: WiFiSocket, device: Device, kind: str) -> None:
    assert link.max_message == device.max_message
    for size in (0, 1, device.max_message - 1, device.max_message):
        msg: str | bytes = (
            "x" * size if kind == "text" else bytes(range(256)) * (size // 256) + bytes(size % 256)
        )
        link.send(msg)
        assert link.receive(timeout=5) == msg


def test_one_byte_over_the_maximum_is_refused_before_sending(link: WiFiSocket) -> None:
    limit = link.max_message
    with pytest.raises(MessageTooLarge) as info:
        link.send(b"\x00" * (limit + 1))
    assert info.value.size == limit + 1 and info.value.limit == limit
    with pytest.raises(MessageTooLarge):
        link.send("é" * (limit // 2 + 1))  # over the limit in UTF-8 bytes, not characters
    link.send("still usable")
    assert link.receive(timeout=5) == "still usable"


def test_pipelined_messages_keep_their_order(link: WiFiSocket) -> None:
    sent = [f"message {i}" if i % 2 else f"message {i}".encode() for i in range(500)]
    for msg in sent:
        link.send(msg)
    got = [link.receive(timeout=5) for _ in sent]
    assert got == sent


def test_a_second_host_cannot_take_a_live_session(device: Device) -> None:
    # The device keeps one session and holds it for its live owner (docs/protocol.md §2,
    # Strangers): another host is refused with BUSY and the first goes on undisturbed.
    with device.connect() as first:
        first.send("first")
        assert first.receive(timeout=5) == "first"
        with pytest.raises(ProtocolError) as busy:
            device.connect(timeout=1.0)
        assert busy.value.code == CloseCode.BUSY
        first.send("still mine")
        assert first.receive(timeout=5) == "still mine"
        assert first.reconnects == 0


def test_iteration_yields_messages(link: WiFiSocket) -> None:
    for i in range(3):
        link.send(f"m{i}")
    it = iter(link)
    assert [next(it) for _ in range(3)] == ["m0", "m1", "m2"]
