#!/usr/bin/env bash
# The performance gate (issue 15): the twin's WiFiSocket-to-raw-TCP ratios against the
# baseline stored in the repository. Fails (exit 1, naming the figure) when a figure is
# worse beyond the stored spread and by more than the tolerance; a halved efficiency
# (-50 %) always is. Refresh the baseline as BENCHMARKS.md says ("The regression gate").
set -euo pipefail
cd "$(dirname "$0")/.."
exec timeout 150 python -m harness.cli bench --device sim-direct \
  --compare benchmarks/baseline/ci.json --tolerance 0.4 --link-key none "$@"
