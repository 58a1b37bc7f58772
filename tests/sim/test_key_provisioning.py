"""The link's pre-shared key over the EspHil agent's console (docs/console.md, ``key``).

On the twin: a small sketch whose key hook prints the key's length and CRC-32 (a test-only
observation; the agent itself never prints anything derived from the key) runs over a flash
file the test reads, so each test checks what the board says, what the sketch is handed and
what lands in flash at the documented sector. One test runs the test firmware on
``--device=sim-core`` over the core's own host emulation.
"""

from __future__ import annotations

import json
import queue
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.sim.build import build_firmware
from harness.sim.core.build import core_root
from harness.sim.core.device import CoreDevice
from tests.helpers.shim import Console, booted_console

pytestmark = pytest.mark.twin

KEY_SECTOR = 0x3FA000  # docs/console.md, "Where the key lives"
SECTOR = 4096
RECORD = 44
FLASH_SIZE = 4 * 1024 * 1024
TIMEOUT = 5.0
BOOT = "ESP-HIL BOOT"

SKETCH = r"""
#include <Arduino.h>
#include <EspHil.h>

// Test only: what the hook is handed, as length and CRC-32 (never the key itself).
void keyHook(const uint8_t* key, size_t len) {
  Serial.printf("hook len=%u crc=%08x\n", static_cast<unsigned>(len),
                static_cast<unsigned>(len > 0 ? esphil::crc32(key, len) : 0));
}

void setup() {
  EspHil.begin("key-test/1.0");
  EspHil.onKey(keyHook);
  Serial.println("setup done");
}

void loop() { EspHil.loop(); }
"""


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sketch = tmp_path_factory.mktemp("key-sketch") / "key_sketch.cpp"
    sketch.write_text(SKETCH)
    return build_firmware(sketch=sketch)


@pytest.fixture
def flash(tmp_path: Path) -> Path:
    return tmp_path / "flash.bin"


@pytest.fixture
def board(binary: Path, flash: Path) -> Iterator[Console]:
    with booted_console(binary, flash, boot=BOOT) as con:
        con.expect("setup done")
        yield con


def _record(key: bytes) -> bytes:
    body = b"EHK1" + bytes([len(key), 0, 0, 0]) + key.ljust(32, b"\0")
    return body + zlib.crc32(body).to_bytes(4, "little")


def _hook_line(key: bytes) -> str:
    return f"hook len={len(key)} crc={zlib.crc32(key) if key else 0:08x}"


def _lines_until(con: Console, prefix: str, seen: list[str]) -> list[str]:
    """The lines up to and including the first one starting ``prefix`` (all kept in ``seen``)."""
    start = len(seen)
    con.expect(prefix, seen=seen)
    return seen[start:]


def _send(con: Console, line: str, seen: list[str]) -> tuple[list[str], dict[str, object]]:
    """Sends ``line``, then ``info``: the lines answering ``line``, and the info JSON."""
    con.proc.write(line.encode() + b"\n" + b"info\n")
    lines = _lines_until(con, "ESP-HIL INFO ", seen)
    info: dict[str, object] = json.loads(lines[-1].removeprefix("ESP-HIL INFO "))
    return lines[:-1], info


def _sector(flash: Path) -> bytes:
    with flash.open("rb") as f:
        f.seek(KEY_SECTOR)
        return f.read(SECTOR)


def _drain(con: Console, seen: list[str]) -> None:
    while True:
        try:
            seen.append(con.lines.get_nowait())
        except queue.Empty:
            return


def test_a_fresh_board_has_no_key(board: Console) -> None:
    seen: list[str] = []
    answer, info = _send(board, "", seen)
    assert answer == [] and info["key"] is False


def test_key_is_stored_handed_to_the_sketch_and_never_printed(
    binary: Path, flash: Path, board: Console
) -> None:
    key = bytes(range(0xA0, 0xC0))  # 32 bytes
    before = flash.read_bytes()
    seen: list[str] = []
    answer, info = _send(board, f"key {key.hex()}", seen)
    assert answer == [_hook_line(key), "ESP-HIL OK key"]  # the hook has it before OK
    assert info["key"] is True
    sector = _sector(flash)
    assert sector[:RECORD] == _record(key) and sector[RECORD:] == b"\xff" * (SECTOR - RECORD)
    after = flash.read_bytes()
    # Nothing else in flash moved: the sketch's EEPROM, the station config, the rest.
    assert before[:KEY_SECTOR] == after[:KEY_SECTOR]
    assert before[KEY_SECTOR + SECTOR :] == after[KEY_SECTOR + SECTOR :]
    _drain(board, seen)
    output = "\n".join([*seen, *board.proc.stderr_tail()])
    for secret in (key.hex(), key.hex().upper(), key.hex()[:16], key.hex()[-16:]):
        assert secret not in output


