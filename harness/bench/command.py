"""``esp-hil bench``: WiFiSocket throughput and latency beside a raw-TCP baseline.

For each message size (16 B up to the device's ``max_message``) the bench measures, on the
WiFiSocket echo service and on the firmware's raw TCP port in turn (same device, same run):

* one-way throughput host→device (the device sinks) and device→host (it sources);
* echo round trips, one message in flight: median, 99th percentile, round trips per second.

Every transfer is cross-checked against the device's own counters. Progress goes to stderr,
the tables to stdout; ``--json`` and ``--plot`` write files.

``--save FILE`` and ``--compare FILE`` measure the gate's figures instead (64 B echo, bulk
and echo at the device's largest message), ``--repeat`` times each, and store them or
compare them against a stored run (:mod:`harness.bench.gate`). ``--link wifi`` puts a
:mod:`harness.netem` proxy shaped like an ESP8266 on WiFi in front of both services.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from typing import IO, Any

from harness.bench import gate
from harness.bench.measure import DOWN, OURS, RAW, UP, Bench, BenchError, Echo, Transfer
from harness.bench.report import (
    SizeResult,
    format_summary,
    format_tables,
    machine_info,
    plot,
    to_json,
)
from harness.errors import WiFiSocketError

__all__ = [
    "add_arguments",
    "bench_device",
    "default_sizes",
    "measure_gate",
    "parse_sizes",
    "run_bench",
    "run_sizes",
]

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


def size_entries(text: str) -> list[int | None]:
    """``--sizes``' entries as written: byte counts (``k`` = KiB), None for ``max``. Checks
    what needs no device (before one is brought up); raises ValueError naming a bad entry."""
    entries: list[int | None] = []
    for part in text.split(","):
        token = part.strip().lower()
        if not token:
            continue
        if token == "max":
            entries.append(None)
            continue
        try:
            value = int(token[:-1]) * 1024 if token.endswith("k") else int(token)
        except ValueError:
            raise ValueError(f"--sizes: {part.strip()!r} is not a size") from None
        if value < 1:
            raise ValueError(f"--sizes: {value} is not a size of at least 1 byte")
        entries.append(value)
    if not entries:
        raise ValueError("--sizes: no size given")
    return entries


def parse_sizes(text: str | None, max_message: int) -> list[int]:
    """``--sizes``: comma-separated byte counts (``k`` = KiB, ``max`` = the device's
    max_message); sorted, without duplicates. Raises ValueError naming a bad entry."""
    if not text:
        return default_sizes(max_message)
    sizes = set()
    for entry in size_entries(text):
        value = max_message if entry is None else entry
        if value > max_message:
            raise ValueError(
                f"--sizes: {value} is outside 1..{max_message} (the device's max_message)"
            )
        sizes.add(value)
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


#: The gate's figures: name -> (unit, higher is better). "max-message" is the device's
#: ``max_message``, whatever it is, so the names stay comparable when it changes.
GATE_FIGURES = {
    "echo 64 B p50": ("us", False),
    "bulk max-message up": ("MB/s", True),
    "bulk max-message down": ("MB/s", True),
    "echo max-message p50": ("us", False),
}
#: ``--repeat`` when not given.
DEFAULT_REPEAT = 5


#: Each repeat of a gate figure alternates ours and raw this many times, in slices of
#: ``duration / _SLICES``: a change in the machine's load then hits both services alike.
_SLICES = 5


def measure_gate(bench: Bench, max_message: int, duration: float, repeat: int,
                 progress: Callable[[str], None] | None = None) -> dict[str, gate.FigureSamples]:
    """The gate's figures, ``repeat`` times each: one ratio sample per figure and repeat.
    Within a repeat ours and raw alternate slice by slice; a repeat's throughput is bytes
    over seconds of all its slices, its p50 the median of all its round trips."""
    note = progress or (lambda _text: None)
    figures = {name: gate.FigureSamples(name, unit, hib)
               for name, (unit, hib) in GATE_FIGURES.items()}
    part = duration / _SLICES
    echo_small = min(64, max_message)

    def echo_p50(size: int) -> dict[str, float]:
        echoes: dict[str, list[float]] = {OURS: [], RAW: []}
        for _ in range(_SLICES):
            for service in (OURS, RAW):
                echoes[service] += bench.echo(service, size, duration=part).samples
        merged = {s: Echo(s, size, len(v), part * _SLICES, v) for s, v in echoes.items()}
        for e in merged.values():
            note(_describe_echo(e))
        return {s: e.p50 * 1e6 for s, e in merged.items()}

    def mb_per_s(direction: str) -> dict[str, float]:
        moved = {OURS: [0, 0.0], RAW: [0, 0.0]}
        for _ in range(_SLICES):
            for service in (OURS, RAW):
                t = (bench.up(service, max_message, duration=part) if direction == UP
                     else calibrated_down(bench, service, max_message, part))
                moved[service][0] += t.nbytes
                moved[service][1] += t.seconds
        for service, (nbytes, seconds) in moved.items():
            note(f"{max_message:>6} B  {direction:<4} x{_SLICES}       {_label(service)}  "
                 f"{nbytes / seconds / 1e6:9.2f} MB/s")
        return {s: nbytes / seconds / 1e6 for s, (nbytes, seconds) in moved.items()}

    for _ in range(repeat):
        for name, measure in (("echo 64 B p50", lambda: echo_p50(echo_small)),
                              ("bulk max-message up", lambda: mb_per_s(UP)),
                              ("bulk max-message down", lambda: mb_per_s(DOWN)),
                              ("echo max-message p50", lambda: echo_p50(max_message))):
            pair = measure()
            figures[name].add(pair[OURS], pair[RAW])
    return figures


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``bench`` subcommand's own options (the CLI adds the device options)."""
    p.add_argument("--json", default=None, metavar="FILE", help="write the figures as JSON")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="plot throughput vs size")
    p.add_argument(
        "--sizes",
        default=None,
        help="message sizes in bytes, comma-separated; 'k' = KiB, 'max' = the device's limit "
        "(e.g. 16,64,1k,max)",
    )
    p.add_argument("--duration", type=float, default=None,
                   help="seconds per measurement (default: 1; with --compare: the baseline's)")
    p.add_argument("--link", choices=("direct", *_profile_names()), default=None,
                   help="shape the link to both services with a netem profile (wifi: an "
                   "ESP8266 on WiFi, docs/netem.md); default direct, with --compare the "
                   "baseline's")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--save", default=None, metavar="FILE",
                      help="measure the gate's figures --repeat times and store them with "
                      "their spread, the machine and the firmware")
    mode.add_argument("--compare", default=None, metavar="FILE",
                      help="measure the gate's figures again and exit 1 naming every figure "
                      "worse than the stored run beyond its spread and --tolerance")
    p.add_argument("--repeat", type=int, default=None,
                   help=f"repeats per gate figure (default {DEFAULT_REPEAT}; with --compare: "
                   "the baseline's)")
    p.add_argument("--tolerance", type=float, default=gate.DEFAULT_TOLERANCE,
                   help="smallest relative worsening of a median that can fail "
                   f"(default {gate.DEFAULT_TOLERANCE})")
    p.add_argument("--alpha", type=float, default=gate.DEFAULT_ALPHA,
                   help="significance level of the one-sided Mann-Whitney U test "
                   f"(default {gate.DEFAULT_ALPHA})")
    p.add_argument("--absolute", action="store_true",
                   help="compare our absolute figures, not the ratios to raw TCP")
    p.add_argument("--advisory", action="append", default=[], metavar="FIGURE",
                   help="with --compare: report FIGURE (a gate figure's name, e.g. 'bulk "
                   "max-message down') but do not fail on it; repeatable")


