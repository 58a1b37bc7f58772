"""Build the test firmware on the ESP8266 Arduino core's own host emulation (``tests/host``).

The core snapshot (``$ESP_HIL_CORE_DIR``, default ``/work/shared/esp8266-core`` or
``../shared/esp8266-core`` next to the repository) is only read: every object lands in the
cache. The source list and flags follow the core's ``tests/host/Makefile`` (its sketch rule),
minus the file systems whose sources the snapshot lacks (LittleFS, SDFS, SPIFFS) and the
optional libraries. ``firmware/sim-core/`` comes first on the include path and adds our
overrides for the emulation's gaps (``docs/sim-core.md``). The sketch is every ``.cpp`` under
the project's ``src`` (default: ``firmware/src``), the libraries every ``.cpp`` under its
``lib/*/src`` and esp-hil's ``firmware/lib/*/src`` (PlatformIO's rule, wider than the
Makefile's ``src`` + ``src/utility``): :func:`harness.sim.build.sketch_sources`.

Cached like :mod:`harness.sim.build`, with its helpers: one key over every source, header, flag
and the compiler version; objects per translation unit in the twin's object cache.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from harness.project import Project
from harness.sim.build import (
    _HEADER_SUFFIXES,
    FirmwareBuild,
    FirmwareBuildError,
    _build_key,
    _c_compiler,
    _compile_all,
    _compiler_version,
    _files_under,
    _find_compiler,
    _link,
    cache_root,
    cached_build,
    firmware_root,
    project_libraries,
    sketch_sources,
    uninstalled_note,
    unused_library_units,
)

__all__ = ["build_core_firmware", "core_root"]

log = logging.getLogger(__name__)

BINARY_NAME = "esp-hil-fw-core"

# The Makefile's FLAGS for a sketch (no D=1: its debug prints would land on the console).
_COMMON_FLAGS = (
    "-Wall",
    "-Os",
    "-fno-common",
    "-g",
    "-fstack-protector-all",
    "-DHTTPCLIENT_1_1_COMPATIBLE=0",
    "-DLWIP_IPV6=0",
    "-DHOST_MOCK=1",
    "-DNONOSDK221=1",
    "-DF_CPU=80000000",
    "-Wimplicit-fallthrough=2",
    "-funsigned-char",
)
_CXX_FLAGS = ("-std=gnu++17", "-fno-rtti", "-Wno-error=format-security")
_C_FLAGS = ("-std=gnu17",)

# Core and mock sources of the Makefile's sketch rule, without the file systems (their
# sources are submodules the snapshot lacks) and without OPT_ARDUINO_LIBS (none is used).
_CORE_CPP = (
    "debug.cpp",
    "StreamSend.cpp",
    "Stream.cpp",
    "WString.cpp",
    "Print.cpp",
    "stdlib_noniso.cpp",
    "MD5Builder.cpp",
    "core_esp8266_noniso.cpp",
    "libb64/cencode.cpp",
    "libb64/cdecode.cpp",
    "Schedule.cpp",
    "HardwareSerial.cpp",
    "crc32.cpp",
    "Updater.cpp",
    "time.cpp",
    "IPAddress.cpp",
    "base64.cpp",
    "LwipIntf.cpp",
    "LwipIntfCB.cpp",
)
_WIFI_CPP = (
    "ESP8266WiFi.cpp",
    "ESP8266WiFiAP.cpp",
    "ESP8266WiFiGeneric.cpp",
    "ESP8266WiFiMulti.cpp",
    "ESP8266WiFiSTA.cpp",
    "ESP8266WiFiScan.cpp",
    "WiFiClient.cpp",
    "WiFiUdp.cpp",
)
_MOCK_CPP = (
    "Arduino.cpp",
    "flash_hal_mock.cpp",
    "WMath.cpp",
    "MockUART.cpp",
    "MockTools.cpp",
    "MocklwIP.cpp",
    "HostWiring.cpp",
    "ArduinoMain.cpp",
    "ArduinoMainUdp.cpp",
    "DhcpServer.cpp",
    "user_interface.cpp",
    "ClientContextSocket.cpp",
    "ClientContextTools.cpp",
    "MockWiFiServerSocket.cpp",
    "MockWiFiServer.cpp",
    "UdpContextSocket.cpp",
    "MockEsp.cpp",
    "MockEEPROM.cpp",
    "MockSPI.cpp",
    "strl.cpp",
)
_MOCK_C = ("md5.c", "noniso.c")

# Per-file defines that rename one mock function so our override (firmware/sim-core) is
# the one linked, without editing the core: the mock's own copy stays, unused, renamed.
_RENAMES: dict[str, tuple[str, ...]] = {
    "user_interface.cpp": (
        "-Dwifi_get_ip_info=esp_hil_mock_wifi_get_ip_info_unused",
        "-Dwifi_station_get_config=esp_hil_mock_wifi_station_get_config_unused",
        "-Dwifi_station_get_config_default=esp_hil_mock_wifi_station_get_config_default_unused",
        "-Dwifi_station_set_config=esp_hil_mock_wifi_station_set_config_unused",
        "-Dwifi_station_set_config_current=esp_hil_mock_wifi_station_set_config_current_unused",
    ),
}


#: lwIP's segment size in the emulated ClientContext (its send buffer is two segments, its
#: window four): the "v2 Higher Bandwidth" variant (1460), which the firmware is written for
#: (its raw port moves one 1460-byte segment per write). PlatformIO's default variant, "v2 Lower
#: Memory", has 536; ``ESP_HIL_CORE_TCP_MSS=536`` builds that one (docs/sim-core.md).
DEFAULT_TCP_MSS = 1460
_TCP_MSS_RANGE = range(536, 1461)


def tcp_mss() -> int:
    """The lwIP segment size to build with: ``$ESP_HIL_CORE_TCP_MSS`` or 1460."""
    text = os.environ.get("ESP_HIL_CORE_TCP_MSS", "").strip()
    if not text:
        return DEFAULT_TCP_MSS
    if not text.isdigit() or int(text) not in _TCP_MSS_RANGE:
        raise FirmwareBuildError(
            f"ESP_HIL_CORE_TCP_MSS={text!r}: an lwIP segment size from 536 to 1460 bytes"
        )
    return int(text)


def core_root() -> Path:
    """The ESP8266 core snapshot: ``$ESP_HIL_CORE_DIR``, else the nearest
    ``shared/esp8266-core`` beside the repository or one of its parents
    (``../shared/esp8266-core`` of a checkout, ``../../shared/...`` of a worktree)."""
    override = os.environ.get("ESP_HIL_CORE_DIR")
    if override:
        return Path(override).expanduser().resolve()
    repo = Path(__file__).resolve().parents[3]
    for parent in repo.parents:
        candidate = parent / "shared" / "esp8266-core"
        if (candidate / "tests" / "host" / "Makefile").is_file():
            return candidate
    return repo.parent / "shared" / "esp8266-core"


def overrides_root() -> Path:
    """Our overrides of the core's mock (``firmware/sim-core``)."""
    return firmware_root() / "sim-core"


