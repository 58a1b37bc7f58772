"""Write the seed corpora of the libFuzzer targets from ``tests/vectors/frames.json``.

Usage: ``python3 firmware/fuzz/make_corpus.py OUT_DIR`` writes ``OUT_DIR/frame/*`` (inputs
of ``fuzz_frame``), ``OUT_DIR/session/*`` (inputs of ``fuzz_session``) and ``OUT_DIR/keyed/*``
(inputs of ``fuzz_keyed``, also from ``tests/vectors/keyed.json``). The output is a pure
function of the vectors: file names are the content's SHA-1, so re-running changes nothing
and stale seeds are removed.

The byte layouts written here are the ones documented at the top of ``fuzz_frame.cpp`` and
``fuzz_session.cpp``; keep them in step.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors" / "frames.json"
KEYED_VECTORS = ROOT / "tests" / "vectors" / "keyed.json"

# fuzz_frame.cpp: byte 0 selects max_message from this table (bits 0-2) and the buffer.
FRAME_MAX_MESSAGES = [0, 1, 8, 64, 124, 300, 1024, 4096]
CAP_EXACT, CAP_CONTROL, CAP_FULL = 0, 2, 3

HELLO, TEXT, BINARY, ACK, PING, PONG, CLOSE = range(1, 8)


def frame_bytes(ftype: int, payload: bytes, seq: int = 0, ack: int = 0) -> bytes:
    """One protocol v1 frame (docs/protocol.md section 1), built independently of the codecs."""
    body = b"WS" + struct.pack(">BBIII", ftype, 0, len(payload), seq, ack) + payload
    return body + struct.pack(">I", zlib.crc32(body))


def frame_input(stream: bytes, max_message: int = 4096, cap_mode: int = CAP_EXACT,
                chunks: tuple[int, ...] = (0,), fix_crcs: bool = False,
                discard_mask: int = 0) -> bytes:
    """An input of fuzz_frame: configuration, chunk schedule, discard mask, then the stream."""
    if not 1 <= len(chunks) <= 8:
        raise ValueError("1 to 8 chunk sizes")
    cfg = FRAME_MAX_MESSAGES.index(max_message) | (cap_mode << 3)
    chunk_cfg = (len(chunks) - 1) | (8 if fix_crcs else 0)
    return bytes([cfg, chunk_cfg, discard_mask, *chunks]) + stream


def frame_seeds(vectors: dict[str, Any]) -> list[bytes]:
    """Every vector whole and in a few chunkings, the valid ones also back to back."""
    seeds = []
    for vec in vectors["frames"]:
        data = bytes.fromhex(vec["bytes"])
        for chunks in ((0,), (1,), (3, 17), (16, 1, 0)):
            seeds.append(frame_input(data, chunks=chunks))
        # The same frame in a decoder whose buffer is too small (TOO_LARGE or discarded).
        seeds.append(frame_input(data, max_message=64, cap_mode=CAP_CONTROL))
        seeds.append(frame_input(data, max_message=64, cap_mode=CAP_CONTROL, discard_mask=0xFF))
    for vec in vectors["invalid"]:
        data = bytes.fromhex(vec["bytes"])
        for chunks in ((0,), (1,)):
            seeds.append(frame_input(data, max_message=vec["max_message"], chunks=chunks))
    for vec in vectors["hellos"] + vectors["invalid_hellos"]:
        payload = bytes.fromhex(vec["payload"])
        if 32 <= len(payload) <= 64:
            seeds.append(frame_input(frame_bytes(HELLO, payload), chunks=(5,)))
        else:
            seeds.append(frame_input(payload))  # checkHello sees the raw stream too
    stream = b"".join(bytes.fromhex(v["bytes"]) for v in vectors["frames"])
    for chunks in ((0,), (7, 1, 200)):
        seeds.append(frame_input(stream, max_message=4096, cap_mode=CAP_FULL, chunks=chunks))
    small = b"".join(bytes.fromhex(v["bytes"]) for v in vectors["frames"]
                     if len(v["bytes"]) // 2 <= 144)
    seeds.append(frame_input(small, max_message=124, cap_mode=CAP_CONTROL, chunks=(2, 0)))
    seeds.append(frame_input(small, max_message=8, cap_mode=CAP_EXACT, discard_mask=0x55))
    return seeds


class SessionProgram:
    """Builds an input of fuzz_session: a configuration, then operations (see its header)."""

    def __init__(self, layout: int = 0, keepalive: int = 2, handshake: int = 2,
                 dead: int = 1, start: int = 1, session: int = 7) -> None:
        cfg = layout | keepalive << 2 | handshake << 4 | dead << 6
        self.data = bytearray([cfg]) + struct.pack(">HB", start, session)

    def _op(self, op: int, slot: int, *args: bytes | int) -> SessionProgram:
        self.data += bytes([op, slot + 1])
        for arg in args:
            self.data += bytes([arg]) if isinstance(arg, int) else arg
        return self

    def open(self) -> SessionProgram:
        return self._op(0, 0)

    def hello(self, slot: int, peer: int = 0, resume: int = 0, ack: int = 0) -> SessionProgram:
        """A HELLO with the host's default limits. ``peer``: 0 = A, 1 = B, 3 = session 0.
        ``resume``: 0 = none, 1 = this device's session. ``ack``: 0 = all sent, 1 = zero."""
        return self._op(1, slot, peer | resume << 2 | ack << 4)

    def data_frame(self, slot: int, length: int, text: bool = True, seq: int = 0,
                   ack: int = 0, fill: int = 0x61) -> SessionProgram:
        """``seq``: 0 = the next, 1 = a duplicate. ``ack``: 0 = all sent, 1 = zero."""
        if length > 255:
            raise ValueError("use a u8 length")
        return self._op(2, slot, int(text) | seq << 1 | ack << 3 | 2 << 5, length, fill)

    def ping(self, slot: int) -> SessionProgram:
        return self._op(3, slot, 1, struct.pack(">II", 0x01020304, 0x05060708))

    def pong_last(self, slot: int) -> SessionProgram:
        return self._op(3, slot, 0x80 | 2)

    def raw(self, slot: int, data: bytes) -> SessionProgram:
        for i in range(0, len(data), 255):
            piece = data[i : i + 255]
            self._op(4, slot, len(piece), piece)
        return self

    def fragment(self, size: int) -> SessionProgram:
        return self._op(5, 0, size)

    def tick(self, step: int) -> SessionProgram:
        """``step`` indexes 0, 1, 10, 999, 1000, 2999, 10000, 2**31 - 1 ms."""
        return self._op(6, 0, step)

    def drain(self, slot: int, budget: int = 3) -> SessionProgram:
        return self._op(7, slot, budget)

    def drain_all(self) -> SessionProgram:
        return self._op(8, 0)

    def receive(self, cap: int = 3) -> SessionProgram:
        return self._op(9, 0, cap)

    def send(self, length: int, text: bool = False) -> SessionProgram:
        return self._op(10, 0, int(text) | 1 << 1, length)

    def lost(self, slot: int) -> SessionProgram:
        return self._op(11, slot)

    def close(self) -> SessionProgram:
        return self._op(13, 0)

    def restart(self) -> SessionProgram:
        return self._op(14, 0)

    def evict(self) -> SessionProgram:
        return self._op(16, 0)

    def bytes(self) -> bytes:
        return bytes(self.data)