def load_baseline(path: str) -> dict[str, Any]:
    """A baseline file for ``--compare``, checked to hold the gate's figures;
    :class:`~harness.bench.gate.GateError` (one line, naming the file) otherwise."""
    doc = gate.load(path)
    try:
        gate.check_figure_set(doc["figures"], GATE_FIGURES)
    except gate.GateError as exc:
        raise gate.GateError(f"{path}: {exc}") from None
    return doc


def _profile_names() -> tuple[str, ...]:
    from harness.netem.profiles import PROFILES

    return tuple(PROFILES)


def run_bench(args: argparse.Namespace, options: Any, *, out: IO[str] | None = None,
              err: IO[str] | None = None) -> int:
    """The ``bench`` subcommand: bring the device up, then :func:`bench_device`."""
    from harness.backends import open_device

    err = err or sys.stderr
    prepared = _prepare(args, None, err)
    if prepared is None:
        return 2
    args, baseline = prepared
    print(f"esp-hil bench: bringing up {options.spec} ...", file=err, flush=True)
    dev = open_device(options)
    try:
        return bench_device(dev, args, out=out, err=err, spec=options.spec, baseline=baseline)
    finally:
        dev.close()


def _prepare(
    args: argparse.Namespace, baseline: dict[str, Any] | None, err: IO[str]
) -> tuple[argparse.Namespace, dict[str, Any] | None] | None:
    """``args`` with defaults and the baseline ``--compare`` names (loaded unless given), or
    None once the one line saying what is wrong is printed to ``err``."""
    args = _with_defaults(args)
    problem = _check_args(args)
    if problem is None and args.compare and baseline is None:
        try:
            baseline = load_baseline(args.compare)
        except gate.GateError as exc:
            problem = str(exc)
    if problem:
        print(f"esp-hil bench: {problem}", file=err)
        return None
    return args, baseline


