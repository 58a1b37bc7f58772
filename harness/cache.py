"""Where esp-hil keeps what it can rebuild: twin builds, board locks, running-twin records."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$ESP_HIL_CACHE``, else ``$XDG_CACHE_HOME/esp-hil``, else ``~/.cache/esp-hil``."""
    override = os.environ.get("ESP_HIL_CACHE")
    if override:
        return Path(override).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return (Path(base) / "esp-hil").resolve()