def test_key_survives_a_power_cycle_and_reaches_the_hook_at_boot(binary: Path, flash: Path) -> None:
    key = bytes.fromhex("00112233445566778899aabbccddeeff")  # 16 bytes, the least
    seen: list[str] = []
    with booted_console(binary, flash, boot=BOOT) as con:
        assert _lines_until(con, "setup done", seen) == ["ESP-HIL WIFI none", "setup done"]
        _send(con, f"key {key.hex().upper()}", seen)  # either case
    with booted_console(binary, flash, boot=BOOT) as con:
        assert _lines_until(con, "setup done", seen) == [
            "ESP-HIL WIFI none",
            _hook_line(key),  # onKey() calls the hook at once with the stored key
            "setup done",
        ]
        assert _send(con, "", seen)[1]["key"] is True
        # `forget` is the WiFi credentials only; `key off` clears the key.
        assert _send(con, "forget", seen)[0] == ["ESP-HIL OK forget"]
        assert _sector(flash)[:RECORD] == _record(key)
        answer, info = _send(con, "key off", seen)
        assert answer == [_hook_line(b""), "ESP-HIL OK key"] and info["key"] is False
        assert _sector(flash) == b"\xff" * SECTOR
    with booted_console(binary, flash, boot=BOOT) as con:
        assert _lines_until(con, "setup done", seen) == ["ESP-HIL WIFI none", "setup done"]
        assert _send(con, "", seen)[1]["key"] is False
    assert key.hex() not in "\n".join(seen).lower()


BAD = [
    ("key", "usage: key <32..64 hex digits> | key off"),
    ("key ", "usage: key <32..64 hex digits> | key off"),
    ("key " + "ab" * 16 + " " + "cd" * 16, "usage: key <32..64 hex digits> | key off"),
    ("key off now", "usage: key <32..64 hex digits> | key off"),
    ("key " + "ab" * 16 + "c", "odd number of hex digits"),
    ("key " + "ab" * 15 + "zz", "not hex"),
    ("key 0x" + "ab" * 16, "not hex"),
    ("key " + "ab" * 15, "too short"),
    ("key " + "ab" * 33, "too long"),
]


def test_bad_keys_get_one_error_line_and_store_nothing(flash: Path, board: Console) -> None:
    key = bytes(range(1, 21))
    seen: list[str] = []
    _send(board, f"key {key.hex()}", seen)
    stored = _sector(flash)
    for line, why in BAD:
        answer, info = _send(board, line, seen)
        assert answer == [f"ESP-HIL ERR key {why}"], line  # no hook call either
        assert info["key"] is True and _sector(flash) == stored, line
    # A line too long for the console is dropped whole: the stored key stays.
    answer, _ = _send(board, "key " + "ab" * 200, seen)
    assert answer == ["ESP-HIL ERR line too long"] and _sector(flash) == stored


def test_a_damaged_record_reads_as_no_key(binary: Path, flash: Path) -> None:
    key = bytes(range(16))
    seen: list[str] = []
    with booted_console(binary, flash, boot=BOOT) as con:
        _send(con, f"key {key.hex()}", seen)
    with flash.open("r+b") as f:  # one bit of the key flipped (NOR flash: a bit cleared)
        f.seek(KEY_SECTOR + 9)
        f.write(bytes([key[1] & 0xFE]))
    with booted_console(binary, flash, boot=BOOT) as con:
        assert _lines_until(con, "setup done", seen) == ["ESP-HIL WIFI none", "setup done"]
        assert _send(con, "", seen)[1]["key"] is False


@pytest.mark.parametrize(
    ("sector", "answer"), [(0x3F0, "ESP-HIL OK key"), (0, "ESP-HIL ERR key no key sector")]
)
def test_a_build_flag_moves_or_turns_off_the_key_store(
    tmp_path: Path, sector: int, answer: str
) -> None:
    sketch = tmp_path / "key_sketch.cpp"
    sketch.write_text(SKETCH)
    binary = build_firmware(sketch=sketch, extra_flags=(f"-DESPHIL_KEY_SECTOR={sector:#x}",))
    flash = tmp_path / "flash.bin"
    key = bytes(range(16))
    seen: list[str] = []
    with booted_console(binary, flash, boot=BOOT) as con:
        lines, info = _send(con, f"key {key.hex()}", seen)
        assert lines[-1] == answer and info["key"] is (sector != 0)
    data = flash.read_bytes()
    assert data[KEY_SECTOR : KEY_SECTOR + SECTOR] == b"\xff" * SECTOR  # not the default
    if sector:
        assert data[sector * SECTOR : sector * SECTOR + RECORD] == _record(key)


@pytest.mark.skipif(
    not (core_root() / "tests" / "host" / "Makefile").is_file(),
    reason=f"no ESP8266 core snapshot at {core_root()} (set ESP_HIL_CORE_DIR)",
)
def test_sim_core_keeps_the_key_in_its_flash_file_across_a_reset() -> None:
    key = bytes(range(0x40, 0x58))  # 24 bytes
    device = CoreDevice()
    try:
        device.start()
        mark = device.console.mark()
        device.console.send_line(f"key {key.hex()}")
        device.console.expect(r"^ESP-HIL OK key$", timeout=TIMEOUT, since=mark)
        flash = device.workdir / "flash"
        with flash.open("rb") as f:
            f.seek(KEY_SECTOR)
            assert f.read(RECORD) == _record(key)
        device.reset()  # the process stopped and started again: READY from stored WiFi
        mark = device.console.mark()
        device.console.send_line("info")
        info = device.console.expect(r"^ESP-HIL INFO .*$", timeout=TIMEOUT, since=mark).group(0)
        assert json.loads(info.removeprefix("ESP-HIL INFO "))["key"] is True
        assert all(key.hex() not in line.text for line in device.console.lines)
    finally:
        device.close()
