"""The slice of the ESP8266 address space that esptool reads and writes.

* 0x40001000, a ROM word that differs per chip model: 0xFFF0C101 on the ESP8266;
* the four OTP/eFuse words at 0x3FF00050..0x3FF0005C that carry the MAC and the
  chip id (see :func:`efuse_words`);
* UART0's clock divider, from which esptool estimates the crystal (26 MHz);
* the SPI0 controller (see :mod:`harness.sim.chip.spi`).

Any other address reads back the last value written to it, or 0.
"""

from __future__ import annotations

from collections.abc import Callable

from esptool.loader import ESPLoader
from esptool.targets import ESP8266ROM

from .spi import SpiFlashController

CHIP_MAGIC_ADDR = ESPLoader.CHIP_DETECT_MAGIC_REG_ADDR
ESP8266_MAGIC = ESP8266ROM.MAGIC_VALUE
EFUSE_BASE = ESP8266ROM.ESP_OTP_MAC0
UART0_CLKDIV = ESP8266ROM.UART_CLKDIV_REG
APB_CLOCK_HZ = 52_000_000  # 26 MHz crystal, doubled: esptool divides by 2 again


def parse_mac(mac: str) -> bytes:
    """Parse ``aa:bb:cc:dd:ee:ff`` into six bytes, refusing what no ESP8266 carries."""
    parts = mac.replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError(f"not a MAC address: {mac!r}")
    raw = bytes(int(p, 16) for p in parts)
    if raw[0] & 1:
        raise ValueError(f"{mac} is a multicast address, not a station MAC")
    if raw[:3] == b"\x00\x00\x00":
        # esptool reads an all-zero OUI word as "use Espressif's default OUI".
        raise ValueError(f"{mac} has an all-zero OUI, which the eFuse layout cannot carry")
    return raw


def efuse_words(mac: bytes) -> tuple[int, int, int, int]:
    """The four eFuse words (0x3FF00050, 54, 58, 5C) that encode ``mac``.

    esptool's ``ESP8266ROM.read_mac`` takes the OUI from word 3 when it is
    non-zero, bytes 3 and 4 from word 1 and byte 5 from the top of word 0;
    ``chip_id`` is ``(word0 >> 24) | ((word1 & 0xFFFFFF) << 8)``, i.e. the low
    three MAC bytes, which is also what the SDK's ``system_get_chip_id`` returns.
    The bits that mark an ESP8285 stay clear, so the chip reads as ESP8266EX.
    """
    word0 = mac[5] << 24
    word1 = (mac[3] << 8) | mac[4]
    word2 = 0
    word3 = (mac[0] << 16) | (mac[1] << 8) | mac[2]
    return word0, word1, word2, word3


class ChipMemory:
    """Register reads and writes as the ROM loader's READ_REG/WRITE_REG see them."""

    def __init__(self, mac: bytes, spi: SpiFlashController, uart_baud: Callable[[], int]) -> None:
        self.spi = spi
        self._uart_baud = uart_baud
        self._fixed = {CHIP_MAGIC_ADDR: ESP8266_MAGIC}
        for i, word in enumerate(efuse_words(mac)):
            self._fixed[EFUSE_BASE + 4 * i] = word
        self._ram: dict[int, int] = {}

    def read(self, addr: int) -> int:
        """Read the 32-bit word at ``addr``."""
        if addr in self._fixed:
            return self._fixed[addr]
        if addr == UART0_CLKDIV:
            return round(APB_CLOCK_HZ / max(1, self._uart_baud())) & ESP8266ROM.UART_CLKDIV_MASK
        if self.spi.handles(addr):
            return self.spi.read(addr)
        return self._ram.get(addr, 0)

    def write(self, addr: int, value: int, mask: int = 0xFFFFFFFF) -> None:
        """Masked write; ROM words and eFuses ignore writes, as on the chip."""
        if addr in self._fixed or addr == UART0_CLKDIV:
            return
        merged = (self.read(addr) & ~mask) | (value & mask)
        if self.spi.handles(addr):
            self.spi.write(addr, merged)
        else:
            self._ram[addr] = merged & 0xFFFFFFFF
