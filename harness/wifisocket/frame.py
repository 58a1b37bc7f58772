"""Frame codec of the WiFiSocket wire protocol, versions 1 and 2 (docs/protocol.md §1-2, §6).
Sans-IO.

The decoder is on the bulk-throughput path, so it works on a bytearray with an offset,
unpacks headers with a precompiled :class:`struct.Struct`, checks CRCs with
``zlib.crc32`` over memoryview slices, and copies each byte at most twice (into the
buffer only when a frame is split across reads, and out into the payload).
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass
from typing import Protocol

from harness.errors import AuthenticationFailed, MessageTooLarge, ProtocolError

__all__ = [
    "CONTROL_MAX",
    "CRC_SIZE",
    "FRAME_OVERHEAD",
    "HEADER_SIZE",
    "HELLO_SIZE",
    "HELLO_V2_SIZE",
    "KEYED_VERSION",
    "MAGIC",
    "PROTOCOL_VERSION",
    "TAG_SIZE",
    "CloseCode",
    "Frame",
    "FrameDecoder",
    "FrameType",
    "Hello",
    "encode_frame",
]

MAGIC = b"WS"
PROTOCOL_VERSION = 1
#: The version of a keyed link (§6).
KEYED_VERSION = 2
HEADER_SIZE = 16
CRC_SIZE = 4
FRAME_OVERHEAD = HEADER_SIZE + CRC_SIZE
HELLO_SIZE = 32
HELLO_V2_SIZE = 48  # + the 16-byte nonce
#: The tag after each frame on a keyed link; never counted in windows or frame sizes.
TAG_SIZE = 16
# A control frame longer than this is reported as TOO_LARGE rather than PROTOCOL.
CONTROL_MAX = 64
U32_MAX = 0xFFFFFFFF

_MAGIC0 = 0x57
_MAGIC1 = 0x53
_HEADER = struct.Struct(">2sBBIII")
_HEADER_FIELDS = struct.Struct(">xxBBIII")
_CRC = struct.Struct(">I")
_HELLO = struct.Struct(">BBHIIIQQ")


class FrameType(enum.IntEnum):
    """Frame types of docs/protocol.md §1."""

    HELLO = 1
    TEXT = 2
    BINARY = 3
    ACK = 4
    PING = 5
    PONG = 6
    CLOSE = 7
    AUTH = 8


class CloseCode(enum.IntEnum):
    """Close codes carried by CLOSE frames and :class:`~harness.errors.ProtocolError`."""

    NORMAL = 0
    PROTOCOL = 1
    BAD_CRC = 2
    TOO_LARGE = 3
    UNKNOWN_TYPE = 4
    VERSION = 5
    TIMEOUT = 6
    REPLACED = 7
    SEQUENCE = 8
    WINDOW = 9
    INVALID_TEXT = 10
    BUSY = 11
    AUTH = 12
    BAD_TAG = 13


# Allowed payload lengths of control frames, inclusive.
_CONTROL_LENGTHS: dict[int, tuple[int, int]] = {
    FrameType.HELLO: (HELLO_SIZE, 64),
    FrameType.ACK: (0, 0),
    FrameType.PING: (8, 8),
    FrameType.PONG: (8, 8),
    FrameType.CLOSE: (1, 124),
    FrameType.AUTH: (32, 32),
}
_DATA_TYPES = frozenset((FrameType.TEXT, FrameType.BINARY))
# Plain ints for the hot path (IntEnum lookups are slower than int ones).
_TEXT = int(FrameType.TEXT)
_BINARY = int(FrameType.BINARY)
_DATA_INTS = (_TEXT, _BINARY)
_AUTH = int(FrameType.AUTH)
_TYPE_OF = {int(t): t for t in FrameType}  # a dict lookup is much cheaper than FrameType(n)


# Not frozen: a frozen dataclass costs ~1 us more per instance, on the per-frame path.
@dataclass(slots=True)
class Frame:
    """One decoded frame. ``flags`` is always 0 in a valid frame, so it is not kept."""

    type: FrameType
    seq: int
    ack: int
    payload: bytes = b""

    @property
    def is_data(self) -> bool:
        """True for TEXT and BINARY frames."""
        return self.type in _DATA_TYPES

    @property
    def size(self) -> int:
        """Size of the whole frame on the wire (header + payload + CRC)."""
        return FRAME_OVERHEAD + len(self.payload)


def encode_frame(type: int, payload: bytes = b"", *, seq: int = 0, ack: int = 0) -> bytes:
    """Encode one frame: header, payload and CRC-32, concatenated once.

    No protocol rule is checked here (the session does that); only the field widths are,
    by :mod:`struct`.
    """
    header = _HEADER.pack(MAGIC, type, 0, len(payload), seq, ack)
    crc = zlib.crc32(payload, zlib.crc32(header))
    return b"".join((header, payload, _CRC.pack(crc)))


@dataclass(frozen=True, slots=True)
class Hello:
    """The HELLO payload (docs/protocol.md §2); with a ``nonce``, version 2 (§6)."""

    max_message: int
    window: int
    keepalive_ms: int
    session: int
    resume: int = 0
    version: int = PROTOCOL_VERSION
    #: 16 bytes on a keyed link (version 2), empty on an unkeyed one.
    nonce: bytes = b""

    def encode(self) -> bytes:
        """The HELLO payload: 32 bytes, or 48 with the nonce."""
        return _HELLO.pack(
            self.version, 0, 0, self.max_message, self.window, self.keepalive_ms,
            self.session, self.resume,
        ) + self.nonce

    @classmethod
    def decode(cls, payload: bytes, keyed: bool = False) -> Hello:
        """Parse and validate a HELLO payload; bytes after the version's size are ignored.

        ``keyed``: this side has a key, so it speaks version 2 only (else version 1 only).

        Raises:
            ProtocolError: in the order of docs/protocol.md §2: PROTOCOL for a payload
                under 32 bytes; VERSION for a version other than 1 or 2;
                :class:`~harness.errors.AuthenticationFailed` (AUTH) for the version this
                side is not configured for; PROTOCOL for a version 2 payload under 48
                bytes, non-zero reserved bytes, ``max_message`` 0, ``window`` below
                ``max_message + 20`` or a zero session id.
        """
        if len(payload) < HELLO_SIZE:
            raise ProtocolError(
                CloseCode.PROTOCOL, f"HELLO payload of {len(payload)} bytes, need {HELLO_SIZE}"
            )
        version, r1, r2, max_message, window, keepalive_ms, session, resume = (
            _HELLO.unpack_from(payload)
        )
        # Version first: a later version may give the reserved bytes a meaning.
        if version not in (PROTOCOL_VERSION, KEYED_VERSION):
            raise ProtocolError(
                CloseCode.VERSION,
                f"HELLO version {version}, this side speaks {PROTOCOL_VERSION} and "
                f"{KEYED_VERSION}",
            )
        if version != (KEYED_VERSION if keyed else PROTOCOL_VERSION):
            # Never answered with the other version: no downgrade, no silent unkeyed link.
            raise AuthenticationFailed("peer has no key" if keyed else "no key on this side")
        if keyed and len(payload) < HELLO_V2_SIZE:
            raise ProtocolError(
                CloseCode.PROTOCOL,
                f"version 2 HELLO payload of {len(payload)} bytes, need {HELLO_V2_SIZE}",
            )
        if r1 or r2:
            raise ProtocolError(CloseCode.PROTOCOL, "HELLO reserved bytes are not 0")
        if max_message < 1:
            raise ProtocolError(CloseCode.PROTOCOL, "HELLO max_message is 0")
        if window < max_message + FRAME_OVERHEAD:
            raise ProtocolError(
                CloseCode.PROTOCOL,
                f"HELLO window {window} is below max_message + 20 = {max_message + 20}",
            )
        if session == 0:
            raise ProtocolError(CloseCode.PROTOCOL, "HELLO session id is 0")
        nonce = bytes(payload[HELLO_SIZE:HELLO_V2_SIZE]) if keyed else b""
        return cls(max_message, window, keepalive_ms, session, resume, version, nonce)


class TagChecker(Protocol):
    """What the decoder needs of a keyed link's receive direction (keyed.TagCheck)."""

    def check(self, covered: memoryview, tag: memoryview) -> ProtocolError | None: ...


