"""Compile a PlatformIO project for the real ESP8266 target, offline.

PlatformIO's ESP8266 platform cannot be downloaded here, so this module reproduces the part
of a board build that decides whether our code is right and how big it is: Debian's
``xtensa-lx106-elf-g++`` (package ``gcc-xtensa-lx106``) with the flags of the core's
``platform.txt``, against a source snapshot of the ESP8266 Arduino core and the headers of
its C library (newlib-xtensa). Nothing is linked (the SDK's ``.a`` blobs are not here); the
objects are what :mod:`harness.size` measures.

Debian's cross compiler ships without the C++ standard headers. :func:`cxx_headers`
generates them once from Debian's ``gcc-12-source`` (libstdc++'s own ``configure`` for
``--host=xtensa-lx106-elf --with-newlib``, then ``make -C include install``) into
``~/.cache/esp-hil/xtensa-cxx-headers/<key>``; later runs reuse them.

Warnings are split by the file they point at: a diagnostic in the project's own files fails
the build (``-Werror`` semantics for our code); one in the core's files is reported only.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from filelock import FileLock, Timeout

from harness.cache import cache_root
from harness.ino import sketch_unit
from harness.project import Library, Project, load_project, used_libraries

REPO = Path(__file__).resolve().parents[1]
CXX = "xtensa-lx106-elf-g++"
CC = "xtensa-lx106-elf-gcc"
CACHE = cache_root()
GCC_SOURCE_GLOB = "/usr/src/gcc-12/gcc-*.tar.xz"
COMPILE_TIMEOUT = 300.0
GENERATE_TIMEOUT = 900.0

# What of the gcc source tree libstdc++'s configure and include/Makefile read.
_GCC_MEMBERS = (
    "libstdc++-v3", "libgcc", "config", "include", "gcc/DATESTAMP", "gcc/BASE-VER",
    "gcc/DEV-PHASE", "config.guess", "config.sub", "install-sh", "ltmain.sh", "missing",
    "mkinstalldirs", "config-ml.in", "move-if-change", "depcomp", "compile", "config.rpath",
    "libtool-ldflags", "test-driver", "ar-lib",
)


@dataclass(frozen=True)
class Board:
    """What platform.txt and boards.txt give a board: its variant and its -D names."""

    variant: str
    board: str  # build.board: -DARDUINO_<board>
    flash_mode: str = "DIO"


# build.board of core 3.x's boards.txt for the boards the project supports.
BOARDS = {
    "nodemcu": Board("nodemcu", "ESP8266_NODEMCU_ESP12E"),
    "d1_mini": Board("d1_mini", "ESP8266_WEMOS_D1MINI"),
}
# PlatformIO board names of the same boards.
BOARD_ALIASES = {"nodemcuv2": "nodemcu"}

# platform.txt: compiler.cpreprocessor.flags and compiler.cpp.flags (-g and -MMD left out:
# they change neither the diagnostics nor the size of what is loaded), the SDK and lwIP of
# the default build (lwIP v2 "Lower Memory": MSS 536, no IPv6), warnings "all" (-Wall -Wextra).
CPP_FLAGS = (
    "-D__ets__", "-DICACHE_FLASH", "-U__STRICT_ANSI__", "-D_GNU_SOURCE", "-DESP8266", "-Os",
    "-free", "-fipa-pta", "-Werror=return-type", "-mlongcalls", "-mtext-section-literals",
    "-fno-rtti", "-falign-functions=4", "-std=gnu++17", "-ffunction-sections",
    "-fdata-sections", "-fno-exceptions", "-DFP_IN_IROM", "-DNONOSDK22x_190703=1",
    "-DF_CPU=80000000L", "-DLWIP_OPEN_SRC", "-DTCP_MSS=536", "-DLWIP_FEATURES=1",
    "-DLWIP_IPV6=0", "-DMMU_IRAM_SIZE=0x8000", "-DMMU_ICACHE_SIZE=0x8000",
    "-DARDUINO=10819", "-DARDUINO_ARCH_ESP8266", "-DVTABLES_IN_FLASH",
    "-Wall", "-Wextra",
)
# platform.txt's compiler.c.flags where they differ from the C++ ones: C's standard, no
# -fno-rtti, and its C-only warnings and options.
C_FLAGS = (
    *(f for f in CPP_FLAGS if f not in ("-fno-rtti", "-std=gnu++17")),
    "-std=gnu17", "-Wpointer-arith", "-Wno-implicit-function-declaration",
    "-fno-inline-functions",
)
# The core's libraries compiled with the project (the firmware's network and settings).
CORE_LIBRARIES = ("ESP8266WiFi", "EEPROM")
# Options of a project's build_flags that matter to a compile (the rest are link options).
_KEPT_FLAG = re.compile(r"^-(D|U|I|W(?![la],)|f|std=|O)")
_DIAGNOSTIC = re.compile(
    r"^(?P<path>[^:\s][^:]*):(?P<line>\d+):(?:\d+:)? (?P<kind>warning|(?:fatal )?error)")


# newlib-xtensa's own newlib.h is the placeholder of its source tree: the real one is written
# by newlib's configure. These are the facts of the target that headers test (long double
# is double on the lx106; 64-bit and C99 printf formats are built in).
NEWLIB_H = """/* newlib.h of the ESP8266 toolchain's newlib (esp-hil, harness/xtensa.py) */
#ifndef __NEWLIB_H__
#define __NEWLIB_H__ 1
#include <_newlib_version.h>
#define _WANT_IO_LONG_LONG 1
#define _WANT_IO_C99_FORMATS 1
#define _LDBL_EQ_DBL 1
#define _HAVE_LONG_DOUBLE 1
#define _MB_LEN_MAX 1
#define HAVE_INITFINI_ARRAY 1
#define _ATEXIT_DYNAMIC_ALLOC 1
#endif
"""


class XtensaError(Exception):
    """The toolchain is missing, or a step around the compile failed (one line)."""


@dataclass
class Diagnostic:
    """One compiler warning or error, with the lines the compiler printed after it."""

    path: str
    kind: str
    text: str
    ours: bool


@dataclass
class CompileResult:
    """Objects of one project build and what the compiler said about them."""

    board: str
    project: Path
    objects: dict[str, Path] = field(default_factory=dict)  # our sources, name -> object
    core_objects: dict[str, Path] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # sources that did not compile

    @property
    def ours(self) -> list[Diagnostic]:
        """Warnings and errors in the project's own files."""
        return [d for d in self.diagnostics if d.ours]

    @property
    def ok(self) -> bool:
        """Everything compiled and our code drew no diagnostic."""
        return not self.failed and not self.ours


