"""SLIP framing (RFC 1055) as the ESP ROM serial loader uses it.

Every frame is wrapped in END bytes (0xC0); 0xC0 and 0xDB inside a frame are
escaped as 0xDB 0xDC and 0xDB 0xDD. The decoder is incremental: feed it bytes
as they arrive and collect whole frames.
"""

from __future__ import annotations

END = 0xC0
ESC = 0xDB
ESC_END = 0xDC
ESC_ESC = 0xDD


def encode(payload: bytes) -> bytes:
    """Return ``payload`` as one SLIP frame, END bytes on both sides."""
    body = payload.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc")
    return b"\xc0" + body + b"\xc0"


class SlipDecoder:
    """Incremental SLIP decoder.

    Bytes outside a frame are ignored, as the ROM does with line noise. A frame
    with an invalid escape sequence is dropped whole, and the decoder resyncs on
    the next END byte. Back-to-back END bytes do not produce empty frames.
    """

    def __init__(self, max_frame: int = 64 * 1024) -> None:
        self._buf = bytearray()
        self._in_frame = False
        self._escaped = False
        self._bad = False
        self._max_frame = max_frame
        #: Frames dropped because of a bad escape or an oversize body.
        self.dropped = 0

    def reset(self) -> None:
        """Forget any partial frame."""
        self._buf.clear()
        self._in_frame = False
        self._escaped = False
        self._bad = False

    def feed(self, data: bytes) -> list[bytes]:
        """Consume ``data`` and return the frames it completed, in order."""
        frames: list[bytes] = []
        for b in data:
            if b == END:
                if self._in_frame and (self._buf or self._bad):
                    if self._bad or self._escaped:
                        self.dropped += 1
                    else:
                        frames.append(bytes(self._buf))
                    self._buf.clear()
                    self._escaped = False
                    self._bad = False
                # An END both closes a frame and may open the next one: esptool
                # and the ROM both send C0 <body> C0 with no shared delimiter.
                self._in_frame = True
                continue
            if not self._in_frame or self._bad:
                continue
            if self._escaped:
                self._escaped = False
                if b == ESC_END:
                    self._buf.append(END)
                elif b == ESC_ESC:
                    self._buf.append(ESC)
                else:
                    self._bad = True
                    continue
            elif b == ESC:
                self._escaped = True
                continue
            else:
                self._buf.append(b)
            if len(self._buf) > self._max_frame:
                self._bad = True
                self._buf.clear()
        return frames
