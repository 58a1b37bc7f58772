"""Files beside a twin's flash file that its firmware maps too: the pins, the I2C bus, the
access point (``world_file`` in ``firmware/sim/sim_flash.cpp`` is the firmware's side).

Either side may create a file first; both grow it to its size and map it ``MAP_SHARED``,
so a store by one is seen by the other at once. Wiring written by the test outlives a
firmware run, as on a bench.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path
from types import TracebackType
from typing import ClassVar, TypeVar

__all__ = ["WorldFile", "map_shared"]

_W = TypeVar("_W", bound="WorldFile")


def map_shared(path: Path, size: int) -> mmap.mmap:
    """``path`` created if missing, grown to ``size`` bytes and mapped read-write, shared."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        if os.fstat(fd).st_size < size:
            os.ftruncate(fd, size)
        return mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)


class WorldFile:
    """One such file, mapped until :meth:`close` (the firmware keeps its own mapping)."""

    SIZE: ClassVar[int]
    #: What the file's name adds to the flash file's (".pins").
    SUFFIX: ClassVar[str]

    @classmethod
    def for_flash(cls: type[_W], flash: Path | str) -> _W:
        """The file of the twin whose flash file is ``flash``."""
        return cls(Path(f"{os.fspath(flash)}{cls.SUFFIX}"))

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._map: mmap.mmap | None = map_shared(self.path, self.SIZE)

    @property
    def _m(self) -> mmap.mmap:
        if self._map is None:
            raise ValueError(f"{type(self).__name__} is closed")
        return self._map

    @property
    def closed(self) -> bool:
        return self._map is None

    def close(self) -> None:
        """Unmap the file (the firmware keeps its own mapping)."""
        if self._map is not None:
            self._map.close()
            self._map = None

    def __enter__(self: _W) -> _W:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
