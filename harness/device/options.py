"""What the user said about the board: pytest options, CLI flags or the environment."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.project import Project, firmware_root, load_project


@dataclass
class DeviceOptions:
    """What the user said about the board (pytest options, CLI flags or environment)."""

    spec: str = "sim"
    ssid: str | None = None
    password: str | None = None
    firmware: str | None = None
    flash: str = "auto"
    #: The PlatformIO project to build (``--project``); None: esp-hil's test firmware.
    project: str | Path | None = None
    #: Its environment (``--pio-env``); None: the project's ``default_envs``, else its first.
    pio_env: str | None = None
    sanitize: bool = False
    #: The link's pre-shared key (docs/protocol.md §6): ``auto`` provisions a fresh random
    #: key when the firmware announces key support (READY ``auth=1``), ``none`` runs
    #: keyless (clearing a stored key), or 32..64 hex digits for that key.
    link_key: str = "auto"
    lock_timeout: float = 60.0
    #: How long to wait for a labgrid place someone else holds (``labgrid:PLACE``).
    place_timeout: float = 600.0
    #: Where progress messages go (waiting for a labgrid place); None: stderr.
    notify: Callable[[str], None] | None = None

    def load_project(self) -> Project:
        """The project and env to build (raises :class:`harness.project.ProjectError`)."""
        return load_project(self.project or firmware_root(), self.pio_env)

    @property
    def is_test_firmware(self) -> bool:
        """True when no ``--project`` names another firmware than esp-hil's own."""
        return self.project is None or Path(self.project).resolve() == firmware_root()
