"""ESP8266 flash images that stand for a native (host-compiled) firmware build.

The twin cannot execute Xtensa code, so the harness flashes an image that is
format-valid for the ESP8266 ROM (magic 0xE9, segments, XOR checksum; built and
parsed with esptool's own ``ESP8266ROMFirmwareImage``) and whose one segment
carries a marker::

    ESP-HIL-NATIVE fw=<identity> build=<build_id>\\0

The twin's boot ROM reads the marker back and starts the native build that
``build_id`` names. esptool flashes, verifies and reads such an image exactly as
it would a PlatformIO ``.bin``.
"""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass

from esptool.bin_image import ESP8266ROMFirmwareImage, ImageSegment
from esptool.cmds import FLASH_MODES
from esptool.loader import ESPLoader
from esptool.targets import ESP8266ROM
from esptool.util import FatalError

MARKER_PREFIX = b"ESP-HIL-NATIVE "
IRAM_BASE = next(start for start, _, name in ESP8266ROM.MEMORY_MAP if name == "IRAM")
ENTRY_POINT = IRAM_BASE + 0x10
FLASH_MODE_DIO = FLASH_MODES["dio"]
# Size in the high nibble, frequency in the low one.
FLASH_4MB_40M = ESP8266ROM.FLASH_SIZES["4MB"] | ESP8266ROM.FLASH_FREQUENCY["40m"]
_FIELD = re.compile(rb"^[\x21-\x7e]+$")
_MARKER = re.compile(rb"ESP-HIL-NATIVE fw=([\x21-\x7e]+) build=([\x21-\x7e]+)\x00")


class _QuietImage(ESP8266ROMFirmwareImage):
    """esptool's parser without its console warnings about odd segments.

    The twin's ROM complains in its own way (the boot trace), and esptool's log
    is shared with any esptool run in the same process.
    """

    def warn_if_unusual_segment(self, offset: int, size: int, is_irom_segment: bool) -> None:
        return None


@dataclass(frozen=True)
class ParsedImage:
    """What the boot ROM learns from the image at flash offset 0."""

    segments: tuple[tuple[int, int], ...]  # (load address, length)
    running_checksums: tuple[int, ...]  # XOR checksum after each segment
    stored_checksum: int
    computed_checksum: int
    identity: tuple[str, str] | None

    @property
    def checksum_ok(self) -> bool:
        """True when the stored checksum matches the segments' XOR checksum."""
        return self.stored_checksum == self.computed_checksum


def _check_field(name: str, value: str) -> bytes:
    raw = value.encode("ascii", "strict")
    if not _FIELD.match(raw) or b"=" in raw:
        raise ValueError(f"{name} must be printable ASCII without spaces or '=': {value!r}")
    return raw


def make_native_image(identity: str, build_id: str) -> bytes:
    """Return a bootable-looking ESP8266 image whose segment names a native build."""
    marker = (
        MARKER_PREFIX
        + b"fw="
        + _check_field("identity", identity)
        + b" build="
        + _check_field("build_id", build_id)
        + b"\x00"
    )
    marker += b"\x00" * (-len(marker) % 4)  # the ROM loads whole words
    image = ESP8266ROMFirmwareImage()
    image.flash_mode = FLASH_MODE_DIO
    image.flash_size_freq = FLASH_4MB_40M
    image.entrypoint = ENTRY_POINT
    image.segments = [ImageSegment(IRAM_BASE, marker)]
    saved = image.save(None)
    assert saved is not None
    _irom, other = saved
    assert other is not None
    return other


def parse_image(flash_head: bytes) -> ParsedImage | None:
    """Parse the image at the start of ``flash_head`` as the ESP8266 ROM would.

    Returns None when there is no image (wrong magic, e.g. erased flash) or it
    runs past the data given.
    """
    if not flash_head or flash_head[0] != ESPLoader.ESP_IMAGE_MAGIC:
        return None
    try:
        image = _QuietImage(io.BytesIO(flash_head))
    except (FatalError, struct.error, TypeError, ValueError):
        return None
    identity = None
    for seg in image.segments:
        found = _MARKER.search(bytes(seg.data))
        if found:
            identity = (found.group(1).decode(), found.group(2).decode())
            break
    running = []
    state = ESPLoader.ESP_CHECKSUM_MAGIC
    for seg in image.segments:
        state = ESPLoader.checksum(seg.data, state)
        running.append(state)
    return ParsedImage(
        segments=tuple((seg.addr, len(seg.data)) for seg in image.segments),
        running_checksums=tuple(running),
        stored_checksum=image.checksum,
        computed_checksum=image.calculate_checksum(),
        identity=identity,
    )


def read_native_identity(flash_bytes: bytes) -> tuple[str, str] | None:
    """``(identity, build_id)`` of a valid native image at offset 0, else None.

    An image with a bad checksum does not count: the ROM would refuse to boot it.
    """
    parsed = parse_image(flash_bytes)
    if parsed is None or not parsed.checksum_ok:
        return None
    return parsed.identity
