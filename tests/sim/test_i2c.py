"""The twin's I2C bus: the sketch's Wire against register-map devices the test wires
(firmware/sim/Wire.cpp <-> harness/sim/i2c.py).

The sketch is the shim's test sketch (its ``i2c`` console command).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.backends import open_device
from harness.device.console import Console as DeviceConsole
from harness.device.errors import DeviceError
from harness.device.options import DeviceOptions
from harness.sim.i2c import I2cBus, I2cError
from tests.helpers.projects import answering_project
from tests.helpers.shim import Console, booted_console
from tests.helpers.stub import StubDevice

pytestmark = pytest.mark.twin

BME280 = 0x76


def _fields(line: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in line.split()[1:])


def test_nobody_at_an_address_nacks_as_on_a_bare_board(console: Console) -> None:
    assert _fields(console.command("i2c w 76", "i2c ")) == {"wrote": "0", "end": "2"}
    assert _fields(console.command("i2c r 76 4", "i2c ")) == {
        "got": "0", "data": "", "after": "-1"}


def test_the_sketch_reads_the_registers_the_test_set_and_the_test_reads_what_it_wrote(
    console: Console, tmp_path: Path
) -> None:
    with I2cBus.for_flash(tmp_path / "flash.bin") as bus:
        bme = bus.attach(BME280, {0xD0: 0x60})
        assert _fields(console.command("i2c w 76", "i2c ")) == {"wrote": "0", "end": "0"}
        # Pointer to the chip id, then a read of two: 0xD0 and 0xD1.
        assert _fields(console.command("i2c w 76 d0", "i2c "))["end"] == "0"
        assert _fields(console.command("i2c r 76 2", "i2c "))["data"] == "6000"
        assert bme.pointer == 0xD2
        # ctrl_meas and config in one write; the pointer is past them.
        assert _fields(console.command("i2c w 76 f4 27 a0", "i2c ")) == {"wrote": "3", "end": "0"}
        assert bme.read(0xF4, 2) == b"\x27\xa0" and bme.pointer == 0xF6
        # A reading the test sets is what the next burst read returns, wrapping at 0xFF.
        bme.write(0xFE, b"\x01\x02\x03")
        console.command("i2c w 76 fe", "i2c ")
        assert _fields(console.command("i2c r 76 3", "i2c "))["data"] == "010203"
        bus.detach(BME280)
        assert _fields(console.command("i2c r 76 1", "i2c "))["got"] == "0"
        with pytest.raises(I2cError, match="detached"):
            bme[0]


def test_writes_past_the_buffer_are_refused_as_by_the_core(
    console: Console, tmp_path: Path
) -> None:
    with I2cBus.for_flash(tmp_path / "flash.bin") as bus:
        dev = bus.attach(0x40)
        data = " ".join(f"{i & 0xFF:02x}" for i in range(130))  # the register, then 129
        assert _fields(console.command(f"i2c w 40 {data}", "i2c ")) == {
            "wrote": "128", "end": "0"}
        assert dev.read(0, 127) == bytes(range(1, 128))
        assert _fields(console.command("i2c r 40 200", "i2c "))["got"] == "128"


def test_wiring_stays_across_a_restart_and_pointers_start_at_zero(
    sketch: Path, tmp_path: Path
) -> None:
    flash = tmp_path / "flash.bin"
    with I2cBus.for_flash(flash) as bus:
        dev = bus.attach(0x23, bytes(range(256)))
        with booted_console(sketch, flash) as con:
            con.command("i2c w 23 80", "i2c ")
            assert dev.pointer == 0x80
        with booted_console(sketch, flash) as con:
            assert _fields(con.command("i2c r 23 2", "i2c "))["data"] == "0001"


@settings(max_examples=50)
@given(
    registers=st.dictionaries(st.integers(0, 255), st.integers(0, 255)),
    address=st.integers(0x08, 0x77),
    start=st.integers(0, 255),
    data=st.binary(min_size=1, max_size=300),
)
def test_the_test_side_is_a_register_map(
    tmp_path_factory: pytest.TempPathFactory, registers: dict[int, int], address: int,
    start: int, data: bytes,
) -> None:
    path = tmp_path_factory.mktemp("bus") / "flash.bin.i2c"
    with I2cBus(path) as bus:
        dev = bus.attach(address, registers)
        assert [dev[r] for r in range(256)] == [registers.get(r, 0) for r in range(256)]
        dev.write(start, data)
        expect = bytearray(registers.get(r, 0) for r in range(256))
        for i, b in enumerate(data):
            expect[(start + i) % 256] = b
        assert dev.read(0, 256) == bytes(expect) and address in bus
        assert [d.address for d in bus] == [address]
        # Another mapping of the same file (the firmware's side) sees the same bytes.
        with I2cBus(path) as other:
            assert other[address].read(0, 256) == bytes(expect)


def test_bad_input_is_one_clear_error(tmp_path: Path) -> None:
    with I2cBus(tmp_path / "f.i2c") as bus:
        with pytest.raises(I2cError, match="7 bits"):
            bus.attach(0x80)
        with pytest.raises(I2cError, match="no device at 0x50"):
            bus[0x50]
        dev = bus.attach(0x50)
        with pytest.raises(I2cError, match=r"a byte 0\.\.255"):
            dev[1] = 256
        with pytest.raises(I2cError, match=r"0x00\.\.0xFF"):
            dev.read(256, 1)
        for a in range(0x10, 0x17):
            bus.attach(a)
        with pytest.raises(I2cError, match="holds 8 devices"):
            bus.attach(0x20)


CHIP_ID = """\
  Wire.beginTransmission(0x76);
  Wire.write(0xD0);
  if (Wire.endTransmission() != 0 || Wire.requestFrom(0x76, 1) != 1) {
    service.send("no sensor");
    return;
  }
  char reply[32];
  snprintf(reply, sizeof reply, "chip id 0x%02X", Wire.read());
  service.send(reply);"""


@pytest.mark.parametrize("spec", ["sim", "sim-direct"])
def test_a_users_sketch_reads_a_sensor_the_test_wires(tmp_path: Path, spec: str) -> None:
    project = answering_project(tmp_path, includes="#include <Wire.h>", setup="  Wire.begin();",
                                answer=CHIP_ID)
    with (open_device(DeviceOptions(spec=spec, project=project)) as dev,
          dev.connect(timeout=5) as link):
        link.send("?")
        assert link.receive(timeout=5) == "no sensor"
        dev.i2c.attach(0x76, {0xD0: 0x60})
        link.send("?")
        assert link.receive(timeout=5) == "chip id 0x60"


def test_a_board_has_no_bus_a_test_can_wire() -> None:
    board = StubDevice(DeviceConsole(lambda data: None))
    with pytest.raises(DeviceError, match=r"device\.i2c is twin only"):
        board.i2c  # noqa: B018


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("w"), st.integers(0, 255), st.binary(max_size=8)),
        st.tuples(st.just("r"), st.integers(1, 8)),
        st.tuples(st.just("set"), st.integers(0, 255), st.binary(min_size=1, max_size=4)),
    ),
    min_size=1, max_size=10,
)


@settings(max_examples=30, deadline=None)
@given(ops=_OPS)
def test_the_sketchs_wire_against_a_register_map_model(
    sketch: Path, tmp_path_factory: pytest.TempPathFactory, ops: list[tuple]
) -> None:
    """Any sequence of the sketch's writes and reads, and the test's register changes,
    leaves the registers and pointer a register map would have, and reads what it gives."""
    flash = tmp_path_factory.mktemp("i2c") / "flash.bin"
    regs = bytearray(256)
    pointer = 0
    with I2cBus.for_flash(flash) as bus, booted_console(sketch, flash) as con:
        dev = bus.attach(0x40)
        for op in ops:
            if op[0] == "w":
                _, reg, data = op
                args = " ".join(f"{b:02x}" for b in bytes([reg]) + data)
                assert _fields(con.command(f"i2c w 40 {args}", "i2c "))["end"] == "0"
                pointer = reg
                for b in data:
                    regs[pointer] = b
                    pointer = (pointer + 1) % 256
            elif op[0] == "r":
                got = _fields(con.command(f"i2c r 40 {op[1]}", "i2c "))["data"]
                want = bytes(regs[(pointer + i) % 256] for i in range(op[1]))
                assert got == want.hex()
                pointer = (pointer + op[1]) % 256
            else:
                _, reg, data = op
                dev.write(reg, data)
                for i, b in enumerate(data):
                    regs[(reg + i) % 256] = b
            assert dev.pointer == pointer
        assert dev.read(0, 256) == bytes(regs)
