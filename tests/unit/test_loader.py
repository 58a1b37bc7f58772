"""The serial loader driven by esptool's own ESP8266ROM / stub classes, in memory.

esptool talks to an in-memory port whose writes go straight into the loader and
whose reads return what the loader transmitted, so every packet here is built
and parsed by esptool itself.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import pytest
from esptool.loader import ESPLoader
from esptool.targets.esp8266 import ESP8266ROM
from esptool.util import FatalError, NotImplementedInROMError
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.sim.chip import loader as ld
from harness.sim.chip import slip
from harness.sim.chip.flash import SECTOR_SIZE, FlashFile
from harness.sim.chip.memory import ChipMemory, parse_mac
from harness.sim.chip.spi import SpiFlashController

FLASH_SIZE = 1024 * 1024
MAC = "5c:cf:7f:12:34:56"


class MemoryPort:
    """A serial port object wired to a loader: writes feed it, reads drain its output."""

    def __init__(self) -> None:
        self.rx = bytearray()
        self.loader: ld.SerialLoader | None = None
        self.timeout: float | None = 3
        self.baudrate = 115200
        self.write_timeout: float | None = None
        self.port = "memory://"
        self.name = "memory://"

    def write(self, data: bytes) -> int:
        assert self.loader is not None
        self.loader.feed(bytes(data))
        return len(data)

    def inWaiting(self) -> int:
        return len(self.rx)

    def read(self, n: int = 1) -> bytes:
        out = bytes(self.rx[:n])
        del self.rx[:n]
        return out

    def flushInput(self) -> None:
        self.rx.clear()

    def flushOutput(self) -> None:
        pass


class Host(ld.LoaderHost):
    def __init__(self, port: MemoryPort) -> None:
        self.port = port
        self.baud = 115200
        self.exits: list[ld.Exit] = []

    def transmit(self, data: bytes) -> None:
        self.port.rx += data

    def uart_baud(self) -> int:
        return self.baud

    def set_uart_baud(self, baud: int) -> None:
        self.baud = baud

    def leave_loader(self, how: ld.Exit) -> None:
        self.exits.append(how)


@pytest.fixture
def rig(tmp_path: Path) -> tuple[ESP8266ROM, ld.SerialLoader, FlashFile, Host]:
    flash = FlashFile(tmp_path / "flash.bin", FLASH_SIZE)
    port = MemoryPort()
    host = Host(port)
    memory = ChipMemory(parse_mac(MAC), SpiFlashController(FLASH_SIZE), host.uart_baud)
    loader = ld.SerialLoader(flash, memory, host)
    port.loader = loader
    esp = ESP8266ROM(port)  # type: ignore[arg-type]
    esp.sync()
    return esp, loader, flash, host


def test_sync_answers_eight_times_as_the_rom(rig) -> None:
    esp, loader, _, _ = rig
    assert loader.synced and not esp.sync_stub_detected


def test_chip_detection_mac_and_chip_id(rig) -> None:
    esp, *_ = rig
    assert esp.read_reg(ESPLoader.CHIP_DETECT_MAGIC_REG_ADDR) == ESP8266ROM.MAGIC_VALUE
    assert ":".join(f"{b:02x}" for b in esp.read_mac()) == MAC
    assert esp.chip_id() == 0x123456
    assert esp.get_chip_description() == "ESP8266EX"
    assert esp.get_crystal_freq() == 26


@given(st.binary(min_size=6, max_size=6).filter(lambda m: not m[0] & 1 and m[:3] != bytes(3)))
@settings(max_examples=50)
def test_any_station_mac_reads_back(raw: bytes) -> None:
    port = MemoryPort()
    host = Host(port)
    memory = ChipMemory(raw, SpiFlashController(FLASH_SIZE), host.uart_baud)
    port.loader = ld.SerialLoader.__new__(ld.SerialLoader)
    # Registers need no flash: a loader over a dummy flash object is enough here.
    ld.SerialLoader.__init__(port.loader, None, memory, host)  # type: ignore[arg-type]
    esp = ESP8266ROM(port)  # type: ignore[arg-type]
    assert bytes(esp.read_mac()) == raw
    assert esp.chip_id() == int.from_bytes(raw[3:], "big")


def test_flash_id_and_sfdp(rig) -> None:
    esp, *_ = rig
    flash_id = esp.flash_id()
    assert flash_id & 0xFF == 0xEF  # manufacturer
    assert flash_id >> 16 == 0x14  # 1 MiB: 2**20
    assert esp.read_spiflash_sfdp(0, 32) == 0x50444653  # "SFDP"
    assert esp.read_status(2) == 0


def test_rom_write_erases_with_the_rom_bug_and_programs(rig) -> None:
    esp, _, flash, _ = rig
    flash.store(0x20000, b"\x00" * SECTOR_SIZE * 5)  # dirty sectors the write must erase
    data = bytes(range(256)) * 40  # 10240 bytes: three sectors
    blocks = esp.flash_begin(len(data), 0x20000)
    for seq in range(blocks):
        block = data[seq * esp.FLASH_WRITE_SIZE : (seq + 1) * esp.FLASH_WRITE_SIZE]
        esp.flash_block(block.ljust(esp.FLASH_WRITE_SIZE, b"\xff"), seq)
    assert flash.read(0x20000, len(data)) == data
    # three sectors asked for: the ROM erases four (esptool rounds up), no more
    assert flash.read(0x20000 + len(data), 0x3000 - len(data)) == b"\xff" * (0x3000 - len(data))
    assert flash.read(0x23000, SECTOR_SIZE) == b"\xff" * SECTOR_SIZE
    assert flash.read(0x24000, 16) == b"\x00" * 16


@given(st.integers(0, 255), st.integers(1, 200))
def test_rom_erase_bug_and_esptools_compensation_cover_the_request(sector: int, n: int) -> None:
    offset = sector * SECTOR_SIZE
    size = n * SECTOR_SIZE
    asked = ESP8266ROM.get_erase_size(ESP8266ROM, offset, size)  # type: ignore[arg-type]
    erased = ld.rom_erase_sectors(offset, asked)
    assert n <= erased <= n + 1


def test_bad_block_checksum_is_refused(rig) -> None:
    esp, _, flash, _ = rig
    esp.flash_begin(1024, 0)
    with pytest.raises(FatalError, match="0107"):
        esp.check_command(
            "write",
            ESPLoader.ESP_CMDS["FLASH_DATA"],
            struct.pack("<IIII", 1024, 0, 0, 0) + b"\x01" * 1024,
            chk=0x00,
        )
    assert flash.read(0, 16) == b"\xff" * 16


def test_rom_refuses_stub_commands(rig) -> None:
    esp, *_ = rig
    with pytest.raises(FatalError, match="0105"):
        esp.check_command("erase", ESPLoader.ESP_CMDS["ERASE_FLASH"])
    with pytest.raises(NotImplementedInROMError):
        esp.flash_md5sum(0, 16)


def test_rom_flash_end_runs_user_code(rig) -> None:
    esp, loader, _, host = rig
    esp.run()  # flash_begin(0, 0) + FLASH_END "run"
    assert host.exits == [ld.Exit.RUN_FLASH]
    assert not loader.active


def test_unknown_ram_code_hangs(rig) -> None:
    esp, _, _, host = rig
    esp.mem_begin(8, 1, esp.ESP_RAM_BLOCK, 0x40100000)
    esp.mem_block(b"\x00" * 8, 0)
    esp.mem_finish(0x40100000)
    assert host.exits == [ld.Exit.HANG]


@pytest.fixture
def stub(rig):
    esp, loader, flash, host = rig
    stub = esp.run_stub()
    assert loader.is_stub
    return stub, loader, flash, host


def test_stub_upload_says_ohai_and_syncs_as_a_stub(stub) -> None:
    esp, *_ = stub
    esp.sync()
    assert esp.sync_stub_detected


def test_stub_compressed_write_md5_and_read(stub) -> None:
    esp, _, flash, _ = stub
    data = bytes((i * 7 + i // 300) & 0xFF for i in range(70000))
    comp = zlib.compress(data, 9)
    blocks = esp.flash_defl_begin(len(data), len(comp), 0x10000)
    for seq in range(blocks):
        esp.flash_defl_block(
            comp[seq * esp.FLASH_WRITE_SIZE : (seq + 1) * esp.FLASH_WRITE_SIZE], seq
        )
    esp.flash_defl_finish(False)
    assert esp.flash_md5sum(0x10000, len(data)) == hashlib.md5(data).hexdigest()
    assert esp.read_flash(0x10000, len(data)) == data
    assert flash.read(0x10000 + len(data), 16) == b"\xff" * 16


def test_stub_erase_region_and_chip(stub) -> None:
    esp, _, flash, _ = stub
    flash.store(0, b"\x00" * 3 * SECTOR_SIZE)
    esp.erase_region(SECTOR_SIZE, SECTOR_SIZE)
    assert flash.read(0, SECTOR_SIZE) == b"\x00" * SECTOR_SIZE
    assert flash.read(SECTOR_SIZE, SECTOR_SIZE) == b"\xff" * SECTOR_SIZE
    esp.erase_flash()
    assert flash.md5(0, FLASH_SIZE) == hashlib.md5(b"\xff" * FLASH_SIZE).digest()


def test_stub_change_baud_answers_then_switches(stub) -> None:
    esp, _, _, host = stub
    esp.change_baud(921600)
    assert host.baud == 921600


def test_stub_run_user_code_and_reboot_to_rom(stub) -> None:
    esp, loader, _, host = stub
    esp.soft_reset(True)  # FLASH_END "reboot": back to the ROM loader
    assert not loader.is_stub and loader.active
    loader.is_stub = True
    esp.soft_reset(False)  # RUN_USER_CODE
    assert host.exits == [ld.Exit.RUN_FLASH]


def test_stub_rejects_out_of_order_compressed_block(stub) -> None:
    esp, *_ = stub
    comp = zlib.compress(b"x" * 100)
    esp.flash_defl_begin(100, len(comp), 0)
    with pytest.raises(FatalError):
        esp.check_command(
            "write",
            ESPLoader.ESP_CMDS["FLASH_DEFL_DATA"],
            struct.pack("<IIII", len(comp), 5, 0, 0) + comp,
            ESPLoader.checksum(comp),
        )


@given(st.binary(min_size=8, max_size=200))
@settings(max_examples=200)
def test_garbage_frames_never_crash_the_loader(tmp_path_factory, junk: bytes) -> None:
    port = MemoryPort()
    host = Host(port)
    flash = FlashFile(tmp_path_factory.mktemp("f") / "flash.bin", 64 * 1024)
    memory = ChipMemory(parse_mac(MAC), SpiFlashController(64 * 1024), host.uart_baud)
    loader = ld.SerialLoader(flash, memory, host)
    frame = b"\x00" + junk[1:]  # a request-direction frame with arbitrary content
    loader.feed(slip.encode(frame))
    # every request that parsed gets exactly one SLIP response (or none if RUN_USER_CODE)
    assert port.rx.count(b"\xc0") in (0, 2, 16)
