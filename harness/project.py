"""The PlatformIO project under test: its directories, its environment and that env's defines.

``--project PATH`` (or the ini key ``esp_hil_project``) names a user's project; without one it
is esp-hil's own test firmware. The twin compiles the project's ``src/`` and ``lib/`` with the
host compiler and the ``-D`` defines of the env's ``build_flags``; a board gets
``pio run -d PATH -e ENV``; ``esp-hil size`` (:mod:`harness.xtensa`) compiles it for the
ESP8266. Only what those need is read from ``platformio.ini``: ``default_envs``, ``src_dir``,
``lib_dir``, ``include_dir``, ``workspace_dir``, ``libdeps_dir``, and each env's
``build_flags``, ``build_unflags``, ``lib_extra_dirs`` and ``lib_deps`` (an env's own value,
else its ``extends``', else ``[env]``'s, as PlatformIO does; ``${section.option}`` expanded).
"""

from __future__ import annotations

import configparser
import logging
import os
import re
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "UNIT_SUFFIXES",
    "Library",
    "Project",
    "ProjectError",
    "firmware_root",
    "lib_dep_name",
    "load_project",
    "used_libraries",
]

log = logging.getLogger(__name__)

INI_NAME = "platformio.ini"
_REFERENCE = re.compile(r"\$\{([^}]+)\}")
# Interpolation may nest (``${env.build_flags}`` naming another reference); a cycle stops here.
_MAX_DEPTH = 10
# What PlatformIO compiles of a sketch or library: C++ and C (assembly is not supported).
UNIT_SUFFIXES = (".cpp", ".cc", ".cxx", ".c")
_SCAN_TIMEOUT_S = 300.0
# A library's folders PlatformIO does not build (its default source filter).
_NOT_BUILT = frozenset({"example", "examples", "test", "tests"})


def firmware_root() -> Path:
    """esp-hil's firmware tree: the shim, the libraries users include, the test firmware.

    ``$ESP_HIL_FIRMWARE_DIR`` if set; else the copy a wheel carries (``harness/_firmware``,
    see setup.py); else ``firmware/`` of the checkout this package runs from (editable).
    """
    override = os.environ.get("ESP_HIL_FIRMWARE_DIR")
    if override:
        return Path(override).resolve()
    package = Path(__file__).resolve().parent
    packaged = package / "_firmware"
    if packaged.is_dir():
        return packaged
    return package.parent / "firmware"


class ProjectError(ValueError):
    """The project cannot be used (no such directory, no platformio.ini, no src/, no env)."""


@dataclass(frozen=True)
class Library:
    """One library folder, laid out as PlatformIO reads it.

    With a ``src/`` folder, everything below it is built (less ``examples/`` and
    ``tests/``), and ``include/`` is on the include path too. Without one (the Arduino 1.0
    layout), the folder's own files and its ``utility/`` are.
    """

    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def src_dir(self) -> Path:
        for name in ("src", "Src"):
            if (self.root / name).is_dir():
                return self.root / name
        return self.root

    @property
    def include_dirs(self) -> list[Path]:
        src = self.src_dir
        if src == self.root:
            utility = self.root / "utility"
            return [src, utility] if utility.is_dir() else [src]
        include = self.root / "include"
        return [src, include] if include.is_dir() else [src]

    def files(self, suffixes: tuple[str, ...]) -> list[Path]:
        """The library's files ending in one of ``suffixes`` that PlatformIO would build
        (sources) or that the build can see (headers), sorted."""
        src = self.src_dir
        if src == self.root:
            tops = [p for p in src.glob("*") if p.is_file()]
            tops += [p for p in (src / "utility").rglob("*") if p.is_file()]
        else:
            tops = [p for d in self.include_dirs[1:] for p in d.rglob("*") if p.is_file()]
            tops += [p for p in src.rglob("*") if p.is_file()
                     and not _NOT_BUILT.intersection(p.relative_to(src).parts[:-1])]
        return sorted(p for p in tops if p.name.endswith(suffixes))


