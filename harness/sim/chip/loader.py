"""The ESP8266 serial loader: the ROM's command set, and esptool's stub once uploaded.

Frames are SLIP-wrapped. A request is ``<BBHI`` (direction 0, opcode, data
length, checksum) plus data; a response is ``<BBHI`` (direction 1, opcode,
length, value) plus data ending in two status bytes, as esptool's ``ESP8266ROM``
expects. ROM errors are ``01 <code>``; stub errors are ``<code> 00``.

ROM commands: SYNC, READ_REG, WRITE_REG, FLASH_BEGIN/DATA/END, MEM_BEGIN/DATA/END.
The ROM's FLASH_BEGIN erase is faithfully wrong: it erases
``n + min(n, sectors to the next 64 KiB block)`` sectors for an erase size of n
sectors, which is the bug esptool's ``ESP8266ROM.get_erase_size`` compensates for.

When a RAM upload that matches one of the installed esptool's ESP8266 stubs
ends with MEM_END, the loader answers, sends ``OHAI`` and from then on speaks the
stub's dialect: compressed writes, SPI_FLASH_MD5, READ_FLASH with its
block/ack flow, ERASE_FLASH/ERASE_REGION, CHANGE_BAUDRATE, SPI_SET_PARAMS,
SPI_ATTACH and RUN_USER_CODE. Any other RAM image cannot run on the twin: the
loader goes silent, like a chip executing code that never talks.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from esptool.loader import ESPLoader

from . import slip
from .flash import SECTOR_SIZE, FlashError, FlashFile
from .memory import ChipMemory

# Opcodes, as esptool sends them.
_CMDS = ESPLoader.ESP_CMDS
FLASH_BEGIN = _CMDS["FLASH_BEGIN"]
FLASH_DATA = _CMDS["FLASH_DATA"]
FLASH_END = _CMDS["FLASH_END"]
MEM_BEGIN = _CMDS["MEM_BEGIN"]
MEM_END = _CMDS["MEM_END"]
MEM_DATA = _CMDS["MEM_DATA"]
SYNC = _CMDS["SYNC"]
WRITE_REG = _CMDS["WRITE_REG"]
READ_REG = _CMDS["READ_REG"]
SPI_SET_PARAMS = _CMDS["SPI_SET_PARAMS"]
SPI_ATTACH = _CMDS["SPI_ATTACH"]
CHANGE_BAUDRATE = _CMDS["CHANGE_BAUDRATE"]
FLASH_DEFL_BEGIN = _CMDS["FLASH_DEFL_BEGIN"]
FLASH_DEFL_DATA = _CMDS["FLASH_DEFL_DATA"]
FLASH_DEFL_END = _CMDS["FLASH_DEFL_END"]
SPI_FLASH_MD5 = _CMDS["SPI_FLASH_MD5"]
ERASE_FLASH = _CMDS["ERASE_FLASH"]
ERASE_REGION = _CMDS["ERASE_REGION"]
READ_FLASH = _CMDS["READ_FLASH"]
RUN_USER_CODE = _CMDS["RUN_USER_CODE"]

# esptool's sync() sends these bytes but names neither them nor the ROM's answer value.
SYNC_PAYLOAD = b"\x07\x07\x12\x20" + b"\x55" * 32
ROM_SYNC_VALUE = 0x20120707
BLOCK_SECTORS = 16  # a 64 KiB erase block

# ROM error codes (second status byte after a 0x01); esptool names only the first.
ROM_BAD_MESSAGE = ESPLoader.ROM_INVALID_RECV_MSG
ROM_FAILED = 0x06
ROM_BAD_CHECKSUM = 0x07
ROM_FLASH_WRITE_ERR = 0x08
# Stub error codes (first status byte), from the stub's sources: esptool has no names.
STUB_BAD_DATA_LEN = 0xC0
STUB_BAD_CHECKSUM = 0xC1
STUB_BAD_BLOCKSIZE = 0xC2
STUB_INVALID_COMMAND = 0xC3
STUB_NOT_IN_FLASH_MODE = 0xC6
STUB_INFLATE_ERROR = 0xC7
STUB_TOO_MUCH_DATA = 0xC9


class Exit(enum.Enum):
    """Ways the loader hands the chip back."""

    RUN_FLASH = "run"  # jump to the flash image without a reset
    REBOOT = "reboot"  # software reset, boot again by the strapping pins
    HANG = "hang"  # running RAM code the twin cannot execute


class LoaderHost:
    """What the loader needs from the chip; the twin implements it."""

    def transmit(self, data: bytes) -> None:
        """Send raw bytes out of the chip's UART."""
        raise NotImplementedError

    def uart_baud(self) -> int:
        """The chip UART's current rate."""
        raise NotImplementedError

    def set_uart_baud(self, baud: int) -> None:
        """Reprogram the chip UART's rate."""
        raise NotImplementedError

    def leave_loader(self, how: Exit) -> None:
        """The loader is done; boot or stop as ``how`` says."""
        raise NotImplementedError


