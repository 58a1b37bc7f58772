"""Which part of the wifi profile costs WiFiSocket against raw TCP: 4 KiB bulk, 3 s each.

Run from the repository root: python benchmarks/wifi_variants.py (BENCHMARKS.md, "On a
WiFi-shaped link").
"""
from contextlib import ExitStack

from harness.backends import open_device
from harness.bench.command import calibrated_down, raw_port_of
from harness.bench.measure import Bench
from harness.cli import _options, build_parser
from harness.netem import Bandwidth, Latency, Proxy, Stalls

VARIANTS = {
    "rate only": [Bandwidth(1e6)],
    "rate + 1.5 ms": [Bandwidth(1e6), Latency(1.5)],
    "rate + 1.5±1 ms": [Bandwidth(1e6), Latency(1.5, 1.0)],
    "full wifi": [Stalls(2000, 30), Bandwidth(1e6), Latency(1.5, 1.0)],
}
args = build_parser().parse_args(["bench", "--device", "sim-direct"])
dev = open_device(_options(args))
raw_port = raw_port_of(dev)
size = dev.max_message
try:
    for name, toxics in VARIANTS.items():
        with ExitStack() as st:
            e = st.enter_context(Proxy((dev.ip, dev.port), seed=5))
            r = st.enter_context(Proxy((dev.ip, raw_port), seed=5))
            for p in (e, r):
                for d in ("upstream", "downstream"):
                    for t in toxics:
                        p.add(t, direction=d)
            b = st.enter_context(Bench(dev.ip, dev.port, dev.ctrl_port, raw_port,
                                       echo_address=e.address, raw_address=r.address))
            ou = b.up("wifisocket", size, duration=3).mb_per_s
            ru = b.up("raw", size, duration=3).mb_per_s
            od = calibrated_down(b, "wifisocket", size, 3).mb_per_s
            rd = calibrated_down(b, "raw", size, 3).mb_per_s
            print(f"{name:16} up {ou:.3f}/{ru:.3f} x{ou / ru:.2f}  "
                  f"down {od:.3f}/{rd:.3f} x{od / rd:.2f}", flush=True)
finally:
    dev.close()
