"""A hard reset of the device in the middle of a stream: never a silent loss.

The host streams tagged messages to the echo service while the twin is reset from its serial
lines (``device.reset()``: DTR/RTS, as a USB-serial bridge does) or has its power cut and
restored (``SimDevice.kill()`` + ``start()``). The device's memory is gone, so:

* the host gets exactly one :class:`~harness.errors.SessionLost`, listing the messages the old
  device never acknowledged, in order: a suffix of what was sent to it;
* the echoes that came back from the old device are a prefix of what was sent, in order, and
  none of them is among the unconfirmed;
* what lies between (acknowledged by the old device, echo lost with it) fits in the device's
  memory: its resend buffer plus the one message its sketch holds;
* after the SessionLost the link goes on with the new device session: every message sent
  from then on is echoed, exactly once, in order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from harness import SessionLost, WiFiSocket
from harness.device.base import Device
from harness.sim.direct import SimDevice

pytestmark = pytest.mark.twin

WAIT = 20.0  # every wait here is bounded by this (a reset takes well under a second)
OPTS: dict[str, Any] = {"backoff_initial": 0.02, "backoff_max": 0.2, "timeout": WAIT}
# The echo sketch (firmware/src/main.cpp) acknowledges a message when it takes it, then
# holds it until its echo fits the resend buffer: at most this much acknowledged data can
# die with it (frames of 20 + payload bytes).
DEVICE_RESEND_BUFFER = 2128  # WiFiSocket's default (firmware/lib/WiFiSocket/src/WiFiSocket.h)
DEVICE_MAX_MESSAGE = 1024
FRAME_OVERHEAD = 20


def _message(i: int) -> str | bytes:
    body = f"#{i}:" + "r" * (i * 37 % 700)
    return body if i % 2 else body.encode()


def _index(msg: str | bytes) -> int:
    text = msg if isinstance(msg, str) else msg.decode()
    return int(text[1:].split(":", 1)[0])


def _size(msg: str | bytes) -> int:
    return len(msg.encode() if isinstance(msg, str) else msg)


class Stream:
    """The application: sends tagged messages, collects echoes, records the SessionLost."""

    def __init__(self, ws: WiFiSocket) -> None:
        self.ws = ws
        self.sent: tuple[list[str | bytes], list[str | bytes]] = ([], [])  # before/after
        self.got: tuple[list[str | bytes], list[str | bytes]] = ([], [])
        self.losses: list[SessionLost] = []
        self.raised_by = ""
        self.epoch_of: dict[int, int] = {}  # message index -> epoch it was sent in

    @property
    def epoch(self) -> int:
        return 1 if self.losses else 0

    def _lost(self, exc: SessionLost, where: str) -> None:
        self.losses.append(exc)
        self.raised_by = where

    def send(self, msg: str | bytes) -> None:
        try:
            self.ws.send(msg)
        except SessionLost as exc:  # this message was not sent: send it to the new session
            self._lost(exc, "send")
            self.ws.send(msg)
        self.sent[self.epoch].append(msg)
        self.epoch_of[_index(msg)] = self.epoch

    def receive_until_settled(self) -> None:
        """Receive until the loss was reported and every later message came back."""
        while not self.losses or len(self.got[1]) < len(self.sent[1]):
            try:
                msg = self.ws.receive(timeout=WAIT)
            except SessionLost as exc:
                self._lost(exc, "receive")
                continue
            i = _index(msg)
            epoch = self.epoch_of[i]  # KeyError: an echo of something never sent
            if epoch == 0:
                assert not self.got[1], f"echo #{i} of the old session after a new one"
                assert self.raised_by != "receive", (
                    f"echo #{i} of the old session came after the SessionLost"
                )
            self.got[epoch].append(msg)

    def check(self) -> None:
        assert len(self.losses) == 1, f"{len(self.losses)} SessionLost raised, expected 1"
        unconfirmed = self.losses[0].unconfirmed
        old, echoed = self.sent[0], self.got[0]
        n_unc = len(unconfirmed)
        # The unconfirmed are the end of what the old device was sent, in order.
        assert unconfirmed == old[len(old) - n_unc:], "SessionLost: not the unconfirmed suffix"
        # The old device's echoes are the beginning of it, in order, and confirm what they echo.
        assert echoed == old[: len(echoed)], "old echoes: not an in-order prefix"
        assert len(echoed) <= len(old) - n_unc, "an echoed message was reported unconfirmed"
        gap = old[len(echoed): len(old) - n_unc]
        lost_with_device = sum(FRAME_OVERHEAD + _size(m) for m in gap)
        assert lost_with_device <= DEVICE_RESEND_BUFFER + DEVICE_MAX_MESSAGE + FRAME_OVERHEAD, (
            f"{len(gap)} messages ({lost_with_device} B) acknowledged but never echoed: more "
            "than the device could hold"
        )
        # The new session carries everything, exactly once, in order.
        assert self.got[1] == self.sent[1], "new session: echoes differ from what was sent"


def _stream_with_reset(ws: WiFiSocket, n: int, at: int, reset: Callable[[], Any],
                       concurrent: bool) -> Stream:
    stream = Stream(ws)
    failures: list[BaseException] = []
    resetter: threading.Thread | None = None

    def do_reset() -> None:
        try:
            reset()
        except BaseException as exc:  # reported below
            failures.append(exc)

    for i in range(n):
        if i == at:
            if concurrent:
                resetter = threading.Thread(target=do_reset, daemon=True)
                resetter.start()
            else:
                do_reset()
        stream.send(_message(i))
    stream.receive_until_settled()
    if resetter is not None:
        resetter.join(WAIT)
        assert not resetter.is_alive(), "the reset did not finish"
    assert not failures, failures
    return stream


@pytest.mark.parametrize("concurrent", [False, True], ids=["between-sends", "under-traffic"])
def test_hard_reset_mid_stream_reports_exactly_the_unconfirmed(
    device: Device, concurrent: bool
) -> None:
    with device.connect(**OPTS) as ws:
        old_peer = ws.peer_session_id
        stream = _stream_with_reset(ws, 800, 300, device.reset, concurrent)
        stream.check()
        assert ws.peer_session_id != old_peer, "the device kept its session across a reset"
        assert ws.reconnects >= 1 and ws.last_reconnect is not None
        assert ws.last_reconnect.session_lost and ws.connected
    assert device.info()["reset_reason"] == "External System"


def test_power_cut_mid_stream_reports_exactly_the_unconfirmed() -> None:
    """Power off and on again (the twin's firmware process is killed, then booted)."""
    sim = SimDevice()
    try:
        sim.start()

        def power_cycle() -> None:
            sim.kill()
            sim.start()

        with sim.connect(**OPTS) as ws:
            stream = _stream_with_reset(ws, 600, 200, power_cycle, concurrent=False)
            stream.check()
        assert sim.info()["reset_reason"] == "Power On"
    finally:
        sim.close()
