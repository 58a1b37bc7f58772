"""The twin's defaults in one place: its access point, its firmware identity, its exit codes,
and how it derives a MAC address when none is given."""

from __future__ import annotations

import hashlib
import signal

#: The simulated access point every twin offers unless told otherwise.
DEFAULT_SSID = "esp-hil"
DEFAULT_PASSWORD = "esp-hil-password"

#: The identity the test firmware announces (without its ``+<build>`` suffix).
FIRMWARE_IDENTITY = "esp-hil-testfw/0.1.0"

#: Exit codes of the firmware process (the shim's contract, firmware/sim/README.md).
EXIT_CONFIG_ERROR = 2  # the shim rejected its environment
EXIT_RESTART = 3  # ESP.restart(): a reboot, not a death
EXIT_RESET_BASE = 16  # + the SDK's rst_reason: the chip reset itself (watchdog, exception, ...)

#: The SDK's ``rst_reason`` (user_interface.h ``REASON_*``) -> what ``ESP.getResetReason()``
#: says after it (the core's Esp.cpp) and the ``rst cause`` the boot ROM prints.
REASON_DEFAULT_RST = 0
REASON_WDT_RST = 1
REASON_EXCEPTION_RST = 2
REASON_SOFT_WDT_RST = 3
REASON_SOFT_RESTART = 4
REASON_DEEP_SLEEP_AWAKE = 5
REASON_EXT_SYS_RST = 6
RESET_REASONS: dict[int, tuple[str, int]] = {
    REASON_DEFAULT_RST: ("Power On", 1),
    REASON_WDT_RST: ("Hardware Watchdog", 4),
    REASON_EXCEPTION_RST: ("Exception", 2),
    REASON_SOFT_WDT_RST: ("Software Watchdog", 2),
    REASON_SOFT_RESTART: ("Software/System restart", 2),
    REASON_DEEP_SLEEP_AWAKE: ("Deep-Sleep Wake", 5),
    REASON_EXT_SYS_RST: ("External System", 2),
}


def reset_of_exit(code: int | None) -> int | None:
    """The ``rst_reason`` of a firmware exit that is a reset of the chip, else None.

    ``ESP.restart()`` exits with :data:`EXIT_RESTART`; a watchdog, an exception or a deep
    sleep's wake-up with :data:`EXIT_RESET_BASE` + the reason.
    """
    if code == EXIT_RESTART:
        return REASON_SOFT_RESTART
    if code is not None and code - EXIT_RESET_BASE in RESET_REASONS:
        return code - EXIT_RESET_BASE
    return None


def death_of_exit(code: int | None) -> str:
    """How a firmware process that did not reset the chip ended, for a person:
    ``killed by SIGABRT``, ``exit code 7``."""
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


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
