#!/usr/bin/env python3
"""Where does the time of one workload go? Host CPU, twin CPU, and waiting.

Runs one workload against a fresh twin for a few seconds and prints, per message:

* wall time (the reciprocal of the rate),
* host CPU time (this process: the caller's thread and the WiFiSocket keepalive thread),
* the twin firmware process's CPU time (from /proc/<pid>/stat),
* what is left: neither side on a CPU, i.e. wake-ups, scheduling and waiting for the peer.

Optionally profiles the host side with pyinstrument (``--pyinstrument``) and samples the
twin with ``perf record`` (``--perf``, needs Linux perf and permission to attach).

    python benchmarks/profile.py echo --service wifisocket --size 64 --seconds 3
    python benchmarks/profile.py up --size 4096 --pyinstrument
    python benchmarks/profile.py down --size 4096 --perf
    python benchmarks/profile.py up --size 4096 --syscalls

Workloads are those of ``esp-hil bench`` (harness.bench.measure): ``up`` (host sends, the
device sinks), ``down`` (the device sources), ``echo`` (one message in flight).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Measure the tree this script is in, not whichever esp-hil is installed (run as a script,
# Python puts benchmarks/ first on sys.path, not the checkout).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.backends import DeviceOptions, open_device
from harness.bench import calibrated_down, raw_port_of
from harness.bench.measure import OURS, RAW, Bench

_SYSCALL_EVENTS = (
    "raw_syscalls:sys_enter", "syscalls:sys_enter_poll", "syscalls:sys_enter_ioctl",
    "syscalls:sys_enter_recvfrom", "syscalls:sys_enter_sendto", "context-switches",
)


def _twin_pid(ip: str) -> int | None:
    """The twin firmware process serving ``ip`` (its ESP_HIL_IP), found through /proc."""
    want = f"ESP_HIL_IP={ip}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv0 = f.read().split(b"\0", 1)[0]
            if not argv0.endswith(b"esp-hil-fw"):
                continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                if want in f.read().split(b"\0"):
                    return int(entry)
        except OSError:
            continue
    return None


def _cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def _run(bench: Bench, workload: str, service: str, size: int, seconds: float,
         down_count: int) -> int:
    """Run the workload; return the number of messages (raw: ``size``-byte units)."""
    if workload == "up":
        return bench.up(service, size, duration=seconds).messages
    if workload == "echo":
        return bench.echo(service, size, duration=seconds).count
    return bench.down(service, size, count=down_count).messages


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("workload", choices=("up", "down", "echo"))
    p.add_argument("--service", choices=(OURS, RAW), default=OURS)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--pyinstrument", action="store_true", help="profile the host side")
    p.add_argument("--perf", action="store_true", help="perf record the twin process")
    p.add_argument("--syscalls", action="store_true",
                   help="count the twin's system calls per message (perf stat tracepoints)")
    p.add_argument("--link-key", default="auto", metavar="auto|none|HEX",
                   help="the link's key, as `esp-hil bench --link-key` (default: auto, keyed)")
    args = p.parse_args(argv)

    dev = open_device(DeviceOptions(spec="sim", link_key=args.link_key))
    try:
        pid = _twin_pid(dev.ip)
        with Bench(dev.ip, dev.port, dev.ctrl_port, raw_port_of(dev), key=dev.key) as bench:
            # Warm up; for `down`, find the count that lasts about --seconds.
            down_count = 0
            if args.workload == "down":
                down_count = calibrated_down(bench, args.service, args.size,
                                             args.seconds).messages
            else:
                _run(bench, args.workload, args.service, args.size, 0.2, 0)
            perf = None
            perf_data = os.path.join(tempfile.mkdtemp(prefix="esp-hil-perf-"), "perf.data")
            if args.perf:
                if pid is None or shutil.which("perf") is None:
                    print("--perf: needs the twin's pid and Linux perf", file=sys.stderr)
                    return 2
                perf = subprocess.Popen(
                    ["perf", "record", "-q", "-g", "-F", "4999", "-p", str(pid), "-o", perf_data],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
                time.sleep(0.3)
            counter = None
            if args.syscalls:
                if pid is None or shutil.which("perf") is None:
                    print("--syscalls: needs the twin's pid and Linux perf", file=sys.stderr)
                    return 2
                counter = subprocess.Popen(
                    ["perf", "stat", "-x,", "-e", ",".join(_SYSCALL_EVENTS), "-p", str(pid)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                )
                time.sleep(0.3)
            profiler: Any = None
            if args.pyinstrument:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0002)
                profiler.start()
            dev_cpu0 = _cpu_seconds(pid) if pid else 0.0
            host_cpu0 = time.process_time()
            t0 = time.perf_counter()
            n = _run(bench, args.workload, args.service, args.size, args.seconds, down_count)
            wall = time.perf_counter() - t0
            host_cpu = time.process_time() - host_cpu0
            dev_cpu = (_cpu_seconds(pid) - dev_cpu0) if pid else float("nan")
            if profiler is not None:
                profiler.stop()
            if perf is not None:
                perf.send_signal(signal.SIGINT)
                perf.wait(timeout=30)
            counts: dict[str, float] = {}
            if counter is not None:
                counter.send_signal(signal.SIGINT)
                _, err = counter.communicate(timeout=30)
                for line in err.splitlines():
                    fields = line.split(",")
                    if len(fields) > 2 and fields[0].replace(".", "", 1).isdigit():
                        counts[fields[2]] = float(fields[0])
    finally:
        dev.close()

    per = 1e6 / max(n, 1)
    rest = wall - host_cpu - dev_cpu
    print(f"{args.workload} {args.service} {args.size} B: {n} messages in {wall:.2f} s = "
          f"{n / wall:,.0f} msg/s, {n * args.size / wall / 1e6:.2f} MB/s")
    print(f"per message: wall {wall * per:7.1f} us = host CPU {host_cpu * per:6.1f} us "
          f"+ twin CPU {dev_cpu * per:6.1f} us + neither on a CPU {rest * per:6.1f} us")
    print(f"load average now: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"on {os.cpu_count()} cores (other load distorts these figures)")
    if args.syscalls:
        names = {"raw_syscalls:sys_enter": "all", "context-switches": "context switches"}
        parts = [f"{names.get(k, k.rsplit('_', 1)[-1])} {v / max(n, 1):.1f}"
                 for k, v in counts.items()]
        print("twin system calls per message: " + ", ".join(parts))
    if profiler is not None:
        print(profiler.output_text(unicode=False, show_all=False))
    if args.perf:
        report = subprocess.run(
            ["perf", "report", "-i", perf_data, "--no-children", "--sort", "sym", "--stdio"],
            capture_output=True, text=True, check=False,
        )
        lines = [ln for ln in report.stdout.splitlines() if ln.strip()[:1].isdigit()]
        print("twin process, perf samples by symbol ([k] = kernel):")
        print("\n".join(lines[:30]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
