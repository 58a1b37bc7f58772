"""Errors raised while driving a board or a twin (not the link: see :mod:`harness.errors`)."""

from __future__ import annotations


class DeviceError(Exception):
    """A board or twin did not do what the harness asked.

    ``console_tail`` holds the last console lines, so the failure shows what the device said.
    """

    def __init__(self, message: str, *, console_tail: str = "") -> None:
        self.console_tail = console_tail
        if console_tail:
            message = f"{message}\n--- console tail ---\n{console_tail}"
        super().__init__(message)


def with_twin_log(exc: DeviceError, lines: list[str], last: int = 20) -> DeviceError:
    """``exc`` with a twin's own last log lines appended to its message (as is without any):
    a twin that does not come up often said why on stderr, not on its console."""
    if lines:
        exc.args = (f"{exc.args[0]}\n--- twin log ---\n" + "\n".join(lines[-last:]),)
    return exc


class DeviceTimeout(DeviceError, TimeoutError):
    """A wait on the device's console ran out (no READY line, no answer to a command)."""


class FirmwareCrashed(DeviceError):
    """The firmware crashed while the harness waited on it (the core's crash report came)."""


class ProvisioningError(DeviceError):
    """The firmware could not join the WiFi network with the credentials it was given."""


class BoardBusy(DeviceError):
    """Another process holds the board's lock."""
