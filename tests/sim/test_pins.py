"""GPIO and A0 of the twin: what the sketch drives, the test reads; what the test drives,
the sketch reads (firmware/sim/sim_pins.cpp <-> harness/sim/pins.py).

The sketch is firmware/sim/test/api_test_sketch.cpp (one console command per line).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.device.base import Device
from harness.device.console import Console as DeviceConsole
from harness.device.errors import DeviceError
from harness.sim import FirmwareProcess, allocate_ip, build_firmware, firmware_root
from harness.sim.board import TwinDevice
from harness.sim.direct import SimDevice
from harness.sim.pins import A0, D4, D5, D6, LED_BUILTIN, PinError, Pins, pins_path
from tests.helpers.shim import Console, make_process
from tests.helpers.wait import wait_until

SKETCH = firmware_root() / "sim" / "test" / "api_test_sketch.cpp"
TIMEOUT = 5.0
USABLE = [n for n in range(17) if not 6 <= n <= 11]

pytestmark = pytest.mark.twin


@pytest.fixture(scope="module")
def api_binary() -> Path:
    return build_firmware(sketch=SKETCH)


class Twin:
    """The api sketch's console and its pins."""

    def __init__(self, proc: FirmwareProcess, pins: Pins) -> None:
        self.proc = proc
        self.console = Console(proc)
        self.pins = pins

    def command(self, text: str, answer: str) -> str:
        return self.console.command(text, answer)


@pytest.fixture(scope="module")
def twin(api_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Twin]:
    ip, lock = allocate_ip()
    flash = tmp_path_factory.mktemp("pins") / "flash.bin"
    proc = make_process(api_binary, ip, flash)
    pins = Pins.for_flash(flash)
    t = Twin(proc, pins)
    proc.start()
    try:
        t.console.expect("boot ")
        yield t
    finally:
        proc.stop()
        pins.close()
        lock.release()


@pytest.fixture
def fresh(twin: Twin) -> Twin:
    """The shared twin with nothing driven, D5 and D6 inputs again."""
    twin.command("mirror -1 -1", "mirror ")
    twin.pins.release_all()
    for pin in (D5, D6):
        twin.command(f"mode {pin} 0", "mode ")
    return twin


def test_led_builtin_is_driven_by_setup(fresh: Twin) -> None:
    # setup() does pinMode(LED_BUILTIN, OUTPUT); digitalWrite(LED_BUILTIN, HIGH).
    assert fresh.pins.mode(LED_BUILTIN) == "OUTPUT"
    assert fresh.pins["LED_BUILTIN"] == fresh.pins[D4] == 1
    fresh.command(f"write {LED_BUILTIN} 0", "write ")
    assert fresh.pins[LED_BUILTIN] == 0
    fresh.command(f"write {LED_BUILTIN} 1", "write ")
    assert fresh.pins[LED_BUILTIN] == 1


@settings(max_examples=40, deadline=None)
@given(pin=st.sampled_from([n for n in USABLE if n != LED_BUILTIN]), level=st.sampled_from([0, 1]))
def test_sketch_reads_the_level_the_test_drives(twin: Twin, pin: int, level: int) -> None:
    twin.command(f"mode {pin} 0", "mode ")
    twin.pins[pin] = level
    assert twin.command(f"read {pin}", "read ") == f"read {pin} {level}"


# Not LED_BUILTIN: test_led_builtin_is_driven_by_setup reads what setup() left on it, on the
# same twin, in whatever order the workers run the tests (and covers writing it).
@settings(max_examples=40, deadline=None)
@given(pin=st.sampled_from([n for n in USABLE if n != LED_BUILTIN]), level=st.sampled_from([0, 1]))
def test_test_reads_the_level_the_sketch_drives(twin: Twin, pin: int, level: int) -> None:
    twin.command(f"mode {pin} 1", "mode ")
    twin.command(f"write {pin} {level}", "write ")
    assert twin.pins.mode(pin) == "OUTPUT"
    assert twin.pins[pin] == level
    # digitalRead of an output reads back the output latch, as on the chip.
    assert twin.command(f"read {pin}", "read ") == f"read {pin} {level}"