def session_seeds(vectors: dict[str, Any]) -> list[bytes]:
    """Vectors fed after a HELLO, and short scenarios of the session's features."""
    seeds = []
    for layout in range(4):
        for vec in vectors["frames"] + vectors["invalid"]:
            prog = SessionProgram(layout=layout).open().hello(0)
            prog.raw(0, bytes.fromhex(vec["bytes"])).drain_all().receive().send(5).drain_all()
            seeds.append(prog.bytes())
    for vec in vectors["hellos"] + vectors["invalid_hellos"]:
        payload = bytes.fromhex(vec["payload"])
        if 32 <= len(payload) <= 64:
            prog = SessionProgram().open().raw(0, frame_bytes(HELLO, payload))
            seeds.append(prog.send(3).drain_all().bytes())
    # Echo: data in, the application takes it and answers, acks flow.
    echo = SessionProgram(layout=1).open().hello(0)
    for i in range(6):
        echo.data_frame(0, 10 + i).receive().send(10 + i, text=True).drain(0, 1).drain_all()
    seeds.append(echo.bytes())
    # Resume: unacknowledged data, the connection drops, the peer comes back and resumes.
    resume = SessionProgram(layout=2).open().hello(0, ack=1).send(40).send(41).drain(0, 2)
    resume.lost(0).open().hello(0, resume=1, ack=1).drain_all().data_frame(0, 3).drain_all()
    seeds.append(resume.bytes())
    # The peer restarts (new session B): what was unacknowledged is lost.
    restart = SessionProgram(layout=3).open().hello(0).send(20).lost(0).open().hello(0, peer=1)
    seeds.append(restart.drain_all().bytes())
    # A newer connection replaces the older; the older is told REPLACED.
    replaced = SessionProgram().open().open().hello(0).hello(1, resume=1).drain_all()
    seeds.append(replaced.bytes())
    # Keepalive: silence makes the device PING; the peer answers; then it goes silent.
    keep = SessionProgram().open().hello(0).tick(4).drain_all().pong_last(0).tick(6).tick(6)
    seeds.append(keep.drain_all().bytes())
    # Every slot taken by connections without HELLO: the oldest is evicted for a newcomer.
    flood = SessionProgram().open().open().open().open().raw(1, b"WS\x01").evict().open()
    seeds.append(flood.hello(0).drain_all().evict().drain_all().bytes())
    # No HELLO within the handshake bound; garbage; application close and restart.
    seeds.append(SessionProgram().open().tick(6).drain_all().bytes())
    seeds.append(SessionProgram().open().raw(0, b"GET / HTTP/1.1\r\n").drain_all().bytes())
    seeds.append(SessionProgram().open().hello(0).send(9).close().restart().open().bytes())
    # Fragmented delivery of everything, and a clock about to wrap.
    frag = SessionProgram(start=0xFFFF).fragment(1).open().hello(0).data_frame(0, 30).ping(0)
    seeds.append(frag.tick(7).tick(7).drain_all().receive().bytes())
    return seeds


