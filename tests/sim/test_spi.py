"""The twin's SPI bus: the sketch's SPI against register-map devices on chip-select GPIOs
(firmware/sim/SPI.cpp <-> harness/sim/spi.py).

The sketch is the shim's test sketch (its ``spi`` console command: chip select low, the
bytes, chip select high).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.sim.pins import D8
from harness.sim.spi import SpiBus, SpiError
from tests.helpers.shim import Console, booted_console

pytestmark = pytest.mark.twin

CS = 5  # GPIO5 (D1)


def _got(console: Console, args: str) -> str:
    return console.command(f"spi {args}", "spi got=").split("=", 1)[1]


def test_nothing_selected_reads_ff(console: Console) -> None:
    assert _got(console, f"{CS} d0 00") == "ffff"


def test_reads_and_writes_of_a_register_map(console: Console, tmp_path: Path) -> None:
    with SpiBus.for_flash(tmp_path / "flash.bin") as bus:
        bme = bus.attach("D1", {0x50: 0x60, 0x51: 0x61})
        assert bme.cs == CS
        # Register 0x50 with bit 7 set: a read; the command byte answers 0xFF.
        assert _got(console, f"{CS} d0 00 00") == "ff6061"
        assert bme.pointer == 0x52
        # Bit 7 clear: a write from 0x74 on.
        assert _got(console, f"{CS} 74 27 a0") == "ffffff"
        assert bme.read(0x74, 2) == b"\x27\xa0"
        # A new transaction (chip select fell again) starts with a command byte again.
        assert _got(console, f"{CS} f4 00") == "ff27"
        # Another chip select is another device: this one hears nothing.
        assert _got(console, "4 d0 00") == "ffff"


def test_the_hardware_chip_select_makes_each_transfer_a_transaction(
    console: Console, tmp_path: Path
) -> None:
    with SpiBus.for_flash(tmp_path / "flash.bin") as bus:
        dev = bus.attach(D8, {0x01: 0x42})
        assert _got(console, "hw 81 00") == "ff42"
        assert _got(console, "hw 81 00") == "ff42"  # not a continuation of the last one
        assert dev.pointer == 0x02


@settings(max_examples=30, deadline=None)
@given(ops=st.lists(st.tuples(st.booleans(), st.integers(0, 0x7F), st.binary(max_size=6)),
                    min_size=1, max_size=8))
def test_any_transactions_against_a_register_map_model(
    sketch: Path, tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[bool, int, bytes]]
) -> None:
    flash = tmp_path_factory.mktemp("spi") / "flash.bin"
    regs = bytearray(128)
    with SpiBus.for_flash(flash) as bus, booted_console(sketch, flash) as con:
        dev = bus.attach(CS)
        for read, reg, data in ops:
            command = (0x80 if read else 0) | reg
            got = bytes.fromhex(_got(con, f"{CS} " + " ".join(
                f"{b:02x}" for b in bytes([command]) + data)))
            want = bytearray([0xFF])
            for i, b in enumerate(data):
                at = (reg + i) % 128
                if read:
                    want.append(regs[at])
                else:
                    want.append(0xFF)
                    regs[at] = b
            assert got == bytes(want)
            assert dev.pointer == (reg + len(data)) % 128
        assert dev.read(0, 128) == bytes(regs)


def test_bad_input_is_one_clear_error(tmp_path: Path) -> None:
    with SpiBus(tmp_path / "f.spi") as bus:
        with pytest.raises(SpiError, match="flash pin"):
            bus.attach(7)
        with pytest.raises(SpiError, match=r"0x00\.\.0x7F"):
            bus.attach(CS, {0x80: 1})
        with pytest.raises(SpiError, match="no device at GPIO5"):
            bus[CS]


def test_a_board_has_no_bus_a_test_can_wire() -> None:
    from harness.device.console import Console as DeviceConsole
    from harness.device.errors import DeviceError
    from tests.helpers.stub import StubDevice

    board = StubDevice(DeviceConsole(lambda data: None))
    with pytest.raises(DeviceError, match=r"device\.spi is twin only"):
        board.spi  # noqa: B018