class FrameDecoder:
    """Incremental frame decoder: feed it bytes as they arrive, get whole frames back.

    Rules are checked in the order of docs/protocol.md §1, each as soon as its bytes are
    there. After the first error the decoder is dead and raises that error again.
    Nothing is allocated from a length field before the length has been checked; what is
    buffered between calls is only the tail of one incomplete frame, so at most
    ``16 + max(max_message, 124) + 4 + 16 - 1`` bytes (a CLOSE may carry 124 bytes whatever
    ``max_message`` is; 16 for a tag).

    Keyed links (§6): the decoder stops right after an AUTH frame and decodes nothing more
    (it keeps what follows) until :meth:`expect_tags` says whether the frames after it
    carry tags; so tagged mode starts exactly at the frame boundary after the peer's AUTH.
    """

    __slots__ = ("_buf", "_error", "_paused", "_tags", "max_message")

    def __init__(self, max_message: int) -> None:
        if not 1 <= max_message <= U32_MAX:
            raise ValueError(f"max_message must be in 1..{U32_MAX}, got {max_message}")
        self.max_message = max_message
        self._buf = bytearray()
        self._error: ProtocolError | None = None
        self._tags: TagChecker | None = None
        self._paused = False

    def expect_tags(self, tags: TagChecker) -> None:
        """After the AUTH frame: every further frame carries a tag that ``tags`` checks.
        Call :meth:`decode` (with ``b""``) to decode what is buffered."""
        self._tags = tags
        self._paused = False

    @property
    def paused(self) -> bool:
        """An AUTH frame was decoded and :meth:`expect_tags` not called yet."""
        return self._paused

    @property
    def buffered(self) -> int:
        """Bytes held back, waiting for the rest of their frame."""
        return len(self._buf)

    @property
    def error(self) -> ProtocolError | None:
        """The error that killed the decoder, if any."""
        return self._error

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Decode the frames completed by ``data``.

        Raises:
            ProtocolError: (or MessageTooLarge) on the first broken rule; frames completed
                before the error in the same call are lost to this method, use
                :meth:`decode` to get them too.
        """
        frames, error = self.decode(data)
        if error is not None:
            raise error
        return frames

    def decode(
        self, data: bytes | bytearray | memoryview
    ) -> tuple[list[Frame], ProtocolError | None]:
        """Like :meth:`feed`, but return ``(frames, error)`` instead of raising.

        ``frames`` are the frames completed before the error, if there is one; this is
        what a session needs to deliver what arrived intact before the garbage.
        """
        if self._error is not None:
            return [], self._error
        buf = self._buf
        if self._paused:
            buf += data
            return [], None
        if buf:
            buf += data
            src: bytes | bytearray | memoryview = buf
        else:
            # Common case on a busy link: parse straight out of the caller's buffer and
            # copy only the incomplete tail.
            src = data
        frames: list[Frame] = []
        pos = 0
        end = len(src)
        max_message = self.max_message
        tags = self._tags
        trailer = CRC_SIZE if tags is None else CRC_SIZE + TAG_SIZE
        with memoryview(src) as view:
            while True:
                avail = end - pos
                if avail < HEADER_SIZE:
                    # Each magic byte is judged as soon as it is there.
                    if (avail >= 1 and view[pos] != _MAGIC0) or (
                        avail >= 2 and view[pos + 1] != _MAGIC1
                    ):
                        self._error = ProtocolError(CloseCode.PROTOCOL, "bad magic")
                    break
                if view[pos] != _MAGIC0 or view[pos + 1] != _MAGIC1:
                    self._error = ProtocolError(CloseCode.PROTOCOL, "bad magic")
                    break
                ftype, flags, length, seq, ack = _HEADER_FIELDS.unpack_from(view, pos)
                if ftype in _DATA_INTS:
                    if flags or length > max_message or seq == 0:
                        self._error = _header_error(ftype, flags, length, seq, max_message)
                        break
                else:
                    bounds = _CONTROL_LENGTHS.get(ftype)
                    if bounds is None or flags or not bounds[0] <= length <= bounds[1] or seq:
                        self._error = _header_error(ftype, flags, length, seq, max_message)
                        break
                stop = pos + HEADER_SIZE + length
                if end < stop + CRC_SIZE:
                    break
                (crc,) = _CRC.unpack_from(view, stop)
                if zlib.crc32(view[pos:stop]) != crc:
                    self._error = ProtocolError(
                        CloseCode.BAD_CRC, f"CRC mismatch in {_type_name(ftype)} frame"
                    )
                    break
                if tags is not None:
                    # The CRC first (noise), then the tag (tampering), as §6 orders them.
                    if end < stop + trailer:
                        break
                    tag_at = stop + CRC_SIZE
                    self._error = tags.check(view[pos:stop], view[tag_at : tag_at + TAG_SIZE])
                    if self._error is not None:
                        break
                payload = bytes(view[pos + HEADER_SIZE : stop])
                frames.append(Frame(_TYPE_OF[ftype], seq, ack, payload))
                pos = stop + trailer
                if ftype == _AUTH and tags is None:
                    self._paused = True
                    break
            # A dead decoder keeps nothing; a live one keeps the incomplete tail.
            keep_tail = self._error is None and src is not buf
            tail = bytes(view[pos:]) if keep_tail else b""
        if src is buf:
            if self._error is not None:
                buf.clear()
            elif pos:
                # CPython moves the start pointer of a bytearray for a front deletion,
                # so this is cheap even for a large buffer.
                del buf[:pos]
        elif tail:
            buf += tail
        return frames, self._error

    def whole_data_frame(self, data: bytes | bytearray | memoryview) -> Frame | None:
        """The frame, if ``data`` is exactly one whole, valid data frame and nothing is
        buffered; else None and nothing changed (give ``data`` to :meth:`decode`) — or
        None with :attr:`error` set, on a keyed link whose tag was wrong.

        Why: one message per read is what an echo or a request/response link sees, and
        the general loop's bookkeeping for everything else is a third of its cost.
        """
        if self._buf or self._paused or self._error is not None:
            return None
        tags = self._tags
        trailer = CRC_SIZE if tags is None else CRC_SIZE + TAG_SIZE
        n = len(data)
        if n < HEADER_SIZE + trailer:
            return None
        magic, ftype, flags, length, seq, ack = _HEADER.unpack_from(data)
        stop = HEADER_SIZE + length
        if (n != stop + trailer or magic != MAGIC or (ftype != _BINARY and ftype != _TEXT)
                or flags or length > self.max_message or not seq):
            return None
        view = memoryview(data)
        if zlib.crc32(view[:stop]) != _CRC.unpack_from(data, stop)[0]:
            return None  # decode() reports it, in its order of rules
        if tags is not None:
            self._error = tags.check(view[:stop], view[stop + CRC_SIZE:])
            if self._error is not None:
                return None
        return Frame(_TYPE_OF[ftype], seq, ack, bytes(view[HEADER_SIZE:stop]))


def _type_name(ftype: int) -> str:
    try:
        return FrameType(ftype).name
    except ValueError:
        return f"type {ftype}"


def _header_error(ftype: int, flags: int, length: int, seq: int, max_message: int) -> ProtocolError:
    """The error for a header that failed the fast check, in the doc's order of rules."""
    if not FrameType.HELLO <= ftype <= FrameType.AUTH:
        return ProtocolError(CloseCode.UNKNOWN_TYPE, f"unknown frame type {ftype}")
    name = FrameType(ftype).name
    if flags:
        return ProtocolError(CloseCode.PROTOCOL, f"flags 0x{flags:02x} set in {name} frame")
    if ftype in _DATA_TYPES:
        if length > max_message:
            return MessageTooLarge(
                length, max_message,
                f"{name} frame of {length} bytes exceeds max_message {max_message}",
            )
        return ProtocolError(CloseCode.PROTOCOL, f"{name} frame with seq 0")
    low, high = _CONTROL_LENGTHS[ftype]
    if not low <= length <= high:
        if length > CONTROL_MAX:
            return MessageTooLarge(
                length, high, f"{name} frame of {length} bytes (allowed {low}..{high})"
            )
        return ProtocolError(
            CloseCode.PROTOCOL, f"{name} frame of {length} bytes (allowed {low}..{high})"
        )
    return ProtocolError(CloseCode.PROTOCOL, f"{name} frame with seq {seq} (must be 0)")
