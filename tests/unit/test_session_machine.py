"""A stateful hypothesis test of two Sessions over a wire that gets cut and whose ends reboot.

The delivery promise (DESIGN.md): across cuts every message arrives exactly once and in
order; across a reboot the survivor is told (SessionReset) which of its messages were
never confirmed. Never a silent loss.
"""

from __future__ import annotations

import random

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from harness.wifisocket.session import (
    Connected,
    Dead,
    Failed,
    Message,
    PeerClosed,
    Session,
    SessionReset,
    WindowFull,
)

SETTINGS = {
    0: {"max_message": 80, "window": 250, "keepalive_ms": 15},
    1: {"max_message": 120, "window": 300, "resend_buffer": 260, "keepalive_ms": 40},
}


class Side:
    """One end: a Session plus the application's bookkeeping around it."""

    def __init__(self, idx: int, seed: int) -> None:
        self.idx = idx
        self.rng = random.Random(seed)
        self.incarnation = 0
        self.session: Session
        self.counter = 0
        self.outbox: list[str | bytes] = []  # application messages not yet framed
        self.reboot()

    def reboot(self) -> None:
        self.incarnation += 1
        self.session = Session(dead_after=0, rng=self.rng, **SETTINGS[self.idx])
        self.outbox = []

    def make_message(self, size: int, text: bool) -> str | bytes:
        self.counter += 1
        tag = f"{'ab'[self.idx]}{self.incarnation}.{self.counter}:"
        body = tag + "x" * max(0, size - len(tag))
        return body if text else body.encode()


def _tag(msg: str | bytes) -> str:
    text = msg if isinstance(msg, str) else msg.decode()
    return text.split(":", 1)[0]


def _incarnation(msg: str | bytes) -> str:
    return _tag(msg).split(".", 1)[0]


class LinkMachine(RuleBasedStateMachine):
    @initialize(seed=st.integers(0, 2**32 - 1))
    def setup(self, seed: int) -> None:
        self.sides = (Side(0, seed), Side(1, seed + 1))
        self.wire = [bytearray(), bytearray()]  # wire[i]: bytes travelling to side i
        self.now = 0.0
        self.sent: tuple[list, list] = ([], [])  # framed messages, per sender
        self.got: tuple[list, list] = ([], [])  # delivered messages, per receiver
        self.reported: tuple[list, list] = ([], [])  # SessionReset.unconfirmed, per sender
        self.resets_expected = [0, 0]
        self.resets_seen = [0, 0]
        self.connect()

    # --- plumbing ---------------------------------------------------------------------

    def connect(self) -> None:
        for i in (0, 1):
            self.wire[i].clear()
            self.sides[i].session.connection_lost()
        for i in (0, 1):
            self.wire[1 - i] += self.sides[i].session.connection_made(self.now)

    def pump_out(self, i: int) -> None:
        side = self.sides[i]
        s = side.session
        while side.outbox and s.is_open:
            msg = side.outbox[0]
            try:
                raw = s.send_message(msg, self.now)
            except WindowFull:
                event("window full")
                return
            side.outbox.pop(0)
            self.sent[i].append(msg)
            self.wire[1 - i] += raw
            hello = s.peer_hello
            assert hello is not None
            if len(s.unacked_messages) > 1:
                assert s.unacked_bytes <= min(hello.window, s.resend_buffer)

    def handle(self, i: int, events: list) -> None:
        for ev in events:
            if isinstance(ev, Message):
                self.got[i].append(ev.data)
            elif isinstance(ev, SessionReset):
                event("session reset")
                self.resets_seen[i] += 1
                self.reported[i].extend(ev.unconfirmed)
            elif isinstance(ev, Connected):
                if ev.resumed:
                    event("resumed")
            else:
                assert not isinstance(ev, (Failed, Dead, PeerClosed)), ev
        self.wire[1 - i] += self.sides[i].session.data_to_send()

    # --- rules ------------------------------------------------------------------------

    @rule(i=st.integers(0, 1), size=st.integers(0, 120), text=st.booleans())
    def app_send(self, i: int, size: int, text: bool) -> None:
        limit = SETTINGS[1 - i]["max_message"]
        self.sides[i].outbox.append(self.sides[i].make_message(min(size, limit), text))
        self.pump_out(i)

    @rule(i=st.integers(0, 1), n=st.integers(1, 400))
    def deliver(self, i: int, n: int) -> None:
        chunk = bytes(self.wire[i][:n])
        del self.wire[i][:n]
        self.handle(i, self.sides[i].session.receive_data(chunk, self.now))
        self.pump_out(i)

    @rule(dt=st.integers(1, 60))
    def tick(self, dt: int) -> None:
        self.now += dt / 1000
        for i in (0, 1):
            self.handle(i, self.sides[i].session.tick(self.now))

    @rule()
    def cut(self) -> None:
        event("cut")
        self.connect()

    @rule(i=st.integers(0, 1))
    def reboot(self, i: int) -> None:
        event("reboot")
        survivor = self.sides[1 - i].session
        if survivor.peer_session_id == self.sides[i].session.session_id:
            # The survivor knew this incarnation: it must be told when it reconnects.
            self.resets_expected[1 - i] = self.resets_seen[1 - i] + 1
        # A new incarnation knew nobody: it has nothing to be told.
        self.resets_expected[i] = self.resets_seen[i]
        self.sides[i].reboot()
        self.connect()

    # --- the promise --------------------------------------------------------------------

    @invariant()
    def in_order_no_duplicates(self) -> None:
        if not hasattr(self, "sides"):
            return
        for i in (0, 1):
            got = [_tag(m) for m in self.got[1 - i]]
            assert len(got) == len(set(got)), "a message was delivered twice"
            sent_order = {_tag(m): k for k, m in enumerate(self.sent[i])}
            positions = [sent_order[t] for t in got]  # KeyError: delivered but never sent
            assert positions == sorted(positions), "out of order"

    def teardown(self) -> None:
        if not hasattr(self, "sides"):
            return
        for _ in range(10_000):
            for i in (0, 1):
                self.pump_out(i)
            if not (self.wire[0] or self.wire[1]):
                if any(side.outbox for side in self.sides):
                    continue
                break
            for i in (0, 1):
                self.deliver(i, len(self.wire[i]))
        else:
            raise AssertionError("did not settle")
        self.in_order_no_duplicates()
        for i in (0, 1):
            s = self.sides[i].session
            assert not self.sides[i].outbox and s.unacked_bytes == 0
            delivered = {_tag(m) for m in self.got[1 - i]}
            reported = {_tag(m) for m in self.reported[i]}
            for m in self.sent[i]:
                t = _tag(m)
                # Messages of a rebooted incarnation died with it (the application's
                # memory is gone); everything of the living one is delivered or reported.
                if _incarnation(m) == f"{'ab'[i]}{self.sides[i].incarnation}":
                    assert t in delivered or t in reported, f"silently lost: {t}"
            # Reported messages were really sent, in order, and never confirmed.
            assert [x for x in self.reported[i] if _tag(x) in {_tag(y) for y in self.sent[i]}] \
                == self.reported[i]
            assert self.resets_seen[i] >= self.resets_expected[i], "a reboot went unreported"
            # Types survive the trip.
            sent_types = {_tag(m): type(m) for m in self.sent[i]}
            for m in self.got[1 - i]:
                assert type(m) is sent_types[_tag(m)]


LinkMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=60)
TestLinkMachine = LinkMachine.TestCase
