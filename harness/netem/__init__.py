"""Fault injection between the host and the device: an in-process, seeded TCP proxy.

>>> from harness.netem import Proxy, Latency
>>> with Proxy(upstream=("127.0.0.1", 8080), seed=1) as proxy:   # doctest: +SKIP
...     proxy.add(Latency(ms=50), direction="downstream")
...     connect_to(proxy.address)

See ``docs/netem.md`` for every toxic and how to use the proxy from pytest.
"""

from harness.netem.proxy import Direction, InstalledToxic, Proxy
from harness.netem.toxics import (
    Bandwidth,
    Blackhole,
    Corrupt,
    CutAfter,
    Latency,
    LimitData,
    ResetPeer,
    Slicer,
    SlowClose,
    Stalls,
    Toxic,
)

__all__ = [
    "Bandwidth",
    "Blackhole",
    "Corrupt",
    "CutAfter",
    "Direction",
    "InstalledToxic",
    "Latency",
    "LimitData",
    "Proxy",
    "ResetPeer",
    "Slicer",
    "SlowClose",
    "Stalls",
    "Toxic",
]
