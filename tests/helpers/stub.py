"""A :class:`~harness.device.base.Device` with no backend, for unit tests of the base class."""

from __future__ import annotations

from harness.device.base import Device


class StubDevice(Device):
    """Starts as it is, cannot be reset, holds nothing to release; subclasses give it the
    console (``Device.__init__``) or the methods a test drives."""

    @property
    def description(self) -> str:
        return type(self).__name__

    def start(self) -> Device:
        return self

    def hard_reset(self) -> None:
        raise NotImplementedError("a stub device has no reset")

    def close(self) -> None:
        pass
