"""Which native binary a build id in a flashed image stands for.

The harness builds the native firmware, registers ``build_id -> binary`` here
and flashes :func:`~harness.sim.chip.image.make_native_image` for that build id.
The registry can live in memory only or be backed by a JSON file (e.g. in the
build cache) so that separately started twins find the same builds.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from harness.sim.build import cache_root

from .image import make_native_image


class FirmwareRegistry:
    """A ``build_id -> native binary path`` map, optionally persisted as JSON."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        entries: dict[str, str | os.PathLike[str]] | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._entries: dict[str, Path] = {k: Path(v) for k, v in (entries or {}).items()}

    def register(self, build_id: str, binary: str | os.PathLike[str]) -> None:
        """Remember that ``build_id`` runs ``binary``; persists if file-backed."""
        with self._lock:
            self._entries[build_id] = Path(binary)
            if self.path is not None:
                merged = {**self._load(), **{k: str(v) for k, v in self._entries.items()}}
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(merged, indent=2, sort_keys=True))
                os.replace(tmp, self.path)

    def lookup(self, build_id: str) -> Path | None:
        """The binary registered for ``build_id``, or None."""
        with self._lock:
            if build_id in self._entries:
                return self._entries[build_id]
            found = self._load().get(build_id)
            return Path(found) if found else None

    def _load(self) -> dict[str, str]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def default_registry() -> FirmwareRegistry:
    """The registry shared by every twin of this user (under the build cache)."""
    return FirmwareRegistry(cache_root() / "twin" / "registry.json")


def register_image(
    binary: str | os.PathLike[str],
    build_id: str,
    identity: str,
    registry: FirmwareRegistry | None = None,
) -> bytes:
    """Register ``binary`` under ``build_id`` and return the image to flash for it."""
    (registry or default_registry()).register(build_id, binary)
    return make_native_image(identity, build_id)
