"""Device backends: a twin run locally, or a board behind a serial port or rfc2217 URL."""

import serial

# Our rfc2217 handler first: pyserial's renegotiates the whole port on every timeout change.
if "harness.device.urlhandler" not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.insert(0, "harness.device.urlhandler")