def find_core() -> Path:
    """The ESP8266 core snapshot: $ESP_HIL_CORE_DIR (as for ``--device=sim-core``), else
    ``../shared/esp8266-core``."""
    return _find_shared("ESP_HIL_CORE_DIR", "esp8266-core", "cores/esp8266/Arduino.h")


def find_newlib() -> Path:
    """newlib-xtensa's headers: $ESP_HIL_NEWLIB_XTENSA, else ``../shared/newlib-xtensa``."""
    return _find_shared("ESP_HIL_NEWLIB_XTENSA", "newlib-xtensa", "newlib/libc/include/stdio.h")


def _find_shared(env: str, name: str, probe: str) -> Path:
    # ../shared from the main checkout, ../../shared from a worktree under wt/.
    candidates = [Path(os.environ[env])] if os.environ.get(env) else [
        REPO.parent / "shared" / name, REPO.parents[1] / "shared" / name]
    for path in candidates:
        if (path / probe).is_file():
            return path
    raise XtensaError(f"no {name} found (looked in {', '.join(map(str, candidates))}; "
                      f"set {env})")


def newlib_includes(newlib: Path, cache: Path = CACHE) -> list[str]:
    """newlib-xtensa's include directories, our newlib.h and the target's ones first."""
    overlay = cache / "xtensa-newlib-h" / hashlib.sha256(NEWLIB_H.encode()).hexdigest()[:16]
    if not (overlay / "newlib.h").is_file():
        overlay.mkdir(parents=True, exist_ok=True)
        tmp = overlay / f"newlib.h.{os.getpid()}"
        tmp.write_text(NEWLIB_H)
        os.replace(tmp, overlay / "newlib.h")
    libc = newlib / "newlib" / "libc"
    return [str(overlay), str(libc / "sys" / "xtensa" / "include"),
            str(libc / "sys" / "xtensa"), str(libc / "include")]


