"""harness.sim.build: the cached native firmware build.

Every test builds a small firmware tree of its own (a copy of the real shim, a tiny
library and a sketch) into a private cache, with a compiler wrapper that logs each
invocation, so "did it compile?" is a fact the test can read, not a timing guess.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.sim import build
from harness.sim.build import (
    FirmwareBuildError,
    build_firmware,
    build_firmware_info,
    cache_root,
    firmware_root,
)

REAL_SIM = Path(__file__).resolve().parents[2] / "firmware" / "sim"

SKETCH = textwrap.dedent(
    """\
    #include <Arduino.h>
    #include "greeter.h"

    void setup() {
      Serial.begin(115200);
      Serial.printf("%s build=%s\\n", greeting(), ESP_HIL_BUILD_ID);
      Serial.flush();
      ESP.restart();
    }

    void loop() {}
    """
)

LIB_HEADER = "#pragma once\nconst char* greeting();\n"
LIB_SOURCE = '#include "greeter.h"\nconst char* greeting() { return "hello from greeter"; }\n'


class Tree:
    """A firmware tree + cache + logging compiler for one test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.firmware = root / "firmware"
        self.cache = root / "cache"
        self.log = root / "cxx.log"
        sim = self.firmware / "sim"
        sim.mkdir(parents=True)
        for src in REAL_SIM.iterdir():
            if src.suffix in (".h", ".cpp"):
                shutil.copy2(src, sim / src.name)
        lib = self.firmware / "lib" / "Greeter" / "src"
        lib.mkdir(parents=True)
        (lib / "greeter.h").write_text(LIB_HEADER)
        (lib / "greeter.cpp").write_text(LIB_SOURCE)
        (self.firmware / "src").mkdir()
        (self.firmware / "src" / "main.cpp").write_text(SKETCH)
        real = shutil.which("g++")
        assert real is not None, "the build tests need g++"
        self.cxx = root / "logging-g++"
        self.cxx.write_text(f'#!/bin/sh\necho "$*" >> "{self.log}"\nexec "{real}" "$@"\n')
        self.cxx.chmod(self.cxx.stat().st_mode | stat.S_IXUSR)

    def env(self) -> dict[str, str]:
        return {
            "ESP_HIL_FIRMWARE_DIR": str(self.firmware),
            "ESP_HIL_CACHE": str(self.cache),
            "CXX": str(self.cxx),
        }

    def compiled(self) -> list[str]:
        """Names of the files compiled since the last call (and clears the log)."""
        if not self.log.exists():
            return []
        lines = self.log.read_text().splitlines()
        self.log.unlink()
        return sorted(
            Path(line.split(" -c ", 1)[1].split()[0]).name for line in lines if " -c " in line
        )

    def links(self) -> int:
        if not self.log.exists():
            return 0
        return sum(
            1 for line in self.log.read_text().splitlines() if " -o " in line and " -c " not in line
        )

    def units(self) -> list[str]:
        sim = sorted(p.name for p in (self.firmware / "sim").glob("*.cpp"))
        return sorted(["main.cpp", "greeter.cpp", *sim])


def _use(tree: Tree, monkeypatch: pytest.MonkeyPatch) -> Tree:
    for key, value in tree.env().items():
        monkeypatch.setenv(key, value)
    tree.log.unlink(missing_ok=True)
    return tree


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Tree, list[str]]]:
    """One tree whose cache is built once; tests that only add sketches share it."""
    t = Tree(tmp_path_factory.mktemp("shared"))
    with pytest.MonkeyPatch.context() as mp:
        _use(t, mp)
        build_firmware()
        yield t, t.compiled()


@pytest.fixture
def tree(shared: tuple[Tree, list[str]], monkeypatch: pytest.MonkeyPatch) -> Tree:
    return _use(shared[0], monkeypatch)


@pytest.fixture
def fresh_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Tree:
    """A private tree and an empty cache, for tests that change the tree or need a cold build."""
    return _use(Tree(tmp_path / "fresh"), monkeypatch)


def run_binary(path: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(path)], stdin=subprocess.DEVNULL, capture_output=True, timeout=10)