#: The ROM's XOR checksum over a data block (seeded with ESP_CHECKSUM_MAGIC).
checksum = ESPLoader.checksum


def rom_erase_sectors(offset: int, erase_size: int) -> int:
    """How many sectors the ESP8266 ROM erases for FLASH_BEGIN(erase_size, offset)."""
    n = -(-erase_size // SECTOR_SIZE)
    head = BLOCK_SECTORS - (offset // SECTOR_SIZE) % BLOCK_SECTORS
    return n + min(n, head)


@lru_cache(maxsize=1)
def known_stubs() -> tuple[tuple[int, int, bytes], ...]:
    """(entry, text_start, sha256(text)) of every ESP8266 stub esptool ships."""
    from esptool.loader import StubFlasher

    found = []
    base = Path(StubFlasher.STUB_DIR)
    for json_path in sorted(base.glob("*/esp8266.json")):
        stub = json.loads(json_path.read_text())
        text = base64.b64decode(stub["text"])
        found.append((stub["entry"], stub["text_start"], hashlib.sha256(text).digest()))
    return tuple(found)


class CommandError(Exception):
    """A request the loader refuses; carries the error code to report."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class _FlashSession:
    offset: int
    size: int
    block_size: int
    blocks: int
    compressed: bool
    written: int = 0
    next_seq: int = 0
    inflater: zlib._Decompress | None = None


@dataclass
class _ReadSession:
    offset: int
    length: int
    block_size: int
    max_inflight: int
    sent: int = 0
    acked: int = 0
    digest: hashlib._Hash = field(default_factory=hashlib.md5)


class SerialLoader:
    """Decodes loader requests from the UART and answers them."""

    def __init__(self, flash: FlashFile, memory: ChipMemory, host: LoaderHost) -> None:
        self.flash = flash
        self.memory = memory
        self.host = host
        self.is_stub = False
        self.synced = False
        self.active = True
        self._decoder = slip.SlipDecoder()
        self._flash: _FlashSession | None = None
        self._read: _ReadSession | None = None
        self._mem: dict[int, bytearray] = {}
        self._mem_addr = 0
        self._mem_block = 0
        self._handlers: dict[int, Callable[[bytes, int], tuple[int, bytes]]] = {
            SYNC: self._sync,
            READ_REG: self._read_reg,
            WRITE_REG: self._write_reg,
            FLASH_BEGIN: self._flash_begin,
            FLASH_DATA: self._flash_data,
            FLASH_END: self._flash_end,
            MEM_BEGIN: self._mem_begin,
            MEM_DATA: self._mem_data,
            MEM_END: self._mem_end,
        }
        self._stub_handlers: dict[int, Callable[[bytes, int], tuple[int, bytes]]] = {
            FLASH_DEFL_BEGIN: self._defl_begin,
            FLASH_DEFL_DATA: self._defl_data,
            FLASH_DEFL_END: self._flash_end,
            SPI_FLASH_MD5: self._md5,
            READ_FLASH: self._read_flash,
            ERASE_FLASH: self._erase_flash,
            ERASE_REGION: self._erase_region,
            CHANGE_BAUDRATE: self._change_baud,
            SPI_SET_PARAMS: self._ok,
            SPI_ATTACH: self._ok,
            RUN_USER_CODE: self._run_user_code,
        }
        # Set by a handler that must act only after its response is on the wire.
        self._after: Callable[[], None] | None = None

    # -- input -----------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Consume bytes received on the UART."""
        for frame in self._decoder.feed(data):
            if not self.active:
                return
            self._frame(frame)

    def _frame(self, frame: bytes) -> None:
        if self._read is not None:
            self._read_ack(frame)
            return
        if len(frame) < 8 or frame[0] != 0x00:
            return  # noise, or a response echoed back: the ROM ignores it
        _, op, size, chk = struct.unpack_from("<BBHI", frame)
        data = frame[8:]
        if size != len(data):
            self._reply(op, 0, b"", self._error(ROM_BAD_MESSAGE, STUB_BAD_DATA_LEN))
            return
        handler = self._handlers.get(op)
        if handler is None and self.is_stub:
            handler = self._stub_handlers.get(op)
        if handler is None:
            self._reply(op, 0, b"", self._error(ROM_BAD_MESSAGE, STUB_INVALID_COMMAND))
            return
        try:
            value, extra = handler(data, chk)
        except CommandError as e:
            self._reply(op, 0, b"", self._status(e.code))
            self._after = None
            return
        except (FlashError, struct.error, ValueError):
            self._reply(op, 0, b"", self._error(ROM_FAILED, STUB_BAD_DATA_LEN))
            self._after = None
            return
        if op == SYNC:
            # The ROM answers a SYNC eight times (esptool reads all eight).
            for _ in range(8):
                self._reply(op, value, extra, b"\x00\x00")
        elif op != RUN_USER_CODE:
            self._reply(op, value, extra, b"\x00\x00")
        after, self._after = self._after, None
        if after is not None:
            after()

    # -- output ----------------------------------------------------------------

    def _send(self, payload: bytes) -> None:
        self.host.transmit(slip.encode(payload))

    def _reply(self, op: int, value: int, extra: bytes, status: bytes) -> None:
        body = extra + status
        self._send(struct.pack("<BBHI", 0x01, op, len(body), value) + body)

    def _error(self, rom_code: int, stub_code: int) -> bytes:
        return bytes([stub_code, 0]) if self.is_stub else bytes([0x01, rom_code])

    def _status(self, code: int) -> bytes:
        return bytes([code, 0]) if self.is_stub else bytes([0x01, code])

    def _fail(self, rom_code: int, stub_code: int) -> CommandError:
        return CommandError(stub_code if self.is_stub else rom_code)

    # -- common commands -------------------------------------------------------

    def _ok(self, data: bytes, chk: int) -> tuple[int, bytes]:
        return 0, b""

    def _sync(self, data: bytes, chk: int) -> tuple[int, bytes]:
        if data != SYNC_PAYLOAD:
            raise self._fail(ROM_BAD_MESSAGE, STUB_BAD_DATA_LEN)
        self.synced = True
        # The stub answers 0, which is how esptool notices a stub already running.
        return (0 if self.is_stub else ROM_SYNC_VALUE), b""

    def _read_reg(self, data: bytes, chk: int) -> tuple[int, bytes]:
        (addr,) = struct.unpack("<I", data[:4])
        return self.memory.read(addr), b""

    def _write_reg(self, data: bytes, chk: int) -> tuple[int, bytes]:
        if not data or len(data) % 16:
            raise self._fail(ROM_BAD_MESSAGE, STUB_BAD_DATA_LEN)
        for pos in range(0, len(data), 16):
            addr, value, mask, _delay_us = struct.unpack_from("<IIII", data, pos)
            self.memory.write(addr, value, mask)
        return 0, b""

    def _begin_params(self, data: bytes) -> tuple[int, int, int, int]:
        # The ROM takes four words; the stub a fifth (encrypted write flag).
        if len(data) not in ((16, 20) if self.is_stub else (16,)):
            raise self._fail(ROM_BAD_MESSAGE, STUB_BAD_DATA_LEN)
        size, blocks, block_size, offset = struct.unpack_from("<IIII", data)
        if len(data) == 20 and struct.unpack_from("<I", data, 16)[0]:
            raise self._fail(ROM_FAILED, STUB_INVALID_COMMAND)  # no flash encryption
        if block_size == 0 or offset >= self.flash.size:
            raise self._fail(ROM_FAILED, STUB_BAD_BLOCKSIZE)
        return size, blocks, block_size, offset

    def _flash_begin(self, data: bytes, chk: int) -> tuple[int, bytes]:
        size, blocks, block_size, offset = self._begin_params(data)
        if self.is_stub:
            self.flash.erase_covering(offset, min(size, self.flash.size - offset))
        else:
            start = offset - offset % SECTOR_SIZE
            end = min(self.flash.size, start + rom_erase_sectors(offset, size) * SECTOR_SIZE)
            if end > start:
                self.flash.erase(start, end - start)
        self._flash = _FlashSession(offset, size, block_size, blocks, compressed=False)
        return 0, b""

    def _block(self, data: bytes, chk: int) -> tuple[int, bytes]:
        if len(data) < 16:
            raise self._fail(ROM_BAD_MESSAGE, STUB_BAD_DATA_LEN)
        length, seq, _, _ = struct.unpack_from("<IIII", data)
        block = data[16:]
        if length != len(block):
            raise self._fail(ROM_BAD_MESSAGE, STUB_BAD_DATA_LEN)
        if checksum(block) != chk & 0xFF:
            raise self._fail(ROM_BAD_CHECKSUM, STUB_BAD_CHECKSUM)
        return seq, block

    def _flash_data(self, data: bytes, chk: int) -> tuple[int, bytes]:
        session = self._flash
        if session is None or session.compressed:
            raise self._fail(ROM_FAILED, STUB_NOT_IN_FLASH_MODE)
        seq, block = self._block(data, chk)
        pos = session.offset + seq * session.block_size
        if seq >= session.blocks or pos + len(block) > self.flash.size:
            raise self._fail(ROM_FLASH_WRITE_ERR, STUB_TOO_MUCH_DATA)
        self.flash.program(pos, block)
        session.next_seq = max(session.next_seq, seq + 1)
        return 0, b""

    def _flash_end(self, data: bytes, chk: int) -> tuple[int, bytes]:
        stay = struct.unpack("<I", data[:4])[0] if len(data) >= 4 else 1
        self._flash = None
        if self.is_stub:
            if not stay:
                # Rebooting the stub lands back in the ROM loader.
                self._after = self._back_to_rom
        else:
            how = Exit.RUN_FLASH if stay else Exit.REBOOT
            self._after = lambda: self._leave(how)
        return 0, b""

    def _mem_begin(self, data: bytes, chk: int) -> tuple[int, bytes]:
        if len(data) != 16:
            raise self._fail(ROM_BAD_MESSAGE, STUB_BAD_DATA_LEN)
        _size, _blocks, block_size, offset = struct.unpack("<IIII", data)
        self._mem_addr, self._mem_block = offset, block_size
        self._mem[offset] = bytearray()
        return 0, b""

    def _mem_data(self, data: bytes, chk: int) -> tuple[int, bytes]:
        seq, block = self._block(data, chk)
        segment = self._mem.setdefault(self._mem_addr, bytearray())
        start = seq * self._mem_block
        if len(segment) < start:
            segment.extend(b"\x00" * (start - len(segment)))
        segment[start : start + len(block)] = block
        return 0, b""

    def _mem_end(self, data: bytes, chk: int) -> tuple[int, bytes]:
        if len(data) != 8:
            raise self._fail(ROM_BAD_MESSAGE, STUB_BAD_DATA_LEN)
        no_entry, entry = struct.unpack("<II", data)
        if not no_entry:
            if self._is_known_stub(entry):
                self._after = self._become_stub
            else:
                self._after = lambda: self._leave(Exit.HANG)
        return 0, b""

    def _is_known_stub(self, entry: int) -> bool:
        for stub_entry, text_start, text_hash in known_stubs():
            text = self._mem.get(text_start)
            if (
                entry == stub_entry
                and text is not None
                and hashlib.sha256(bytes(text)).digest() == text_hash
            ):
                return True
        return False

    def _become_stub(self) -> None:
        self.is_stub = True
        self._mem.clear()
        self._send(b"OHAI")

    def _back_to_rom(self) -> None:
        self.is_stub = False
        self.synced = False

    def _leave(self, how: Exit) -> None:
        self.active = False
        self.host.leave_loader(how)

    # -- stub-only commands ----------------------------------------------------

    def _defl_begin(self, data: bytes, chk: int) -> tuple[int, bytes]:
        size, blocks, block_size, offset = self._begin_params(data)
        if offset + size > self.flash.size:
            raise CommandError(STUB_TOO_MUCH_DATA)
        self.flash.erase_covering(offset, size)
        self._flash = _FlashSession(
            offset, size, block_size, blocks, compressed=True, inflater=zlib.decompressobj()
        )
        return 0, b""

    def _defl_data(self, data: bytes, chk: int) -> tuple[int, bytes]:
        session = self._flash
        if session is None or not session.compressed or session.inflater is None:
            raise CommandError(STUB_NOT_IN_FLASH_MODE)
        seq, block = self._block(data, chk)
        if seq < session.next_seq:
            return 0, b""  # a retried block that already landed
        if seq != session.next_seq:
            raise CommandError(STUB_BAD_DATA_LEN)
        try:
            out = session.inflater.decompress(block)
        except zlib.error as e:
            raise CommandError(STUB_INFLATE_ERROR) from e
        if session.written + len(out) > session.size:
            raise CommandError(STUB_TOO_MUCH_DATA)
        self.flash.program(session.offset + session.written, out)
        session.written += len(out)
        session.next_seq += 1
        return 0, b""

    def _md5(self, data: bytes, chk: int) -> tuple[int, bytes]:
        addr, size = struct.unpack_from("<II", data)
        return 0, self.flash.md5(addr, size)

    def _erase_flash(self, data: bytes, chk: int) -> tuple[int, bytes]:
        self.flash.erase_all()
        return 0, b""

    def _erase_region(self, data: bytes, chk: int) -> tuple[int, bytes]:
        offset, size = struct.unpack("<II", data[:8])
        if offset % SECTOR_SIZE or size % SECTOR_SIZE:
            raise CommandError(STUB_BAD_DATA_LEN)
        self.flash.erase(offset, size)
        return 0, b""

    def _change_baud(self, data: bytes, chk: int) -> tuple[int, bytes]:
        new_baud, _old = struct.unpack("<II", data[:8])
        if new_baud == 0:
            raise CommandError(STUB_BAD_DATA_LEN)
        # The answer still goes out at the old rate; then the UART switches.
        self._after = lambda: self.host.set_uart_baud(new_baud)
        return 0, b""

    def _run_user_code(self, data: bytes, chk: int) -> tuple[int, bytes]:
        self._after = lambda: self._leave(Exit.RUN_FLASH)
        return 0, b""

    def _read_flash(self, data: bytes, chk: int) -> tuple[int, bytes]:
        offset, length, block_size, inflight = struct.unpack("<IIII", data[:16])
        if block_size == 0 or inflight == 0:
            raise CommandError(STUB_BAD_BLOCKSIZE)
        if offset + length > self.flash.size:
            raise CommandError(STUB_TOO_MUCH_DATA)
        self._read = _ReadSession(offset, length, block_size, inflight)
        self._after = self._pump_read
        return 0, b""

    def _pump_read(self) -> None:
        session = self._read
        if session is None:
            return
        window = session.max_inflight * session.block_size
        while session.sent < session.length and session.sent - session.acked < window:
            n = min(session.block_size, session.length - session.sent)
            block = self.flash.read(session.offset + session.sent, n)
            session.digest.update(block)
            session.sent += n
            self._send(block)
        if session.acked >= session.length:
            self._read = None
            self._send(session.digest.digest())

    def _read_ack(self, frame: bytes) -> None:
        session = self._read
        if session is None or len(frame) != 4:
            return
        (acked,) = struct.unpack("<I", frame)
        session.acked = max(session.acked, min(acked, session.sent))
        self._pump_read()
