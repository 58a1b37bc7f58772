"""Telling a device's echo service to dial a host (``dial HOST PORT``) or to listen again
(``dial off``) over its console."""

from __future__ import annotations

from harness.device.base import Device

ANSWER = 5.0  # how long the device has to answer a dial command


class DialControl:
    """The device's echo service told over the console to dial a host, or to listen again."""

    def __init__(self, device: Device) -> None:
        self.device = device

    def to(self, host: str, port: int) -> None:
        self.command(f"dial {host} {port}")

    def off(self) -> None:
        self.command("dial off")

    def command(self, line: str) -> str:
        """Send a console line; return the device's OK/ERR answer to it."""
        mark = self.device.console.mark()
        self.device.console.send_line(line)
        m = self.device.console.expect(r"^ESP-HIL (OK|ERR) dial.*$", timeout=ANSWER, since=mark)
        return m.group(0)
