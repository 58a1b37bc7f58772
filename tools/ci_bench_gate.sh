#!/usr/bin/env bash
# The performance gate (issue 15): the twin's WiFiSocket-to-raw-TCP ratios against the
# baselines stored in the repository, keyless (protocol v1) and keyed (v2, the plugin's
# default). Fails (exit 1, naming the figure) when a figure is worse beyond the stored
# spread and by more than the tolerance, in two runs in a row; a halved efficiency (-50 %)
# always is. Refresh the baselines as BENCHMARKS.md says ("The regression gate").
#
# Why a second run: a single run's ratio can cross the tolerance with nothing changed; a
# regression stays worse in both.
#
# Why the download is advisory (reported, never failing): raw TCP's 1 KiB download on the twin
# keeps one rate for a whole run (one twin process) and that rate moves between runs by a
# factor of two (24-35 or 50-57 MB/s in two gate runs on 2026-11-25, ours 12-16 keyless in
# both), so the ratio crosses the tolerance with nothing changed. It was worse still (12 or
# 30-60 MB/s) while the twin looked for the peer's ACK every 100 us; since it wakes on the
# ACK itself (firmware/sim/README.md) the slow mode is gone, the spread is not.
set -euo pipefail
cd "$(dirname "$0")/.."

gate() {
  local key=$1 baseline=benchmarks/baseline/$2
  shift 2
  for attempt in 1 2; do
    echo "== bench gate, --link-key $key against $baseline (run $attempt)"
    if timeout 150 python -m harness.cli bench --device sim-direct \
        --compare "$baseline" --tolerance 0.4 --link-key "$key" \
        --advisory "bulk max-message down" "$@"; then
      return 0
    fi
  done
  return 1
}

status=0
gate none ci.json "$@" || status=1
gate auto ci-keyed.json "$@" || status=1
exit "$status"
