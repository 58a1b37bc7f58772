"""The chip's pure parts: identity images, boot trace, auto-reset, garbling, flash."""

from __future__ import annotations

from pathlib import Path

import pytest
from esptool.bin_image import LoadFirmwareImage
from hypothesis import given
from hypothesis import strategies as st

from harness.sim.chip import bootrom
from harness.sim.chip.autoreset import Pins, Strap, StrapSampler, nodemcu_pins
from harness.sim.chip.flash import SECTOR_SIZE, FlashError, FlashFile
from harness.sim.chip.image import make_native_image, parse_image, read_native_identity
from harness.sim.chip.uart import garble

fields = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters="="),
    min_size=1,
    max_size=40,
)


@given(fields, fields)
def test_identity_image_round_trip_and_esptool_parses_it(identity: str, build: str) -> None:
    image = make_native_image(identity, build)
    assert image[0] == 0xE9 and len(image) % 16 == 0
    parsed = LoadFirmwareImage("esp8266", image)
    assert parsed.checksum == parsed.calculate_checksum()
    assert read_native_identity(image + b"\xff" * 64) == (identity, build)


@given(fields, st.data())
def test_any_flipped_segment_bit_loses_the_identity(identity: str, data: st.DataObject) -> None:
    image = bytearray(make_native_image(identity, "b1"))
    pos = data.draw(st.integers(16, len(image) - 2))  # segment data and padding
    image[pos] ^= 1 << data.draw(st.integers(0, 7))
    parsed = parse_image(bytes(image))
    if parsed is not None and parsed.checksum_ok:
        # only a flip in the zero padding after the data keeps the checksum; the
        # marker is then intact too
        assert read_native_identity(bytes(image)) == (identity, "b1")
    else:
        assert read_native_identity(bytes(image)) is None


@pytest.mark.parametrize("bad", ["", "has space", "a=b", "caf\u00e9"])
def test_identity_fields_are_validated(bad: str) -> None:
    with pytest.raises(ValueError):
        make_native_image(bad, "b1")


def test_boot_trace_texts() -> None:
    assert bootrom.banner(1, 3) == "\r\n ets Jan  8 2013,rst cause:1, boot mode:(3,6)\r\n"
    parsed = parse_image(make_native_image("fw", "b1"))
    assert parsed is not None
    trace = bootrom.load_trace(parsed)
    assert trace.startswith("\nload 0x40100000, len ")
    assert trace.endswith(f"csum 0x{parsed.stored_checksum:02x}\n")
    assert parse_image(b"\xff" * 64) is None
    assert bootrom.no_image_trace().endswith("ets_main.c \n")


def test_nodemcu_truth_table() -> None:
    # pyserial flags (asserted = line low): rts alone holds EN low, dtr alone IO0
    assert nodemcu_pins(dtr=False, rts=True) == Pins(en=False, gpio0=True)
    assert nodemcu_pins(dtr=True, rts=False) == Pins(en=True, gpio0=False)
    assert nodemcu_pins(dtr=True, rts=True) == Pins(en=True, gpio0=True)
    assert nodemcu_pins(dtr=False, rts=False) == Pins(en=True, gpio0=True)


def _run(sampler: StrapSampler, steps: list[tuple[float, bool, bool]]) -> list[Strap]:
    events: list[Strap] = []
    for t, dtr, rts in steps:
        if sampler.deadline is not None and t >= sampler.deadline:
            decided = sampler.expire(sampler.deadline)
            events += [decided] if decided else []
        events += sampler.update(nodemcu_pins(dtr, rts), t)
    if sampler.deadline is not None:
        decided = sampler.expire(sampler.deadline)
        events += [decided] if decided else []
    return events


@pytest.mark.parametrize("gap", [0.0005, 0.1], ids=["acked", "ign_set_control"])
def test_classic_reset_reaches_download_mode(gap: float) -> None:
    # esptool's ClassicReset: D0 R1 (D0) wait D1 R0 (D1) wait D0
    steps = [(0, True, True)]
    t = 0.0
    for dtr, rts, pause in [
        (False, True, gap),
        (False, True, gap),
        (False, True, 0.1),
        (True, True, gap),
        (True, False, gap),
        (True, False, 0.05),
        (False, False, gap),
    ]:
        t += pause
        steps.append((t, dtr, rts))
    events = _run(StrapSampler(), steps)
    assert events == [Strap.RESET, Strap.RELEASED, Strap.DOWNLOAD]
    assert Strap.FLASH not in events


def test_hard_reset_boots_flash_and_reset_inside_window_restarts_it() -> None:
    sampler = StrapSampler(window=0.25)
    assert _run(sampler, [(0, False, True), (0.1, False, False)]) == [
        Strap.RESET,
        Strap.RELEASED,
        Strap.FLASH,
    ]
    sampler = StrapSampler(window=0.25)
    assert sampler.update(nodemcu_pins(False, True), 0) == [Strap.RESET]
    assert sampler.update(nodemcu_pins(False, False), 1) == [Strap.RELEASED]
    assert sampler.expire(1.1) is None  # window still open
    assert sampler.update(nodemcu_pins(False, True), 1.2) == [Strap.RESET]
    assert sampler.expire(5) is None  # held in reset: nothing to decide
    assert sampler.update(nodemcu_pins(False, False), 6) == [Strap.RELEASED]
    assert sampler.expire(6.25) is Strap.FLASH


def test_gpio0_low_after_the_window_changes_nothing() -> None:
    sampler = StrapSampler(window=0.25)
    sampler.update(nodemcu_pins(False, True), 0)
    sampler.update(nodemcu_pins(False, False), 0.1)
    assert sampler.expire(0.35) is Strap.FLASH
    assert sampler.update(nodemcu_pins(True, False), 0.5) == []


@given(st.binary(max_size=64), st.sampled_from([9600, 74880, 115200, 921600]))
def test_garble_is_identity_only_at_equal_rates(data: bytes, rate: int) -> None:
    assert garble(data, rate, rate) == data
    other = 74880 if rate != 74880 else 115200
    out = garble(data, rate, other)
    assert len(out) == len(data)
    assert all(a != b for a, b in zip(out, data, strict=True))
    assert out == garble(data, rate, other)  # reproducible


def test_flash_file_nor_semantics(tmp_path: Path) -> None:
    flash = FlashFile(tmp_path / "f.bin", 64 * 1024)
    assert flash.read(0, 64 * 1024) == b"\xff" * 64 * 1024
    flash.program(10, b"\x0f\xf0")
    flash.program(10, b"\xf3\x3f")  # programming only clears bits
    assert flash.read(10, 2) == b"\x03\x30"
    flash.erase_covering(10, 1)
    assert flash.read(0, SECTOR_SIZE) == b"\xff" * SECTOR_SIZE
    with pytest.raises(FlashError):
        flash.erase(1, SECTOR_SIZE)
    with pytest.raises(FlashError):
        flash.read(64 * 1024 - 1, 2)
    with pytest.raises(FlashError):
        FlashFile(tmp_path / "f.bin", 128 * 1024)  # refuses to resize an existing file
