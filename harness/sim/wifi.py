"""The twin's access point, as a test moves it: ``device.wifi``.

The native firmware reads the AP from a 128-byte file beside its flash file,
``<flash>.air`` (``firmware/sim/sim_air.cpp``; only this side writes it). The AP's SSID is
the twin's (``ESP_HIL_AP_SSID``); the test switches it off and on, changes its password and
the signal strength the station reports. The AP lives in the world, not in the chip: what a
test sets stays across the firmware's resets.

    device.wifi.drop()              # off the air: traffic stops; after the beacon
                                    # timeout (6 s) the station is disconnected (reason 200)
    device.wifi.restore()           # back: auto-reconnect rejoins (ESP-HIL READY again)
    device.wifi.set_password("x")   # joined stations are kicked (reason 2), rejoins fail
                                    # with WL_WRONG_PASSWORD until it is set back
    device.wifi.rssi = -80          # what WiFi.RSSI() reports while joined

docs/twin.md ("Board faults") says what a board does in each case.
"""

from __future__ import annotations

import struct
import threading
from pathlib import Path

from harness.sim.worldfile import map_shared

__all__ = ["AccessPoint", "air_path"]

# The file layout, shared with sim_air.cpp.
_SIZE = 128
_MAGIC = 0x31524941  # "AIR1"
_HEAD = struct.Struct("<IIBbB5x")  # magic, sequence, on the air, RSSI, password length
_PASSWORD_AT = 16
_PASSWORD_MAX = 64


def air_path(flash: Path | str) -> Path:
    """The AP file of a twin whose flash file is ``flash``."""
    return Path(f"{flash}.air")


class AccessPoint:
    """The simulated AP of one twin (its flash file names the shared file)."""

    def __init__(self, flash: Path | str, *, password: str, rssi: int = -55) -> None:
        self.path = air_path(flash)
        self._lock = threading.Lock()
        self._on_air = True
        self._password = ""
        self._rssi = -55
        self._map = map_shared(self.path, _SIZE)
        magic, _, on_air, old_rssi, length = _HEAD.unpack_from(self._map, 0)
        if magic == _MAGIC:  # a test moved it before (the file outlives a firmware run)
            raw = self._map[_PASSWORD_AT : _PASSWORD_AT + min(length, _PASSWORD_MAX)]
            self._on_air, self._rssi, self._password = bool(on_air), old_rssi, raw.decode()
        else:
            self._password, self._rssi = _checked_password(password), _checked_rssi(rssi)
            self._write()

    # -- the test's controls -----------------------------------------------------------------
    def drop(self) -> None:
        """Switch the AP off (out of range): the station hears nothing from now on."""
        self._on_air = False
        self._write()

    def restore(self) -> None:
        """Switch the AP on again."""
        self._on_air = True
        self._write()

    def set_password(self, password: str) -> None:
        """Change the AP's password ("" = an open network)."""
        self._password = _checked_password(password)
        self._write()

    @property
    def on_air(self) -> bool:
        """True while the AP is up."""
        return self._on_air

    @property
    def password(self) -> str:
        """The AP's password now."""
        return self._password

    @property
    def rssi(self) -> int:
        """The signal strength (dBm) the station reports while joined."""
        return self._rssi

    @rssi.setter
    def rssi(self, value: int) -> None:
        self._rssi = _checked_rssi(value)
        self._write()

    def close(self) -> None:
        """Unmap the file (the AP keeps its last state for the firmware)."""
        with self._lock:
            self._map.close()

    def _write(self) -> None:
        data = self._password.encode()
        with self._lock:
            # A sequence lock: odd while writing, so the firmware never takes half a change.
            odd = struct.unpack_from("<I", self._map, 4)[0] | 1
            struct.pack_into("<I", self._map, 4, odd)
            self._map[_PASSWORD_AT : _PASSWORD_AT + _PASSWORD_MAX] = data.ljust(
                _PASSWORD_MAX, b"\0"
            )
            _HEAD.pack_into(self._map, 0, _MAGIC, odd, int(self._on_air), self._rssi, len(data))
            struct.pack_into("<I", self._map, 4, (odd + 1) & 0xFFFFFFFF)


def _checked_password(password: str) -> str:
    if len(password.encode()) > _PASSWORD_MAX:
        raise ValueError(f"a WiFi password is at most {_PASSWORD_MAX} bytes")
    return password


def _checked_rssi(rssi: int) -> int:
    if not -120 <= rssi <= 0:
        raise ValueError(f"RSSI {rssi} dBm is outside -120..0")
    return rssi
