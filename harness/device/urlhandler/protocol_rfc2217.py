"""``rfc2217://`` without pyserial's per-timeout renegotiation.

pyserial's RFC2217 client renegotiates every port setting with the server (baud, data bits,
parity, stop bits, flow control: two round trips, each waited on in 50 ms sleeps) whenever
``timeout`` changes — and the read timeout is purely local. esptool sets it twice per command,
so flashing a twin or a remote board spent ~0.2 s per loader command doing nothing. This
subclass renegotiates only when a setting the server cares about changed; everything else is
pyserial's.
"""

from __future__ import annotations

from typing import Any

from serial import rfc2217


class Serial(rfc2217.Serial):  # type: ignore[misc]
    """pyserial's RFC2217 client, negotiating port settings only when they change."""

    _negotiated: tuple[Any, ...] | None = None

    def _settings(self) -> tuple[Any, ...]:
        return (
            self._baudrate,
            self._bytesize,
            self._parity,
            self._stopbits,
            self._rtscts,
            self._xonxoff,
        )

    def open(self) -> None:
        self._negotiated = None
        super().open()

    def _reconfigure_port(self) -> None:
        if self._write_timeout is not None:
            # As pyserial's client: callers (esptool) rely on this to learn it is unsupported.
            raise NotImplementedError("write_timeout is currently not supported")
        settings = self._settings()
        if settings == self._negotiated:
            return
        super()._reconfigure_port()
        self._negotiated = settings