@dataclass(frozen=True)
class Project:
    """One environment of a PlatformIO project, as far as esp-hil builds it."""

    root: Path
    env: str
    #: The env's ``-D`` defines as compiler arguments (``-DSENSOR_PORT=8080``).
    defines: tuple[str, ...]
    src_dir: Path
    lib_dir: Path
    include_dir: Path
    #: The env's ``build_flags`` and ``build_unflags``, split into words as a shell would.
    build_flags: tuple[str, ...] = ()
    build_unflags: tuple[str, ...] = ()
    #: The env's ``lib_extra_dirs``, resolved against the project directory.
    lib_extra_dirs: tuple[Path, ...] = ()
    #: Where ``pio pkg install`` puts this env's ``lib_deps``: ``.pio/libdeps/ENV``.
    libdeps_dir: Path | None = None
    #: The env's ``lib_deps`` as written (``bblanchon/ArduinoJson@^7``).
    lib_deps: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """A label for the project: its directory name, without spaces or '='."""
        return re.sub(r"[^A-Za-z0-9._/+-]", "_", self.root.name) or "project"

    def libraries(self) -> list[Library]:
        """The project's libraries: each folder of ``lib_dir``, then of each
        ``lib_extra_dirs`` entry, then of ``libdeps_dir`` (what ``pio pkg install`` fetched
        for ``lib_deps``). A name found twice is the first one's, as PlatformIO prefers the
        project's own copy."""
        found: dict[str, Library] = {}
        for root in (self.lib_dir, *self.lib_extra_dirs, self.libdeps_dir):
            if root is None or not root.is_dir():
                continue
            for path in sorted(root.iterdir()):
                if path.is_dir() and not path.name.startswith("."):
                    found.setdefault(path.name.lower(), Library(path))
        return list(found.values())

    def missing_lib_deps(self) -> list[str]:
        """The ``lib_deps`` entries with no library of their name in :meth:`libraries`
        (not installed yet: the twin does not download them)."""
        have = {lib.name.lower() for lib in self.libraries()}
        return [dep for dep in self.lib_deps if lib_dep_name(dep).lower() not in have]


def used_libraries(
    compiler: Sequence[str], flags: Sequence[str], sketch: Sequence[Path],
    libraries: Sequence[Library],
) -> list[Library]:
    """The ``libraries`` a build uses, in their order.

    As PlatformIO's dependency finder: a library is built when a unit of the ``sketch``,
    or of a library built, includes one of its headers. The preprocessor decides (``-MM``
    with the build's ``flags``), so a header the build's defines leave out (``#ifndef
    ESP_HIL_SIM``) does not pull its library in. When the scan fails, every library is
    used: the compile then says what is wrong.
    """
    used: set[Library] = set()
    # Headers come resolved; a library may be a symlink (pio's symlink:// lib_deps).
    roots = {lib: lib.root.resolve() for lib in libraries}
    todo = list(sketch)
    while todo:
        headers = _included_files(compiler, flags, todo)
        if headers is None:
            return list(libraries)
        new = {lib for lib in libraries if lib not in used
               and any(h.is_relative_to(roots[lib]) for h in headers)}
        used |= new
        todo = [u for lib in libraries if lib in new for u in lib.files(UNIT_SUFFIXES)]
    return [lib for lib in libraries if lib in used]


