#!/usr/bin/env python3
"""How fast a WiFiSocket link recovers, on the twin, with default settings.

    python benchmarks/link_recovery.py [--trials 20] [--device sim] [--json out.json]

Two figures, each over ``--trials`` runs (median, 90th percentile, worst):

* **cut recovery** — a message is sent right after the TCP connection was cut (a netem
  proxy between host and device resets it, closes it with a FIN, or closes it in the
  middle of a frame); the figure is the time from the cut until its echo is back: the host
  notices, dials again (the first attempt is immediate), resumes the session, resends.
  Target: under 1 s. Measured in both topologies: the host dials the device, and the
  device dials the host's ``WiFiSocket.accept`` (there the device's own redial delay, 0.5 s
  in the test firmware, dominates).
* **dead-peer detection** — the link stalls (netem ``Blackhole`` both ways: no FIN, no RST,
  as when a WiFi station drops off) right after an echo; the figure is the time from the
  last byte the host received until it declares the peer dead, against its configured bound
  ``dead_after`` (default 3 s; target: within ±20 %). The device's detection of the same
  stall (its ``WS CLOSE code=6`` console line; its bound is 3 x the host's keepalive) is
  shown alongside, and so is how long the link takes to carry traffic once the stall ends.

Only the reconnect waits are at their defaults where a figure says so; everything runs on
loopback, so the figures are the library's and the firmware's reaction times, not WiFi's.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import WiFiSocket
from harness.backends import DeviceOptions, open_device
from harness.device.base import Device
from harness.netem import Blackhole, CutAfter, LimitData, Proxy, ResetPeer
from harness.wifisocket import Reconnect

WAIT = 30.0  # bound of every wait here
HOST = "127.0.0.1"


def _wait(cond: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.0005)


def _more_than(items: list[Reconnect], n: int) -> Callable[[], bool]:
    return lambda: len(items) > n


def _reconnected_since(ws: WiFiSocket, count: int) -> Callable[[], bool]:
    return lambda: ws.reconnects > count


def _echo(ws: WiFiSocket, payload: bytes) -> None:
    ws.send(payload)
    got = ws.receive(timeout=WAIT)
    if got != payload:
        raise AssertionError(f"echo mismatch: {got!r} != {payload!r}")


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, max(0, round(0.9 * len(ordered)) - 1))]
    return {
        "n": len(values),
        "median": statistics.median(ordered),
        "p90": p90,
        "max": ordered[-1],
        "min": ordered[0],
    }


def _cut(proxy: Proxy, kind: str, direction: str) -> None:
    """Cut the open connection now; take the toxic out once it is gone."""
    before = proxy.connections_total
    if kind == "rst":
        name = proxy.add(ResetPeer(after_ms=0), direction="both")
    elif kind == "fin":
        name = proxy.add(CutAfter(seconds=0.0), direction="both")
    else:  # "mid-frame": the next bytes in `direction` stop after 30 of them
        name = proxy.add(LimitData(bytes=30), direction=direction)  # type: ignore[arg-type]

    def remove_when_cut() -> None:
        _wait(lambda: proxy.connections == 0 or proxy.connections_total > before, "the cut")
        proxy.remove(name)

    threading.Thread(target=remove_when_cut, daemon=True).start()


def cut_recovery_host_dials(device: Device, trials: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    payload = b"x" * 64
    seen: list[Reconnect] = []
    with Proxy(upstream=(device.ip, device.port), seed=1) as proxy, \
            WiFiSocket(*proxy.address, on_reconnect=seen.append) as ws:  # default settings
        for kind in ("rst", "fin", "mid-frame"):
            times: list[float] = []
            downtimes: list[float] = []
            attempts: list[int] = []
            for k in range(trials):
                for _ in range(3):
                    _echo(ws, payload)  # warm, and the link is up
                n = len(seen)
                direction = "upstream" if k % 2 else "downstream"
                t0 = time.monotonic()
                _cut(proxy, kind, direction)
                _echo(ws, payload)
                times.append(time.monotonic() - t0)
                _wait(_more_than(seen, n), "the reconnect")
                downtimes.append(seen[-1].downtime)
                attempts.append(seen[-1].attempts)
            out[kind] = {
                **_summary(times),
                "downtime": _summary(downtimes),
                "attempts": {a: attempts.count(a) for a in sorted(set(attempts))},
            }
    return out


def cut_recovery_device_dials(device: Device, trials: int) -> dict[str, Any]:
    payload = b"y" * 64
    times: list[float] = []
    with socket.create_server((HOST, 0)) as listener, \
            Proxy(upstream=listener.getsockname(), seed=2) as proxy:
        reply = device.control(f"dial {HOST} {proxy.address[1]}")
        if reply.get("ok") is not True:
            raise RuntimeError(f"the device refused to dial: {reply}")
        try:
            with WiFiSocket.accept(listener, timeout=WAIT) as ws:
                for _ in range(trials):
                    for _ in range(3):
                        _echo(ws, payload)
                    before = ws.reconnects
                    t0 = time.monotonic()
                    _cut(proxy, "rst", "both")
                    _echo(ws, payload)
                    times.append(time.monotonic() - t0)
                    _wait(_reconnected_since(ws, before), "the reconnect")
        finally:
            device.control("dial off")
    return {"rst": _summary(times)}


def dead_peer_detection(device: Device, trials: int, dead_after: float | None) -> dict[str, Any]:
    """The host's and the device's detection of a silent stall, and the recovery after it."""
    options: dict[str, Any] = {} if dead_after is None else {"dead_after": dead_after}
    host_times: list[float] = []
    device_times: list[float] = []
    resume_times: list[float] = []
    seen: list[Reconnect] = []
    with Proxy(upstream=(device.ip, device.port), seed=3) as proxy, \
            WiFiSocket(*proxy.address, on_reconnect=seen.append, **options) as ws:
        bound = ws.dead_after  # the configured bound, for the report
        for _ in range(trials):
            _echo(ws, b"before the stall")
            last_rx = time.monotonic()  # the echo was the last thing the host received
            mark = device.console.mark()
            stall = proxy.add(Blackhole(), direction="both")
            _wait(lambda: not ws.connected, "the host to find the peer dead",
                  timeout=bound * 3 + WAIT)
            line = device.console.expect(r"^WS CLOSE code=6 ", timeout=WAIT, since=mark)
            dev_line = next(ln for ln in device.console.since(mark) if ln.text == line.string)
            n = len(seen)
            proxy.remove(stall)
            t_end = time.monotonic()
            _echo(ws, b"after the stall")
            resume_times.append(time.monotonic() - t_end)
            _wait(_more_than(seen, n), "the reconnect")
            host_times.append(seen[-1].lost_at - last_rx)
            device_times.append(dev_line.t - last_rx)
    host = _summary(host_times)
    return {
        "bound_s": bound,
        "host": host,
        "host_vs_bound": {k: host[k] / bound for k in ("median", "min", "max")},
        "device": _summary(device_times),
        "device_bound_s": 3 * 1.0,  # 3 x the host's keepalive_ms (default 1000)
        "recovery_after_stall": _summary(resume_times),
    }


def _fmt(s: dict[str, float]) -> str:
    return (f"median {s['median'] * 1000:7.1f} ms   p90 {s['p90'] * 1000:7.1f} ms   "
            f"max {s['max'] * 1000:7.1f} ms   (n={s['n']})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20, help="runs per figure (default 20)")
    ap.add_argument("--dead-trials", type=int, default=5,
                    help="runs of the dead-peer figure (each takes dead_after; default 5)")
    ap.add_argument("--device", default="sim", help="sim (a twin; default) or sim-direct")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)

    device = open_device(DeviceOptions(spec=args.device))
    try:
        print(device.summary())
        results: dict[str, Any] = {"device": device.summary(), "trials": args.trials}
        results["cut_host_dials"] = cut_recovery_host_dials(device, args.trials)
        print("cut recovery, host dials the device (default settings), cut to echo back:")
        for kind, s in results["cut_host_dials"].items():
            print(f"  {kind:10} {_fmt(s)}")
            print(f"  {'':10} loss noticed to HELLO: {_fmt(s['downtime'])}; "
                  f"attempts {s['attempts']}")
        results["cut_device_dials"] = cut_recovery_device_dials(device, max(3, args.trials // 4))
        print("cut recovery, device dials the host's accept (device redials after 0.5 s):")
        print(f"  {'rst':10} {_fmt(results['cut_device_dials']['rst'])}")
        for label, dead_after in (("default", None), ("1 s", 1.0)):
            d = dead_peer_detection(device, args.dead_trials, dead_after)
            results[f"dead_peer_{label.replace(' ', '')}"] = d
            print(f"dead-peer detection, dead_after = {d['bound_s']} s ({label}):")
            print(f"  host       {_fmt(d['host'])}   "
                  f"= {d['host_vs_bound']['min']:.3f}..{d['host_vs_bound']['max']:.3f} x bound")
            print(f"  device     {_fmt(d['device'])}   (its bound {d['device_bound_s']} s)")
            print(f"  traffic again after the stall ends: {_fmt(d['recovery_after_stall'])}")
        if args.json is not None:
            args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    finally:
        device.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
