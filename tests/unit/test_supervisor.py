"""The reconnect supervisor on a fake clock, and the sans-IO pieces the acceptor relies on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import ProtocolError, ReconnectFailed
from harness.wifisocket.backoff import ReconnectPolicy
from harness.wifisocket.frame import CloseCode, FrameType, Hello, encode_frame
from harness.wifisocket.session import RECOVERABLE, TRANSITIONS, Handshake, Session, State
from harness.wifisocket.supervisor import Supervisor


def _sup(serving: bool = False, **options: object) -> Supervisor:
    opts = {"backoff_initial": 0.1, "backoff_max": 1.0, "backoff_jitter": 0.0,
            "reconnect_timeout": 10.0, "connect_timeout": 2.0, **options}
    return Supervisor(ReconnectPolicy(**opts), serving=serving)  # type: ignore[arg-type]


def test_nothing_is_due_while_connected() -> None:
    sup = _sup()
    assert sup.connected(0.0, (0, 0), resumed=False, session_lost=False, peer_address=()) is None
    assert sup.armed and not sup.down
    assert sup.due(100.0, attempt_open=False) is None
    assert sup.wake_at(attempt_open=False) == float("inf")


def test_first_attempt_at_once_then_backoff_doubles_to_the_cap() -> None:
    sup = _sup()
    sup.connected(0.0, (0, 0), resumed=False, session_lost=False, peer_address=())
    sup.connection_lost(5.0, (3, 2), "reset")  # carried traffic: no penalty
    assert sup.due(5.0, attempt_open=False) == "attempt"
    now, waits = 5.0, []
    for _ in range(6):
        sup.attempt_started(now)
        assert sup.due(now + 1.0, attempt_open=True) is None
        assert sup.due(now + 2.0, attempt_open=True) == "attempt_timeout"
        sup.attempt_failed(now, "refused")
        waits.append(round(sup.next_attempt - now, 6))
        assert sup.due(sup.next_attempt - 1e-6, attempt_open=False) is None
        now = sup.next_attempt
        assert sup.due(now, attempt_open=False) == "attempt"
    assert waits == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    info = sup.connected(now, (3, 2), resumed=True, session_lost=False, peer_address=("h", 1))
    assert info is not None and info.count == 1 and info.attempts == 6 and info.resumed
    assert info.downtime == pytest.approx(now - 5.0) and not sup.down


def test_a_connection_that_dies_right_after_hello_counts_as_a_failure() -> None:
    sup = _sup()
    sup.connected(0.0, (0, 0), resumed=False, session_lost=False, peer_address=())
    sup.connection_lost(0.01, (0, 0), "reset")  # no progress, short-lived: flapping
    assert sup.failures == 1 and sup.next_attempt == pytest.approx(0.11)


def test_gives_up_after_reconnect_timeout_with_the_facts() -> None:
    sup = _sup()
    sup.connected(0.0, (0, 0), resumed=False, session_lost=False, peer_address=())
    sup.connection_lost(1.0, (1, 0), "peer silent")
    assert sup.wake_at(attempt_open=False) == 1.0
    sup.attempt_started(1.0)
    sup.attempt_failed(1.5, "refused")
    assert sup.wake_at(attempt_open=True) == pytest.approx(3.0)
    assert sup.due(11.0, attempt_open=True) == "give_up"
    err = sup.give_up(11.0, "h:1", ["a", b"b"])
    assert isinstance(err, ReconnectFailed)
    assert err.attempts == 1 and err.elapsed == 10.0 and err.unconfirmed == ["a", b"b"]
    assert "peer silent" in str(err) and "refused" in str(err)


def test_serving_never_dials_and_counts_accepted_peers() -> None:
    sup = _sup(serving=True)
    sup.connected(0.0, (0, 0), resumed=False, session_lost=False, peer_address=())
    sup.connection_lost(1.0, (1, 0), "reset")
    assert sup.due(11.0, attempt_open=False) == "give_up"
    assert sup.due(2.0, attempt_open=False) is None
    assert sup.wake_at(attempt_open=False) == 11.0  # only the give-up
    sup.accepted()
    sup.accepted()
    assert sup.attempts == 2 and "accepted" in sup.outage(2.0)


def test_reconnect_off_never_arms() -> None:
    sup = _sup(reconnect=False)
    sup.connected(0.0, (0, 0), resumed=False, session_lost=False, peer_address=())
    assert not sup.armed


# --- the sans-IO pieces of the serve side ----------------------------------------------


def _hello() -> bytes:
    return encode_frame(FrameType.HELLO, Hello(4096, 8240, 1000, 7, 0).encode())


@given(st.integers(1, 84), st.binary(max_size=40))
def test_handshake_accepts_a_hello_in_any_pieces(cut: int, after: bytes) -> None:
    raw = _hello()
    cut = min(cut, len(raw))
    hs = Handshake(4096)
    assert hs.feed(raw[:cut]) is (cut == len(raw))
    if cut < len(raw):
        assert hs.feed(raw[cut:] + after) is True
    assert bytes(hs.data[: len(raw)]) == raw  # everything is kept for the Session


@pytest.mark.parametrize(
    ("first", "code"),
    [
        (encode_frame(FrameType.PING, b"\0" * 8), CloseCode.PROTOCOL),
        (encode_frame(FrameType.TEXT, b"hi", seq=1), CloseCode.PROTOCOL),
        (b"GET / HTTP/1.1\r\n" * 8, None),
        (encode_frame(FrameType.HELLO, b"\x02" + b"\0" * 10), CloseCode.PROTOCOL),
    ],
)
def test_handshake_refuses_anything_but_a_valid_hello(first: bytes, code: int | None) -> None:
    with pytest.raises(ProtocolError) as info:
        Handshake(4096).feed(first)
    if code is not None:
        assert info.value.code == code


def test_every_state_change_of_a_session_is_in_the_table() -> None:
    states = {State.IDLE, State.HANDSHAKE, State.PROVING, State.OPEN, State.CLOSED}
    assert {s for s, _ in TRANSITIONS} == states
    assert set(TRANSITIONS.values()) <= states
    assert all(TRANSITIONS[(s, "close")] == State.CLOSED for s in states)
    assert (State.CLOSED, "connection_made") not in TRANSITIONS  # closed is final
    s = Session()
    s.close()
    with pytest.raises(Exception, match="closed"):
        s.connection_made(0.0)


def test_recoverable_codes() -> None:
    assert {CloseCode.TIMEOUT, CloseCode.BAD_CRC, CloseCode.BUSY, CloseCode.BAD_TAG} == RECOVERABLE
    assert CloseCode.REPLACED not in RECOVERABLE
    assert CloseCode.AUTH not in RECOVERABLE  # a wrong key stays wrong: never redialled
