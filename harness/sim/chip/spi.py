"""The ESP8266 SPI0 controller registers that esptool drives over READ_REG/WRITE_REG.

esptool's ``run_spiflash_command`` builds a "user command" by hand: it writes the
USR, USR1 (bit lengths), USR2 (command byte), ADDR and W0.. registers, sets the
USR bit in SPI_CMD, polls until the bit clears and reads the answer from W0.
This module executes such a command against a flash model the moment the USR
bit is written, so the first poll already sees it done.

Answers: RDID (0x9F) gives a Winbond-style JEDEC id whose capacity byte matches
the flash size, RDSFDP (0x5A) reads a minimal SFDP table that starts with the
"SFDP" signature, RDSR/RDSR2/RDSR3 read zero; everything else (WREN, reset,
power-down, status writes) is accepted and ignored.
"""

from __future__ import annotations

import struct

from esptool.targets import ESP8266ROM

SPI_BASE = ESP8266ROM.SPI_REG_BASE
# esptool's run_spiflash_command keeps CMD (+0) and ADDR (+4) and the bits below as locals.
SPI_CMD = SPI_BASE + 0x00
SPI_ADDR = SPI_BASE + 0x04
SPI_USR = SPI_BASE + ESP8266ROM.SPI_USR_OFFS
SPI_USR1 = SPI_BASE + ESP8266ROM.SPI_USR1_OFFS
SPI_USR2 = SPI_BASE + ESP8266ROM.SPI_USR2_OFFS
SPI_W0 = SPI_BASE + ESP8266ROM.SPI_W0_OFFS
SPI_W_COUNT = 16
SPI_END = SPI_BASE + 0x100

SPI_CMD_USR = 1 << 18
SPI_USR_ADDR = 1 << 30
SPI_USR_MISO = 1 << 28

CMD_RDID = 0x9F
CMD_RDSFDP = 0x5A
CMD_RDSR = 0x05
CMD_RDSR2 = 0x35
CMD_RDSR3 = 0x15

WINBOND = 0xEF
MEMORY_TYPE = 0x40


def _sfdp_table() -> bytes:
    """A minimal JEDEC SFDP header with one (empty) basic parameter table."""
    header = b"SFDP" + bytes([0x06, 0x01, 0x00, 0xFF])
    # Parameter header 0: id LSB 0x00 (JEDEC basic), rev 1.6, 16 dwords at 0x80.
    param = bytes([0x00, 0x06, 0x01, 0x10, 0x80, 0x00, 0x00, 0xFF])
    table = header + param
    return table + b"\xff" * (0x100 - len(table))


class SpiFlashController:
    """Register file of SPI0 plus the flash chip's identity."""

    def __init__(self, flash_size: int) -> None:
        capacity = flash_size.bit_length() - 1
        if 1 << capacity != flash_size:
            raise ValueError(f"flash size {flash_size:#x} is not a power of two")
        #: The three RDID bytes, in the order the chip shifts them out.
        self.jedec_id = bytes([WINBOND, MEMORY_TYPE, capacity])
        self._sfdp = _sfdp_table()
        self._regs: dict[int, int] = {}

    @staticmethod
    def handles(addr: int) -> bool:
        """True when ``addr`` lies in the SPI0 register block."""
        return SPI_BASE <= addr < SPI_END

    def read(self, addr: int) -> int:
        """Read a 32-bit register."""
        return self._regs.get(addr, 0)

    def write(self, addr: int, value: int) -> None:
        """Write a 32-bit register; setting SPI_CMD.USR runs the user command."""
        value &= 0xFFFFFFFF
        if addr == SPI_CMD and value & SPI_CMD_USR:
            self._execute()
            value &= ~SPI_CMD_USR
        self._regs[addr] = value

    def _execute(self) -> None:
        usr = self._regs.get(SPI_USR, 0)
        usr1 = self._regs.get(SPI_USR1, 0)
        command = self._regs.get(SPI_USR2, 0) & 0xFF
        miso_bits = ((usr1 >> 8) & 0x1FF) + 1 if usr & SPI_USR_MISO else 0
        addr_bits = ((usr1 >> 26) & 0x3F) + 1 if usr & SPI_USR_ADDR else 0
        # The address is sent MSB first from the top of the 32-bit register.
        addr = self._regs.get(SPI_ADDR, 0) >> (32 - addr_bits) if addr_bits else 0
        answer = self._answer(command, addr, (miso_bits + 7) // 8)
        if miso_bits:
            padded = answer.ljust(4 * SPI_W_COUNT, b"\x00")[: 4 * SPI_W_COUNT]
            words = struct.unpack("<16I", padded)
            mask = (1 << miso_bits) - 1 if miso_bits < 32 else 0xFFFFFFFF
            for i, word in enumerate(words):
                self._regs[SPI_W0 + 4 * i] = word & mask if i == 0 else word

    def _answer(self, command: int, addr: int, nbytes: int) -> bytes:
        if command == CMD_RDID:
            return self.jedec_id[:nbytes]
        if command == CMD_RDSFDP:
            return bytes(self._sfdp[(addr + i) & 0xFF] for i in range(nbytes))
        if command in (CMD_RDSR, CMD_RDSR2, CMD_RDSR3):
            return bytes(nbytes)
        return b"\xff" * nbytes
