"""A stateful hypothesis test of two Sessions over a wire that stalls, breaks and reconnects,
and whose ends reboot.

The delivery promise (DESIGN.md): across link drops every message arrives exactly once and in
order; across a reboot the survivor is told (SessionReset, which the socket raises as
SessionLost) exactly which of its messages were never confirmed. Never a silent loss.

The model of the link: while it is up, bytes travel in order and arrive in chunks of any
size (``deliver``). A ``cut`` breaks it silently: each side goes on sending into the void
until it notices (``notice``: the I/O layer saw the error) or its dead-peer timer fires
(``tick``); a dead side closes the connection. ``reconnect`` opens a new connection (both
sides get HELLOs). A ``reboot`` kills one side's memory and its connection.

Each sender's messages are split into *epochs*: the stream between two SessionResets (or
from a reboot). Within an epoch, what the peer delivered is a prefix of what was framed, in
order, without duplicates; a SessionReset reports exactly the epoch's suffix that the
peer's acknowledgements had not covered.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from harness.wifisocket.frame import FrameDecoder, Hello
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
    0: {"max_message": 80, "window": 250, "keepalive_ms": 15, "dead_after": 0.3},
    1: {"max_message": 120, "window": 300, "resend_buffer": 260, "keepalive_ms": 40,
        "dead_after": 0.5},
}


class Side:
    """One end: a Session plus the application's bookkeeping around it."""

    def __init__(self, idx: int, seed: int, key: bytes | None = None) -> None:
        self.idx = idx
        self.key = key
        self.rng = random.Random(seed)
        self.incarnation = 0
        self.session: Session
        self.counter = 0
        self.outbox: list[str | bytes] = []  # application messages not yet framed
        self.reboot()

    def reboot(self) -> None:
        self.incarnation += 1
        self.session = Session(rng=self.rng, key=self.key, **SETTINGS[self.idx])
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
    #: The pre-shared key of both sides (None: an unkeyed link).
    KEY: bytes | None = None

    @initialize(seed=st.integers(0, 2**32 - 1))
    def setup(self, seed: int) -> None:
        self.sides = (Side(0, seed, self.KEY), Side(1, seed + 1, self.KEY))
        self.wire = [bytearray(), bytearray()]  # wire[i]: bytes travelling to side i
        self.up = False
        self.now = 0.0
        self.sent: tuple[list, list] = ([], [])  # framed messages, per sender
        self.got: tuple[list, list] = ([], [])  # delivered messages, per receiver
        self.reported: tuple[list, list] = ([], [])  # SessionReset.unconfirmed, per sender
        # Per sender: the epochs of its stream (lists of tags) and where each tag is.
        self.epochs: tuple[list[list[str]], list[list[str]]] = ([[]], [[]])
        self.where: dict[str, tuple[int, int]] = {}  # tag -> (epoch, position)
        # Per side: reboots of its peer that it has not been told about yet.
        self.unreported_reboots = [0, 0]
        self.reconnect()

    # --- plumbing ---------------------------------------------------------------------

    def emit(self, i: int, data: bytes) -> None:
        """Side ``i`` writes ``data``: it travels if the link is up, else it is lost."""
        if self.up and data:
            self.wire[1 - i] += data

    def link_down(self) -> None:
        self.up = False
        for w in self.wire:
            w.clear()

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
            epoch = self.epochs[i]
            self.where[_tag(msg)] = (len(epoch) - 1, len(epoch[-1]))
            epoch[-1].append(_tag(msg))
            self.emit(i, raw)

    def handle(self, i: int, events: list) -> None:
        hello = None
        for k, ev in enumerate(events):
            if isinstance(ev, Message):
                self.got[i].append(ev.data)
            elif isinstance(ev, SessionReset):
                event("session reset")
                self.check_reset(i, ev.unconfirmed, hello)
            elif isinstance(ev, Connected):
                hello = ev.peer_hello
                event("resumed" if ev.resumed else "not resumed")
                if self.unreported_reboots[i]:
                    # The peer we knew rebooted: we must be told, right after this HELLO.
                    assert any(isinstance(e, SessionReset) for e in events[k + 1:]), \
                        "a peer's reboot went unreported"
            elif isinstance(ev, Dead):
                event("dead")
                # The I/O layer closes the connection (its CLOSE TIMEOUT is lost with it).
                self.link_down()
                return
            else:
                assert not isinstance(ev, (Failed, PeerClosed)), ev
        self.emit(i, self.sides[i].session.data_to_send())

    def check_reset(self, i: int, unconfirmed: list[str | bytes], hello: Any) -> None:
        """SessionReset at side ``i``: exactly the unconfirmed end of its current epoch.

        Two causes are legitimate: the peer rebooted, or the peer never processed a HELLO
        of ours (its HELLO names another session as ``resume``: it may have moved on to
        another peer, so resending could duplicate; the protocol reports the loss). In a
        two-party world the second case means the peer delivered nothing of this epoch.
        """
        rebooted = self.unreported_reboots[i] > 0
        knew_us = hello.resume == self.sides[i].session.session_id
        assert rebooted or not knew_us, "SessionReset: the peer knew us and did not reboot"
        self.unreported_reboots[i] = 0
        epoch = self.epochs[i][-1]
        tags = [_tag(m) for m in unconfirmed]
        cut = len(epoch) - len(tags)
        assert cut >= 0 and epoch[cut:] == tags, "not the unconfirmed suffix, in order"
        delivered = {_tag(m) for m in self.got[1 - i]}
        missing = [t for t in epoch[:cut] if t not in delivered]
        assert not missing, f"reported as confirmed but never delivered: {missing}"
        if not rebooted:
            event("session reset: the peer never got our HELLO")
            assert cut == 0, "the peer never got our HELLO, yet confirmed messages"
        self.reported[i].extend(unconfirmed)
        self.epochs[i].append([])

    # --- rules ------------------------------------------------------------------------

    @rule(i=st.integers(0, 1), size=st.integers(0, 120), text=st.booleans())
    def app_send(self, i: int, size: int, text: bool) -> None:
        limit = SETTINGS[1 - i]["max_message"]
        self.sides[i].outbox.append(self.sides[i].make_message(min(size, limit), text))
        self.pump_out(i)

    @precondition(lambda self: self.up)
    @rule(i=st.integers(0, 1), n=st.integers(1, 400))
    def deliver(self, i: int, n: int) -> None:
        chunk = bytes(self.wire[i][:n])
        del self.wire[i][:n]
        self.handle(i, self.sides[i].session.receive_data(chunk, self.now))
        self.pump_out(i)

    @precondition(lambda self: self.up)
    @rule()
    def deliver_everything(self) -> None:
        """Both ways, until the wire is quiet (a calm moment of the link)."""
        for _ in range(100):
            if not (self.wire[0] or self.wire[1]) or not self.up:
                return
            for i in (0, 1):
                if self.up and self.wire[i]:
                    self.deliver(i, len(self.wire[i]))

    @rule(dt=st.integers(1, 150))
    def tick(self, dt: int) -> None:
        self.now += dt / 1000
        for i in (0, 1):
            self.handle(i, self.sides[i].session.tick(self.now))

    @precondition(lambda self: self.up)
    @rule()
    def cut(self) -> None:
        event("cut")
        self.link_down()

    @rule(i=st.integers(0, 1))
    def notice(self, i: int) -> None:
        """Side ``i``'s I/O layer finds the connection broken (only if it is)."""
        if not self.up:
            self.sides[i].session.connection_lost()

    @precondition(lambda self: not self.up)
    @rule()
    def reconnect(self) -> None:
        self.up = True
        for i in (0, 1):
            self.sides[i].session.connection_lost()
        if self.KEY is not None:
            # Keyed links have roles (§6): side 0 dials, side 1 accepts after its HELLO.
            hello = self.sides[0].session.connection_made(self.now)
            self.emit(0, hello)
            (frame,) = FrameDecoder(1 << 16).feed(hello)
            dialer = Hello.decode(frame.payload, keyed=True)
            self.emit(1, self.sides[1].session.connection_made(self.now, dialer=dialer))
            return
        for i in (0, 1):
            self.emit(i, self.sides[i].session.connection_made(self.now))

    @rule(i=st.integers(0, 1))
    def reboot(self, i: int) -> None:
        event("reboot")
        survivor = self.sides[1 - i].session
        if survivor.peer_session_id == self.sides[i].session.session_id:
            # The survivor knew this incarnation: it must be told when it reconnects.
            self.unreported_reboots[1 - i] += 1
        # A new incarnation knows nobody and has nothing to be told; its stream is new.
        self.unreported_reboots[i] = 0
        self.sides[i].reboot()
        self.epochs[i].append([])
        self.link_down()

    # --- the promise --------------------------------------------------------------------

    @invariant()
    def delivered_is_an_in_order_prefix_of_each_epoch(self) -> None:
        if not hasattr(self, "sides"):
            return
        for i in (0, 1):
            got = [_tag(m) for m in self.got[1 - i]]
            assert len(got) == len(set(got)), "a message was delivered twice"
            places = [self.where[t] for t in got]  # KeyError: delivered but never sent
            assert places == sorted(places), "out of order"
            count: dict[int, int] = {}
            for epoch, pos in places:
                assert pos == count.get(epoch, 0), "a gap: a message was skipped"
                count[epoch] = pos + 1

    @invariant()
    def window_bound_holds(self) -> None:
        if not hasattr(self, "sides"):
            return
        for side in self.sides:
            s = side.session
            hello = s.peer_hello
            if hello is not None and len(s.unacked_messages) > 1:
                assert s.unacked_bytes <= min(hello.window, s.resend_buffer)

    def teardown(self) -> None:
        if not hasattr(self, "sides"):
            return
        if not self.up:
            self.reconnect()
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
        self.delivered_is_an_in_order_prefix_of_each_epoch()
        for i in (0, 1):
            s = self.sides[i].session
            assert not self.sides[i].outbox and s.unacked_bytes == 0
            assert self.unreported_reboots[i] == 0, "a reboot went unreported"
            delivered = {_tag(m) for m in self.got[1 - i]}
            reported = {_tag(m) for m in self.reported[i]}
            for m in self.sent[i]:
                t = _tag(m)
                # Messages of a rebooted incarnation died with it (the application's
                # memory is gone); everything of the living one is delivered or reported.
                if _incarnation(m) == f"{'ab'[i]}{self.sides[i].incarnation}":
                    assert t in delivered or t in reported, f"silently lost: {t}"
            # Types survive the trip.
            sent_types = {_tag(m): type(m) for m in self.sent[i]}
            for m in self.got[1 - i]:
                assert type(m) is sent_types[_tag(m)]


LinkMachine.TestCase.settings = settings(max_examples=80, stateful_step_count=100, deadline=None)
TestLinkMachine = LinkMachine.TestCase


class KeyedLinkMachine(LinkMachine):
    """The same promise on a keyed link (protocol v2): AUTH handshakes, tagged frames."""

    KEY = bytes(range(100, 132))


KeyedLinkMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=100,
                                              deadline=None)
TestKeyedLinkMachine = KeyedLinkMachine.TestCase
