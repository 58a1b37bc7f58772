"""esp-hil bench without a device: sizes, percentiles, ratios, calibration, reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.bench import calibrated_down, default_sizes, parse_sizes, run_sizes
from harness.bench.measure import DOWN, OURS, RAW, UP, Echo, Transfer, source_message
from harness.bench.report import SizeResult, format_summary, format_tables, plot, summary, to_json


def test_default_sizes_step_by_four_and_end_at_the_maximum() -> None:
    assert default_sizes(4096) == [16, 64, 256, 1024, 4096]
    assert default_sizes(16384) == [16, 64, 256, 1024, 4096, 16384]
    assert default_sizes(1000) == [16, 64, 256, 1000]
    assert default_sizes(16) == [16]
    assert default_sizes(8) == [8]


def test_parse_sizes() -> None:
    assert parse_sizes(None, 4096) == default_sizes(4096)
    assert parse_sizes("", 4096) == default_sizes(4096)
    assert parse_sizes("64,16, 16 ,1k,max", 4096) == [16, 64, 1024, 4096]
    assert parse_sizes("4K", 4096) == [4096]


@pytest.mark.parametrize("text", ["0", "4097", "8k", "x", "16,,abc", ",", "-16", "1.5k"])
def test_parse_sizes_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="--sizes"):
        parse_sizes(text, 4096)


def test_source_message_layout() -> None:
    assert source_message(0, 0) == b""
    assert source_message(7, 3) == b"\x00\x01\x02"
    assert source_message(0x01020304, 6) == b"\x01\x02\x03\x04\x04\x05"
    assert source_message(1, 300)[256:260] == bytes([0, 1, 2, 3])
    assert source_message(2**32 + 5, 4) == b"\x00\x00\x00\x05"


@given(st.lists(st.floats(min_value=1e-6, max_value=1.0), min_size=1, max_size=200))
def test_percentiles_are_samples_in_order(samples: list[float]) -> None:
    e = Echo(service=OURS, size=64, count=len(samples), seconds=sum(samples), samples=samples)
    assert e.p50 in samples and e.p99 in samples
    assert min(samples) <= e.p50 <= e.p99 <= max(samples)
    # Nearest rank: at least q of the samples are <= the q-quantile.
    assert sum(x <= e.p50 for x in samples) >= 0.5 * len(samples)
    assert sum(x <= e.p99 for x in samples) >= 0.99 * len(samples)


def test_percentiles_of_one_to_a_hundred() -> None:
    samples = [float(i) for i in range(100, 0, -1)]
    e = Echo(service=RAW, size=16, count=100, seconds=1.0, samples=samples)
    assert (e.p50, e.p99, e.percentile(1.0), e.percentile(0.0)) == (50.0, 99.0, 100.0, 1.0)
    assert e.per_s == 100.0


def _transfer(service: str, direction: str, size: int, mb_per_s: float) -> Transfer:
    seconds = 1.0
    nbytes = int(mb_per_s * 1e6)
    return Transfer(service=service, direction=direction, size=size, messages=nbytes // size,
                    nbytes=nbytes, seconds=seconds, device_messages=nbytes // size,
                    device_bytes=nbytes, device_seconds=seconds * 0.99)


def _echo(service: str, size: int, p50_us: float) -> Echo:
    samples = [p50_us * 1e-6] * 98 + [p50_us * 3e-6] * 2
    return Echo(service=service, size=size, count=100, seconds=sum(samples), samples=samples,
                device_messages=100)


def _result(size: int, up: tuple[float, float], down: tuple[float, float],
            echo_us: tuple[float, float]) -> SizeResult:
    return SizeResult(
        size=size,
        transfers={
            (OURS, UP): _transfer(OURS, UP, size, up[0]),
            (RAW, UP): _transfer(RAW, UP, size, up[1]),
            (OURS, DOWN): _transfer(OURS, DOWN, size, down[0]),
            (RAW, DOWN): _transfer(RAW, DOWN, size, down[1]),
        },
        echoes={OURS: _echo(OURS, size, echo_us[0]), RAW: _echo(RAW, size, echo_us[1])},
    )


RESULTS = [
    _result(64, up=(8.0, 10.0), down=(9.0, 12.0), echo_us=(40.0, 28.0)),
    _result(4096, up=(90.0, 100.0), down=(50.0, 200.0), echo_us=(100.0, 50.0)),
]


def test_ratios_are_ours_over_raw_for_rates_and_raw_over_ours_for_latency() -> None:
    small, bulk = RESULTS
    assert small.ratio("up_mb_per_s") == pytest.approx(0.8)
    assert bulk.ratio("down_mb_per_s") == pytest.approx(0.25)
    assert small.ratio("echo_p50_us") == pytest.approx(28.0 / 40.0)
    assert bulk.ratio("echo_p99_us") == pytest.approx(0.5)
    assert small.ratio("echo_per_s") == pytest.approx(28.0 / 40.0)
    empty = SizeResult(size=16, transfers={}, echoes={})
    assert empty.ratio("up_mb_per_s") is None and empty.value("echo_p50_us", OURS) is None
    with pytest.raises(KeyError):
        small.value("bogus", OURS)


def test_summary_and_tables() -> None:
    s = summary(RESULTS)
    assert s["bulk_size"] == 4096
    assert s["bulk_up_ratio"] == pytest.approx(0.9)
    assert s["bulk_down_ratio"] == pytest.approx(0.25)
    assert s["echo64_p50_ratio"] == pytest.approx(0.7)
    lines = format_tables(RESULTS)
    text = "\n".join(lines)
    assert "0.90" in text and "0.25" in text and "0.70" in text and "0.50" in text
    assert sum(line.startswith("4096 B") for line in lines) == 3  # up, down, echo rows
    widths = {len(line) for line in lines[1:6] if line}
    assert len(widths) == 1  # the throughput table's rows are aligned
    assert any("0.90" in line and "0.25" in line for line in format_summary(s))
    assert summary([]) == {}


def test_json_document_round_trips() -> None:
    doc = to_json(RESULTS, device={"fw": "x"}, settings={"sizes": [64, 4096]},
                  started="2026-01-01T00:00:00+00:00", elapsed=1.5)
    again = json.loads(json.dumps(doc))
    assert again["schema"] == "esp-hil-bench/1"
    assert again["summary"]["bulk_size"] == 4096
    assert len(again["transfers"]) == 8 and len(again["echo"]) == 4
    row = next(r for r in again["ratios"] if r["size"] == 64 and r["metric"] == "up_mb_per_s")
    assert (row["ours"], row["raw"]) == (pytest.approx(8.0), pytest.approx(10.0))
    assert again["machine"]["cores"] >= 1
    t = again["transfers"][0]
    assert t["mb_per_s"] == pytest.approx(t["nbytes"] / t["seconds"] / 1e6)


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "bench.png"
    plot(RESULTS, str(path), title="unit test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class FakeBench:
    """Stands in for :class:`harness.bench.measure.Bench`: fixed rates, a call log."""

    def __init__(self, msg_per_s: float) -> None:
        self.msg_per_s = msg_per_s
        self.calls: list[tuple[str, str, int, Any]] = []

    def up(self, service: str, size: int, *, duration: float) -> Transfer:
        self.calls.append(("up", service, size, duration))
        return _transfer(service, UP, size, 1.0)

    def down(self, service: str, size: int, *, count: int) -> Transfer:
        self.calls.append(("down", service, size, count))
        seconds = 0.001 + count / self.msg_per_s  # a fixed start-up cost, then the rate
        return Transfer(service=service, direction=DOWN, size=size, messages=count,
                        nbytes=count * size, seconds=seconds, device_messages=count,
                        device_bytes=count * size, device_seconds=seconds)

    def echo(self, service: str, size: int, *, duration: float) -> Echo:
        self.calls.append(("echo", service, size, duration))
        return _echo(service, size, 30.0)


@pytest.mark.parametrize("rate", [1e3, 1e5, 1e7, 1e9])
def test_calibration_reaches_the_duration(rate: float) -> None:
    bench = FakeBench(rate)
    t = calibrated_down(bench, OURS, 64, 1.0)  # type: ignore[arg-type]
    assert t.seconds >= 0.5 or len(bench.calls) == 5  # the bound on repeats
    assert t.seconds < 5.0
    assert 1 <= len(bench.calls) <= 5
    counts = [c[3] for c in bench.calls]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)


def test_run_sizes_alternates_services_and_reports_progress() -> None:
    bench = FakeBench(1e6)
    seen: list[str] = []
    results = run_sizes(bench, [16, 64], 0.01, seen.append)  # type: ignore[arg-type]
    assert [r.size for r in results] == [16, 64]
    assert len(seen) == 12
    kinds = [(c[0], c[1]) for c in bench.calls if c[0] != "down"]
    assert kinds[:4] == [("up", OURS), ("up", RAW), ("echo", OURS), ("echo", RAW)]
    for r in results:
        assert set(r.transfers) == {(OURS, UP), (RAW, UP), (OURS, DOWN), (RAW, DOWN)}
        assert set(r.echoes) == {OURS, RAW}
