#!/usr/bin/env python3
"""Host CPU cost of HMAC-SHA256 per 4 KiB message: the device's C++ core and Python's hmac.

The protocol v2 draft tags every frame (docs/security.md); this is what the tag costs per
largest message on the host. The C++ figure comes from ``firmware/test/test_hmac.cpp
--bench``, built with ``-O2`` and no sanitizers; Python's from ``hmac.new`` with a fresh key
per message, and from ``HMAC.copy()`` of a keyed object (what a link would reuse). The
minimum of ``--repeat`` runs is printed, so other load on the machine inflates it least.

    python benchmarks/hmac_cost.py [--rounds 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import platform
import ssl
import subprocess
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "firmware" / "lib" / "WiFiSocket" / "src"
SOURCES = [
    ROOT / "firmware" / "test" / "test_hmac.cpp",
    CORE / "wifisocket" / "sha256.cpp",
    CORE / "wifisocket" / "hmac.cpp",
]
SIZE = 4096


def cpp_ns(rounds: int, repeat: int) -> float:
    """Nanoseconds per 4 KiB message of the C++ core (best of ``repeat`` runs)."""
    cxx = os.environ.get("CXX", "g++")
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "test_hmac"
        subprocess.run([cxx, "-std=c++17", "-O2", "-fno-exceptions", "-fno-rtti", f"-I{CORE}",
                        *map(str, SOURCES), "-o", str(exe)], check=True, timeout=300)
        runs = []
        for _ in range(repeat):
            out = subprocess.run([str(exe), "--bench", str(rounds)], check=True, timeout=300,
                                 capture_output=True, text=True).stdout
            runs.append(float(out.split()[1]))
    return min(runs)


def python_ns(rounds: int, repeat: int) -> tuple[float, float]:
    """Nanoseconds per 4 KiB message: ``hmac.new`` per message, and a keyed object copied."""
    key, msg = os.urandom(32), os.urandom(SIZE)
    keyed = hmac.new(key, digestmod=hashlib.sha256)

    def fresh() -> bytes:
        return hmac.new(key, msg, hashlib.sha256).digest()

    def copied() -> bytes:
        mac = keyed.copy()
        mac.update(msg)
        return mac.digest()

    def best(fn: Callable[[], bytes]) -> float:
        return min(timeit.repeat(fn, number=rounds, repeat=repeat)) / rounds * 1e9

    return best(fresh), best(copied)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20000, help="messages per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs; the best is printed")
    args = parser.parse_args()
    cpp = cpp_ns(args.rounds, args.repeat)
    fresh, copied = python_ns(args.rounds, args.repeat)
    # hashlib's sha256 is OpenSSL's when its type comes from _hashlib (else CPython's own).
    backend = ssl.OPENSSL_VERSION if type(hashlib.sha256()).__module__ == "_hashlib" else (
        "CPython's builtin sha256")
    print(f"host: {platform.machine()}, load {os.getloadavg()[0]:.1f}, Python "
          f"{platform.python_version()} ({backend})")
    for name, ns in (("C++ wifisocket HmacSha256 (-O2)", cpp),
                     ("Python hmac.new(key, msg, sha256)", fresh),
                     ("Python keyed HMAC .copy()", copied)):
        print(f"{name:36s} {ns / 1000:8.1f} us per 4 KiB  ({SIZE / ns * 1e3:7.1f} MB/s)")


if __name__ == "__main__":
    main()