def missing_packages() -> list[str]:
    """Debian packages needed and not installed."""
    missing = []
    if shutil.which(CXX) is None:
        missing.append("gcc-xtensa-lx106")
    if not _gcc_tarballs():
        missing.append("gcc-12-source")
    return missing


def require_toolchain() -> None:
    """Raise one clear line if the cross compiler or the gcc source is missing."""
    missing = missing_packages()
    if missing:
        raise XtensaError(f"missing Debian package(s): {' '.join(missing)} "
                          f"(apt-get install -y {' '.join(missing)})")


def _gcc_tarballs() -> list[Path]:
    return sorted(Path("/").glob(GCC_SOURCE_GLOB.lstrip("/")))


def _run(cmd: Sequence[str], *, cwd: Path | None = None,
         timeout: float = COMPILE_TIMEOUT) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True,
                              timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise XtensaError(f"{cmd[0]}: {exc}") from exc


def compiler_version() -> str:
    """``xtensa-lx106-elf-g++ -dumpversion`` (e.g. ``12.2.0``)."""
    return _run([CXX, "-dumpversion"]).stdout.strip()


def headers_key(tarball: Path, newlib: Path) -> str:
    """What the generated headers depend on: the gcc source, the compiler, the C library."""
    st = tarball.stat()
    first = _run([CXX, "--version"]).stdout.splitlines()[:1]
    newlib_id = (newlib / "README.md").read_text() if (newlib / "README.md").is_file() else ""
    text = "\n".join([tarball.name, str(st.st_size), *first, newlib_id, NEWLIB_H])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cxx_headers(newlib: Path | None = None, cache: Path = CACHE) -> list[str]:
    """Include directories of libstdc++ for the target; generated on the first call."""
    require_toolchain()
    newlib = newlib or find_newlib()
    version = compiler_version()
    tarballs = [t for t in _gcc_tarballs() if f"gcc-{version}" in t.name]
    if not tarballs:
        raise XtensaError(f"no gcc-{version} source under {Path(GCC_SOURCE_GLOB).parent} "
                          f"for {CXX} {version} (apt-get install -y gcc-12-source)")
    tarball = tarballs[0]
    dest = cache / "xtensa-cxx-headers" / headers_key(tarball, newlib)
    inc = dest / "include" / "c++" / version
    dirs = [str(inc), str(inc / "xtensa-lx106-elf")]
    if (dest / "complete").is_file():
        return dirs
    dest.parent.mkdir(parents=True, exist_ok=True)
    # One generation at a time (parallel test workers, CI steps); the others wait for it.
    try:
        with FileLock(str(dest) + ".lock", timeout=GENERATE_TIMEOUT):
            if not (dest / "complete").is_file():
                with tempfile.TemporaryDirectory(prefix="xtensa-cxx-", dir=dest.parent) as tmp:
                    _generate_headers(tarball, newlib, Path(tmp), version)
                    (Path(tmp) / "inst" / "complete").write_text(f"{tarball.name}\n")
                    os.replace(Path(tmp) / "inst", dest)
    except Timeout as exc:
        raise XtensaError(f"{dest}: another run held the lock for {GENERATE_TIMEOUT:.0f} s") \
            from exc
    return dirs


