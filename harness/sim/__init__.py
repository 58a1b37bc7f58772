"""The twin: a simulated ESP8266 board (native firmware process + chip emulator)."""

from harness.sim.build import (
    FirmwareBuild,
    FirmwareBuildError,
    build_firmware,
    build_firmware_info,
    cache_root,
    firmware_root,
)
from harness.sim.firmware import (
    EXIT_CONFIG_ERROR,
    EXIT_RESTART,
    FirmwareProcess,
    FirmwareProcessError,
    allocate_ip,
)

__all__ = [
    "EXIT_CONFIG_ERROR",
    "EXIT_RESTART",
    "FirmwareBuild",
    "FirmwareBuildError",
    "FirmwareProcess",
    "FirmwareProcessError",
    "allocate_ip",
    "build_firmware",
    "build_firmware_info",
    "cache_root",
    "firmware_root",
]
