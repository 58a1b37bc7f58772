"""Building and running the host C++ tools (the firmware's portable cores under test).

Executables are compiled with g++ (or ``$CXX``) under ASan/UBSan and cached per source hash
in the temp directory, so xdist workers and reruns share them. A missing compiler skips the
test with the reason.
"""

from __future__ import annotations

import hashlib
import os
import selectors
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from harness.sim.build import _compiler_version

ROOT = Path(__file__).resolve().parents[2]
FW = ROOT / "firmware"
CORE = FW / "lib" / "WiFiSocket" / "src"
CXXFLAGS = [
    "-std=c++17",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-fno-exceptions",
    "-fno-rtti",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-g",
    "-O1",
]
COMPILE_TIMEOUT = 240.0
ANSWER_TIMEOUT = 20.0


def _compiler() -> str | None:
    for name in (os.environ.get("CXX", ""), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def build(name: str, sources: list[Path], include: Path = CORE) -> Path:
    """Compile ``sources`` into an executable cached by content hash; returns its path.

    ``include`` is the library's ``src/``: on the include path, and its headers are hashed.
    """
    cxx = _compiler()
    if cxx is None:
        pytest.skip("no C++ compiler (g++/c++/clang++) on PATH: C++ core not checked")
    digest = hashlib.sha256()
    # With its --version: after a compiler upgrade the old sanitizer runtime may be gone.
    digest.update(" ".join([cxx, *CXXFLAGS, _compiler_version([cxx])]).encode())
    # The library's headers, and those beside the sources (firmware/test/check.h).
    headers = {*include.rglob("*.h"), *(h for src in sources for h in src.parent.glob("*.h"))}
    for src in sorted({*sources, *headers}):
        digest.update(src.name.encode())
        digest.update(src.read_bytes())
    out_dir = Path(tempfile.gettempdir()) / "esp-hil-cpp"
    out_dir.mkdir(exist_ok=True)
    exe = out_dir / f"{name}-{digest.hexdigest()[:16]}"
    if exe.exists():
        return exe
    # Build under a private name and rename: concurrent xdist workers never see half a file.
    tmp = out_dir / f"{exe.name}.{os.getpid()}.tmp"
    cmd = [cxx, *CXXFLAGS, f"-I{include}", *map(str, sources), "-o", str(tmp)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT)
    if proc.returncode != 0:
        pytest.fail(f"compiling {name} failed:\n{' '.join(cmd)}\n{proc.stderr}")
    os.replace(tmp, exe)
    return exe


class Tool:
    """A running vector_tool: one command line in, one answer line out, with a timeout."""

    def __init__(self, exe: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(exe), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
        )
        assert self.proc.stdout is not None
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.proc.stdout, selectors.EVENT_READ)
        self._pending = b""

    def ask(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + ANSWER_TIMEOUT
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0 or not self._sel.select(left):
                raise TimeoutError(f"vector_tool gave no answer to {line[:80]!r}")
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError(f"vector_tool exited ({self.proc.poll()}) on {line[:80]!r}")
            self._pending += chunk
        answer, _, self._pending = self._pending.partition(b"\n")
        return answer.decode()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise
        self._sel.close()
        # A sanitizer report makes the tool exit non-zero even if every answer was right.
        assert code == 0, f"vector_tool exited with {code}"