def _sources(
    core: Path, root: Path, project: Project | None
) -> tuple[list[Path], list[Path], list[Path], list[Path], list[Path]]:
    """(C++ units, C units, headers hashed, include directories, the sketch's and its
    libraries' units among them) of one build."""
    host = core / "tests" / "host"
    common = host / "common"
    if not (host / "Makefile").is_file():
        raise FirmwareBuildError(
            f"no ESP8266 core host emulation in {core} (set ESP_HIL_CORE_DIR to a snapshot of "
            "github.com/esp8266/Arduino)"
        )
    ours = overrides_root()
    cores = core / "cores" / "esp8266"
    wifi = core / "libraries" / "ESP8266WiFi" / "src"
    sketch_units, sketch_headers, sketch_includes = sketch_sources(root, project)
    cxx_units = [
        *(u for u in sketch_units if u.suffix != ".c"),
        *_files_under(ours, (".cpp",), recursive=True),
        *(cores / f for f in _CORE_CPP),
        *(wifi / f for f in _WIFI_CPP),
        *(common / f for f in _MOCK_CPP),
    ]
    c_units = [common / f for f in _MOCK_C] + [u for u in sketch_units if u.suffix == ".c"]
    missing = [p for p in (*cxx_units, *c_units) if not p.is_file()]
    if missing:
        raise FirmwareBuildError(f"the core snapshot {core} lacks {missing[0]}")
    libraries = core / "libraries"
    include_dirs = [
        ours,
        host,
        common,
        cores,
        *sorted(p for p in libraries.glob("*/src") if p.is_dir()),
        *sorted(p for p in libraries.glob("*") if p.is_dir()),
        core / "tools" / "sdk" / "include",
        core / "tools" / "sdk" / "lwip2" / "include",
        *sketch_includes,
        project.src_dir if project is not None else root / "src",
    ]
    headers = [
        *sketch_headers,
        *_files_under(ours, _HEADER_SUFFIXES, recursive=True),
        *_files_under(common, _HEADER_SUFFIXES, recursive=True),
        *_files_under(cores, _HEADER_SUFFIXES, recursive=True),
        *_files_under(libraries, _HEADER_SUFFIXES, recursive=True),
        *_files_under(core / "tools" / "sdk", _HEADER_SUFFIXES, recursive=True),
    ]
    return cxx_units, c_units, sorted(set(headers)), include_dirs, sketch_units