def test_builds_default_sketch_with_libraries(shared: tuple[Tree, list[str]], tree: Tree) -> None:
    # The cold build compiled the sketch, every lib .cpp and every shim .cpp.
    assert shared[1] == tree.units()
    result = build_firmware_info()
    assert result.path.is_file()
    assert result.path.name == "esp-hil-fw"
    assert result.path.is_relative_to(tree.cache / "build")
    assert len(result.build_id) == 12
    int(result.build_id, 16)
    done = run_binary(result.path)
    assert done.returncode == 3  # the sketch restarts at once: ESP.restart()
    assert done.stdout == f"hello from greeter build={result.build_id}\n".encode()


def test_second_build_is_a_cache_hit(tree: Tree) -> None:
    first = build_firmware()
    second = build_firmware()
    assert second == first
    assert tree.links() == 0
    assert tree.compiled() == []


def test_sketch_change_rebuilds_only_the_sketch(tree: Tree, tmp_path: Path) -> None:
    sketch = tmp_path / "sketch.cpp"
    sketch.write_text(SKETCH)
    first = build_firmware(sketch=sketch)
    assert tree.compiled() == ["sketch.cpp"]  # the rest comes from the object cache

    sketch.write_text(SKETCH.replace("build=%s", "changed build=%s"))
    second = build_firmware_info(sketch=sketch)
    assert second.path != first
    assert tree.compiled() == ["sketch.cpp"]
    # The sketch names ESP_HIL_BUILD_ID, so its object carries the new id.
    assert run_binary(second.path).stdout.endswith(f"changed build={second.build_id}\n".encode())
    assert first.is_file()  # the old build stays valid for whoever still runs it


def test_header_change_rebuilds_every_unit(fresh_tree: Tree) -> None:
    first = build_firmware()
    fresh_tree.compiled()
    header = fresh_tree.firmware / "lib" / "Greeter" / "src" / "greeter.h"
    header.write_text(LIB_HEADER + "// changed\n")
    second = build_firmware()
    assert second != first
    assert fresh_tree.compiled() == fresh_tree.units()


def test_force_recompiles_everything(tree: Tree) -> None:
    first = build_firmware()
    again = build_firmware(force=True)
    assert again == first
    assert tree.compiled() == tree.units()


def test_extra_flags_are_part_of_the_key(tree: Tree) -> None:
    plain = build_firmware()
    flagged = build_firmware(extra_flags=["-DESP_HIL_TEST_FLAG=1"])
    assert flagged != plain
    log_lines = tree.log.read_text().splitlines()
    assert any("-DESP_HIL_TEST_FLAG=1" in line and " -c " in line for line in log_lines)


def test_compiler_error_raises_with_compiler_output(tree: Tree, tmp_path: Path) -> None:
    bad = tmp_path / "bad.cpp"
    bad.write_text("#include <Arduino.h>\nvoid setup() { undeclared_thing(); }\nvoid loop() {}\n")
    with pytest.raises(FirmwareBuildError) as info:
        build_firmware_info(sketch=bad)
    message = str(info.value)
    assert "undeclared_thing" in message
    assert "bad.cpp" in message
    assert "error" in message
    # No binary for the failed sketch, and no stray temporaries.
    assert not list((tree.cache / "build").glob("*/*.tmp"))
    assert not list((tree.cache / "build" / "obj").glob("*.tmp"))


def test_link_error_raises(tree: Tree, tmp_path: Path) -> None:
    no_loop = tmp_path / "noloop.cpp"
    no_loop.write_text("#include <Arduino.h>\nvoid setup() {}\n")
    with pytest.raises(FirmwareBuildError, match="linking failed"):
        build_firmware(sketch=no_loop)


