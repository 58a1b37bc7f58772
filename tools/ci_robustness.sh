#!/usr/bin/env bash
# Robustness checks of the device library (docs/robustness.md): the libFuzzer targets of
# firmware/fuzz/ for a bounded time each, then the cross-compiled size budget. Any finding
# (crash, sanitizer report, broken invariant, leak, timeout) or a size above the budget
# fails the script.
#
#   tools/ci_robustness.sh                       fuzz each target FUZZ_SECONDS, then sizes
#   tools/ci_robustness.sh fuzz                  only the fuzzers
#   tools/ci_robustness.sh size                  only the size budget
#   FUZZ_SECONDS=3600 tools/ci_robustness.sh fuzz    a longer run
#
# Environment: FUZZ_SECONDS (default 30) per target; FUZZ_TARGETS (default "frame session keyed
# hmac": keyed is the session target as a keyed peer of a keyed endpoint);
# FUZZ_JOBS (default: 2 if there are 2+ cores) targets run side by side; FUZZ_SEED (default
# 1 under CI=true, else random). The working corpus grows in firmware/fuzz/build/corpus/
# and is reused by the next run; findings land in firmware/fuzz/build/artifacts/.
#
# Installs what it needs when run as root on Debian (clang, libFuzzer, the xtensa-lx106
# cross compiler and picolibc); otherwise says what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FUZZ_DIR=$ROOT/firmware/fuzz
BUILD=$FUZZ_DIR/build

FUZZ_SECONDS=${FUZZ_SECONDS:-30}
FUZZ_TARGETS=${FUZZ_TARGETS:-frame session keyed hmac}
if [[ -z ${FUZZ_JOBS:-} ]]; then
  if (( $(nproc 2>/dev/null || echo 1) >= 2 )); then FUZZ_JOBS=2; else FUZZ_JOBS=1; fi
fi
if [[ -z ${FUZZ_SEED:-} && ${CI:-} == true ]]; then FUZZ_SEED=1; fi
PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python

what=${1:-all}
case $what in
  all | fuzz | size) ;;
  *) echo "usage: $0 [all|fuzz|size]" >&2; exit 2 ;;
esac

