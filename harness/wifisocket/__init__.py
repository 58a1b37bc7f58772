"""The WiFiSocket host library: a sans-IO protocol core, a blocking socket on top.

``WiFiSocket`` is the public entry point; ``frame`` and ``session`` are the sans-IO core
(see docs/protocol.md).
"""

from harness.errors import ReconnectFailed
from harness.wifisocket.backoff import Backoff, Reconnect, ReconnectPolicy
from harness.wifisocket.frame import CloseCode, Frame, FrameDecoder, FrameType, Hello, encode_frame
from harness.wifisocket.session import Session
from harness.wifisocket.socket import WiFiSocket

__all__ = [
    "Backoff",
    "CloseCode",
    "Frame",
    "FrameDecoder",
    "FrameType",
    "Hello",
    "Reconnect",
    "ReconnectFailed",
    "ReconnectPolicy",
    "Session",
    "WiFiSocket",
    "encode_frame",
]