def test_floating_input_and_pull_up(fresh: Twin) -> None:
    fresh.command(f"mode {D5} 0", "mode ")
    assert fresh.command(f"read {D5}", "read ") == f"read {D5} 0"
    fresh.command(f"mode {D5} 2", "mode ")  # INPUT_PULLUP
    assert fresh.pins.mode(D5) == "INPUT_PULLUP"
    assert fresh.pins[D5] == 1
    assert fresh.command(f"read {D5}", "read ") == f"read {D5} 1"
    fresh.pins[D5] = 0  # a button to ground beats the pull-up
    assert fresh.command(f"read {D5}", "read ") == f"read {D5} 0"
    del fresh.pins[D5]
    assert fresh.command(f"read {D5}", "read ") == f"read {D5} 1"


def test_mirror_sketch_follows_the_input(fresh: Twin) -> None:
    fresh.command(f"mirror {D5} {D6}", "mirror ")
    for level in (1, 0, 1, 0):
        fresh.pins[D5] = level
        wait_until(lambda lv=level: fresh.pins[D6] == lv, "D6 at the level")  # type: ignore[misc]


@settings(max_examples=40, deadline=None)
@given(value=st.integers(min_value=0, max_value=1023))
def test_analog_read_returns_what_the_test_sets(twin: Twin, value: int) -> None:
    twin.pins.analog = value
    assert twin.pins.analog == value
    assert twin.command("aread", "aread ") == f"aread {value}"


def test_pwm_duty_is_readable(fresh: Twin) -> None:
    fresh.command(f"pwm {D5} 64", "pwm ")  # the core 3.x default range is 255
    assert fresh.pins.duty(D5) == pytest.approx(64 / 255)
    assert fresh.pins.mode(D5) == "OUTPUT"
    with pytest.raises(PinError, match="PWM"):
        fresh.pins[D5]
    fresh.command("pwmrange 1023", "pwmrange ")
    fresh.command(f"pwm {D5} 256", "pwm ")
    assert fresh.pins.duty(D5) == pytest.approx(0.25, abs=1e-3)
    # Full scale and 0 are plain levels on the core: no PWM.
    fresh.command(f"pwm {D5} 1023", "pwm ")
    assert fresh.pins.duty(D5) is None
    assert fresh.pins[D5] == 1
    fresh.command(f"write {D5} 0", "write ")
    assert fresh.pins.duty(D5) is None
    assert fresh.pins[D5] == 0
    fresh.command("pwmrange 255", "pwmrange ")


def test_interrupt_counts_edges(fresh: Twin) -> None:
    # Each console command wakes the firmware, which samples the pins before loop()
    # answers: after the answer, the level set before the command has been seen.
    fresh.pins[D5] = 0
    fresh.command(f"isr {D5} 1", "isr ")  # RISING
    for n in range(1, 4):
        fresh.pins[D5] = 1
        assert fresh.command("isrcount", "isrcount ") == f"isrcount {n}"
        fresh.pins[D5] = 0  # a falling edge does not count
        assert fresh.command("isrcount", "isrcount ") == f"isrcount {n}"
    fresh.command(f"noisr {D5}", "noisr ")
    fresh.pins[D5] = 1
    assert fresh.command("isrcount", "isrcount ") == "isrcount 3"


def test_change_interrupt_sees_both_edges(fresh: Twin) -> None:
    fresh.pins[D5] = 1
    fresh.command(f"isr {D5} 3", "isr ")  # CHANGE
    fresh.pins[D5] = 0
    assert fresh.command("isrcount", "isrcount ") == "isrcount 1"
    fresh.pins[D5] = 1
    assert fresh.command("isrcount", "isrcount ") == "isrcount 2"
    fresh.command(f"noisr {D5}", "noisr ")


def test_sketch_touching_a_flash_pin_is_ignored_with_a_note(fresh: Twin) -> None:
    fresh.command("mode 7 1", "mode ")
    fresh.command("write 7 1", "write ")
    assert fresh.command("read 7", "read ") == "read 7 0"
    wait_until(lambda: any("GPIO 7 is a flash pin" in line for line in fresh.proc.stderr_tail()),
               "the flash-pin warning")


def test_driving_an_output_of_the_sketch_is_refused(fresh: Twin) -> None:
    with pytest.raises(PinError, match="output of the sketch"):
        fresh.pins[LED_BUILTIN] = 0


