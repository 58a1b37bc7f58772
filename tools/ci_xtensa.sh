#!/usr/bin/env bash
# The firmware compiled for the real ESP8266 (docs/real-target.md): every source of firmware/
# (src/, lib/*/src) with Debian's xtensa-lx106-elf-g++ and the core's platform.txt flags, for
# both boards, then its static RAM / IRAM / flash against firmware/board-budget.json.
# Any warning or error in our sources, or a region over budget, fails the script.
#
#   tools/ci_xtensa.sh            compile for nodemcu and d1_mini, then the budget (nodemcu)
#   tools/ci_xtensa.sh compile    only the compile (zero warnings from our code)
#
# Installs gcc-xtensa-lx106 and gcc-12-source when run as root on Debian; otherwise says
# what is missing. The C++ headers are generated once into ~/.cache/esp-hil/.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python
what=${1:-all}
case $what in
  all | compile) ;;
  *) echo "usage: $0 [all|compile]" >&2; exit 2 ;;
esac

if ! command -v xtensa-lx106-elf-g++ >/dev/null 2>&1 || ! ls /usr/src/gcc-12/gcc-*.tar.xz >/dev/null 2>&1; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-xtensa-lx106 gcc-12-source >/dev/null
  fi
fi

echo "== xtensa compile: firmware/ for d1_mini"
timeout 1200 "$PYTHON" tools/xtensa/size.py firmware --board d1_mini --no-budget >/dev/null
if [[ $what == all ]]; then
  echo "== xtensa compile and ESP8266 RAM/flash budget: firmware/ for nodemcu"
  timeout 1200 "$PYTHON" tools/xtensa/size.py firmware --board nodemcu --budget firmware/board-budget.json
else
  echo "== xtensa compile: firmware/ for nodemcu"
  timeout 1200 "$PYTHON" tools/xtensa/size.py firmware --board nodemcu --no-budget
fi
