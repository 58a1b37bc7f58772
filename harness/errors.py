"""Exceptions raised by the WiFiSocket host library.

Every exception derives from :class:`WiFiSocketError`, so ``except WiFiSocketError``
catches anything the link can raise. The close codes carried by :class:`ProtocolError`
are the ones of docs/protocol.md (see :class:`harness.wifisocket.frame.CloseCode`).
"""

from __future__ import annotations

__all__ = [
    "AuthenticationFailed",
    "ConnectionLost",
    "MessageTooLarge",
    "ProtocolError",
    "ReconnectFailed",
    "SessionLost",
    "Timeout",
    "WiFiSocketError",
]

# Names of the close codes, kept here (not imported from the codec) so this module
# has no dependencies and can be imported by anything.
_CODE_NAMES = {
    0: "NORMAL",
    1: "PROTOCOL",
    2: "BAD_CRC",
    3: "TOO_LARGE",
    4: "UNKNOWN_TYPE",
    5: "VERSION",
    6: "TIMEOUT",
    7: "REPLACED",
    8: "SEQUENCE",
    9: "WINDOW",
    10: "INVALID_TEXT",
    11: "BUSY",
    12: "AUTH",
    13: "BAD_TAG",
}


class WiFiSocketError(Exception):
    """Base class of every error of the WiFiSocket library."""


class ProtocolError(WiFiSocketError):
    """The link broke a rule of the wire protocol, or the peer closed it with a non-zero code.

    Attributes:
        code: the close code of docs/protocol.md (1 = PROTOCOL, 2 = BAD_CRC, ...).
        reason: a human-readable explanation.
    """

    def __init__(self, code: int, reason: str) -> None:
        self.code = int(code)
        self.reason = reason
        name = _CODE_NAMES.get(self.code, "UNKNOWN")
        super().__init__(f"{name} ({self.code}): {reason}")

    def __reduce__(self):  # type: ignore[override]
        # Keep the exception picklable (pytest-xdist ships exceptions between processes).
        return (self.__class__, (self.code, self.reason))


class MessageTooLarge(ProtocolError):
    """A message is larger than the receiver's ``max_message`` (close code 3, TOO_LARGE).

    Raised by ``WiFiSocket.send`` before anything is written (the link stays usable), and
    when the peer sends a frame larger than this side accepts (the link is closed).

    Attributes:
        size: the payload size in bytes.
        limit: the largest payload the receiver accepts.
    """

    def __init__(self, size: int, limit: int, reason: str | None = None) -> None:
        self.size = int(size)
        self.limit = int(limit)
        if reason is None:
            reason = f"message of {self.size} bytes exceeds max_message {self.limit}"
        super().__init__(3, reason)

    def __reduce__(self):  # type: ignore[override]
        return (self.__class__, (self.size, self.limit, self.reason))


class AuthenticationFailed(ProtocolError):
    """A keyed handshake failed (close code 12, AUTH; docs/protocol.md §6). Final.

    Raised when this side finds the peer's proof wrong, a keyed side meets an unkeyed one
    (either way round) or its own HELLO reflected, and when the peer closes with AUTH. The
    link never redials on its own after it: a wrong key stays wrong.

    Attributes:
        reason: why, e.g. "authentication failed", "peer has no key" (never the key).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(12, reason)

    def __reduce__(self):  # type: ignore[override]
        return (self.__class__, (self.reason,))


class ConnectionLost(WiFiSocketError):
    """The TCP connection failed or was closed (without a protocol error to report)."""


class PeerClosedNormally(ConnectionLost):
    """The peer ended the session with CLOSE NORMAL (its reason, if any, in the message).

    Iterating over a WiFiSocket ends quietly on it; every other call raises it.
    """


class Timeout(WiFiSocketError, TimeoutError):
    """An operation did not complete within its timeout."""


class SessionLost(WiFiSocketError):
    """The peer came back with a new session (e.g. the device rebooted): its memory is gone.

    Attributes:
        unconfirmed: the messages this side sent that the peer never acknowledged, in the
            order they were sent (``str`` for text, ``bytes`` for binary). They may or may
            not have been processed by the peer before it lost its state.
    """

    def __init__(self, message: str, unconfirmed: list[str | bytes] | None = None) -> None:
        self.unconfirmed: list[str | bytes] = list(unconfirmed or [])
        super().__init__(message)

    def __reduce__(self):  # type: ignore[override]
        return (self.__class__, (self.args[0], self.unconfirmed))


class ReconnectFailed(ConnectionLost):
    """The link was lost and did not come back within ``reconnect_timeout``.

    Attributes:
        attempts: connections tried (or accepted, in the serve topology) during the outage.
        elapsed: seconds from noticing the loss to giving up.
        last_error: why the last attempt (or the lost connection) failed.
        unconfirmed: our messages the peer never acknowledged, in order: they may or may not
            have reached it.
    """

    def __init__(
        self,
        message: str,
        attempts: int = 0,
        elapsed: float = 0.0,
        last_error: str = "",
        unconfirmed: list[str | bytes] | None = None,
    ) -> None:
        self.attempts = attempts
        self.elapsed = elapsed
        self.last_error = last_error
        self.unconfirmed: list[str | bytes] = list(unconfirmed or [])
        super().__init__(message)

    def __reduce__(self):  # type: ignore[override]
        return (
            self.__class__,
            (self.args[0], self.attempts, self.elapsed, self.last_error, self.unconfirmed),
        )
