"""Build the native firmware of the twin: the sketch + its libraries + the POSIX shim.

The result is cached under ``<cache root>/build/<key>/esp-hil-fw``, where the key is a
SHA-256 over every source file (path and content), the compiler flags and the compiler's
``--version``; nothing is compiled when the key is already built. Object files are cached
too, per translation unit and keyed on the compiler's ``--version`` as well, so changing only
the sketch recompiles only the sketch.
A cross-process file lock makes parallel pytest-xdist workers build once.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from harness.cache import cache_root
from harness.ino import sketch_unit
from harness.project import UNIT_SUFFIXES, Library, Project, firmware_root, used_libraries
from harness.sim.unsupported import explain_unsupported

__all__ = [
    "FirmwareBuild",
    "FirmwareBuildError",
    "build_firmware",
    "build_firmware_info",
    "cache_root",
    "firmware_root",
]

log = logging.getLogger(__name__)

BINARY_NAME = "esp-hil-fw"
BASE_FLAGS = ("-std=c++17", "-O2", "-g", "-fno-exceptions", "-fno-rtti", "-Wall", "-Wextra")
# UB must stop the firmware (the harness sees the process die), not print and carry on.
SANITIZE_FLAGS = (
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=undefined",
    "-fno-omit-frame-pointer",
)
# The sketch's malloc/calloc/realloc/free go to the shim's simulated heap (sim_alloc.cpp);
# libc's own calls and the sanitizers' do not pass through the wrap.
# The sketch's time/gettimeofday/settimeofday read and set the chip's clock (sim_time.cpp).
SHIM_LINK_FLAGS = tuple(
    f"-Wl,--wrap={f}"
    for f in ("malloc", "calloc", "realloc", "free", "time", "gettimeofday", "settimeofday")
)
# C units: the same defines, warnings and sanitizers, C's own standard.
C_FLAGS = ("-std=gnu17", "-O2", "-g", "-Wall", "-Wextra")
_HEADER_SUFFIXES = (".h", ".hpp", ".hh", ".inc", ".ipp")
# A whole-firmware build takes seconds; a lock held this long means a stuck builder.
_LOCK_TIMEOUT_S = 600.0
_COMPILE_TIMEOUT_S = 300.0
_NO_COMPILER = "no C++ compiler found: install g++ (apt-get install g++) or set CXX"


class FirmwareBuildError(RuntimeError):
    """The native firmware could not be built (no compiler, or the compiler failed)."""


@dataclass(frozen=True)
class FirmwareBuild:
    """A built native firmware: the executable and its build identity."""

    path: Path
    build_id: str  # 12 hex digits of the cache key; compiled in as ESP_HIL_BUILD_ID


def build_firmware(
    *,
    sketch: Path | None = None,
    project: Project | None = None,
    sanitize: bool = False,
    force: bool = False,
    extra_flags: Sequence[str] = (),
) -> Path:
    """Build (or find in the cache) the native firmware and return the executable's path.

    The sketch is every ``.cpp`` under ``src/`` (PlatformIO's rule) of ``project`` (a user's
    PlatformIO project, :func:`harness.project.load_project`; its env's ``-D`` defines apply)
    or of esp-hil's test firmware; a given ``sketch`` is compiled alone. The project's
    libraries (``lib/*/src``) come first, then esp-hil's (WiFiSocket, EspHil) that it does not
    carry itself, then the shim. ``force`` recompiles everything even when cached.
    Raises :class:`FirmwareBuildError` with the compiler's output on failure.
    """
    return build_firmware_info(
        sketch=sketch, project=project, sanitize=sanitize, force=force, extra_flags=extra_flags
    ).path


def build_firmware_info(
    *,
    sketch: Path | None = None,
    project: Project | None = None,
    sanitize: bool = False,
    force: bool = False,
    extra_flags: Sequence[str] = (),
) -> FirmwareBuild:
    """Like :func:`build_firmware`, but also return the build id."""
    root = firmware_root()
    compiler = _find_compiler()
    version = _compiler_version(compiler)
    units, headers, include_dirs = _collect_sources(root, sketch, project)

    c_units = [u for u in units if u.suffix == ".c"]
    c_compiler = _c_compiler() if c_units else []
    sanitizers = SANITIZE_FLAGS if sanitize else ()
    common = [*(project.defines if project is not None else ()), *extra_flags]
    flags = [*BASE_FLAGS, *sanitizers, *common]
    c_flags = [*C_FLAGS, *sanitizers, *common]
    include_flags = [f"-I{d}" for d in include_dirs]

    key = _build_key(
        compiler=[*compiler, *c_compiler],
        version=version + (_compiler_version(c_compiler) if c_units else ""),
        files=[*units, *headers],
        flags=[*flags, *include_flags, *SHIM_LINK_FLAGS, *(c_flags if c_units else ())],
    )
    build_id = key[:12]

    # What the build may leave out (the key covers every library: one the sketch starts
    # including is compiled).
    libraries = project_libraries(root, project) if sketch is None else []
    shim_units = set(_files_under(root / "sim", (".cpp",), recursive=False))

    def make(binary: Path) -> None:
        uninstalled = uninstalled_note(project)
        defines = [*include_flags, "-DESP_HIL_SIM=1"]
        unused = unused_library_units(compiler, [*flags, *defines],
                                      [u for u in units if u not in shim_units], libraries)
        built = [u for u in units if u not in unused]
        objects = _compile_all(
            compiler, [*flags, *defines], [u for u in built if u.suffix != ".c"], headers,
            build_id=build_id, force=force, uninstalled=uninstalled,
        )
        c_built = [u for u in built if u.suffix == ".c"]
        if c_built:
            objects += _compile_all(c_compiler, [*c_flags, *defines], c_built, headers,
                                    build_id=build_id, force=force, uninstalled=uninstalled)
        _link(compiler, [*flags, *SHIM_LINK_FLAGS], objects, binary)
        log.info("built native firmware %s (%d units, %d of unused libraries left out)",
                 binary, len(built), len(unused))

    return cached_build(cache_root() / "build" / key, build_id, make, force=force)


def cached_build(
    build_dir: Path,
    build_id: str,
    make: Callable[[Path], None],
    *,
    force: bool = False,
    name: str = BINARY_NAME,
) -> FirmwareBuild:
    """The executable ``name`` in ``build_dir``, made once across processes: ``make(binary)``
    runs under a file lock, and only when the binary is missing (or ``force``)."""
    binary = build_dir / name
    if binary.is_file() and not force:
        return FirmwareBuild(binary, build_id)
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(build_dir) + ".lock", timeout=_LOCK_TIMEOUT_S):
        # Another process may have finished the same build while we waited.
        if not binary.is_file() or force:
            build_dir.mkdir(parents=True, exist_ok=True)
            make(binary)
    return FirmwareBuild(binary, build_id)


def _find_compiler() -> list[str]:
    """The compiler command: ``$CXX`` (may carry arguments, e.g. ``ccache g++``) or g++."""
    env = os.environ.get("CXX", "").strip()
    if env:
        cmd = shlex.split(env)
        if shutil.which(cmd[0]) is None:
            raise FirmwareBuildError(f"{_NO_COMPILER} (CXX={env!r} is not an executable)")
        return cmd
    for name in ("g++", "c++", "clang++"):
        path = shutil.which(name)
        if path:
            return [path]
    raise FirmwareBuildError(_NO_COMPILER)


def _c_compiler() -> list[str]:
    """The C compiler command: ``$CC`` (may carry arguments) or gcc."""
    env = os.environ.get("CC", "").strip()
    if env:
        return shlex.split(env)
    for name in ("gcc", "cc", "clang"):
        path = shutil.which(name)
        if path:
            return [path]
    raise FirmwareBuildError("no C compiler found: install gcc (apt-get install gcc) or set CC")


def _compiler_version(compiler: Sequence[str]) -> str:
    """``compiler --version``: part of every cache key, so an upgraded compiler rebuilds."""
    return _version_of(tuple(compiler))


@functools.cache
def _version_of(compiler: tuple[str, ...]) -> str:
    """Asked once per process and command (every twin build needs it)."""
    try:
        done = subprocess.run(
            [*compiler, "--version"], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError as exc:
        raise FirmwareBuildError(f"{_NO_COMPILER} ({exc})") from exc
    if done.returncode != 0:
        raise FirmwareBuildError(f"{' '.join(compiler)} --version failed:\n{done.stderr}")
    return done.stdout


def _files_under(directory: Path, suffixes: Iterable[str], *, recursive: bool) -> list[Path]:
    if not directory.is_dir():
        return []
    walker = directory.rglob("*") if recursive else directory.glob("*")
    wanted = tuple(suffixes)
    return sorted(p for p in walker if p.is_file() and p.name.endswith(wanted))


def sketch_sources(
    root: Path, project: Project | None
) -> tuple[list[Path], list[Path], list[Path]]:
    """The sketch and its libraries, without the shim: (units, headers, include directories).

    ``project``'s ``src/`` (its ``.cpp`` files and its ``.ino`` files as one unit,
    :mod:`harness.ino`) and its libraries (:meth:`Project.libraries`), else the test
    firmware's; then each of esp-hil's libraries under ``root/lib`` that the project does
    not carry a copy of.
    """
    src = project.src_dir if project is not None else root / "src"
    sketch_units = _files_under(src, UNIT_SUFFIXES, recursive=True)
    ino = sketch_unit(src, cache_root() / "ino")
    if ino is not None:
        sketch_units.append(ino)
    if not sketch_units:
        raise FirmwareBuildError(f"no sketch: {src} has no .cpp, .c or .ino file")
    libraries = project_libraries(root, project)
    units = [*sketch_units, *(p for lib in libraries for p in lib.files(UNIT_SUFFIXES))]
    headers = [
        *_files_under(src, _HEADER_SUFFIXES, recursive=True),
        *(p for lib in libraries for p in lib.files(_HEADER_SUFFIXES)),
    ]
    include_dirs = [d for lib in libraries for d in lib.include_dirs]
    if project is not None:
        include_dirs.append(project.src_dir)
        if project.include_dir.is_dir():
            include_dirs.append(project.include_dir)
            headers += _files_under(project.include_dir, _HEADER_SUFFIXES, recursive=True)
    return units, headers, include_dirs


def project_libraries(root: Path, project: Project | None) -> list[Library]:
    """``project``'s libraries (:meth:`Project.libraries`), then each of esp-hil's under
    ``root/lib`` that the project does not carry a copy of."""
    own = project.libraries() if project is not None else []
    own_names = {lib.name.lower() for lib in own}
    ours = [Library(p.parent) for p in sorted((root / "lib").glob("*/src")) if p.is_dir()]
    return [*own, *(lib for lib in ours if lib.name.lower() not in own_names)]


def unused_library_units(
    compiler: Sequence[str], flags: Sequence[str], units: Sequence[Path],
    libraries: Sequence[Library],
) -> set[Path]:
    """The units of ``libraries`` among ``units`` that no unit outside them uses
    (:func:`used_libraries`): what a build leaves out."""
    owned = {u for lib in libraries for u in lib.files(UNIT_SUFFIXES)}
    used = used_libraries(compiler, flags, [u for u in units if u not in owned], libraries)
    return owned - {u for lib in used for u in lib.files(UNIT_SUFFIXES)}


def uninstalled_note(project: Project | None) -> str:
    """What the twin lacks of ``project``'s ``lib_deps`` and how to get it ("": nothing)."""
    missing = project.missing_lib_deps() if project is not None else []
    if project is None or not missing:
        return ""
    where = project.libdeps_dir or project.root
    return (
        f"lib_deps lists {', '.join(missing)}, not installed in {where}; the twin builds the "
        f"libraries PlatformIO installed and downloads none: run `pio pkg install -e "
        f"{project.env}` in {project.root} once"
    )


def _collect_sources(
    root: Path, sketch: Path | None, project: Project | None = None
) -> tuple[list[Path], list[Path], list[Path]]:
    """Translation units, headers (hashed, not compiled) and include directories."""
    sim_dir = root / "sim"
    if not (sim_dir / "Arduino.h").is_file():
        raise FirmwareBuildError(f"no shim in {sim_dir} (is ESP_HIL_FIRMWARE_DIR right?)")

    if sketch is None:
        units, headers, include_dirs = sketch_sources(root, project)
    else:
        sketch = Path(sketch).resolve()
        if not sketch.is_file():
            raise FirmwareBuildError(f"sketch {sketch} does not exist")
        lib_srcs = sorted(p for p in (root / "lib").glob("*/src") if p.is_dir())
        units = [
            sketch,
            *(p for d in lib_srcs for p in _files_under(d, (".cpp",), recursive=True)),
        ]
        # Headers next to the sketch may be #included by it.
        headers = [
            *_files_under(sketch.parent, _HEADER_SUFFIXES, recursive=False),
            *(p for d in lib_srcs for p in _files_under(d, _HEADER_SUFFIXES, recursive=True)),
        ]
        include_dirs = lib_srcs

    units += _files_under(sim_dir, (".cpp",), recursive=False)
    headers += _files_under(sim_dir, _HEADER_SUFFIXES, recursive=False)
    return units, sorted(set(headers)), [sim_dir, *include_dirs]


def _build_key(*, compiler: list[str], version: str, files: list[Path], flags: list[str]) -> str:
    h = hashlib.sha256()
    for part in (*compiler, version, *flags):
        h.update(part.encode())
        h.update(b"\0")
    for path in sorted(set(files)):
        h.update(str(path).encode())
        h.update(b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def _compile_all(
    compiler: list[str],
    flags: list[str],
    units: list[Path],
    headers: list[Path],
    *,
    build_id: str,
    force: bool,
    uninstalled: str = "",
) -> list[Path]:
    """Compile every unit (in parallel) into the shared object cache; return the objects."""
    obj_dir = cache_root() / "build" / "obj"
    obj_dir.mkdir(parents=True, exist_ok=True)
    # The same command after a compiler upgrade must not reuse the old compiler's objects.
    compiler_id = "\0".join([*compiler, _compiler_version(compiler)])
    header_digest = _build_key(compiler=[], version="", files=headers, flags=[])
    # The build id changes with every source change. Objects of units that cannot see it
    # stay shareable between builds; if any header names it, every unit may see it.
    id_define = f'-DESP_HIL_BUILD_ID="{build_id}"'
    id_in_headers = any(_mentions_build_id(p) for p in headers)

    def one(unit: Path) -> Path:
        source = unit.read_bytes()
        unit_flags = [*flags, id_define]
        keyed_flags = unit_flags if id_in_headers or b"ESP_HIL_BUILD_ID" in source else flags
        # An object depends on its source, every header the build can see, and the flags.
        h = hashlib.sha256()
        for part in (compiler_id, header_digest, str(unit), *keyed_flags):
            h.update(part.encode())
            h.update(b"\0")
        h.update(source)
        obj = obj_dir / f"{unit.stem}-{h.hexdigest()[:24]}.o"
        if obj.is_file() and not force:
            return obj
        fd, tmp_name = tempfile.mkstemp(prefix=obj.stem + ".", suffix=".o.tmp", dir=obj_dir)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            _run(
                [*compiler, *unit_flags, "-c", str(unit), "-o", str(tmp)],
                what=f"compiling {unit}", uninstalled=uninstalled,
            )
            os.replace(tmp, obj)
        finally:
            tmp.unlink(missing_ok=True)
        return obj

    workers = max(1, min(len(units), os.cpu_count() or 2))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, units))


def _mentions_build_id(path: Path) -> bool:
    return b"ESP_HIL_BUILD_ID" in path.read_bytes()


def _link(compiler: list[str], flags: list[str], objects: list[Path], binary: Path) -> None:
    # Link under a temporary name, then rename: a reader sees no binary or a whole one.
    fd, tmp_name = tempfile.mkstemp(prefix=binary.name + ".", suffix=".tmp", dir=binary.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _run([*compiler, *flags, *map(str, objects), "-o", str(tmp)], what="linking")
        tmp.chmod(0o755)
        os.replace(tmp, binary)
    finally:
        tmp.unlink(missing_ok=True)


def _run(cmd: list[str], *, what: str, uninstalled: str = "") -> None:
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=_COMPILE_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise FirmwareBuildError(f"{what}: compiler took over {_COMPILE_TIMEOUT_S:.0f} s") from exc
    except OSError as exc:
        raise FirmwareBuildError(f"{_NO_COMPILER} ({exc})") from exc
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        # API the shim lacks: one line instead of the compiler's wall (kept in the log).
        unsupported = explain_unsupported(output, firmware_root() / "sim", uninstalled)
        if unsupported:
            log.info("%s failed:\n%s", what, output)
            raise FirmwareBuildError(unsupported)
        raise FirmwareBuildError(f"{what} failed:\n$ {shlex.join(cmd)}\n{output}")
    if output:
        log.warning("%s:\n%s", what, output)
