"""One process per board: an exclusive, cross-process lock named after the device.

The lock is keyed on the resolved device path, so ``/dev/serial/by-id/...`` and the
``/dev/ttyUSB0`` it links to are one lock. ``filelock`` uses ``flock``, which the kernel drops
when the holder dies, so a lock left by a killed pytest is free again at once. A labgrid
place's local lock (:class:`harness.device.labgrid.PlaceLease`) is one too, keyed on a URL.
"""

from __future__ import annotations

import hashlib
import os

from filelock import FileLock
from filelock import Timeout as LockTimeout

from harness.cache import cache_root
from harness.device.errors import BoardBusy


def lock_key(port: str) -> str:
    """The name a board is locked under: a local device path resolved through its symlinks,
    anything else (an ``rfc2217://`` URL) as given."""
    if "://" in port:
        return port
    return os.path.realpath(port)


class BoardLock:
    """Held while a process uses the board at ``port``; ``acquire`` waits up to ``timeout``."""

    def __init__(self, port: str, timeout: float = 30.0) -> None:
        self.port = port
        self.timeout = timeout
        digest = hashlib.sha256(lock_key(port).encode()).hexdigest()[:16]
        folder = cache_root() / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        self._owner = folder / f"{digest}.owner"
        self._lock = FileLock(folder / f"{digest}.lock")

    def try_acquire(self, timeout: float) -> bool:
        """Take the lock within ``timeout`` seconds; ``False`` if another process still holds it."""
        try:
            self._lock.acquire(timeout=timeout)
        except LockTimeout:
            return False
        self._owner.write_text(f"pid {os.getpid()}")
        return True

    def holder(self) -> str:
        """Who holds the lock, as the holder wrote it (``pid N``)."""
        try:
            return self._owner.read_text().strip()
        except OSError:
            return "unknown process"

    def acquire(self) -> BoardLock:
        if not self.try_acquire(self.timeout):
            raise BoardBusy(
                f"board {self.port} is in use by another process ({self.holder()}); waited "
                f"{self.timeout:.0f} s"
            )
        return self

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release()

    def __enter__(self) -> BoardLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
