"""harness.sim.firmware.ShimLog: the twin's stderr lines, kept across reboots, by time."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from harness.sim.firmware import ShimLog


@given(
    stamps=st.lists(st.floats(0, 1e6, allow_nan=False), max_size=30).map(sorted),
    since=st.none() | st.floats(-1, 1e6 + 1, allow_nan=False),
    maxlen=st.integers(1, 40),
)
def test_since_is_the_kept_lines_stamped_at_or_after_it(
    stamps: list[float], since: float | None, maxlen: int
) -> None:
    clock = iter(stamps)
    log = ShimLog(maxlen, clock=lambda: next(clock))
    for i in range(len(stamps)):
        log.add(f"line {i}")
    kept = list(enumerate(stamps))[-maxlen:] if stamps else []
    assert log.since(since) == [f"line {i}" for i, t in kept if since is None or t >= since]
