"""The twin's defaults in one place: its access point, its firmware identity, its exit codes,
and how it derives a MAC address when none is given."""

from __future__ import annotations

import hashlib

#: The simulated access point every twin offers unless told otherwise.
DEFAULT_SSID = "esp-hil"
DEFAULT_PASSWORD = "esp-hil-password"

#: The identity the test firmware announces (without its ``+<build>`` suffix).
FIRMWARE_IDENTITY = "esp-hil-testfw/0.1.0"

#: Exit codes of the firmware process (the shim's contract, firmware/sim/README.md).
EXIT_CONFIG_ERROR = 2  # the shim rejected its environment
EXIT_RESTART = 3  # ESP.restart(): a reboot, not a death

#: Espressif's OUI, the first three bytes of every twin's MAC.
ESPRESSIF_OUI = b"\x5c\xcf\x7f"


def default_mac(seed: str) -> str:
    """A stable Espressif-OUI station MAC derived from ``seed`` (a flash path or an IP)."""
    return (ESPRESSIF_OUI + hashlib.sha256(seed.encode()).digest()[:3]).hex(":")


def chip_id_of(mac: str) -> int:
    """The chip id of a station MAC ``aa:bb:cc:dd:ee:ff``: its low three bytes.

    That is what the SDK's ``system_get_chip_id`` and ``esptool chip-id`` read from the eFuses
    (:func:`harness.sim.chip.memory.efuse_words` lays the MAC out so they do).
    """
    raw = bytes.fromhex(mac.replace("-", "").replace(":", ""))
    return int.from_bytes(raw[3:6], "big")
