"""``esp-hil bench``: WiFiSocket throughput and latency beside a raw-TCP baseline.

For each message size (16 B up to the device's ``max_message``) the bench measures, on the
WiFiSocket echo service and on the firmware's raw TCP port in turn (same device, same run):

* one-way throughput host→device (the device sinks) and device→host (it sources);
* echo round trips, one message in flight: median, 99th percentile, round trips per second.

Every transfer is cross-checked against the device's own counters. Progress goes to stderr,
the tables to stdout; ``--json`` and ``--plot`` write files.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import IO, Any

from harness.bench.measure import DOWN, OURS, RAW, UP, Bench, BenchError, Echo, Transfer
from harness.bench.report import SizeResult, format_summary, format_tables, plot, to_json
from harness.errors import WiFiSocketError

__all__ = ["bench_device", "default_sizes", "parse_sizes", "run_bench", "run_sizes"]

#: The smallest size the default sweep starts at.
MIN_SIZE = 16
#: A calibration run shorter than this fraction of ``--duration`` is repeated, scaled up.
_CALIBRATE_FRACTION = 0.5
_CALIBRATE_ROUNDS = 4


def default_sizes(max_message: int) -> list[int]:
    """16 B, then steps of x4, up to and including ``max_message``."""
    sizes = []
    size = MIN_SIZE
    while size < max_message:
        sizes.append(size)
        size *= 4
    sizes.append(max_message)
    return sizes


def parse_sizes(text: str | None, max_message: int) -> list[int]:
    """``--sizes``: comma-separated byte counts (``k`` = KiB, ``max`` = the device's
    max_message); sorted, without duplicates. Raises ValueError naming a bad entry."""
    if not text:
        return default_sizes(max_message)
    sizes = set()
    for part in text.split(","):
        token = part.strip().lower()
        if not token:
            continue
        if token == "max":
            value = max_message
        else:
            try:
                value = int(token[:-1]) * 1024 if token.endswith("k") else int(token)
            except ValueError:
                raise ValueError(f"--sizes: {part.strip()!r} is not a size") from None
        if not 1 <= value <= max_message:
            raise ValueError(
                f"--sizes: {value} is outside 1..{max_message} (the device's max_message)"
            )
        sizes.add(value)
    if not sizes:
        raise ValueError("--sizes: no size given")
    return sorted(sizes)


class _Progress:
    """One line per finished measurement, on stderr."""

    def __init__(self, total: int, out: IO[str]) -> None:
        self.total = total
        self.done = 0
        self.out = out
        self.t0 = time.monotonic()

    def step(self, text: str) -> None:
        self.done += 1
        width = len(str(self.total))
        elapsed = time.monotonic() - self.t0
        print(f"[{self.done:>{width}}/{self.total}] {elapsed:6.1f}s  {text}", file=self.out,
              flush=True)


def _label(service: str) -> str:
    return "wifisocket" if service == OURS else "raw tcp   "


def _describe_transfer(t: Transfer) -> str:
    arrow = "host->device" if t.direction == UP else "device->host"
    return (f"{t.size:>6} B  {arrow}  {_label(t.service)}  {t.mb_per_s:9.2f} MB/s  "
            f"{t.msg_per_s:11,.0f} msg/s  (device clock {t.device_mb_per_s:.2f} MB/s)")


def _describe_echo(e: Echo) -> str:
    return (f"{e.size:>6} B  echo          {_label(e.service)}  p50 {e.p50 * 1e6:8.1f} us  "
            f"p99 {e.p99 * 1e6:8.1f} us  {e.per_s:9,.0f} rt/s")


def calibrated_down(bench: Bench, service: str, size: int, duration: float) -> Transfer:
    """A device→host transfer that lasts about ``duration``: the device needs a count up
    front, so short runs are repeated with a count scaled from the last rate."""
    count = max(16, min(4096, (256 * 1024) // size))
    result = bench.down(service, size, count=count)
    for _ in range(_CALIBRATE_ROUNDS):
        if result.seconds >= _CALIBRATE_FRACTION * duration:
            break
        scale = min(200.0, duration / max(result.seconds, 1e-4))
        count = max(count + 1, int(count * scale))
        result = bench.down(service, size, count=count)
    return result


def run_sizes(
    bench: Bench,
    sizes: list[int],
    duration: float,
    progress: Callable[[str], None] | None = None,
) -> list[SizeResult]:
    """Measure every size on both services; ours and raw alternate, measurement by
    measurement, so a drift in the machine's load affects both alike."""
    note = progress or (lambda _text: None)
    results = []
    for size in sizes:
        r = SizeResult(size=size, transfers={}, echoes={})
        for service in (OURS, RAW):
            t = bench.up(service, size, duration=duration)
            r.transfers[(service, UP)] = t
            note(_describe_transfer(t))
        for service in (OURS, RAW):
            t = calibrated_down(bench, service, size, duration)
            r.transfers[(service, DOWN)] = t
            note(_describe_transfer(t))
        for service in (OURS, RAW):
            e = bench.echo(service, size, duration=duration)
            r.echoes[service] = e
            note(_describe_echo(e))
        results.append(r)
    return results


