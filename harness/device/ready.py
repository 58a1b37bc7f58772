"""The test firmware's console vocabulary: the READY line and WiFi provisioning.

The formats are fixed in ``docs/console.md``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote

from harness.device.console import Console
from harness.device.errors import ProvisioningError
from harness.device.postmortem import CrashWatch

_BOOT = "ESP-HIL BOOT "
READY_RE = re.compile(r"^ESP-HIL READY (?P<fields>.*)$")
WIFI_FAIL_RE = re.compile(r"^ESP-HIL WIFI fail (?P<fields>.*)$")


def parse_fields(text: str) -> dict[str, str]:
    """Split ``key=value key=value`` into a dict (unknown keys kept, order irrelevant)."""
    out: dict[str, str] = {}
    for token in text.split():
        key, sep, value = token.partition("=")
        if sep:
            out[key] = value
    return out


@dataclass(frozen=True)
class Ready:
    """What the firmware announced in its READY line."""

    ip: str
    port: int  # 0: the sketch dials the PC instead (``dial=<host>:<port>`` in extra)
    ctrl_port: int  # 0: no control service (a sketch other than the test firmware)
    mac: str
    fw: str
    max_message: int
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def accepts_key(self) -> bool:
        """Whether the sketch applies a console-provisioned key to its links (READY
        ``auth=1``: it registered ``EspHil.onKey``)."""
        return self.extra.get("auth") == "1"

    @classmethod
    def parse(cls, line: str) -> Ready:
        """Parse a READY line; raise ``ValueError`` naming what is missing or malformed."""
        m = READY_RE.search(line)
        if not m:
            raise ValueError(f"not a READY line: {line!r}")
        f = parse_fields(m.group("fields"))
        try:
            return cls(
                ip=f.pop("ip"),
                port=int(f.pop("port")),
                ctrl_port=int(f.pop("ctrl", "0")),
                mac=f.pop("mac").lower(),
                fw=f.pop("fw"),
                max_message=int(f.pop("max")),
                extra=f,
            )
        except (KeyError, ValueError) as exc:
            raise ValueError(f"malformed READY line ({exc}): {line!r}") from None


def wifi_command(ssid: str, password: str) -> str:
    """The console command that provisions credentials (both fields percent-encoded)."""
    return f"wifi {quote(ssid, safe='')} {quote(password, safe='')}"


def agent_booted(lines: Iterable[str]) -> bool:
    """The agent said ``ESP-HIL BOOT`` (``EspHil.begin()`` ran) in ``lines``."""
    return any(text.lstrip().startswith(_BOOT) for text in lines)


def why_not_ready(lines: list[str]) -> str | None:
    """What the console since a boot says about a missing READY: the agent call a sketch
    most likely lacks (None when the lines do not point at one)."""
    said = [text.strip() for text in lines]

    def seen(*prefixes: str) -> bool:
        return any(text.startswith(prefixes) for text in said)

    if not agent_booted(said):
        return ("the sketch printed no 'ESP-HIL BOOT' line: does its setup() call "
                'EspHil.begin("name/version")?')
    if seen("ESP-HIL WIFI none") and not seen("ESP-HIL WIFI connecting", "ESP-HIL OK",
                                                "ESP-HIL ERR"):
        return ("the agent did not take the 'wifi' command: does the sketch's loop() call "
                "EspHil.loop()?")
    if seen("ESP-HIL WIFI connecting") and not seen("ESP-HIL WIFI fail"):
        # The agent gives up a join after 10 s (ESP-HIL WIFI fail): it is not running.
        return ("the agent began joining WiFi and said nothing more: does setup() call "
                "EspHil.ready(port, maxMessage) (or readyDialing), and loop() EspHil.loop()?")
    return None


def provision(console: Console, ssid: str, password: str, *, timeout: float = 20.0,
              watch: CrashWatch | None = None) -> Ready:
    """Send WiFi credentials over the console and wait for READY.

    Raises :class:`ProvisioningError` if the firmware reports that it cannot join,
    :class:`~harness.device.errors.FirmwareCrashed` if it boot-loops (``watch`` counts the
    crash reports, from an earlier wait on), or
    :class:`~harness.device.errors.DeviceTimeout` if it says nothing useful in time.
    """
    mark = console.mark()
    console.send_line(wifi_command(ssid, password))
    m = console.expect(r"^ESP-HIL (READY .*|WIFI fail .*|ERR wifi.*)$", timeout, since=mark,
                       watch=CrashWatch() if watch is None else watch)
    line = m.group(0)
    if line.startswith("ESP-HIL READY"):
        return Ready.parse(line)
    raise ProvisioningError(
        f"the device could not join WiFi {ssid!r}: {line}", console_tail=console.tail(since=mark)
    )


def parse_link_key(text: str) -> bytes | str:
    """``auto`` and ``none`` as themselves, 32..64 hex digits as the key's bytes.

    Raises ``ValueError`` with one line naming what is wrong (never echoing the text: it
    may be most of a key).
    """
    if text in ("auto", "none"):
        return text
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ValueError("the link key must be auto, none or hex digits") from None
    if not 16 <= len(key) <= 32:
        raise ValueError(f"the link key must be 16..32 bytes (32..64 hex digits), not {len(key)}")
    return key


def provision_key(console: Console, key: bytes | None, *, timeout: float = 5.0) -> None:
    """Store ``key`` (None: clear it) in the board's flash over the console (``key <hex>`` /
    ``key off``, docs/console.md) and wait for the agent's answer."""
    mark = console.mark()
    console.send_line(f"key {key.hex()}" if key is not None else "key off")
    m = console.expect(r"^ESP-HIL (OK key|ERR key.*)$", timeout, since=mark)
    if m.group(1) != "OK key":
        raise ProvisioningError(
            f"the device refused its link key: {m.group(0)}", console_tail=console.tail(since=mark)
        )