def _generate_headers(tarball: Path, newlib: Path, work: Path, version: str) -> None:
    top = tarball.name.removesuffix(".tar.xz").removesuffix("-dfsg")
    members = [f"{top}/{m}" for m in _GCC_MEMBERS]
    _step(["tar", "-xJf", str(tarball), *members], work, "unpacking the gcc source")
    build = work / "build"
    build.mkdir()
    cppflags = " ".join(f"-isystem {d}" for d in newlib_includes(newlib))
    # --with-target-subdir makes configure behave as a target library inside a gcc build:
    # no link tests (there is no libc to link against, only its headers).
    configure = [
        str(work / top / "libstdc++-v3" / "configure"), "--host=xtensa-lx106-elf",
        "--build=" + _run(["sh", str(work / top / "config.guess")]).stdout.strip(),
        "--with-newlib", "--with-target-subdir=.", "--disable-multilib", "--disable-nls",
        "--disable-libstdcxx-pch", "--disable-shared", f"--prefix={work / 'inst'}",
        "CC=xtensa-lx106-elf-gcc", f"CXX={CXX}", "AR=xtensa-lx106-elf-ar",
        "RANLIB=xtensa-lx106-elf-ranlib", f"CPPFLAGS={cppflags}",
        "CFLAGS=-Os -mlongcalls", "CXXFLAGS=-Os -mlongcalls",
    ]
    _step(configure, build, "libstdc++ configure")
    _step(["make", "-C", "include", "install"], build, "libstdc++ make -C include install")
    # <exception>, <new>, bits/exception_defines.h, ... live in libsupc++.
    _step(["make", "-C", "libsupc++", "install-stdHEADERS", "install-bitsHEADERS"], build,
          "libstdc++ make -C libsupc++ install-*HEADERS")
    if not (work / "inst" / "include" / "c++" / version / "vector").is_file():
        raise XtensaError(f"libstdc++ headers not where expected under {work / 'inst'}")


def _step(cmd: list[str], cwd: Path, what: str) -> None:
    proc = _run(cmd, cwd=cwd, timeout=GENERATE_TIMEOUT)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["(no output)"]
        raise XtensaError(f"{what} failed: {tail[0]}")


def board_for(name: str) -> Board:
    """The board of a variant or PlatformIO board name (``nodemcu``, ``nodemcuv2``, ...)."""
    key = BOARD_ALIASES.get(name, name)
    if key not in BOARDS:
        raise XtensaError(f"unknown board {name!r} (known: "
                          f"{', '.join(sorted([*BOARDS, *BOARD_ALIASES]))})")
    return BOARDS[key]


def library_dirs(project: Project, extra: Sequence[Path] = ()) -> list[Library]:
    """The project's libraries (:meth:`Project.libraries`: ``lib_dir``, ``lib_extra_dirs``,
    the installed ``lib_deps``), then those under the ``extra`` directories (esp-hil's own,
    as a board build gets them through ``PLATFORMIO_LIB_EXTRA_DIRS``:
    :func:`harness.device.flashing.build_with_platformio`).

    :func:`build` compiles those of them the sketch includes (PlatformIO's dependency
    finder). One under ``extra`` is listed only when the project includes one of its
    headers, so a sketch that uses neither WiFiSocket nor EspHil is measured without them.
    A name found twice is the first one's, as PlatformIO prefers the project's own.
    """
    found = {lib.name.lower(): lib for lib in project.libraries()}
    own_files = [p for d in (project.src_dir, project.include_dir) if d.is_dir()
                 for p in d.rglob("*") if p.suffix in _SCANNED]
    included = _included_headers(
        [*own_files, *(p for lib in found.values() for p in lib.files(_SCANNED))])
    for root in extra:
        for path in sorted(root.glob("*")):
            lib = Library(path)
            if path.is_dir() and {h.name for h in lib.files((".h", ".hpp"))} & included:
                found.setdefault(lib.name.lower(), lib)
    return list(found.values())


_INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)


_SCANNED = (".cpp", ".h", ".hpp", ".c", ".ino", ".pde")


def _included_headers(files: Iterable[Path]) -> set[str]:
    """The file names ``files`` include."""
    names: set[str] = set()
    for path in files:
        if path.is_file():
            names.update(Path(m).name for m in _INCLUDE.findall(path.read_text(errors="replace")))
    return names


