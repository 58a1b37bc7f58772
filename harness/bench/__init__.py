"""``esp-hil bench``: WiFiSocket throughput and latency beside a raw-TCP baseline.

:mod:`.command` runs the sizes and drives the subcommand, :mod:`.measure` talks to the
device (transfers, echo round trips, its counters), :mod:`.report` turns results into tables,
JSON and a plot.
"""

from harness.bench.command import (
    add_arguments,
    bench_device,
    calibrated_down,
    default_sizes,
    parse_sizes,
    raw_port_of,
    run_bench,
    run_sizes,
)

__all__ = [
    "add_arguments",
    "bench_device",
    "calibrated_down",
    "default_sizes",
    "parse_sizes",
    "raw_port_of",
    "run_bench",
    "run_sizes",
]
