"""The serial backend's console reader against a port with pyserial's read semantics."""

from __future__ import annotations

import threading

import serial

from harness.device.serial import SerialDevice
from harness.sim.chip.uart import garble


def test_lines_arrive_without_waiting_out_the_port_timeout() -> None:
    """pyserial's ``read(size)`` returns once ``size`` bytes came, else only when the port's
    timeout runs out (a local port, ``rfc2217://`` and ``loop://`` alike): asking for more
    than is waiting would hold each line back for that timeout (50 ms on every console round
    trip before this was fixed; here 60 s)."""
    dev = SerialDevice("fake", ssid=None, password=None)
    port = serial.serial_for_url("loop://", timeout=60.0)
    reader = threading.Thread(target=dev._read_loop, args=(port,), daemon=True)
    reader.start()
    try:
        port.write(b"ESP-HIL OK wi")
        port.write(b"fi\r\nWIFI connecting\r\n")
        assert dev.console.expect(r"^WIFI connecting$", timeout=5.0).group(0)
        assert [ln.text for ln in dev.console.since(0)] == ["ESP-HIL OK wifi", "WIFI connecting"]
    finally:
        dev._closing = True
        port.close()  # wakes a read that waits
        reader.join(5.0)
    assert not reader.is_alive()


def test_boot_rom_output_keeps_the_roms_lines_not_the_firmware_read_at_its_rate() -> None:
    """A board that never says READY is reset at 74880 baud to read the ROM; a firmware that
    boot-loops prints at 115200 meanwhile, which reads as noise: only readable lines are
    quoted, and no more than a boot's worth."""
    dev = SerialDevice("fake", ssid=None, password=None)
    port = serial.serial_for_url("loop://", timeout=0.05)
    dev._serial = port
    reader = threading.Thread(target=dev._read_loop, args=(port,), daemon=True)
    reader.start()
    rom = [" ets Jan  8 2013,rst cause:2, boot mode:(3,6)", "load 0x40100000, len 44, room 16"]
    noise = garble(b"ESP-HIL BOOT fw=x/1 reset=Exception\nException (29):\n" * 40, 115200, 74880)
    try:
        threading.Timer(0.1, port.write, [("\r\n".join(rom * 20)).encode() + b"\r\n" + noise
                                          + b"\r\n"]).start()
        said = dev.boot_rom_output(listen=0.5)
    finally:
        dev._closing = True
        port.close()
        reader.join(5.0)
    assert said.split(" | ") == [r.strip() for r in rom * 6]
