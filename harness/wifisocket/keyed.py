"""The keyed link's cryptography (docs/protocol.md §6): proofs, ``K_conn``, frame tags. Sans-IO.

HMAC-SHA256 is the standard library's (OpenSSL underneath). A :class:`Key` holds the
pre-shared key and never shows it (repr, str, pickling); a :class:`KeyedConnection` is the
handshake state of one connection (our nonce, both HELLOs, the proofs); :class:`Sealer` and
:class:`TagCheck` tag and check the frames of one direction.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from typing import NoReturn

from harness.errors import AuthenticationFailed, ProtocolError
from harness.wifisocket.frame import TAG_SIZE, CloseCode

__all__ = [
    "ACCEPTOR",
    "DIALER",
    "KEY_MAX",
    "KEY_MIN",
    "NONCE_SIZE",
    "PROOF_SIZE",
    "Key",
    "KeyLike",
    "KeyedConnection",
    "Sealer",
    "TagCheck",
]

KEY_MIN = 16
KEY_MAX = 32
NONCE_SIZE = 16
PROOF_SIZE = 32
#: Role bytes: who opened the TCP connection, not who is host or device.
DIALER = b"D"
ACCEPTOR = b"A"

_TRANSCRIPT_LABEL = b"esp-hil WS v2"
_FRAMES_LABEL = b"esp-hil WS v2 frames"
_U16 = struct.Struct(">H")
_PREFIX = struct.Struct(">cQ")  # a tag's dir || u64(n)
_SHA256 = hashlib.sha256


#: A pre-shared key as the API takes it: bytes, a hex str, or None (unkeyed).
KeyLike = bytes | bytearray | str | None


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, _SHA256).digest()


class Key:
    """A pre-shared key of 16 to 32 bytes: ``bytes`` or a hex string (as typed on the
    device's console, ``key <hex>``). Its value never appears in a repr, a message or a log.

    Raises:
        ValueError: another length, or a string that is not hex (the message names the
            length only).
        TypeError: neither bytes-like nor str.
    """

    __slots__ = ("_secret",)

    def __init__(self, key: bytes | bytearray | memoryview | str) -> None:
        if isinstance(key, str):
            try:
                secret = bytes.fromhex(key)
            except ValueError:
                raise ValueError("key: a str key must be hex digits") from None
        elif isinstance(key, (bytes, bytearray, memoryview)):
            secret = bytes(key)
        else:
            raise TypeError(f"key must be bytes or a hex str, not {type(key).__name__}")
        if not KEY_MIN <= len(secret) <= KEY_MAX:
            raise ValueError(f"key must be {KEY_MIN} to {KEY_MAX} bytes, got {len(secret)}")
        self._secret = secret

    def __repr__(self) -> str:
        return "<Key (hidden)>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Key is not picklable")

    def proof(self, role: bytes, hello_d: bytes, hello_a: bytes) -> bytes:
        """``proof(role)`` over the transcript of the two HELLO payloads."""
        return _hmac(self._secret, b"".join((
            role, _TRANSCRIPT_LABEL, _U16.pack(len(hello_d)), hello_d,
            _U16.pack(len(hello_a)), hello_a,
        )))

    def connection_key(self, nonce_d: bytes, nonce_a: bytes) -> bytes:
        """``K_conn`` of a connection."""
        return _hmac(self._secret, _FRAMES_LABEL + nonce_d + nonce_a)


class KeyedConnection:
    """The keyed handshake of one connection, from our HELLO to the peer's verified AUTH.

    Args:
        key: the pre-shared key.
        role: :data:`DIALER` or :data:`ACCEPTOR`.
        nonce: our nonce (default: 16 bytes of ``os.urandom``; tests give their own).
    """

    __slots__ = ("_key", "_own_hello", "_peer_proof", "k_conn", "nonce", "peer_role", "proof",
                 "role", "verified")

    def __init__(self, key: Key, role: bytes, nonce: bytes | None = None) -> None:
        self._key = key
        self.role = role
        self.peer_role = ACCEPTOR if role == DIALER else DIALER
        self.nonce = os.urandom(NONCE_SIZE) if nonce is None else nonce
        self._own_hello = b""
        self.k_conn = b""
        #: Our proof, once the peer's HELLO is in.
        self.proof = b""
        self._peer_proof = b""
        self.verified = False

    def __repr__(self) -> str:
        return f"<KeyedConnection role={self.role.decode()} verified={self.verified}>"

    def sent_hello(self, payload: bytes) -> None:
        """Our HELLO payload, as sent."""
        self._own_hello = bytes(payload)

    def peer_hello(self, payload: bytes, session: int, own_session: int) -> None:
        """The peer's (valid v2) HELLO payload as received: compute our proof and ``K_conn``.

        Raises:
            AuthenticationFailed: the HELLO is ours reflected (our nonce or session id).
        """
        peer_nonce = bytes(payload[32:48])
        if hmac.compare_digest(peer_nonce, self.nonce) or session == own_session:
            raise AuthenticationFailed("reflected HELLO")
        peer = bytes(payload)  # as received, extension bytes included
        if self.role == DIALER:
            hello_d, hello_a, nonce_d, nonce_a = self._own_hello, peer, self.nonce, peer_nonce
        else:
            hello_d, hello_a, nonce_d, nonce_a = peer, self._own_hello, peer_nonce, self.nonce
        self.proof = self._key.proof(self.role, hello_d, hello_a)
        self._peer_proof = self._key.proof(self.peer_role, hello_d, hello_a)
        self.k_conn = self._key.connection_key(nonce_d, nonce_a)

    def verify(self, proof: bytes) -> None:
        """Check the peer's AUTH payload (constant time).

        Raises:
            AuthenticationFailed: "authentication failed".
        """
        if not hmac.compare_digest(proof, self._peer_proof):
            raise AuthenticationFailed("authentication failed")
        self.verified = True

    def sealer(self) -> Sealer:
        """The tagger of what we send on this connection."""
        return Sealer(self.k_conn, self.role)

    def tag_check(self) -> TagCheck:
        """The checker of what the peer sends on this connection."""
        return TagCheck(self.k_conn, self.peer_role)


class _Tags:
    """HMAC(K_conn, dir || u64(n) || frame[0:16+L])[0:16], n counting this direction's frames.

    RFC 2104 over hashlib's SHA-256 midstates of the two padded key blocks, taken once per
    connection: each tag is then two C-level hash copies, updates and digests, without the
    Python frames ``hmac.HMAC.copy``/``update``/``digest`` add (two tags per message, on
    the hot path of every keyed send and receive). Checked against ``hmac`` by the tests.
    """

    __slots__ = ("_dir", "_inner", "_outer", "n")

    def __init__(self, k_conn: bytes, direction: bytes) -> None:
        block = k_conn.ljust(_SHA256().block_size, b"\0")  # K_conn is 32 bytes: no pre-hash
        self._inner = _SHA256(bytes(b ^ 0x36 for b in block))
        self._outer = _SHA256(bytes(b ^ 0x5C for b in block))
        self._dir = direction
        self.n = 0

    def _tag(self, covered: bytes | memoryview) -> bytes:
        inner = self._inner.copy()
        inner.update(_PREFIX.pack(self._dir, self.n))
        inner.update(covered)
        outer = self._outer.copy()
        outer.update(inner.digest())
        self.n += 1
        return outer.digest()[:TAG_SIZE]


class Sealer(_Tags):
    """Appends the tag to each frame we send, in the order they go out."""

    __slots__ = ()

    def seal(self, raw: bytes) -> bytes:
        """``raw`` (header, payload, CRC) followed by its tag."""
        return raw + self._tag(memoryview(raw)[:-4])


class TagCheck(_Tags):
    """Checks the tag of each frame the peer sends, in order."""

    __slots__ = ()

    def check(self, covered: memoryview, tag: memoryview) -> ProtocolError | None:
        """None if ``tag`` is right for ``covered`` (header and payload), else BAD_TAG."""
        if hmac.compare_digest(self._tag(covered), tag):
            return None
        return ProtocolError(CloseCode.BAD_TAG, f"bad tag on frame {self.n - 1} of this connection")
