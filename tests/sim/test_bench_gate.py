"""The regression gate on the twin: it fails on a planted slowdown and passes on the
unchanged tree, through the same path as ``esp-hil bench --save/--compare``.

The slowdown is real and in what is measured: the WiFiSocket service is reached through a
netem proxy that delays every chunk by 1 ms each way (the raw-TCP baseline is not), so
WiFiSocket's efficiency relative to raw TCP drops by far more than half. Durations are short
and the tolerance generous (0.4) so the unchanged tree's verdict holds on a loaded machine;
that a mere halving always fails is the property tests' job (tests/unit/test_bench_gate.py).
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.bench import bench_device
from harness.bench.command import GATE_FIGURES
from harness.device.base import Device
from harness.netem import Latency, Proxy

#: Short but not tiny: 3 repeats x 8 measurements x 0.15 s, about 5 s per run.
GATE = {"duration": 0.15, "repeat": 3, "tolerance": 0.4}


class _EchoVia:
    """``device``, except that its echo service is reached at ``port`` (a proxy)."""

    def __init__(self, device: Device, port: int) -> None:
        self._device = device
        self.port = port

    def __getattr__(self, name: str) -> Any:
        return getattr(self._device, name)


def _run(dev: Any, **kw: Any) -> tuple[int, str, str]:
    args = argparse.Namespace(**{**GATE, **kw})
    out, err = io.StringIO(), io.StringIO()
    code = bench_device(dev, args, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def baseline(device: Device, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gate") / "baseline.json"
    code, _, err = _run(device, save=str(path))
    assert code == 0, err
    return path


@pytest.fixture
def slow_echo(device: Device) -> Iterator[_EchoVia]:
    # Listen on the device's own address, so only the echo port differs.
    with Proxy((device.ip, device.port), listen=(device.ip, 0), seed=15) as proxy:
        proxy.add(Latency(ms=1.0))
        yield _EchoVia(device, proxy.address[1])


def test_the_baseline_keeps_samples_machine_and_firmware(baseline: Path,
                                                         device: Device) -> None:
    doc = json.loads(baseline.read_text())
    assert doc["device"]["fw"] == device.fw
    assert doc["device"]["max_message"] == device.max_message
    assert doc["machine"]["cores"] and doc["machine"]["python"]
    assert doc["settings"] == {"duration_s": 0.15, "repeat": 3, "link": "direct",
                               "keyed": device.key is not None}
    assert set(doc["figures"]) == {"echo 64 B p50", "bulk max-message up",
                                   "bulk max-message down", "echo max-message p50"}
    for fig in doc["figures"].values():
        assert len(fig["ratio"]) == len(fig["ours"]) == len(fig["raw"]) == 3


def test_the_gate_fails_on_a_planted_slowdown(baseline: Path, slow_echo: _EchoVia) -> None:
    code, out, err = _run(slow_echo, compare=str(baseline))
    assert code == 1, out + err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"esp-hil bench: worse than {baseline}: ")
    # A 1 ms delay each way costs every figure: a round trip, and the window's worth of
    # frames in flight per round trip.
    for name in ("echo 64 B p50", "bulk max-message up", "echo max-message p50"):
        assert name in last
        assert any(line.startswith(name) and line.endswith("WORSE") for line in out.splitlines())


def test_advisory_figures_are_reported_not_failed(baseline: Path, slow_echo: _EchoVia) -> None:
    code, out, err = _run(slow_echo, compare=str(baseline), advisory=list(GATE_FIGURES))
    assert code == 0, out + err
    assert any(line.startswith("echo 64 B p50") and line.endswith("WORSE (advisory)")
               for line in out.splitlines()), out
    last = err.strip().splitlines()[-1]
    assert last.startswith("esp-hil bench: worse, advisory only (not failing): echo 64 B p50")


#: The unchanged tree runs here beside the rest of the suite (4 workers on 2 cores): a single
#: figure swings by up to half between two runs (bulk down 0.90 -> 0.49 seen in CI), so the
#: no-false-alarm check takes a tolerance above that; the planted slowdown above costs far
#: more and fails at the gate's own 0.4.
UNCHANGED_TOLERANCE = 0.7


def test_the_unchanged_tree_passes_twice(baseline: Path, device: Device) -> None:
    # The download is advisory, as in CI (tools/ci_bench_gate.sh): raw TCP's download on the
    # twin is bimodal a run at a time (ratio 1.5 -> 0.38 seen here with nothing changed).
    for _ in range(2):
        code, out, err = _run(device, compare=str(baseline), tolerance=UNCHANGED_TOLERANCE,
                              advisory=["bulk max-message down"])
        assert code == 0, out + err
        assert not [line for line in out.splitlines() if line.endswith("WORSE")], out


def test_link_wifi_shapes_both_services(device: Device, tmp_path: Path) -> None:
    path = tmp_path / "wifi.json"
    args = argparse.Namespace(sizes="64", duration=0.2, json=str(path), link="wifi")
    out, err = io.StringIO(), io.StringIO()
    assert bench_device(device, args, out=out, err=err) == 0, err.getvalue()
    assert "link wifi" in err.getvalue()
    doc = json.loads(path.read_text())
    assert doc["settings"]["link"] == "wifi"
    # Both services went through the 1 MB/s cap (on loopback either moves 64-byte
    # messages at 5-40 MB/s); the devices' counters still agree with the host's.
    for t in doc["transfers"]:
        assert t["device_bytes"] == t["nbytes"] > 0
        assert t["mb_per_s"] < 1.5, t