def test_missing_compiler_is_a_clear_error(tree: Tree, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CXX")
    monkeypatch.setenv("PATH", str(tree.root / "empty-bin"))
    with pytest.raises(FirmwareBuildError, match=r"no C\+\+ compiler found: install g\+\+"):
        build_firmware()
    monkeypatch.setenv("CXX", "/nonexistent/g++")
    with pytest.raises(FirmwareBuildError, match=r"no C\+\+ compiler found.*CXX="):
        build_firmware()


def test_missing_sketch_and_shim_are_errors(fresh_tree: Tree, tmp_path: Path) -> None:
    with pytest.raises(FirmwareBuildError, match="does not exist"):
        build_firmware(sketch=tmp_path / "nope.cpp")
    shutil.rmtree(fresh_tree.firmware / "src")
    with pytest.raises(FirmwareBuildError, match="no sketch"):
        build_firmware()
    shutil.rmtree(fresh_tree.firmware / "sim")
    with pytest.raises(FirmwareBuildError, match="no shim"):
        build_firmware()
    assert fresh_tree.compiled() == []


def test_roots_follow_the_environment(tree: Tree, monkeypatch: pytest.MonkeyPatch) -> None:
    assert firmware_root() == tree.firmware
    assert cache_root() == tree.cache
    monkeypatch.delenv("ESP_HIL_FIRMWARE_DIR")
    monkeypatch.delenv("ESP_HIL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tree.root / "xdg"))
    assert firmware_root() == REAL_SIM.parent
    assert cache_root() == tree.root / "xdg" / "esp-hil"


def test_parallel_processes_build_once(fresh_tree: Tree) -> None:
    tree = fresh_tree
    script = "from harness.sim.build import build_firmware; print(build_firmware(), flush=True)"
    env = dict(os.environ, **tree.env())
    procs = [
        subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE)
        for _ in range(3)
    ]
    outputs = []
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0
        outputs.append(out.strip())
    assert len(set(outputs)) == 1  # everybody got the same binary
    assert tree.compiled() == tree.units()  # and each unit was compiled exactly once


@settings(max_examples=50)
@given(
    contents=st.lists(st.binary(max_size=64), min_size=3, max_size=3),
    index=st.integers(0, 2),
    flip=st.integers(0, 63),
)
def test_build_key_changes_with_any_byte(
    tmp_path_factory: pytest.TempPathFactory, contents: list[bytes], index: int, flip: int
) -> None:
    root = tmp_path_factory.mktemp("key")
    paths = [root / f"f{i}.cpp" for i in range(3)]
    for path, data in zip(paths, contents, strict=True):
        path.write_bytes(data)

    def key() -> str:
        return build._build_key(compiler=["g++"], version="12", files=paths, flags=["-O2"])

    before = key()
    assert key() == before  # deterministic
    changed = bytearray(contents[index]) or bytearray(b"x")
    if contents[index]:
        changed[flip % len(changed)] ^= 0x01
    paths[index].write_bytes(bytes(changed))
    assert key() != before
    assert build._build_key(compiler=["g++"], version="12", files=paths, flags=["-O3"]) != key()


def test_objects_are_keyed_on_the_compilers_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upgraded compiler behind the same command compiles afresh; its version is asked once."""
    log = tmp_path / "cxx.log"
    cxx = tmp_path / "fake-g++"
    # Answers --version with $FAKE_CXX_VERSION; "compiles" by creating the -o file.
    cxx.write_text(
        "#!/bin/sh\n"
        f'echo "$1" >> "{log}"\n'
        'if [ "$1" = --version ]; then echo "$FAKE_CXX_VERSION"; exit 0; fi\n'
        'while [ "$#" -gt 1 ]; do [ "$1" = -o ] && : > "$2"; shift; done\n'
    )
    cxx.chmod(cxx.stat().st_mode | stat.S_IXUSR)
    unit = tmp_path / "main.cpp"
    unit.write_text("int main() { return 0; }\n")
    monkeypatch.setenv("ESP_HIL_CACHE", str(tmp_path / "cache"))

    def objects(version: str) -> list[Path]:
        monkeypatch.setenv("FAKE_CXX_VERSION", version)
        return build._compile_all([str(cxx)], ["-O2"], [unit], [], build_id="0" * 12, force=False)

    build._version_of.cache_clear()
    old = objects("g++ 12.2.0")
    assert old == objects("g++ 12.2.0")  # a cache hit ...
    assert log.read_text().splitlines().count("--version") == 1  # ... asking once per process
    build._version_of.cache_clear()  # a new process, after the upgrade
    new = objects("g++ 13.1.0")
    assert new != old and new[0].is_file()
    assert log.read_text().splitlines().count("-O2") == 2  # compiled once per version
    build._version_of.cache_clear()
