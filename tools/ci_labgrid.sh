#!/usr/bin/env bash
# CI: esp-hil through a labgrid farm on loopback — coordinator, exporter, two twins, places,
# tests/hil on two xdist workers, a waiting session, interrupted and killed runs
# (tests/sim/test_labgrid.py, docs/board-farm.md). About a minute on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."

# labgrid brings pyserial-labgrid, pyserial with labgrid's RFC2217 fixes (same `serial` package).
python -m pip install -q -e '.[labgrid]'
# Here the test must run, not skip: fail loudly if labgrid is still missing.
python -c 'import labgrid' || { echo "ci_labgrid: labgrid did not install" >&2; exit 1; }
command -v labgrid-coordinator >/dev/null && command -v labgrid-exporter >/dev/null || {
  echo "ci_labgrid: labgrid-coordinator/labgrid-exporter are not on PATH" >&2; exit 1; }

mkdir -p report
timeout 900 python -m pytest tests/sim/test_labgrid.py -q -p no:cacheprovider -rs \
  --junitxml=report/labgrid.xml