def build_core_firmware(*, project: Project | None = None, force: bool = False) -> FirmwareBuild:
    """Build (or find in the cache) the firmware on the core's host emulation: the test
    firmware, or ``project``'s sketch and libraries with its env's ``-D`` defines.

    Raises :class:`~harness.sim.build.FirmwareBuildError` with the compiler's output on
    failure, or when the core snapshot is missing.
    """
    core = core_root()
    root = firmware_root()
    cxx = _find_compiler()
    cc = _c_compiler()
    version = _compiler_version(cxx)
    cxx_units, c_units, headers, include_dirs, sketch = _sources(core, root, project)
    common = core / "tests" / "host" / "common"
    pre = ["-include", str(common / "mock.h"), "-include", str(common / "c_types.h")]
    # This glibc has no strlcpy/strlcat (the Makefile probes for them the same way).
    defines = ["-DSTRLCPY_MISSING", "-DSTRLCAT_MISSING", f"-DESP_HIL_CORE_TCP_MSS={tcp_mss()}"]
    if project is not None:
        defines += project.defines
    incs = [f"-I{d}" for d in include_dirs]
    base = [*pre, *_COMMON_FLAGS, *defines, *incs]
    key = _build_key(
        compiler=[*cxx, *cc],
        version=version,
        files=[*cxx_units, *c_units, *headers],
        flags=[*base, *_CXX_FLAGS, *_C_FLAGS, repr(sorted(_RENAMES.items()))],
    )
    build_id = key[:12]

    libraries = project_libraries(root, project)

    def make(binary: Path) -> None:
        unused = unused_library_units(cxx, [*base, *_CXX_FLAGS], sketch, libraries)
        built = [u for u in cxx_units if u not in unused]
        # Three groups by flags: C++, the C files, and each unit with a rename of its own.
        renamed = [u for u in built if u.name in _RENAMES]
        groups = [
            (cxx, [*base, *_CXX_FLAGS], [u for u in built if u not in renamed]),
            (cc, [*base, *_C_FLAGS], [u for u in c_units if u not in unused]),
            *((cxx, [*base, *_CXX_FLAGS, *_RENAMES[u.name]], [u]) for u in renamed),
        ]
        objects = [
            obj
            for compiler, flags, units in groups
            for obj in _compile_all(compiler, flags, units, headers, build_id=build_id,
                                    force=force, uninstalled=uninstalled_note(project))
        ]
        _link(cxx, ["-Os", "-g"], objects, binary)
        log.info("built sim-core firmware %s (%d units)", binary, len(objects))

    return cached_build(
        cache_root() / "build-core" / key, build_id, make, force=force, name=BINARY_NAME
    )
