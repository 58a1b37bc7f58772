"""The serial backend's console reader against a port with pyserial's read semantics."""

from __future__ import annotations

import threading

import serial

from harness.device.serial import SerialDevice


class _Port:
    """pyserial's ``read(size)``: returns once ``size`` bytes came, else only when its
    timeout runs out (a local port and ``rfc2217://`` alike)."""

    timeout = 60.0

    def __init__(self) -> None:
        self._buf = bytearray()
        self._cond = threading.Condition()
        self._closed = False

    def give(self, data: bytes) -> None:
        with self._cond:
            self._buf += data
            self._cond.notify_all()

    @property
    def in_waiting(self) -> int:
        with self._cond:
            return len(self._buf)

    def read(self, size: int = 1) -> bytes:
        with self._cond:
            self._cond.wait_for(lambda: len(self._buf) >= size or self._closed, self.timeout)
            if self._closed:
                raise serial.SerialException("closed")
            data = bytes(self._buf[:size])
            del self._buf[:size]
            return data

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def test_lines_arrive_without_waiting_out_the_port_timeout() -> None:
    """Asking for more than is waiting would hold each line back for the port's timeout
    (50 ms on every console round trip before this was fixed; here 60 s)."""
    dev = SerialDevice("fake", ssid=None, password=None)
    port = _Port()
    reader = threading.Thread(target=dev._read_loop, args=(port,), daemon=True)
    reader.start()
    try:
        port.give(b"ESP-HIL OK wi")
        port.give(b"fi\r\nWIFI connecting\r\n")
        assert dev.console.expect(r"^WIFI connecting$", timeout=5.0).group(0)
        assert [ln.text for ln in dev.console.since(0)] == ["ESP-HIL OK wifi", "WIFI connecting"]
    finally:
        dev._closing = True
        port.close()
        reader.join(5.0)
    assert not reader.is_alive()