def project_sources(project: Project, libraries: Sequence[Library] | None = None) -> list[Path]:
    """Every C++ and C source of a PlatformIO project: ``src_dir`` (its ``.ino`` files as one
    unit, :mod:`harness.ino`) and each library's."""
    libs = library_dirs(project) if libraries is None else libraries
    units = (".cpp", ".cc", ".cxx", ".c")
    found = [*(p for p in project.src_dir.rglob("*") if p.suffix in units and p.is_file()),
             *(p for lib in libs for p in lib.files(units))]
    ino = sketch_unit(project.src_dir, CACHE / "ino")
    return sorted(found) + ([ino] if ino is not None else [])


def project_includes(project: Project, libraries: Sequence[Library] | None = None) -> list[str]:
    """Include directories of the project: ``include_dir``, ``src_dir``, each library's."""
    libs = library_dirs(project) if libraries is None else libraries
    dirs = [project.include_dir, project.src_dir, *(d for lib in libs for d in lib.include_dirs)]
    return [str(d) for d in dirs if d.is_dir()]


def project_flags(project: Project) -> list[str]:
    """The compile options (-D, -U, -I, -W, -f, -std, -O) of the env's ``build_flags``, less
    its ``build_unflags`` (PlatformIO removes those after adding the build flags)."""
    unflags = set(project.build_unflags)
    return [f for f in project.build_flags if _KEPT_FLAG.match(f) and f not in unflags]


def core_sources(core: Path, libraries: Iterable[str] = CORE_LIBRARIES) -> list[Path]:
    """The sources of the core's libraries compiled with the project."""
    out: list[Path] = []
    for lib in libraries:
        root = core / "libraries" / lib
        src = root / "src" if (root / "src").is_dir() else root
        out += sorted(p for p in src.rglob("*.cpp") if "examples" not in p.parts)
    return out


def core_includes(core: Path, board: Board, libraries: Iterable[str] = CORE_LIBRARIES) -> list[str]:
    """The core's include directories, in platform.txt's order."""
    sdk = core / "tools" / "sdk"
    dirs = [sdk / "include", sdk / "lwip2" / "include", core / "cores" / "esp8266",
            core / "variants" / board.variant]
    for lib in libraries:
        root = core / "libraries" / lib
        dirs.append(root / "src" if (root / "src").is_dir() else root)
    return [str(d) for d in dirs]


def compile_command(src: Path, obj: Path, board: Board, includes: Sequence[str],
                    system_includes: Sequence[str], extra: Sequence[str] = ()) -> list[str]:
    """The command line of one source, as platform.txt's recipe.cpp.o.pattern (a ``.c``
    file: recipe.c.o.pattern) builds it."""
    tool, flags = (CC, C_FLAGS) if src.suffix == ".c" else (CXX, CPP_FLAGS)
    return [tool, *_options(flags, board, includes, system_includes, extra),
            "-c", str(src), "-o", str(obj)]


def _options(flags: Sequence[str], board: Board, includes: Sequence[str],
             system_includes: Sequence[str], extra: Sequence[str]) -> list[str]:
    return [
        *flags, f"-DARDUINO_{board.board}", f'-DARDUINO_BOARD="{board.board}"',
        f"-DFLASHMODE_{board.flash_mode}", *extra,
        *(f"-I{d}" for d in includes), *(f"-isystem{d}" for d in system_includes),
    ]


def parse_diagnostics(output: str, ours: Sequence[Path]) -> list[Diagnostic]:
    """Split compiler output into diagnostics; ``ours`` are the project's directories.

    A diagnostic is the line ``path:line:col: warning|error: ...`` and the lines after it
    up to the next such line (notes, the source excerpt). "In file included from" lines
    before it belong to it too, but only the path it points at decides whose it is.
    """
    roots = [str(p.resolve()) for p in ours]
    found: list[Diagnostic] = []
    pending: list[str] = []
    for line in output.splitlines():
        match = _DIAGNOSTIC.match(line)
        if match:
            path = str(Path(match["path"]).resolve())
            mine = any(path == r or path.startswith(r + os.sep) for r in roots)
            found.append(Diagnostic(path, match["kind"], "\n".join([*pending, line]), mine))
            pending = []
        elif found and not line.startswith("In file included from") and not pending:
            found[-1].text += "\n" + line
        else:
            pending.append(line)
    return found


