"""The libFuzzer targets of ``firmware/fuzz/`` as regular tests.

- the seed corpus generator is deterministic and covers every vector;
- every target builds (clang++ ``-fsanitize=fuzzer,address,undefined``), replay the seeds and
  the kept regression inputs without a finding, and survive a short fuzzing run with a fixed
  seed (``-runs``, not a time bound, so the run is the same every time);
- the ``FUZZ_SELFTEST`` builds, whose checks are wrong on purpose, fail on the seeds: the
  targets' oracles really can fail.

The long, time-bounded runs are ``tools/ci_robustness.sh``'s job (docs/robustness.md).
Skipped, with the reason, when clang++ cannot link libFuzzer.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from filelock import FileLock

ROOT = Path(__file__).resolve().parents[2]
FUZZ = ROOT / "firmware" / "fuzz"
CORE = ROOT / "firmware" / "lib" / "WiFiSocket" / "src" / "wifisocket"
REGRESSIONS = FUZZ / "regressions"
BUILD_TIMEOUT = 600.0
RUN_TIMEOUT = 300.0
TARGETS = ("frame", "session", "keyed", "hmac")
# Executions of the short deterministic run, per target (a few seconds each).
SHORT_RUNS = {"frame": 20000, "session": 1500, "keyed": 1500, "hmac": 3000}


def _make_corpus(out: Path) -> None:
    for script in ("make_corpus.py", "make_hmac_corpus.py"):
        subprocess.run([sys.executable, str(FUZZ / script), str(out)], check=True,
                       capture_output=True, timeout=120)


def test_seed_corpus_is_deterministic_and_covers_the_vectors(tmp_path: Path) -> None:
    import json

    _make_corpus(tmp_path / "a")
    _make_corpus(tmp_path / "b")
    vectors = json.loads((ROOT / "tests" / "vectors" / "frames.json").read_text())
    n_vectors = sum(len(vectors[k]) for k in ("frames", "invalid", "hellos", "invalid_hellos"))
    n_hmac = len(json.loads((ROOT / "tests" / "vectors" / "hmac_sha256.json").read_text())["hmac"])
    keyed = json.loads((ROOT / "tests" / "vectors" / "keyed.json").read_text())
    n_keyed = len(keyed["rejected"]) + len(keyed["invalid_hellos_keyed_side"])
    least = {"hmac": n_hmac, "keyed": n_keyed}
    for target in TARGETS:
        a = {p.name: p.read_bytes() for p in (tmp_path / "a" / target).iterdir()}
        b = {p.name: p.read_bytes() for p in (tmp_path / "b" / target).iterdir()}
        assert a == b
        assert len(a) >= least.get(target, n_vectors)
        # Content-named, so a seed is never written twice under two names.
        assert all(hashlib.sha1(data).hexdigest() == name for name, data in a.items())
    # A stale seed disappears on the next run.
    stale = [tmp_path / "a" / target / "stale" for target in ("frame", "hmac")]
    for path in stale:
        path.write_bytes(b"old")
    _make_corpus(tmp_path / "a")
    assert not any(path.exists() for path in stale)


def _clang_with_libfuzzer() -> str | None:
    clang = shutil.which("clang++")
    if clang is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.cpp"
        src.write_text('extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, '
                       "unsigned long) { return 0; }\n")
        proc = subprocess.run([clang, "-fsanitize=fuzzer,address,undefined", str(src), "-o",
                               str(Path(tmp) / "probe")], capture_output=True, timeout=120)
    return clang if proc.returncode == 0 else None


@pytest.fixture(scope="module")
def build_dir() -> Path:
    """Both targets, their self-test builds and the seeds, built once per source content."""
    if _clang_with_libfuzzer() is None:
        pytest.skip("clang++ cannot link -fsanitize=fuzzer (apt-get install clang "
                    "libclang-rt-<version>-dev; tools/ci_robustness.sh installs them)")
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    digest = hashlib.sha256()
    sources = [*sorted(FUZZ.glob("*.cpp")), *sorted(FUZZ.glob("*.h")), FUZZ / "Makefile",
               FUZZ / "make_corpus.py", FUZZ / "make_hmac_corpus.py",
               ROOT / "tests" / "vectors" / "frames.json",
               ROOT / "tests" / "vectors" / "keyed.json",
               ROOT / "tests" / "vectors" / "hmac_sha256.json",
               *sorted(CORE.glob("*"))]
    for path in sources:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    out = Path(tempfile.gettempdir()) / f"esp-hil-fuzz-{digest.hexdigest()[:16]}"
    # xdist workers build once; the others wait for it.
    with FileLock(str(out) + ".lock", timeout=BUILD_TIMEOUT):
        done = out / "complete"
        if not done.exists():
            proc = subprocess.run(["make", "-s", "-C", str(FUZZ), f"BUILD={out}",
                                   f"PYTHON={sys.executable}", "all", "selftest"],
                                  capture_output=True, text=True, timeout=BUILD_TIMEOUT)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            done.write_text("ok\n")
    return out


def _run(exe: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=1", "UBSAN_OPTIONS": "print_stacktrace=1"}
    return subprocess.run([str(exe), *args], capture_output=True, text=True,
                          timeout=RUN_TIMEOUT, env=env)


def _inputs(build: Path, target: str) -> list[str]:
    dirs = [build / "seeds" / target, REGRESSIONS / target]
    return [str(d) for d in dirs if d.is_dir()]


@pytest.mark.parametrize("target", TARGETS)
def test_replays_seeds_and_regressions(build_dir: Path, target: str) -> None:
    proc = _run(build_dir / f"fuzz_{target}", "-runs=0", *_inputs(build_dir, target))
    assert proc.returncode == 0, proc.stderr[-4000:]
    n_seeds = len(list((build_dir / "seeds" / target).iterdir()))
    assert "INITED" in proc.stderr and "Done" in proc.stderr, proc.stderr[-2000:]
    assert n_seeds > 0


@pytest.mark.parametrize("target", TARGETS)
def test_short_deterministic_fuzzing_run(build_dir: Path, target: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    max_len = "8204" if target == "frame" else "4096"
    proc = _run(build_dir / f"fuzz_{target}", f"-runs={SHORT_RUNS[target]}", "-seed=1",
                f"-max_len={max_len}", f"-dict={FUZZ / 'frame.dict'}",
                f"-artifact_prefix={tmp_path}/", str(corpus), *_inputs(build_dir, target))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("leak-*"))
    # All the runs asked for. libFuzzer may count one more: 'Done 20001 runs in 1 second(s)'
    # once in a ten-run proof, under load.
    done = re.search(r"^Done (\d+) runs", proc.stderr, re.MULTILINE)
    assert done and int(done.group(1)) >= SHORT_RUNS[target], proc.stderr[-2000:]


@pytest.mark.parametrize("target", TARGETS)
def test_selftest_build_finds_its_planted_fault(build_dir: Path, target: str,
                                                tmp_path: Path) -> None:
    proc = _run(build_dir / f"selftest_{target}", "-runs=0", f"-artifact_prefix={tmp_path}/",
                str(build_dir / "seeds" / target))
    assert proc.returncode != 0
    assert "FUZZ_CHECK failed" in proc.stderr, proc.stderr[-2000:]