def test_restart_resets_the_sketch_side_and_keeps_the_wiring(
    api_binary: Path, tmp_path: Path
) -> None:
    ip, lock = allocate_ip()
    flash = tmp_path / "flash.bin"
    proc = make_process(api_binary, ip, flash)
    console = Console(proc)
    try:
        with Pins.for_flash(flash) as pins:
            pins.analog = 777  # wired before power-on
            pins[D5] = 1
            proc.start()
            console.expect("boot ")
            console.command(f"mode {D6} 1", "mode ")
            console.command(f"write {D6} 1", "write ")
            assert pins[D6] == 1
            console.proc.write(b"restart\n")
            assert console.exited.get(timeout=TIMEOUT) == 3
            proc.reset_reason = "Software/System restart"
            proc.start()
            console.expect("boot ")
            assert pins.mode(D6) == "INPUT" and pins[D6] == 0
            assert console.command("aread", "aread ") == "aread 777"
            assert console.command(f"read {D5}", "read ") == f"read {D5} 1"
    finally:
        proc.stop()
        lock.release()


def test_device_pins_on_the_twin_and_twin_only_elsewhere(api_binary: Path) -> None:
    dev = SimDevice(binary=api_binary)
    try:
        dev.pins[D5] = 1
        dev.analog = 300
        with Pins.for_flash(dev.flash_path) as seen:
            assert seen[D5] == 1 and seen.analog == 300
    finally:
        dev.close()

    class Board(Device):
        description = "a board on /dev/ttyUSB9"

        def start(self) -> None:
            pass

        def hard_reset(self) -> None:
            pass

        def close(self) -> None:
            pass

    board = Board(DeviceConsole(lambda data: None))
    with pytest.raises(DeviceError, match="twin only"):
        board.pins[D5]
    with pytest.raises(DeviceError, match="twin only"):
        board.analog = 1


@pytest.mark.parametrize("backend", ["sim-direct", "rfc2217"])
def test_device_pins_are_the_running_firmware_s(backend: str) -> None:
    dev: SimDevice | TwinDevice = SimDevice() if backend == "sim-direct" else TwinDevice()
    flash = dev.flash_path if isinstance(dev, SimDevice) else dev.twin.flash_path
    try:
        # Stale state from an earlier run: every pin an output. Power-on must clear it,
        # which shows the firmware maps the very file device.pins reads.
        flash.parent.mkdir(parents=True, exist_ok=True)
        pins_path(flash).write_bytes(b"\x01" * 17 + bytes(256 - 17))
        dev.start()
        assert dev.pins.mode(D5) == "INPUT"
        dev.pins[D5] = 1
        dev.analog = 99
        assert dev.pins[D5] == 1 and dev.analog == 99
    finally:
        dev.close()


# ------------------------------------------------------------------ the Pins API alone


@pytest.mark.parametrize(
    ("pin", "message"),
    [
        (6, "flash pin"),
        (11, "flash pin"),
        (17, "A0 is the analog input"),
        (A0, "A0 is the analog input"),
        (-1, "does not exist"),
        (40, "does not exist"),
        ("D11", "no pin named"),
        (2.0, "GPIO number or a name"),
        (True, "GPIO number or a name"),
    ],
)
def test_invalid_pins_are_refused(tmp_path: Path, pin: object, message: str) -> None:
    with Pins(tmp_path / "p") as pins:
        with pytest.raises(PinError, match=message):
            pins[pin]  # type: ignore[index]
        with pytest.raises(PinError, match=message):
            pins[pin] = 1  # type: ignore[index]


@pytest.mark.parametrize("value", [2, -1, 0.0, 1.0, None, "1"])
def test_invalid_levels_are_refused(tmp_path: Path, value: object) -> None:
    with Pins(tmp_path / "p") as pins, pytest.raises(PinError, match="0 or 1"):
        pins[D5] = value  # type: ignore[assignment]


@pytest.mark.parametrize("value", [-1, 1024, 1.5, True, "5"])
def test_invalid_analog_values_are_refused(tmp_path: Path, value: object) -> None:
    with Pins(tmp_path / "p") as pins:
        with pytest.raises(PinError, match=r"0\.\.1023"):
            pins.analog = value  # type: ignore[assignment]
        assert pins.analog == 0


def test_names_are_the_core_values(tmp_path: Path) -> None:
    with Pins(tmp_path / "p") as pins:
        pins["D5"] = 1
        assert pins[14] == 1 and pins["gpio14"] == 1 and pins[D5] == 1
        assert pins_path(tmp_path / "flash.bin") == tmp_path / "flash.bin.pins"
    closed = Pins(tmp_path / "p")
    closed.close()
    with pytest.raises(ValueError, match="closed"):
        closed[D5]
