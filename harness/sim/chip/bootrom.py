"""What the ESP8266 boot ROM prints, as text.

The banner is ``\\r\\n ets Jan  8 2013,rst cause:N, boot mode:(M,K)\\r\\n`` with
the reset cause (1 power-on, 2 reset pin / software restart, 4 watchdog) and the
boot mode (1 UART download when GPIO0 was low, 3 flash). ``K`` comes from other
strapping bits; boards commonly print 6, and so does the twin.

Booting from flash, the ROM traces each segment it loads (``load 0x..., len N,
room R`` / ``tail T`` / ``chksum 0x..``), then the stored checksum (``csum``). A
mismatch ends with ``csum err`` and ``ets_main.c``; so does flash without an
image (the wording users report for erased boards). ``room``/``tail`` are the
ROM's 16-byte read-buffer bookkeeping; the formula here reproduces the values
reported from real boards for ordinary images.
"""

from __future__ import annotations

from .image import ParsedImage

POWER_ON = 1
EXTERNAL_RESET = 2
WATCHDOG = 4
MODE_UART = 1
MODE_FLASH = 3
MODE_DETAIL = 6
ROM_BAUD = 74880
ROM_HALT = "ets_main.c \n"


def banner(cause: int, mode: int, detail: int = MODE_DETAIL) -> str:
    """The first thing the ROM prints after a reset."""
    return f"\r\n ets Jan  8 2013,rst cause:{cause}, boot mode:({mode},{detail})\r\n"


def load_trace(image: ParsedImage) -> str:
    """The ROM's trace while it loads ``image``, ending in ``csum err`` if it fails."""
    out = ["\n"]
    room = 16
    for i, (addr, length) in enumerate(image.segments):
        tail = (length - room) % 16 if length >= room else 0
        out.append(f"load 0x{addr:08x}, len {length}, room {room} \ntail {tail}\n")
        out.append(f"chksum 0x{image.running_checksums[i]:02x}\n")
        room = 8 - tail
        if room < 0 and i + 1 < len(image.segments):
            out.append(f"ho 0 tail {tail} room {16 - tail}\n")
            room += 16
        room = max(room, 0)
    out.append(f"csum 0x{image.stored_checksum:02x}\n")
    if not image.checksum_ok:
        out.append("csum err\n" + ROM_HALT)
    return "".join(out)


def no_image_trace() -> str:
    """What the ROM prints when flash offset 0 holds no image (e.g. erased)."""
    return "\n" + ROM_HALT
