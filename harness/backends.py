"""From a ``--device`` spec to a READY device: the backend table the plugin and the CLI share.

One row per backend. A spec that names no row is a board: a serial port (``/dev/ttyUSB0``) or
an ``rfc2217://host:port`` URL (a board on another machine, or a twin that ``esp-hil sim``
serves). This module sits above both :mod:`harness.device` (interfaces, the board) and
:mod:`harness.sim` (the twins), which never import it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.device.base import Device
from harness.device.errors import DeviceError, with_twin_log
from harness.device.flashing import build_with_platformio
from harness.device.labgrid import LABGRID_PREFIX, place_device
from harness.device.options import DeviceOptions
from harness.device.ready import parse_link_key
from harness.device.serial import SerialDevice
from harness.project import Project, ProjectError, firmware_root
from harness.sim.board import TwinDevice, native_image
from harness.sim.build import FirmwareBuildError
from harness.sim.core.device import CoreDevice
from harness.sim.direct import SimDevice
from harness.sim.serve import running_twins

__all__ = [
    "BACKENDS",
    "BOARD",
    "Backend",
    "DeviceOptions",
    "backend_for",
    "firmware_image",
    "is_twin_spec",
    "open_device",
    "twin_project",
]


@dataclass(frozen=True)
class Backend:
    """One way to get a device: ``create`` builds it (not started) from the user's options."""

    create: Callable[[DeviceOptions], Device]
    #: ``twin``: started here, no board involved (``board`` tests are skipped on it).
    kind: str
    summary: str


def twin_project(opts: DeviceOptions) -> Project | None:
    """The project a twin builds: None for esp-hil's test firmware (its own build)."""
    return None if opts.is_test_firmware else opts.load_project()


def _twin(opts: DeviceOptions) -> Device:
    return TwinDevice(project=twin_project(opts), sanitize=opts.sanitize, flash=opts.flash)


def _direct(opts: DeviceOptions) -> Device:
    return SimDevice(project=twin_project(opts), sanitize=opts.sanitize)


def _board_options(opts: DeviceOptions) -> dict[str, Any]:
    """The serial backend's options for the board at ``opts.spec`` (a port or URL)."""
    ssid, password = opts.ssid, opts.password
    local_twin = running_twins().get(opts.spec)
    if local_twin is not None and ssid is None:
        # A twin of this machine: its simulated access point is known.
        ssid, password = local_twin["ssid"], local_twin["password"]
    return {
        "ssid": ssid,
        "password": password,
        "image": None if opts.flash == "never" else firmware_image(opts),
        "flash": opts.flash,
        "lock_timeout": opts.lock_timeout,
    }


def _board(opts: DeviceOptions) -> Device:
    return SerialDevice(opts.spec, **_board_options(opts))


def _core(opts: DeviceOptions) -> Device:
    return CoreDevice(project=twin_project(opts))


def _labgrid(opts: DeviceOptions) -> Device:
    return place_device(opts, _board_options)


#: ``--device`` names, one row per backend (add yours here).
BACKENDS: dict[str, Backend] = {
    "sim": Backend(
        _twin, "twin", "a twin here, driven like a board: esptool over rfc2217, DTR/RTS resets"
    ),
    "twin": Backend(_twin, "twin", "alias of 'sim'"),
    "sim-direct": Backend(
        _direct, "twin", "the twin's firmware process alone, without the emulated chip"
    ),
    "sim-core": Backend(
        _core, "twin", "the firmware on the ESP8266 core's own host emulation (docs/sim-core.md)"
    ),
    # A row whose name ends in ':' takes every spec with that prefix.
    LABGRID_PREFIX: Backend(
        _labgrid, "board", "labgrid:PLACE, a board in a labgrid farm (LG_COORDINATOR)"
    ),
}

#: Any other spec: a serial port or an rfc2217:// URL.
BOARD = Backend(_board, "board", "a serial port (/dev/ttyUSB0) or an rfc2217://host:port URL")


def backend_for(spec: str) -> Backend:
    """The backend a ``--device`` spec names (a board unless the table has a row for it)."""
    if spec in BACKENDS:
        return BACKENDS[spec]
    scheme, colon, _ = spec.partition(":")
    return BACKENDS.get(scheme + colon, BOARD) if colon else BOARD


def is_twin_spec(spec: str) -> bool:
    """True for the specs that start a twin here (no board involved)."""
    return backend_for(spec).kind == "twin"


def firmware_image(opts: DeviceOptions) -> bytes:
    """The image to flash on a board: ``--firmware``, the twin's native image, or PlatformIO's
    build of the project (``pio run -d PROJECT -e ENV``, esp-hil's libraries on its path)."""
    if opts.firmware is not None and opts.firmware != "native":
        path = Path(opts.firmware)
        if not path.is_file():
            raise DeviceError(f"--firmware {path}: no such file")
        return path.read_bytes()
    with _build_errors():
        if opts.firmware == "native" or opts.spec in running_twins():
            return native_image(project=twin_project(opts), sanitize=opts.sanitize)
        project = opts.load_project()
    return build_with_platformio(project.env, project.root, firmware_root() / "lib").read_bytes()


@contextlib.contextmanager
def _build_errors() -> Iterator[None]:
    """A project that cannot be used or a twin build that fails, as a :class:`DeviceError`."""
    try:
        yield
    except ProjectError as exc:
        raise DeviceError(str(exc)) from None
    except FirmwareBuildError as exc:
        raise DeviceError(f"the twin's firmware did not build: {exc}") from None


def open_device(opts: DeviceOptions) -> Device:
    """Start a twin or take a board, and bring it to READY. The caller closes it.

    A project that cannot be used or a twin build that fails is a :class:`DeviceError` with
    the reason (one line for a missing project or an API the shim lacks).
    """
    with _build_errors():
        dev = backend_for(opts.spec).create(opts)
    try:
        dev.start()
        dev.set_up_key(parse_link_key(opts.link_key))
    except DeviceError as exc:
        log = dev.twin_log()
        dev.close()
        raise with_twin_log(exc, log) from None
    except BaseException:
        dev.close()
        raise
    return dev
