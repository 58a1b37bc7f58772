"""The serial backend's console reader against a port with pyserial's read semantics."""

from __future__ import annotations

import threading

import serial

from harness.device.serial import SerialDevice


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