def raw_port_of(device: Any) -> int:
    """The raw TCP port from the READY line (``raw=``) or the info JSON (``raw_port``)."""
    extra = getattr(device.ready, "extra", {}) or {}
    if "raw" in extra:
        return int(extra["raw"])
    info = device.info()
    if "raw_port" in info:
        return int(info["raw_port"])
    raise BenchError(
        "the firmware announces no raw TCP port (READY raw=, info raw_port): flash the "
        "current test firmware"
    )


def run_bench(args: argparse.Namespace, options: Any, *, out: IO[str] | None = None,
              err: IO[str] | None = None) -> int:
    """The ``bench`` subcommand: bring the device up, then :func:`bench_device`."""
    from harness.backends import open_device

    err = err or sys.stderr
    problem = _check_args(args)
    if problem:
        print(f"esp-hil bench: {problem}", file=err)
        return 2
    print(f"esp-hil bench: bringing up {options.spec} ...", file=err, flush=True)
    dev = open_device(options)
    try:
        return bench_device(dev, args, out=out, err=err, spec=options.spec)
    finally:
        dev.close()


def _check_args(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments before any device is touched, or None."""
    if not float(args.duration) > 0:
        return "--duration must be positive"
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        return "--plot needs matplotlib: pip install 'esp-hil[bench]'"
    return None


def bench_device(dev: Any, args: argparse.Namespace, *, out: IO[str] | None = None,
                 err: IO[str] | None = None, spec: str | None = None) -> int:
    """Measure a READY device (``args``: ``sizes``, ``duration``, ``json``, ``plot``), print
    progress to ``err`` and the tables to ``out``, write the files. Returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    problem = _check_args(args)
    if problem:
        print(f"esp-hil bench: {problem}", file=err)
        return 2
    duration = float(args.duration)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t_start = time.monotonic()
    try:
        sizes = parse_sizes(args.sizes, dev.max_message)
    except ValueError as exc:
        print(f"esp-hil bench: {exc}", file=err)
        return 2
    raw_port = raw_port_of(dev)
    total = len(sizes) * 6
    print(
        f"esp-hil bench: {dev.description}, fw {dev.fw}, max_message {dev.max_message}; "
        f"sizes {', '.join(map(str, sizes))} B; {duration:g} s per measurement, "
        f"{total} measurements",
        file=err, flush=True,
    )
    progress = _Progress(total, err)
    try:
        with Bench(dev.ip, dev.port, dev.ctrl_port, raw_port) as bench:
            results = run_sizes(bench, sizes, duration, progress.step)
            raw_buffer = bench.raw_buffer
    except (BenchError, WiFiSocketError, OSError) as exc:
        print(f"esp-hil bench: measurement failed: {exc}", file=err)
        return 1
    elapsed = time.monotonic() - t_start
    device_info = {
        "description": dev.description, "fw": dev.fw, "ip": dev.ip,
        "max_message": dev.max_message, "echo_port": dev.port, "ctrl_port": dev.ctrl_port,
        "raw_port": raw_port, "raw_buffer": raw_buffer, "spec": spec,
    }

    print(file=out)
    for line in format_tables(results):
        print(line, file=out)
    print(file=out)
    doc = to_json(results, device=device_info, settings={"sizes": sizes, "duration_s": duration},
                  started=started, elapsed=elapsed)
    for line in format_summary(doc["summary"]):
        print(line, file=out)
    out.flush()
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        print(f"wrote {args.json}", file=err)
    if args.plot:
        title = (f"esp-hil bench: {device_info['description']}, {device_info['fw']} "
                 f"— {started} — {doc['machine']['cpu'] or doc['machine']['platform']}")
        plot(results, args.plot, title=title)
        print(f"wrote {args.plot}", file=err)
    return 0
