"""What the user said about the board: pytest options, CLI flags or the environment."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class DeviceOptions:
    """What the user said about the board (pytest options, CLI flags or environment)."""

    spec: str = "sim"
    ssid: str | None = None
    password: str | None = None
    firmware: str | None = None
    flash: str = "auto"
    pio_env: str = "nodemcuv2"
    sanitize: bool = False
    lock_timeout: float = 60.0
    #: How long to wait for a labgrid place someone else holds (``labgrid:PLACE``).
    place_timeout: float = 600.0
    #: Where progress messages go (waiting for a labgrid place); None: stderr.
    notify: Callable[[str], None] | None = None

    @classmethod
    def from_env(cls, **overrides: object) -> DeviceOptions:
        """Defaults, with WiFi credentials from ESP_HIL_WIFI_SSID / ESP_HIL_WIFI_PASSWORD."""
        opts = cls(
            ssid=os.environ.get("ESP_HIL_WIFI_SSID"),
            password=os.environ.get("ESP_HIL_WIFI_PASSWORD"),
        )
        for key, value in overrides.items():
            if value is not None:
                setattr(opts, key, value)
        return opts