def _included_files(compiler: Sequence[str], flags: Sequence[str], units: Sequence[Path]
                    ) -> set[Path] | None:
    """Every file ``units`` include, directly or not (None: the preprocessor failed)."""
    try:
        done = subprocess.run([*compiler, *flags, "-MM", "-MG", *map(str, units)],
                              capture_output=True, text=True, timeout=_SCAN_TIMEOUT_S,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        log.info("the dependency scan failed; every library is built:\n%s", done.stderr)
        return None
    # Make rules: "unit.o: unit.cpp header.h \\\n  other.h"; a space in a name is "\\ ".
    words = re.split(r"(?<!\\)\s+", done.stdout.replace("\\\n", " "))
    return {Path(w.replace("\\ ", " ")).resolve() for w in words if w and not w.endswith(":")}


def lib_dep_name(spec: str) -> str:
    """The library a ``lib_deps`` entry names: ``owner/Name@^1.2`` and
    ``https://host/owner/name.git#tag`` give ``Name`` and ``name``."""
    spec = spec.strip().split("#", 1)[0]
    if "://" not in spec:
        spec = spec.split("@", 1)[0]
    name = spec.rstrip("/").rsplit("/", 1)[-1].strip()
    return name.removesuffix(".git")


def load_project(path: str | os.PathLike[str], env: str | None = None) -> Project:
    """Read the project at ``path`` and pick ``env`` (default: ``default_envs``, else the
    first env). Raises :class:`ProjectError` with one line naming what is wrong."""
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise ProjectError(f"project {path}: no such directory")
    ini = root / INI_NAME
    if not ini.is_file():
        raise ProjectError(f"project {root}: no {INI_NAME} (not a PlatformIO project)")
    parser = configparser.RawConfigParser(
        comment_prefixes=(";", "#"), inline_comment_prefixes=(";",), strict=False
    )
    try:
        parser.read(ini, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0]
        raise ProjectError(f"project {root}: {INI_NAME} cannot be read: {first}") from None
    config = _Ini(parser, root)
    envs = [s.partition(":")[2] for s in parser.sections() if s.startswith("env:")]
    if not envs:
        raise ProjectError(f"project {root}: {INI_NAME} has no [env:NAME] section")
    if env is None:
        defaults = config.words("platformio", "default_envs")
        env = defaults[0] if defaults else envs[0]
    if env not in envs:
        raise ProjectError(
            f"project {root}: no environment {env!r} in {INI_NAME} (it has {', '.join(envs)})"
        )
    src_dir = root / (config.get("platformio", "src_dir") or "src")
    if not src_dir.is_dir():
        raise ProjectError(f"project {root}: no {src_dir.name}/ directory (the sketch's sources)")
    flags = _words(config.env_list(env, "build_flags"), "build_flags")
    extra_dirs = [d for line in config.env_list(env, "lib_extra_dirs")
                  for d in re.split(r"\s*,\s*", line.strip()) if d]
    lib_deps = [d for line in config.env_list(env, "lib_deps")
                for d in re.split(r"\s*,\s*", line.strip()) if d]
    workspace = root / (os.environ.get("PLATFORMIO_WORKSPACE_DIR")
                        or config.get("platformio", "workspace_dir") or ".pio")
    libdeps = root / (os.environ.get("PLATFORMIO_LIBDEPS_DIR")
                      or config.get("platformio", "libdeps_dir") or workspace / "libdeps")
    return Project(
        root=root,
        env=env,
        defines=tuple(_defines(flags)),
        src_dir=src_dir,
        lib_dir=root / (config.get("platformio", "lib_dir") or "lib"),
        include_dir=root / (config.get("platformio", "include_dir") or "include"),
        build_flags=tuple(flags),
        build_unflags=tuple(_words(config.env_list(env, "build_unflags"), "build_unflags")),
        lib_extra_dirs=tuple((root / Path(d).expanduser()).resolve() for d in extra_dirs),
        libdeps_dir=libdeps / env,
        lib_deps=tuple(lib_deps),
    )


class _Ini:
    """platformio.ini's lookups: ``[env]`` under every env, ``extends``, ``${sect.opt}``."""

    def __init__(self, parser: configparser.RawConfigParser, root: Path) -> None:
        self.parser = parser
        self.root = root

    def raw(self, section: str, option: str) -> str | None:
        if self.parser.has_option(section, option):
            return self.parser.get(section, option)
        return None

    def get(self, section: str, option: str) -> str | None:
        value = self.raw(section, option)
        return None if value is None else self._expand(value, 0)

    def words(self, section: str, option: str) -> list[str]:
        value = self.get(section, option)
        return [] if value is None else [v for v in re.split(r"[\s,]+", value) if v]

    def env_raw(self, section: str, option: str, seen: frozenset[str] = frozenset()) -> str | None:
        """A section's own value, else the first of its ``extends``, else ``[env]``'s."""
        if section in seen:
            raise ProjectError(f"project {self.root}: 'extends' loops through [{section}]")
        own = self.raw(section, option)
        if own is not None:
            return own
        for parent in re.split(r"[\s,]+", self.raw(section, "extends") or ""):
            if parent:
                found = self.env_raw(parent, option, seen | {section})
                if found is not None:
                    return found
        return self.raw("env", option) if section.startswith("env:") else None

    def env_list(self, env: str, option: str) -> list[str]:
        value = self.env_raw(f"env:{env}", option)
        return [] if value is None else [ln for ln in self._expand(value, 0).splitlines() if ln]

    def _expand(self, value: str, depth: int) -> str:
        if depth > _MAX_DEPTH:
            raise ProjectError(f"project {self.root}: ${{...}} references nest too deep")

        def one(match: re.Match[str]) -> str:
            section, _, option = match.group(1).rpartition(".")
            if section == "sysenv":
                return os.environ.get(option, "")
            found = self.env_raw(section, option)
            return "" if found is None else self._expand(found, depth + 1)

        return _REFERENCE.sub(one, value)


def _words(lines: list[str], option: str) -> list[str]:
    """An option's lines split into words as a shell would (quotes kept together)."""
    try:
        return shlex.split(" ".join(lines))
    except ValueError as exc:
        raise ProjectError(f"{option} cannot be split: {exc}") from None


def _defines(words: list[str]) -> list[str]:
    """The ``-D`` defines among build flags, as single compiler arguments."""
    out = []
    for i, word in enumerate(words):
        if word == "-D" and i + 1 < len(words):
            out.append("-D" + words[i + 1])
        elif word.startswith("-D") and len(word) > 2:
            out.append(word)
    return out