class KeyedProgram(SessionProgram):
    """An input of fuzz_keyed (fuzz_session.cpp built with FUZZ_KEYED): ops are taken % 19,
    a HELLO reads one more byte (its nonce and version), 17 is the peer's AUTH, 18 setKey."""

    ACCEPTED_OPEN = 152  # % 19 == 0 with bit 7 set: the device accepts the connection

    def open_accepted(self) -> KeyedProgram:
        self._op(self.ACCEPTED_OPEN, 0)
        return self

    def hello(self, slot: int, peer: int = 0, resume: int = 0, ack: int = 0,
              nonce: int = 1) -> KeyedProgram:
        """``nonce``: 1 = a counter, 2 = the device's own (reflected), 3 = zeros; +4 = the
        other version (a keyed HELLO to an unkeyed side or the reverse)."""
        self._op(1, slot, peer | resume << 2 | ack << 4, nonce)
        return self

    def auth(self, slot: int, variant: int = 0) -> KeyedProgram:
        """0 = the right proof, 1 = the wrong key's, 2 = the device's own, reflected; +4 =
        an acceptor answering before it read the device's AUTH."""
        self._op(17, slot, variant)
        return self

    def set_key(self, variant: int) -> KeyedProgram:
        """0 = the key, 1 = another, 2 = clear, 3 = a refused length."""
        self._op(18, 0, variant)
        return self


