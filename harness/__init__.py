"""esp-hil: hardware-in-the-loop testing for ESP8266 WiFi firmware.

``from harness import WiFiSocket`` gives the host side of the message link (``harness.aio``
has its asyncio counterpart); the errors it raises are re-exported here too.
"""

from harness.errors import (
    ConnectionLost,
    MessageTooLarge,
    ProtocolError,
    ReconnectFailed,
    SessionLost,
    Timeout,
    WiFiSocketError,
)
from harness.wifisocket import WiFiSocket

__all__ = [
    "ConnectionLost",
    "MessageTooLarge",
    "ProtocolError",
    "ReconnectFailed",
    "SessionLost",
    "Timeout",
    "WiFiSocket",
    "WiFiSocketError",
]
