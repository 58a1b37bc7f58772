"""Sans-IO tests of the netem stages and pipeline, driven by a fake clock."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.netem import (
    Bandwidth,
    Blackhole,
    Corrupt,
    CutAfter,
    Latency,
    LimitData,
    ResetPeer,
    Slicer,
    SlowClose,
)
from harness.netem.pipeline import Pipeline
from harness.netem.seeding import stage_rng
from harness.netem.stages import Item, Marker, Stage, make_stage


def stage(toxic: object, now: float = 0.0, seed: int = 1, name: str = "t") -> Stage:
    return make_stage(toxic, name, random.Random(seed), now)  # type: ignore[arg-type]


def data_of(items: list[Item]) -> bytes:
    return b"".join(i for i in items if isinstance(i, bytes))


# Toxics that hold and delay but must never lose, change or reorder a byte.
lossless_toxics = st.one_of(
    st.builds(Latency, st.integers(0, 50), st.integers(0, 50)),
    st.builds(Bandwidth, st.integers(100, 100_000)),
    st.builds(Slicer, st.integers(1, 64), st.integers(0, 32), st.integers(0, 20)),
    st.builds(Blackhole),
    st.builds(SlowClose, st.integers(0, 50)),
    st.builds(ResetPeer, st.integers(0, 50)),
    st.builds(CutAfter, st.floats(0, 1)),
)

operations = st.lists(
    st.one_of(
        st.tuples(st.just("feed"), st.binary(min_size=1, max_size=300)),
        st.tuples(st.just("advance"), st.floats(0, 0.05)),
        st.tuples(st.just("add"), lossless_toxics),
        st.tuples(st.just("remove"), st.integers(0, 10)),
    ),
    max_size=40,
)


@given(operations, st.booleans())
def test_pipeline_add_remove_under_traffic_loses_and_reorders_nothing(
    ops: list[tuple[str, object]], send_eof: bool
) -> None:
    pipe = Pipeline()
    now = 0.0
    sent = bytearray()
    out: list[Item] = []
    added = 0
    for op, arg in ops:
        if op == "feed":
            assert isinstance(arg, bytes)
            sent += arg
            out += pipe.feed(arg, now)
        elif op == "advance":
            assert isinstance(arg, float)
            now += arg
            out += pipe.pump(now)
        elif op == "add":
            pipe.add(make_stage(arg, f"s{added}", random.Random(added), now))  # type: ignore[arg-type]
            added += 1
        elif pipe.names():
            assert isinstance(arg, int)
            out += pipe.remove(pipe.names()[arg % len(pipe)], now)
        # Whatever left so far is a prefix of what went in.
        assert sent.startswith(data_of(out))
        assert len(sent) == len(data_of(out)) + pipe.held()
    if send_eof:
        out += pipe.feed(Marker.EOF, now)
    while pipe.names():
        out += pipe.remove(pipe.names()[0], now)
    assert data_of(out) == bytes(sent)
    assert pipe.held() == 0
    markers = [i for i in out if isinstance(i, Marker)]
    assert markers == ([Marker.EOF] if send_eof else [])
    if send_eof:
        assert out[-1] is Marker.EOF


@given(st.lists(st.binary(min_size=1, max_size=100), min_size=1, max_size=20))
def test_latency_releases_nothing_early_and_keeps_order(chunks: list[bytes]) -> None:
    s = stage(Latency(ms=30, jitter_ms=20))
    times = []
    for k, chunk in enumerate(chunks):
        s.feed(chunk, k * 0.001)
        times.append(k * 0.001)
    # Before the smallest possible delay (30 - 20 ms) nothing may leave.
    assert s.emit(0.0099) == []
    got = s.emit(1.0)
    assert b"".join(got) == b"".join(chunks)  # type: ignore[arg-type]
    assert s.held() == 0


def test_latency_holds_each_chunk_for_its_delay() -> None:
    s = stage(Latency(ms=100))
    s.feed(b"a", 0.0)
    s.feed(b"b", 0.05)
    assert s.deadline() == pytest.approx(0.1)
    assert s.emit(0.099) == []
    assert s.emit(0.1) == [b"a"]
    assert s.emit(0.149) == []
    assert s.emit(0.1501) == [b"b"]  # 0.05 + 0.1 is a hair above 0.15 in floats
    assert s.deadline() is None


@given(st.integers(1_000, 1_000_000), st.integers(1, 200_000))
def test_bandwidth_never_exceeds_its_rate(rate: int, size: int) -> None:
    s = stage(Bandwidth(rate))
    s.feed(b"x" * size, 0.0)
    delivered = 0
    now = 0.0
    quantum = max(1, min(1 << 16, rate // 100))
    while delivered < size:
        deadline = s.deadline()
        assert deadline is not None and deadline >= now
        now = deadline
        delivered += len(data_of(s.emit(now)))
        # One piece may leave at t=0; after that the virtual clock bounds the total.
        assert delivered <= rate * now + quantum + 1e-6 * rate
    assert now >= (size - quantum) / rate - 1e-9


def test_bandwidth_saves_no_credit_while_idle() -> None:
    s = stage(Bandwidth(1000))  # 10-byte pieces
    s.feed(b"x" * 10, 0.0)
    assert s.emit(0.0) == [b"x" * 10]
    s.feed(b"y" * 100, 5.0)  # idle for seconds: still only one piece at once
    assert s.emit(5.0) == [b"y" * 10]
    assert s.deadline() == pytest.approx(5.01)


@given(
    st.binary(min_size=1, max_size=2000),
    st.integers(1, 50),
    st.integers(0, 20),
    st.data(),
)
def test_slicer_cuts_into_small_pieces_at_replayable_offsets(
    payload: bytes, average: int, variation: int, data: st.DataObject
) -> None:
    toxic = Slicer(average, variation)
    cuts = data.draw(st.lists(st.integers(1, len(payload)), max_size=5, unique=True))
    chunks = [
        payload[a:b] for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), len(payload)], strict=True)
    ]

    def run(pieces: list[bytes]) -> list[bytes]:
        s = stage(toxic, seed=7)
        out: list[bytes] = []
        for piece in pieces:
            if piece:
                s.feed(piece, 0.0)
                out += s.emit(0.0)  # type: ignore[arg-type]
        return out

    whole = run([payload])
    assert b"".join(whole) == payload
    assert all(1 <= len(p) <= average + variation for p in whole)
    # Cutting the input differently only adds cuts: every offset cut in one go is cut too.
    split = run(chunks)
    assert b"".join(split) == payload

    def offsets(pieces: list[bytes]) -> set[int]:
        total, seen = 0, set()
        for p in pieces:
            total += len(p)
            seen.add(total)
        return seen

    assert offsets(whole) <= offsets(split)


def test_slicer_waits_between_slices() -> None:
    s = stage(Slicer(4, 0, delay_ms=10))
    s.feed(b"abcdefghij", 0.0)
    assert s.emit(0.0) == [b"abcd"]
    assert s.emit(0.005) == []
    assert s.deadline() == pytest.approx(0.01)
    assert s.emit(0.01) == [b"efgh"]
    assert s.emit(0.02) == [b"ij"]
    assert s.deadline() is None


@given(st.integers(0, 500), st.lists(st.binary(min_size=1, max_size=100), max_size=20))
def test_limit_data_passes_exactly_n_bytes_then_close(limit: int, chunks: list[bytes]) -> None:
    s = stage(LimitData(limit))
    out: list[Item] = []
    for chunk in chunks:
        s.feed(chunk, 0.0)
        out += s.emit(0.0)
    s.feed(Marker.EOF, 0.0)
    out += s.emit(0.0)
    sent = b"".join(chunks)
    assert data_of(out) == sent[:limit]
    if len(sent) >= limit:
        # Exactly the limit, then CLOSE, then nothing at all.
        assert out[-1] is Marker.CLOSE
        assert out.count(Marker.CLOSE) == 1
        assert Marker.EOF not in out
    else:
        assert out[-1] is Marker.EOF
        assert Marker.CLOSE not in out


@given(st.binary(min_size=1, max_size=3000), st.floats(0, 1), st.data())
def test_corrupt_flips_one_bit_per_byte_reproducibly_whatever_the_chunking(
    payload: bytes, probability: float, data: st.DataObject
) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(1, len(payload)), max_size=6, unique=True)))
    chunks = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]

    def run(pieces: list[bytes], seed: int) -> bytes:
        s = stage(Corrupt(probability), seed=seed)
        for piece in pieces:
            if piece:
                s.feed(piece, 0.0)
        return data_of(s.emit(0.0))

    once = run([payload], seed=3)
    assert len(once) == len(payload)
    assert run(chunks, seed=3) == once
    for a, b in zip(payload, once, strict=True):
        assert bin(a ^ b).count("1") <= 1
    if probability == 0:
        assert once == payload
    if probability == 1:
        assert all(a != b for a, b in zip(payload, once, strict=True))


def test_corrupt_rate_is_roughly_its_probability() -> None:
    s = stage(Corrupt(0.1), seed=11)
    payload = bytes(20_000)
    s.feed(payload, 0.0)
    flipped = sum(1 for b in data_of(s.emit(0.0)) if b)
    # Expected 2000, sd about 42: a wide bound still catches a wrong distribution.
    assert 1700 < flipped < 2300


def test_slow_close_delays_only_the_close() -> None:
    s = stage(SlowClose(200))
    s.feed(b"data", 1.0)
    assert s.emit(1.0) == [b"data"]
    s.feed(Marker.EOF, 1.0)
    assert s.emit(1.19) == []
    assert s.deadline() == pytest.approx(1.2)
    assert s.emit(1.2) == [Marker.EOF]


def test_timed_faults_fire_at_their_time_from_birth() -> None:
    reset = stage(ResetPeer(after_ms=100), now=5.0)
    assert reset.fault(5.099) is None
    fault = reset.fault(5.1)
    assert fault is not None and fault.kind == "reset"
    cut = stage(CutAfter(0.5), now=2.0)
    assert cut.deadline() == pytest.approx(2.5)
    assert cut.fault(2.49) is None
    fault = cut.fault(2.5)
    assert fault is not None and fault.kind == "close"


def test_blackhole_stalls_and_closes_only_with_ms() -> None:
    forever = stage(Blackhole())
    forever.feed(b"held", 0.0)
    assert forever.emit(100.0) == []
    assert forever.held() == 4
    assert forever.deadline() is None and forever.fault(1e9) is None
    assert forever.drain() == [b"held"]
    timed = stage(Blackhole(ms=300), now=1.0)
    assert timed.fault(1.29) is None
    fault = timed.fault(1.3)
    assert fault is not None and fault.kind == "close"


def test_stage_rng_depends_on_every_part_of_its_key_and_nothing_else() -> None:
    draws = {
        key: stage_rng(*key).random()
        for key in [
            (1, 0, "upstream", "a"),
            (2, 0, "upstream", "a"),
            (1, 1, "upstream", "a"),
            (1, 0, "downstream", "a"),
            (1, 0, "upstream", "b"),
        ]
    }
    assert len(set(draws.values())) == len(draws)
    assert stage_rng(1, 0, "upstream", "a").random() == draws[(1, 0, "upstream", "a")]


@pytest.mark.parametrize(
    "bad",
    [
        lambda: Latency(-1),
        lambda: Latency(1, jitter_ms=float("nan")),
        lambda: Bandwidth(0),
        lambda: Slicer(0),
        lambda: Slicer(4, -1),
        lambda: LimitData(-1),
        lambda: Corrupt(1.5),
        lambda: CutAfter(float("inf")),
    ],
)
def test_toxics_reject_nonsense(bad: object) -> None:
    with pytest.raises(ValueError):
        bad()  # type: ignore[operator]
