#!/usr/bin/env bash
# CI: esp-hil as a user gets it. Builds the wheel, installs it (with its test extra) in a fresh
# venv outside the checkout, copies examples/sensor-node outside the checkout too, and runs that
# project's own tests there on the twin: the wheel must carry the shim, the libraries and the
# test firmware (harness/_firmware), and nothing may reach back into this repository.
# About a minute on two cores (the twin build of the sketch from the installed files).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/esp-hil-wheel.XXXXXX")"
trap 'rm -rf "$work"' EXIT
case "$work" in "$repo"/*) echo "ci_wheel: $work is inside the checkout" >&2; exit 1 ;; esac

# Build from a copy of the tracked (and new, unignored) files, so the checkout gets no build/
# or egg-info (an egg-info on sys.path would register the plugin a second time).
mkdir "$work/src"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard) \
  | (cd "$repo" && xargs -0 tar -cf - --) | tar -xf - -C "$work/src"
timeout 300 python -m pip wheel -q --no-deps -w "$work/dist" "$work/src"
wheel="$(ls "$work"/dist/esp_hil-*.whl)"
echo "ci_wheel: built $(basename "$wheel")"

python -m venv "$work/venv"
py="$work/venv/bin/python"
timeout 600 "$py" -m pip install -q "$wheel[test]"

cp -r "$repo/examples/sensor-node" "$work/sensor-node"
rm -rf "$work/sensor-node/.pio" "$work/sensor-node/.pytest_cache" "$work/sensor-node/.hypothesis"
cd "$work/sensor-node"
# Nothing of the checkout: no PYTHONPATH, no firmware override, the venv's own esp-hil.
unset PYTHONPATH ESP_HIL_FIRMWARE_DIR
"$py" - <<'EOF'
import harness, harness.project as p, sys
where = p.firmware_root()
print(f"ci_wheel: harness from {harness.__file__}, firmware from {where}")
assert where.parts[-2:] == ("harness", "_firmware") and sys.prefix in str(where), where
EOF
mkdir -p "$repo/report"
# The ini key (pytest.ini: esp_hil_project = .) names the project, as a user's would.
timeout 600 "$py" -m pytest -q -p no:cacheprovider --junitxml="$repo/report/wheel-sensor-node.xml"
# A project named on the command line, and a missing one: one line, no traceback.
timeout 600 "$py" -m pytest -q -p no:cacheprovider --project . -k "a0_reply or unknown"
if out="$("$py" -m pytest -q -p no:cacheprovider --project ./nope 2>&1)"; then
  echo "ci_wheel: a missing project passed" >&2; exit 1
fi
echo "$out" | grep -q "no such directory" && ! echo "$out" | grep -q Traceback || {
  echo "ci_wheel: a missing project did not give one clear line:" >&2; echo "$out" >&2; exit 1; }
echo "ci_wheel: ok"
