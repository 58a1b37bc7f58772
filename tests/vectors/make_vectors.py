"""Generate tests/vectors/frames.json, the wire-protocol vectors shared by Python and C++.

Run from the repo root: ``python tests/vectors/make_vectors.py``. The output is
deterministic (no randomness), so a re-run reproduces the committed file byte for byte.

Bytes are built here with plain ``struct`` + ``zlib.crc32`` rather than with the library
codec, so the vectors are an independent statement of docs/protocol.md.

Conventions the consumers rely on:
- ``frames`` decode with any ``max_message`` >= 4096 (the largest payload is 4096 bytes).
- ``invalid`` entries give the decoder's ``max_message``; ``frames_before`` valid frames
  come out before the error with close ``code``/``error``. Some entries end right after
  the byte that is wrong (e.g. only the 16 header bytes of an oversized frame): the error
  must be reported without waiting for more.
- ``hellos`` payload decodes to the listed fields; ``invalid_hellos`` fail with ``code``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
import zlib
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("frames.json")
KEYED_OUT = Path(__file__).with_name("keyed.json")

TYPES = {"HELLO": 1, "TEXT": 2, "BINARY": 3, "ACK": 4, "PING": 5, "PONG": 6, "CLOSE": 7,
         "AUTH": 8}
CODES = {"NORMAL": 0, "PROTOCOL": 1, "BAD_CRC": 2, "TOO_LARGE": 3, "UNKNOWN_TYPE": 4,
         "VERSION": 5, "TIMEOUT": 6, "REPLACED": 7, "SEQUENCE": 8, "WINDOW": 9,
         "INVALID_TEXT": 10, "BUSY": 11, "AUTH": 12, "BAD_TAG": 13}
MAX = 0xFFFFFFFF


def header(ftype: int, length: int, seq: int, ack: int, flags: int = 0) -> bytes:
    return b"WS" + struct.pack(">BBIII", ftype, flags, length, seq, ack)


def frame(ftype: int, payload: bytes, seq: int = 0, ack: int = 0, flags: int = 0) -> bytes:
    body = header(ftype, len(payload), seq, ack, flags) + payload
    return body + struct.pack(">I", zlib.crc32(body))


def hello_payload(max_message: int, window: int, keepalive_ms: int, session: int,
                  resume: int, version: int = 1, r1: int = 0, r2: int = 0,
                  extra: bytes = b"") -> bytes:
    return struct.pack(">BBHIIIQQ", version, r1, r2, max_message, window, keepalive_ms,
                       session, resume) + extra


def frames() -> list[dict[str, Any]]:
    out = []

    def add(name: str, tname: str, payload: bytes, seq: int = 0, ack: int = 0) -> None:
        out.append({
            "name": name, "type": TYPES[tname], "flags": 0, "seq": seq, "ack": ack,
            "payload": payload.hex(), "bytes": frame(TYPES[tname], payload, seq, ack).hex(),
        })

    add("hello", "HELLO", hello_payload(4096, 8192, 1000, 0x0123456789ABCDEF, 0))
    add("hello_resume_with_ack", "HELLO",
        hello_payload(1 << 20, 2 << 20, 1000, 0xFEDCBA9876543210, 0x0123456789ABCDEF), ack=17)
    add("hello_64_bytes_extension", "HELLO",
        hello_payload(4096, 8192, 0, 1, 2, extra=bytes(range(32))))
    add("text_hi", "TEXT", b"Hi", seq=1)
    add("text_empty", "TEXT", b"", seq=1)
    add("text_utf8_non_ascii", "TEXT", "héllo wörld — ✓ 🎉 ESP8266".encode(), seq=42, ack=7)
    add("binary_empty", "BINARY", b"", seq=2, ack=1)
    add("binary_all_byte_values", "BINARY", bytes(range(256)), seq=3, ack=2)
    add("binary_seq_ack_max", "BINARY", b"\x00\xff", seq=MAX, ack=MAX)
    add("binary_max_size_4096", "BINARY",
        bytes((i * 31 + 7) & 0xFF for i in range(4096)), seq=1000, ack=999)
    add("text_looks_like_magic", "TEXT", b"WSWSWS", seq=5, ack=5)
    add("ack_zero", "ACK", b"")
    add("ack_max", "ACK", b"", ack=MAX)
    add("ping", "PING", bytes.fromhex("0102030405060708"), ack=3)
    add("ping_nonce_max", "PING", b"\xff" * 8)
    add("pong", "PONG", bytes.fromhex("0102030405060708"), ack=4)
    add("close_normal_no_reason", "CLOSE", b"\x00")
    add("close_bad_crc_reason", "CLOSE", b"\x02CRC mismatch", ack=9)
    add("close_utf8_reason_max_124", "CLOSE", b"\x01" + ("é" * 61 + "x").encode())
    add("close_busy", "CLOSE", b"\x0banother peer's session is live")
    return out


def invalid() -> list[dict[str, Any]]:
    out = []

    def add(name: str, data: bytes, code: str, frames_before: int = 0,
            max_message: int = 4096) -> None:
        out.append({"name": name, "max_message": max_message, "bytes": data.hex(),
                    "frames_before": frames_before, "code": CODES[code], "error": code})

    good = frame(TYPES["TEXT"], b"ok", 1, 0)
    # Rule 1: magic, each byte checked as soon as it arrives.
    add("bad_first_magic_byte_only", b"G", "PROTOCOL")
    add("http_request", b"GET / HTTP/1.1\r\n", "PROTOCOL")
    add("bad_second_magic_byte_only", b"W\x00", "PROTOCOL")
    add("bad_second_magic_byte_repeated", b"WW", "PROTOCOL")
    add("bad_first_magic_byte_swapped", b"SW", "PROTOCOL")
    add("bad_second_magic_byte_full_frame",
        b"WX" + frame(TYPES["ACK"], b"")[2:], "PROTOCOL")
    # Rule 2: header checks, in order; each vector gives only the 16 header bytes
    # (plus, where stated, more) so the error must come from the header alone.
    add("unknown_type_0", header(0, 0, 0, 0), "UNKNOWN_TYPE")
    # Type 8 is AUTH (§6): the first unknown type is 9.
    add("unknown_type_9", header(9, 0, 0, 0), "UNKNOWN_TYPE")
    add("unknown_type_255_with_flags", header(255, 0, 0, 0, flags=1), "UNKNOWN_TYPE")
    add("flags_set_text", header(TYPES["TEXT"], 2, 1, 0, flags=0x80), "PROTOCOL")
    add("flags_set_ack", header(TYPES["ACK"], 0, 0, 0, flags=1), "PROTOCOL")
    add("flags_before_length", header(TYPES["BINARY"], 5000, 1, 0, flags=1), "PROTOCOL")
    add("data_too_large_header_only", header(TYPES["BINARY"], 4097, 1, 0), "TOO_LARGE")
    add("data_too_large_max_length", header(TYPES["TEXT"], MAX, 1, 0), "TOO_LARGE")
    add("data_too_large_small_max", header(TYPES["BINARY"], 65, 1, 0), "TOO_LARGE",
        max_message=64)
    add("data_too_large_before_seq", header(TYPES["TEXT"], 4097, 0, 0), "TOO_LARGE")
    add("hello_short", header(TYPES["HELLO"], 31, 0, 0), "PROTOCOL")
    add("hello_over_64", header(TYPES["HELLO"], 65, 0, 0), "TOO_LARGE")
    add("ack_with_payload", header(TYPES["ACK"], 1, 0, 0), "PROTOCOL")
    add("ping_7_bytes", header(TYPES["PING"], 7, 0, 0), "PROTOCOL")
    add("pong_9_bytes", header(TYPES["PONG"], 9, 0, 0), "PROTOCOL")
    add("ping_huge", header(TYPES["PING"], 0x10000, 0, 0), "TOO_LARGE")
    add("close_empty", header(TYPES["CLOSE"], 0, 0, 0), "PROTOCOL")
    add("close_125", header(TYPES["CLOSE"], 125, 0, 0), "TOO_LARGE")
    add("control_length_before_seq", header(TYPES["PING"], 9, 5, 0), "PROTOCOL")
    add("text_seq_0", header(TYPES["TEXT"], 2, 0, 0), "PROTOCOL")
    add("binary_seq_0_empty", header(TYPES["BINARY"], 0, 0, 0), "PROTOCOL")
    add("ack_seq_nonzero", header(TYPES["ACK"], 0, 1, 0), "PROTOCOL")
    add("hello_seq_nonzero", header(TYPES["HELLO"], 32, 1, 0), "PROTOCOL")
    # Rule 3: CRC.
    bad = bytearray(frame(TYPES["TEXT"], b"Hi", 1, 0))
    bad[-1] ^= 0x01
    add("bad_crc_text", bytes(bad), "BAD_CRC")
    bad = bytearray(frame(TYPES["BINARY"], b"payload", 1, 0))
    bad[17] ^= 0x80
    add("bad_crc_flipped_payload_bit", bytes(bad), "BAD_CRC")
    bad = bytearray(frame(TYPES["ACK"], b"", 0, 3))
    bad[15] ^= 0x01
    add("bad_crc_flipped_ack_field", bytes(bad), "BAD_CRC")
    # Errors after a valid frame.
    add("valid_then_garbage", good + b"X", "PROTOCOL", frames_before=1)
    add("valid_then_bad_crc", good + bytes(frame(TYPES["PING"], bytes(8))[:-1]) + b"\x00",
        "BAD_CRC", frames_before=1)
    add("two_valid_then_unknown_type", good + frame(TYPES["ACK"], b"", 0, 1) + header(9, 0, 0, 0),
        "UNKNOWN_TYPE", frames_before=2)
    return out


def hellos() -> list[dict[str, Any]]:
    out = []

    def add(name: str, max_message: int, window: int, keepalive_ms: int, session: int,
            resume: int, extra: bytes = b"") -> None:
        out.append({
            "name": name, "version": 1, "max_message": max_message, "window": window,
            "keepalive_ms": keepalive_ms, "session": f"{session:016x}", "resume": f"{resume:016x}",
            "payload": hello_payload(max_message, window, keepalive_ms, session, resume,
                                     extra=extra).hex(),
        })

    add("device_defaults", 4096, 8192, 1000, 0x0123456789ABCDEF, 0)
    add("host_defaults_resume", 1 << 20, 2 << 20, 1000, 0xFEDCBA9876543210, 0x0123456789ABCDEF)
    add("minimum_window", 1, 21, 0, 1, 0)
    add("all_max", MAX - 20, MAX, MAX, 0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF)
    add("extra_bytes_ignored", 64, 84, 250, 0x8000000000000001, 2, extra=b"\xaa" * 32)
    return out


def invalid_hellos() -> list[dict[str, Any]]:
    out = []

    def add(name: str, payload: bytes, code: str) -> None:
        out.append({"name": name, "payload": payload.hex(), "code": CODES[code], "error": code})

    add("version_0", hello_payload(4096, 8192, 1000, 1, 0, version=0), "VERSION")
    add("version_3", hello_payload(4096, 8192, 1000, 1, 0, version=3), "VERSION")
    add("version_3_with_reserved_set",
        hello_payload(4096, 8192, 1000, 1, 0, version=3, r1=1, r2=0xFFFF), "VERSION")
    # These are checked by a side without a key: a v2 (keyed) HELLO is refused, never
    # answered unkeyed (docs/protocol.md §6).
    add("version_2_on_unkeyed_side", hello_payload(4096, 8192, 1000, 1, 0, version=2,
                                                   extra=bytes(16)), "AUTH")
    add("reserved_byte_1", hello_payload(4096, 8192, 1000, 1, 0, r1=1), "PROTOCOL")
    add("reserved_bytes_2_3", hello_payload(4096, 8192, 1000, 1, 0, r2=0x0100), "PROTOCOL")
    add("max_message_0", hello_payload(0, 8192, 1000, 1, 0), "PROTOCOL")
    add("window_below_max_plus_20", hello_payload(4096, 4115, 1000, 1, 0), "PROTOCOL")
    add("window_0", hello_payload(4096, 0, 1000, 1, 0), "PROTOCOL")
    # max_message + 20 overflows a u32: a C++ check written as `window < max + 20` wraps.
    add("max_message_u32_max_window_overflow", hello_payload(MAX, MAX, 1000, 1, 0), "PROTOCOL")
    add("max_message_near_u32_max", hello_payload(MAX - 19, MAX, 1000, 1, 0), "PROTOCOL")
    add("session_0", hello_payload(4096, 8192, 1000, 0, 5), "PROTOCOL")
    add("short_31_bytes", hello_payload(4096, 8192, 1000, 1, 0)[:31], "PROTOCOL")
    add("empty", b"", "PROTOCOL")
    return out


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def proof(key: bytes, role: bytes, h_d: bytes, h_a: bytes) -> bytes:
    transcript = (b"esp-hil WS v2" + struct.pack(">H", len(h_d)) + h_d
                  + struct.pack(">H", len(h_a)) + h_a)
    return _hmac(key, role + transcript)


def tagged(k_conn: bytes, direction: bytes, n: int, raw: bytes) -> bytes:
    """A frame as sent on a keyed link: ``raw`` (header, payload, CRC) and its 16-byte tag."""
    return raw + _hmac(k_conn, direction + struct.pack(">Q", n) + raw[:-4])[:16]


def keyed() -> dict[str, Any]:
    """One keyed connection, host dialing the device (docs/protocol.md §6), byte for byte.

    On the wire the handshake goes: the dialer's HELLO, the acceptor's HELLO, the dialer's
    AUTH, then (once the acceptor verified it and took the dialer) the acceptor's AUTH; no
    byte here depends on that order, since both proofs cover the same two HELLOs.
    ``dialer``/``acceptor`` hold each side's HELLO payload and AUTH; ``d_to_a``/``a_to_d``
    the tagged frames each side sends after its AUTH, in order (``n`` is the counter);
    ``rejected`` are single frames that a receiver which verified the peer's AUTH must
    refuse as its ``n``-th tagged frame from ``dir``, with ``code``.
    """
    key = bytes(range(0x20, 0x40))  # 32 bytes
    nonce_d = bytes.fromhex("00112233445566778899aabbccddeeff")
    nonce_a = bytes.fromhex("f0e1d2c3b4a5968778695a4b3c2d1e0f")
    h_d = hello_payload(1 << 20, 2 << 20, 1000, 0x1111222233334444, 0, version=2,
                        extra=nonce_d)
    h_a = hello_payload(1024, 3200, 1000, 0x5555666677778888, 0, version=2, extra=nonce_a)
    proof_d = proof(key, b"D", h_d, h_a)
    proof_a = proof(key, b"A", h_d, h_a)
    k_conn = _hmac(key, b"esp-hil WS v2 frames" + nonce_d + nonce_a)

    def stream(direction: bytes, frames: list[tuple[str, bytes, int, int]]) -> list[dict[str, Any]]:
        out = []
        for n, (tname, payload, seq, ack) in enumerate(frames):
            raw = frame(TYPES[tname], payload, seq, ack)
            out.append({"n": n, "type": TYPES[tname], "seq": seq, "ack": ack,
                        "payload": payload.hex(), "bytes": tagged(k_conn, direction, n, raw).hex()})
        return out

    d_to_a = stream(b"D", [("TEXT", b"hello device", 1, 0), ("BINARY", bytes(range(256)), 2, 1),
                           ("PING", bytes(8), 0, 1), ("ACK", b"", 0, 2),
                           ("CLOSE", b"\x00bye", 0, 2)])
    a_to_d = stream(b"A", [("TEXT", b"hello device", 1, 1), ("PONG", bytes(8), 0, 1),
                           ("BINARY", b"", 2, 2)])
    first = bytes.fromhex(d_to_a[0]["bytes"])
    second = bytes.fromhex(d_to_a[1]["bytes"])
    flipped_payload = bytearray(first)
    flipped_payload[16] ^= 0x01  # payload changed, CRC recomputed, tag left: tampering
    forged = frame(TYPES["TEXT"], bytes(flipped_payload[16:-20]), 1, 0)
    rejected = [
        {"name": "payload_altered_crc_fixed", "dir": "D", "n": 0,
         "bytes": (forged + first[-16:]).hex(), "code": CODES["BAD_TAG"], "error": "BAD_TAG"},
        {"name": "tag_bit_flipped", "dir": "D", "n": 0,
         "bytes": (first[:-1] + bytes([first[-1] ^ 0x80])).hex(),
         "code": CODES["BAD_TAG"], "error": "BAD_TAG"},
        {"name": "crc_wrong_is_noise_first", "dir": "D", "n": 0,
         "bytes": (first[:-20] + bytes(4) + first[-16:]).hex(),
         "code": CODES["BAD_CRC"], "error": "BAD_CRC"},
        # A replay: the first frame again where the second is due (its tag was for n = 0).
        {"name": "replayed_first_frame_as_second", "dir": "D", "n": 1,
         "bytes": first.hex(), "code": CODES["BAD_TAG"], "error": "BAD_TAG"},
        # Reordered: the second frame first.
        {"name": "second_frame_first", "dir": "D", "n": 0,
         "bytes": second.hex(), "code": CODES["BAD_TAG"], "error": "BAD_TAG"},
        # Reflected: the device's own frame sent back to it (direction A, not D).
        {"name": "reflected_acceptor_frame", "dir": "D", "n": 0,
         "bytes": a_to_d[0]["bytes"], "code": CODES["BAD_TAG"], "error": "BAD_TAG"},
        {"name": "untagged_frame", "dir": "D", "n": 0,
         "bytes": first[:-16].hex() + frame(TYPES["ACK"], b"").hex()[:32],
         "code": CODES["BAD_TAG"], "error": "BAD_TAG"},
    ]
    return {
        "protocol_version": 2,
        "key": key.hex(),
        "dialer": {"nonce": nonce_d.hex(), "hello": h_d.hex(),
                   "hello_frame": frame(TYPES["HELLO"], h_d).hex(), "proof": proof_d.hex(),
                   "auth_frame": frame(TYPES["AUTH"], proof_d).hex()},
        "acceptor": {"nonce": nonce_a.hex(), "hello": h_a.hex(),
                     "hello_frame": frame(TYPES["HELLO"], h_a).hex(), "proof": proof_a.hex(),
                     "auth_frame": frame(TYPES["AUTH"], proof_a).hex()},
        "k_conn": k_conn.hex(),
        "d_to_a": d_to_a,
        "a_to_d": a_to_d,
        "rejected": rejected,
        "wrong_key_proofs": {
            "key": bytes(range(1, 33)).hex(),
            "dialer": proof(bytes(range(1, 33)), b"D", h_d, h_a).hex(),
            "acceptor": proof(bytes(range(1, 33)), b"A", h_d, h_a).hex(),
        },
        "invalid_hellos_keyed_side": [
            {"name": "v1_hello_to_keyed_side", "code": CODES["AUTH"], "error": "AUTH",
             "payload": hello_payload(4096, 8192, 1000, 1, 0).hex()},
            {"name": "v2_hello_without_nonce", "code": CODES["PROTOCOL"], "error": "PROTOCOL",
             "payload": hello_payload(4096, 8192, 1000, 1, 0, version=2).hex()},
            {"name": "v2_hello_short_nonce", "code": CODES["PROTOCOL"], "error": "PROTOCOL",
             "payload": hello_payload(4096, 8192, 1000, 1, 0, version=2, extra=bytes(15)).hex()},
        ],
    }


def main() -> None:
    doc = {"protocol_version": 1, "frames": frames(), "hellos": hellos(),
           "invalid": invalid(), "invalid_hellos": invalid_hellos()}
    OUT.write_text(json.dumps(doc, indent=1, ensure_ascii=True) + "\n")
    print(f"wrote {OUT}: " + ", ".join(f"{len(v)} {k}" for k, v in doc.items()
                                        if isinstance(v, list)))
    KEYED_OUT.write_text(json.dumps(keyed(), indent=1, ensure_ascii=True) + "\n")
    print(f"wrote {KEYED_OUT}")


if __name__ == "__main__":
    main()