APT_UPDATED=0
apt_install() {
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "missing: $* (install them, or run as root on Debian)" >&2
    return 1
  fi
  if (( ! APT_UPDATED )); then
    apt-get update -qq
    APT_UPDATED=1
  fi
  echo "== installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

have_libfuzzer() {
  local probe
  probe=$(mktemp -d)
  printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' \
    >"$probe/p.cpp"
  local ok=0
  clang++ -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" >/dev/null 2>&1 || ok=1
  rm -rf "$probe"
  return $ok
}

ensure_fuzz_tools() {
  command -v make >/dev/null 2>&1 || apt_install make
  command -v clang++ >/dev/null 2>&1 || apt_install clang
  if ! have_libfuzzer; then
    local major
    major=$(clang++ --version | sed -n 's/.*clang version \([0-9][0-9]*\).*/\1/p' | head -n1)
    apt_install "libclang-rt-${major}-dev"
    have_libfuzzer || { echo "clang++ cannot link -fsanitize=fuzzer" >&2; return 1; }
  fi
}

ensure_cross_tools() {
  local pkgs=()
  command -v xtensa-lx106-elf-g++ >/dev/null 2>&1 || pkgs+=(gcc-xtensa-lx106)
  command -v xtensa-lx106-elf-size >/dev/null 2>&1 || pkgs+=(binutils-xtensa-lx106)
  [[ -f /usr/lib/xtensa-lx106-elf/picolibc.specs ]] || pkgs+=(picolibc-xtensa-lx106-elf)
  if (( ${#pkgs[@]} )); then apt_install "${pkgs[@]}"; fi
}

stat_of() {  # stat_of LOG NAME -> the value of libFuzzer's final "stat::NAME:" line
  sed -n "s/^stat::$2: *//p" "$1" | tail -n1
}

run_target() {  # run_target NAME: fuzz it; prints one summary line; returns non-zero on a finding
  local name=$1
  local exe=$BUILD/fuzz_$name corpus=$BUILD/corpus/$name artifacts=$BUILD/artifacts/$name
  local log=$BUILD/fuzz_$name.log
  mkdir -p "$corpus" "$artifacts"
  # The longest input each target reads; frame.dict only helps the protocol targets.
  local max_len=4096 dict=(-dict="$FUZZ_DIR/frame.dict")
  case $name in
    frame) max_len=8204 ;;
    hmac) max_len=4363 dict=() ;;  # 12 header bytes + a 255-byte key + a 4096-byte message
  esac
  local inputs=("$corpus" "$BUILD/seeds/$name")
  [[ -d $FUZZ_DIR/regressions/$name ]] && inputs+=("$FUZZ_DIR/regressions/$name")
  local args=(-max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048
              -max_len="$max_len" "${dict[@]}" -print_final_stats=1
              -artifact_prefix="$artifacts/")
  [[ -n ${FUZZ_SEED:-} ]] && args+=(-seed="$FUZZ_SEED")
  local rc=0
  "$exe" "${args[@]}" "${inputs[@]}" >"$log" 2>&1 || rc=$?
  local runs rate added
  runs=$(stat_of "$log" number_of_executed_units)
  rate=$(stat_of "$log" average_exec_per_sec)
  added=$(stat_of "$log" new_units_added)
  local found
  found=$(find "$artifacts" -type f | head -n1)
  if (( rc != 0 )) || [[ -n $found ]]; then
    echo "FINDING fuzz_$name (exit $rc); log: $log"
    grep -E 'FUZZ_CHECK|ERROR: |runtime error|SUMMARY|Test unit written' "$log" | head -n 20 || true
    [[ -n $found ]] && echo "  reproduce: $exe $found   (FUZZ_TRACE=1 for a trace)" &&
      echo "  keep it: cp $found firmware/fuzz/regressions/$name/"
    return 1
  fi
  echo "fuzz_$name: ${runs:-?} executions in ${FUZZ_SECONDS} s (${rate:-?} exec/s)," \
       "${added:-0} new corpus units, corpus $(find "$corpus" -type f | wc -l) files: no findings"
}

fuzz() {
  ensure_fuzz_tools
  echo "== fuzz: build (clang++ -fsanitize=fuzzer,address,undefined) and seeds"
  make -s -C "$FUZZ_DIR" BUILD="$BUILD" PYTHON="$PYTHON" all
  echo "== fuzz: ${FUZZ_TARGETS} for ${FUZZ_SECONDS} s each (${FUZZ_JOBS} at a time," \
       "seed ${FUZZ_SEED:-random})"
  local failed=0 pids=() names=() running=0
  for name in $FUZZ_TARGETS; do
    [[ -x $BUILD/fuzz_$name ]] || { echo "no target fuzz_$name" >&2; return 2; }
    if (( FUZZ_JOBS <= 1 )); then
      run_target "$name" || failed=1
    else
      run_target "$name" >"$BUILD/fuzz_$name.summary" 2>&1 &
      pids+=($!)
      names+=("$name")
      running=$((running + 1))
      if (( running >= FUZZ_JOBS )); then
        wait "${pids[0]}" || failed=1
        cat "$BUILD/fuzz_${names[0]}.summary"
        pids=("${pids[@]:1}")
        names=("${names[@]:1}")
        running=$((running - 1))
      fi
    fi
  done
  local i
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || failed=1
    cat "$BUILD/fuzz_${names[$i]}.summary"
  done
  return $failed
}

size() {
  ensure_cross_tools
  echo "== size budget (xtensa-lx106-elf-g++ -Os -mlongcalls -fno-exceptions -fno-rtti)"
  "$PYTHON" "$ROOT/tools/size_budget.py"
}

status=0
if [[ $what == all || $what == fuzz ]]; then fuzz || status=1; fi
if [[ $what == all || $what == size ]]; then size || status=1; fi
if (( status )); then echo "== robustness: FAILED"; else echo "== robustness: ok"; fi
exit $status