def keyed_seeds(vectors: dict[str, Any], keyed: dict[str, Any]) -> list[bytes]:
    """Keyed handshakes both ways, right and wrong, then data, tampering, key changes."""
    seeds = []

    def accepted(layout: int = 0) -> KeyedProgram:
        return KeyedProgram(layout=layout).open_accepted().hello(0).auth(0).drain_all()

    def dialled(layout: int = 0) -> KeyedProgram:
        # The device's HELLO, ours, its AUTH, ours (docs/protocol.md §6).
        prog = KeyedProgram(layout=layout).open().drain_all()
        prog.hello(0).drain_all().auth(0).drain_all()
        return prog

    for make in (accepted, dialled):
        for layout in range(4):
            echo = make(layout)
            for i in range(4):
                echo.data_frame(0, 10 + i).receive().send(10 + i, text=True).drain(0, 1)
            seeds.append(echo.drain_all().tick(4).drain_all().pong_last(0).bytes())
    # Every rejected frame of keyed.json, and the frame vectors, raw after a handshake.
    for vec in keyed["rejected"] + vectors["frames"]:
        seeds.append(accepted().raw(0, bytes.fromhex(vec["bytes"])).drain_all().bytes())
    for vec in keyed["invalid_hellos_keyed_side"]:
        payload = bytes.fromhex(vec["payload"])
        seeds.append(KeyedProgram().open_accepted().raw(0, frame_bytes(HELLO, payload))
                     .drain_all().bytes())
    # Wrong proofs, reflection, the other version, no AUTH within the bound.
    for variant in (1, 2, 3):
        seeds.append(KeyedProgram().open_accepted().hello(0).auth(0, variant).drain_all()
                     .bytes())
    seeds.append(KeyedProgram().open().drain_all().hello(0, nonce=2).drain_all().bytes())
    seeds.append(KeyedProgram().open_accepted().hello(0, nonce=5).drain_all().bytes())
    seeds.append(KeyedProgram().open_accepted().hello(0).drain_all().tick(6).drain_all()
                 .bytes())
    # A stranger's handshakes while the owner is connected; eviction; resume after a drop.
    owner = accepted().send(30).drain(0, 2)
    owner.open_accepted().hello(1, peer=1).auth(1, 1).open_accepted().hello(2).evict()
    seeds.append(owner.lost(0).open_accepted().hello(0, resume=1).auth(0).drain_all().bytes())
    # A stranger with the key while the owner is live: BUSY after its AUTH, no device AUTH.
    seeds.append(accepted().open_accepted().hello(1, peer=1).auth(1).drain_all().bytes())
    # The device dialled and is refused (BUSY, untagged: the acceptor sent no AUTH), or the
    # acceptor answers out of turn.
    busy = frame_bytes(CLOSE, bytes([11]) + b"busy")
    seeds.append(KeyedProgram().open().drain_all().hello(0).drain_all().raw(0, busy)
                 .drain_all().bytes())
    seeds.append(KeyedProgram().open().drain_all().hello(0).auth(0, 4).drain_all().bytes())
    # Key changes mid-handshake and mid-session; refused lengths.
    keys = KeyedProgram().open_accepted().hello(0).drain_all().set_key(1).auth(0)
    keys.set_key(3).set_key(2).open().hello(1, nonce=4).drain_all().set_key(0).open_accepted()
    seeds.append(keys.hello(2).auth(2).data_frame(2, 5).receive().drain_all().bytes())
    return seeds


def write(out: Path, name: str, seeds: list[bytes]) -> int:
    """Write ``seeds`` into ``out/name`` (content-named), removing files no longer wanted."""
    target = out / name
    target.mkdir(parents=True, exist_ok=True)
    wanted = {hashlib.sha1(s).hexdigest(): s for s in seeds}
    for old in target.iterdir():
        if old.name not in wanted:
            old.unlink()
    for digest, seed in wanted.items():
        path = target / digest
        if not path.exists():
            path.write_bytes(seed)
    return len(wanted)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path,
                        help="directory to write frame/, session/ and keyed/ into")
    parser.add_argument("--vectors", type=Path, default=VECTORS)
    parser.add_argument("--keyed-vectors", type=Path, default=KEYED_VECTORS)
    args = parser.parse_args(argv)
    vectors = json.loads(args.vectors.read_text())
    keyed = json.loads(args.keyed_vectors.read_text())
    n_frame = write(args.out, "frame", frame_seeds(vectors))
    n_session = write(args.out, "session", session_seeds(vectors))
    n_keyed = write(args.out, "keyed", keyed_seeds(vectors, keyed))
    print(f"seeds: {n_frame} frame, {n_session} session, {n_keyed} keyed in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