def _project_name(src: Path, project: Project, libraries: Sequence[Library]) -> str:
    """``src`` relative to the project; a library from elsewhere as ``lib/<name>/...``; the
    ``.ino`` files' unit as ``src/<main>.ino.cpp``."""
    if src.is_relative_to(project.root):
        return str(src.relative_to(project.root))
    lib = next((lib for lib in libraries if src.is_relative_to(lib.root)), None)
    if lib is None:
        return str((project.src_dir / src.name).relative_to(project.root))
    return str(Path("lib") / src.relative_to(lib.root.parent))


class _Job(NamedTuple):
    name: str  # relative to the project or the core
    src: Path
    ours: bool


def build(path: Path, board_name: str, out: Path, env: str | None = None,
          workers: int | None = None, core: Path | None = None,
          newlib: Path | None = None, extra_libraries: Sequence[Path] = ()) -> CompileResult:
    """Compile the PlatformIO project at ``path`` (its env ``env``, as
    :func:`harness.project.load_project` picks it) and the core's WiFi/EEPROM for
    ``board_name``.

    Objects land in ``out``, named ``<path relative to the project or core>.o`` (so
    ``main.cpp.o``: the linker script sends ``*.cpp.o`` code to flash). Raises
    :class:`harness.project.ProjectError` (one line) if the project cannot be used.
    """
    project = load_project(path, env)
    libraries = [Library(lib.root.resolve()) for lib in library_dirs(project, extra_libraries)]
    sources = project_sources(project, [])
    if not sources:
        raise XtensaError(f"no .cpp under {project.src_dir} or {project.lib_dir}/*/src")
    board = board_for(board_name)
    core = core or find_core()
    newlib = newlib or find_newlib()
    system = [*cxx_headers(newlib), *newlib_includes(newlib)]
    extra = project_flags(project)
    # Only the libraries the sketch includes, as PlatformIO's dependency finder builds them.
    options = _options(CPP_FLAGS, board, [*project_includes(project, libraries),
                                          *core_includes(core, board)], system, extra)
    libraries = used_libraries([CXX], options, sources, libraries)
    sources = project_sources(project, libraries)
    includes = [*project_includes(project, libraries), *core_includes(core, board)]
    result = CompileResult(board=board.variant, project=project.root)
    ours = [project.root, project.src_dir, project.include_dir, *(lib.root for lib in libraries)]
    jobs = [_Job(_project_name(src, project, libraries), src, True) for src in sources]
    jobs += [_Job(str(src.relative_to(core)), src, False) for src in core_sources(core)]

    def compile_one(job: _Job) -> tuple[_Job, Path, subprocess.CompletedProcess[str]]:
        obj = out / ("project" if job.ours else "core") / f"{job.name}.o"
        obj.parent.mkdir(parents=True, exist_ok=True)
        obj.unlink(missing_ok=True)
        cmd = compile_command(job.src, obj, board, includes, system, extra if job.ours else ())
        return job, obj, _run(cmd, cwd=project.root)

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        for job, obj, proc in pool.map(compile_one, jobs):
            found = parse_diagnostics(proc.stdout + proc.stderr, ours)
            result.diagnostics += found
            if proc.returncode != 0 or not obj.is_file():
                result.failed.append(job.name)
                if not any(d.kind.endswith("error") for d in found):
                    text = proc.stderr.strip() or f"exit {proc.returncode}"
                    result.diagnostics.append(Diagnostic(job.name, "error", text, job.ours))
            elif job.ours:
                result.objects[job.name] = obj
            else:
                result.core_objects[job.name] = obj
    return result
