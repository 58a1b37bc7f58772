#!/bin/sh
# Reproduce the figures of BENCHMARKS.md: one full `esp-hil bench` run, results kept under
# benchmarks/results/<UTC time>-<host>.{txt,json,png}.
#
#   benchmarks/run.sh                          # a twin, 2 s per measurement
#   DEVICE=/dev/ttyUSB0 benchmarks/run.sh      # a board (ESP_HIL_WIFI_SSID/PASSWORD set)
#   DURATION=5 benchmarks/run.sh --sizes 64,4096
#
# Other load on the machine distorts the figures (the twin and the host share its cores):
# the JSON records the load average; compare runs with benchmarks/compare.py.
set -eu
cd "$(dirname "$0")/.."
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out="benchmarks/results/$stamp-$(hostname)"
mkdir -p benchmarks/results
esp-hil bench --device "${DEVICE:-sim}" --duration "${DURATION:-2}" \
    --json "$out.json" --plot "$out.png" "$@" | tee "$out.txt"
echo "results: $out.{txt,json,png}" >&2