def _check_args(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments before any device is touched, or None."""
    if args.duration is not None and not float(args.duration) > 0:
        return "--duration must be positive"
    if args.repeat is not None and args.repeat < 1:
        return "--repeat must be at least 1"
    if not 0 <= args.tolerance < 1:
        return "--tolerance must be in [0, 1)"
    if not 0 < args.alpha < 1:
        return "--alpha must be in (0, 1)"
    unknown = [name for name in args.advisory if name not in GATE_FIGURES]
    if unknown:
        return (f"--advisory {unknown[0]!r} is not a gate figure (one of: "
                f"{', '.join(GATE_FIGURES)})")
    if args.advisory and not args.compare:
        return "--advisory goes with --compare"
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        return "--plot needs matplotlib: pip install 'esp-hil[bench]'"
    gating = args.save or args.compare
    if gating and importlib.util.find_spec("scipy") is None:
        return "--save/--compare need scipy: pip install 'esp-hil[bench]'"
    if gating and (args.plot or args.sizes):
        return "--save/--compare measure the gate's own figures: no --sizes or --plot"
    if args.sizes:
        try:
            size_entries(args.sizes)  # the range needs the device's max_message: later
        except ValueError as exc:
            return str(exc)
    return None


@contextmanager
def open_bench(dev: Any, raw_port: int, link: str, seed: int | None = None) -> Iterator[Bench]:
    """A :class:`Bench` on ``dev``; for a ``link`` other than ``direct``, the echo service
    and the raw port are each reached through a netem proxy shaped by that profile."""
    if link == "direct":
        with Bench(dev.ip, dev.port, dev.ctrl_port, raw_port, key=dev.key) as bench:
            yield bench
        return
    from harness.netem import Proxy
    from harness.netem.profiles import apply_profile

    with ExitStack() as stack:
        echo = stack.enter_context(Proxy((dev.ip, dev.port), seed=seed))
        raw = stack.enter_context(Proxy((dev.ip, raw_port), seed=seed))
        for proxy in (echo, raw):
            apply_profile(proxy, link)
        yield stack.enter_context(Bench(dev.ip, dev.port, dev.ctrl_port, raw_port, key=dev.key,
                                        echo_address=echo.address, raw_address=raw.address))


def bench_device(dev: Any, args: argparse.Namespace, *, out: IO[str] | None = None,
                 err: IO[str] | None = None, spec: str | None = None,
                 baseline: dict[str, Any] | None = None) -> int:
    """Measure a READY device (``args``: see :func:`add_arguments`), print progress to
    ``err`` and the tables to ``out``, write the files. Returns the exit code.

    With ``args.compare``, ``baseline`` is the loaded document (read before the device came
    up, so a bad file costs nothing); it is loaded here if not given."""
    out = out or sys.stdout
    err = err or sys.stderr
    prepared = _prepare(args, baseline, err)
    if prepared is None:
        return 2
    args, baseline = prepared
    stored = (baseline or {}).get("settings", {})
    link = args.link or stored.get("link", "direct")
    if baseline is not None and args.link and args.link != stored.get("link", "direct"):
        print(f"esp-hil bench: the baseline was measured with --link "
              f"{stored.get('link', 'direct')}, not {args.link}", file=err)
        return 2
    if baseline is not None and stored.get("keyed", False) != (dev.key is not None):
        said = "keyed" if stored.get("keyed", False) else "keyless"
        print(f"esp-hil bench: the baseline was measured on {said} links; give the same "
              f"--link-key ({'auto' if said == 'keyed' else 'none'})", file=err)
        return 2
    if args.save or args.compare:
        return _gate(dev, args, link, baseline, out=out, err=err, spec=spec)
    return _sweep(dev, args, link, out=out, err=err, spec=spec)


def _with_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with every bench option a caller left out at its default."""
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    return argparse.Namespace(**{**vars(parser.parse_args([])), **vars(args)})


def _device_info(dev: Any, spec: str | None, raw_port: int) -> dict[str, Any]:
    return {
        "description": dev.description, "fw": dev.fw, "ip": dev.ip,
        "max_message": dev.max_message, "echo_port": dev.port, "ctrl_port": dev.ctrl_port,
        "raw_port": raw_port, "spec": spec,
    }


def _gate(dev: Any, args: argparse.Namespace, link: str, baseline: dict[str, Any] | None, *,
          out: IO[str], err: IO[str], spec: str | None) -> int:
    stored = (baseline or {}).get("settings", {})
    duration = float(args.duration or stored.get("duration_s", 1.0))
    repeat = int(args.repeat or stored.get("repeat", DEFAULT_REPEAT))
    raw_port = raw_port_of(dev)
    total = repeat * 2 * len(GATE_FIGURES)
    print(f"esp-hil bench: {dev.description}, fw {dev.fw}, max_message {dev.max_message}; "
          f"link {link}; {repeat} repeats of {len(GATE_FIGURES)} figures, {duration:g} s per "
          f"measurement", file=err, flush=True)
    progress = _Progress(total, err)
    try:
        with open_bench(dev, raw_port, link) as bench:
            figures = measure_gate(bench, dev.max_message, duration, repeat, progress.step)
    except (BenchError, WiFiSocketError, OSError) as exc:
        print(f"esp-hil bench: measurement failed: {exc}", file=err)
        return 1
    device_info = _device_info(dev, spec, raw_port)
    if args.save:
        doc = gate.document(
            figures, machine=machine_info(), device=device_info,
            settings={"duration_s": duration, "repeat": repeat, "link": link,
                      "keyed": dev.key is not None},
            saved=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        try:
            with open(args.save, "w", encoding="utf-8") as f:
                json.dump(doc, f, indent=2)
                f.write("\n")
        except OSError as exc:
            print(f"esp-hil bench: cannot write {args.save}: {exc.strerror or exc}", file=err)
            return 2
        print(f"wrote {args.save}", file=err)
        return 0
    assert baseline is not None
    try:
        verdicts = gate.compare(gate.samples_from(baseline), figures, tolerance=args.tolerance,
                                alpha=args.alpha, absolute=args.absolute)
    except gate.GateError as exc:
        print(f"esp-hil bench: {args.compare}: {exc}", file=err)
        return 2
    then = baseline.get("device", {})
    print(f"baseline: {args.compare}, saved {baseline.get('saved', '?')}, fw "
          f"{then.get('fw', '?')}, max_message {then.get('max_message', '?')}; now: fw "
          f"{dev.fw}, max_message {dev.max_message}", file=out)
    print(f"compared: {'absolute figures' if args.absolute else 'ratios to raw TCP'}; "
          f"worse = one-sided Mann-Whitney p <= {args.alpha:g} and the median "
          f"{args.tolerance:.0%} worse or more", file=out)
    advisory = set(args.advisory)
    for line in gate.format_verdicts(verdicts, advisory):
        print(line, file=out)
    out.flush()
    noted = [v.name for v in verdicts if v.worse and v.name in advisory]
    if noted:
        print(f"esp-hil bench: worse, advisory only (not failing): {', '.join(noted)}",
              file=err)
    worse = [v.name for v in verdicts if v.worse and v.name not in advisory]
    if worse:
        print(f"esp-hil bench: worse than {args.compare}: {', '.join(worse)}", file=err)
        return 1
    return 0


def _sweep(dev: Any, args: argparse.Namespace, link: str, *, out: IO[str], err: IO[str],
           spec: str | None) -> int:
    duration = float(args.duration or 1.0)
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
        f"link {link}; sizes {', '.join(map(str, sizes))} B; {duration:g} s per measurement, "
        f"{total} measurements",
        file=err, flush=True,
    )
    progress = _Progress(total, err)
    try:
        with open_bench(dev, raw_port, link) as bench:
            results = run_sizes(bench, sizes, duration, progress.step)
            raw_buffer = bench.raw_buffer
    except (BenchError, WiFiSocketError, OSError) as exc:
        print(f"esp-hil bench: measurement failed: {exc}", file=err)
        return 1
    elapsed = time.monotonic() - t_start
    device_info = {**_device_info(dev, spec, raw_port), "raw_buffer": raw_buffer}

    print(file=out)
    for line in format_tables(results):
        print(line, file=out)
    print(file=out)
    doc = to_json(results, device=device_info,
                  settings={"sizes": sizes, "duration_s": duration, "link": link,
                            "keyed": dev.key is not None},
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
