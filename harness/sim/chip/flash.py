"""The twin's SPI NOR flash, kept in an ordinary file.

Write model (the NOR rules, kept simple and honest):

* ``erase`` sets whole 4 KiB sectors to 0xFF;
* ``program`` can only clear bits: the stored byte becomes ``old & new``, so
  writing over data that was not erased first corrupts it, as on a real chip;
* ``store`` writes bytes verbatim (used to seed a flash file in tests and tools,
  never by the ROM loader).

The file is opened per operation with ``os.pread``/``os.pwrite`` so that the
native firmware process, which keeps its EEPROM sector in the same file, always
sees what the loader wrote and the other way round.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from esptool.loader import ESPLoader

SECTOR_SIZE = ESPLoader.FLASH_SECTOR_SIZE
DEFAULT_SIZE = 4 * 1024 * 1024
_CHUNK = 256 * 1024


class FlashError(ValueError):
    """An access outside the flash, or a misaligned erase."""


class FlashFile:
    """A flash chip of ``size`` bytes backed by the file at ``path``.

    A missing file is created erased (all 0xFF). An existing file of another
    size is refused rather than silently truncated or grown.
    """

    def __init__(self, path: str | os.PathLike[str], size: int = DEFAULT_SIZE) -> None:
        if size <= 0 or size % SECTOR_SIZE:
            raise FlashError(f"flash size {size:#x} is not a whole number of sectors")
        self.path = Path(path)
        self.size = size
        self._lock = threading.Lock()
        if self.path.exists():
            actual = self.path.stat().st_size
            if actual != size:
                raise FlashError(f"flash file {self.path} holds {actual} bytes, expected {size}")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "wb") as f:
                blank = b"\xff" * _CHUNK
                for pos in range(0, size, _CHUNK):
                    f.write(blank[: min(_CHUNK, size - pos)])

    def _check(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise FlashError(
                f"access {offset:#x}+{length:#x} outside flash of {self.size:#x} bytes"
            )

    def read(self, offset: int, length: int) -> bytes:
        """Return ``length`` bytes starting at ``offset``."""
        self._check(offset, length)
        with self._lock:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                out = bytearray()
                while len(out) < length:
                    chunk = os.pread(fd, length - len(out), offset + len(out))
                    if not chunk:
                        raise FlashError(f"flash file {self.path} shrank under us")
                    out += chunk
                return bytes(out)
            finally:
                os.close(fd)

    def _pwrite(self, offset: int, data: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY)
        try:
            view = memoryview(data)
            done = 0
            while done < len(view):
                done += os.pwrite(fd, view[done:], offset + done)
        finally:
            os.close(fd)

    def store(self, offset: int, data: bytes) -> None:
        """Write ``data`` verbatim (not a flash operation: for seeding files)."""
        self._check(offset, len(data))
        with self._lock:
            self._pwrite(offset, data)

    def program(self, offset: int, data: bytes) -> None:
        """NOR page program: each stored byte becomes ``old & new``."""
        if not data:
            return
        old = self.read(offset, len(data))
        merged = (int.from_bytes(old, "little") & int.from_bytes(data, "little")).to_bytes(
            len(data), "little"
        )
        with self._lock:
            self._pwrite(offset, merged)

    def erase(self, offset: int, length: int) -> None:
        """Erase the sectors in ``[offset, offset+length)``; both must be aligned."""
        if offset % SECTOR_SIZE or length % SECTOR_SIZE:
            raise FlashError(f"erase {offset:#x}+{length:#x} is not sector aligned")
        self._check(offset, length)
        blank = b"\xff" * min(length, _CHUNK)
        with self._lock:
            for pos in range(offset, offset + length, _CHUNK):
                n = min(_CHUNK, offset + length - pos)
                self._pwrite(pos, blank[:n])

    def erase_covering(self, offset: int, length: int) -> None:
        """Erase every sector that ``[offset, offset+length)`` touches."""
        if length <= 0:
            return
        start = offset - offset % SECTOR_SIZE
        end = -(-(offset + length) // SECTOR_SIZE) * SECTOR_SIZE
        self.erase(start, min(end, self.size) - start)

    def erase_all(self) -> None:
        """Erase the whole chip."""
        self.erase(0, self.size)

    def md5(self, offset: int, length: int) -> bytes:
        """MD5 digest (16 raw bytes) of a region, as the stub computes it."""
        self._check(offset, length)
        digest = hashlib.md5()
        for pos in range(offset, offset + length, _CHUNK):
            digest.update(self.read(pos, min(_CHUNK, offset + length - pos)))
        return digest.digest()
