"""The device's C++ codec and session core, checked from pytest.

Compiles ``firmware/test/vector_tool.cpp`` and ``firmware/test/test_session.cpp`` together with
the portable core of ``firmware/lib/WiFiSocket`` using g++ with ASan/UBSan, then

- runs every vector of ``tests/vectors/frames.json`` through the C++ decoder, whole and in
  chunks, and compares with the expected frames, bytes and close codes;
- checks ``tests/vectors/keyed.json`` byte for byte (proofs, K_conn, every tagged frame, every
  rejected frame with its code) against the C++ primitives and the device session core;
- drives the C++ decoder with hypothesis-generated streams and compares it with the Python
  codec (``harness.wifisocket.frame``), so both implementations agree beyond the vectors;
- runs the C++ session tests (two device sessions over an in-memory wire).

Builds are cached per source hash in the temp directory, so xdist workers and reruns share
them. Skipped (with the reason) only when no C++ compiler exists.
"""

from __future__ import annotations

import json
import struct
import subprocess
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.cpp import CORE, FW, ROOT, Tool, build

VECTORS = json.loads((ROOT / "tests" / "vectors" / "frames.json").read_text())
KEYED = json.loads((ROOT / "tests" / "vectors" / "keyed.json").read_text())
# The portable core: codec, session, keyed-link crypto.
CORE_SOURCES = [
    CORE / "wifisocket" / name
    for name in ("frame.cpp", "session.cpp", "keyed.cpp", "hmac.cpp", "sha256.cpp")
]


@pytest.fixture(scope="module")
def tool() -> Iterator[Tool]:
    exe = build("vector_tool", [FW / "test" / "vector_tool.cpp", *CORE_SOURCES])
    t = Tool(exe)
    yield t
    t.close()


def _frame_token(f: dict[str, Any]) -> str:
    return f"F:{f['type']}:{f['flags']}:{f['seq']}:{f['ack']}:{f['payload']}"


def _decode(tool: Tool, max_message: int, chunk: int, data: bytes) -> list[str]:
    return tool.ask(f"decode {max_message} {chunk} {data.hex()}").split()


def _ids(entries: list[dict[str, Any]]) -> list[str]:
    return [e["name"] for e in entries]


# --- vectors -------------------------------------------------------------------------------


@pytest.mark.parametrize("vec", VECTORS["frames"], ids=_ids(VECTORS["frames"]))
def test_frame_vector_encodes(tool: Tool, vec: dict[str, Any]) -> None:
    answer = tool.ask(f"encode {vec['type']} {vec['seq']} {vec['ack']} {vec['payload']}")
    assert answer == vec["bytes"]


@pytest.mark.parametrize("chunk", [0, 1, 3, 17])
@pytest.mark.parametrize("vec", VECTORS["frames"], ids=_ids(VECTORS["frames"]))
def test_frame_vector_decodes(tool: Tool, vec: dict[str, Any], chunk: int) -> None:
    assert _decode(tool, 4096, chunk, bytes.fromhex(vec["bytes"])) == [_frame_token(vec), "END:0"]


def test_all_frame_vectors_back_to_back(tool: Tool) -> None:
    stream = b"".join(bytes.fromhex(v["bytes"]) for v in VECTORS["frames"])
    expected = [_frame_token(v) for v in VECTORS["frames"]] + ["END:0"]
    for chunk in (0, 1, 5, 4099):
        assert _decode(tool, 4096, chunk, stream) == expected


@pytest.mark.parametrize("vec", VECTORS["frames"], ids=_ids(VECTORS["frames"]))
def test_frame_vector_incomplete_waits(tool: Tool, vec: dict[str, Any]) -> None:
    data = bytes.fromhex(vec["bytes"])
    assert _decode(tool, 4096, 2, data[:-1]) == [f"END:{len(data) - 1}"]


@pytest.mark.parametrize("chunk", [0, 1])
@pytest.mark.parametrize("vec", VECTORS["invalid"], ids=_ids(VECTORS["invalid"]))
def test_invalid_vector(tool: Tool, vec: dict[str, Any], chunk: int) -> None:
    tokens = _decode(tool, vec["max_message"], chunk, bytes.fromhex(vec["bytes"]))
    assert tokens[-1] == f"ERR:{vec['code']}", vec["error"]
    assert len(tokens) - 1 == vec["frames_before"]
    assert all(t.startswith("F:") for t in tokens[:-1])


@pytest.mark.parametrize("vec", VECTORS["hellos"], ids=_ids(VECTORS["hellos"]))
def test_hello_vector(tool: Tool, vec: dict[str, Any]) -> None:
    fields = (
        f"{vec['version']}:{vec['max_message']}:{vec['window']}:{vec['keepalive_ms']}:"
        f"{vec['session']}:{vec['resume']}"
    )
    assert tool.ask(f"hello {vec['payload']}") == f"H:{fields}"
    encoded = tool.ask("encode_hello " + fields.replace(":", " "))
    # The encoder writes the 32 bytes of version 1; longer payloads only add ignored bytes.
    assert encoded == vec["payload"][:64]


@pytest.mark.parametrize("vec", VECTORS["invalid_hellos"], ids=_ids(VECTORS["invalid_hellos"]))
def test_invalid_hello_vector(tool: Tool, vec: dict[str, Any]) -> None:
    assert tool.ask(f"hello {vec['payload']}") == f"ERR:{vec['code']}", vec["error"]


# --- keyed links (tests/vectors/keyed.json) --------------------------------------------------

_KEY = KEYED["key"]
_D, _A = KEYED["dialer"], KEYED["acceptor"]
# The two sides of keyed.json: session, max_message, window, keepalive as in their HELLOs.
_SIDES = {
    "D": ("1111222233334444", 1 << 20, 2 << 20, 1000),
    "A": ("5555666677778888", 1024, 3200, 1000),
}


def _endpoint(tool: Tool, role: str, data: bytes | str, key: str = _KEY) -> str:
    session, max_message, window, keepalive = _SIDES[role]
    nonce = (_D if role == "D" else _A)["nonce"]
    payload = data.hex() if isinstance(data, bytes) else data
    return tool.ask(
        f"endpoint {key} {role} {session} {max_message} {window} {keepalive} {nonce} {payload}"
    )


def test_keyed_proofs_and_connection_key(tool: Tool) -> None:
    assert tool.ask(f"proof {_KEY} D {_D['hello']} {_A['hello']}") == _D["proof"]
    assert tool.ask(f"proof {_KEY} A {_D['hello']} {_A['hello']}") == _A["proof"]
    wrong = KEYED["wrong_key_proofs"]
    assert tool.ask(f"proof {wrong['key']} D {_D['hello']} {_A['hello']}") == wrong["dialer"]
    assert tool.ask(f"proof {wrong['key']} A {_D['hello']} {_A['hello']}") == wrong["acceptor"]
    assert tool.ask(f"kconn {_KEY} {_D['nonce']} {_A['nonce']}") == KEYED["k_conn"]
    # The HELLOs as vectors, and their frames.
    for side in (_D, _A):
        assert tool.ask(f"hello_keyed {side['hello']}").startswith("H:2:")
        assert tool.ask(f"encode 1 0 0 {side['hello']}") == side["hello_frame"]
        assert tool.ask(f"encode 8 0 0 {side['proof']}") == side["auth_frame"]


@pytest.mark.parametrize("direction", ["d_to_a", "a_to_d"])
def test_keyed_tagged_frames(tool: Tool, direction: str) -> None:
    dir_ = "D" if direction == "d_to_a" else "A"
    frames = KEYED[direction]
    for f in frames:
        answer = tool.ask(
            f"tag_frame {KEYED['k_conn']} {dir_} {f['n']} {f['type']} {f['seq']} {f['ack']} "
            f"{f['payload']}"
        )
        assert answer == f["bytes"], f
    stream = "".join(f["bytes"] for f in frames)
    expected = [_frame_token({**f, "flags": 0}) for f in frames] + ["END:0"]
    for chunk in (0, 1, 7):
        assert (
            tool.ask(f"decode_keyed {KEYED['k_conn']} {dir_} 0 4096 {chunk} {stream}").split()
            == expected
        )
    # The other direction's key stream never verifies: the direction is in every tag.
    other = "A" if dir_ == "D" else "D"
    assert tool.ask(f"decode_keyed {KEYED['k_conn']} {other} 0 4096 0 {stream}") == "ERR:13"


@pytest.mark.parametrize("chunk", [0, 1])
@pytest.mark.parametrize("vec", KEYED["rejected"], ids=_ids(KEYED["rejected"]))
def test_keyed_rejected_frame_decoder(tool: Tool, vec: dict[str, Any], chunk: int) -> None:
    answer = tool.ask(
        f"decode_keyed {KEYED['k_conn']} {vec['dir']} {vec['n']} 4096 {chunk} {vec['bytes']}"
    )
    assert answer == f"ERR:{vec['code']}", vec["error"]


def test_keyed_handshake_acceptor_byte_for_byte(tool: Tool) -> None:
    # The device as acceptor answers the dialer's HELLO with exactly its HELLO (no proof to
    # a dialer that has not proven the key) ...
    answer = _endpoint(tool, "A", _D["hello_frame"])
    assert answer == f"OUT:{_A['hello_frame']}"
    # ... and only after the dialer's AUTH sends its own, is connected and takes tagged data.
    first = KEYED["d_to_a"][0]
    answer = _endpoint(tool, "A", _D["hello_frame"] + _D["auth_frame"] + first["bytes"])
    assert answer == (f"OUT:{_A['hello_frame']}{_A['auth_frame']} MSG:{first['payload']} ACTIVE")


def test_keyed_handshake_dialer_byte_for_byte(tool: Tool) -> None:
    answer = _endpoint(tool, "D", _A["hello_frame"] + _A["auth_frame"])
    assert answer == f"OUT:{_D['hello_frame']}{_D['auth_frame']} ACTIVE"


@pytest.mark.parametrize("vec", KEYED["rejected"], ids=_ids(KEYED["rejected"]))
def test_keyed_rejected_frame_closes_the_device_connection(tool: Tool, vec: dict[str, Any]) -> None:
    before = KEYED["d_to_a"][0]["bytes"] if vec["n"] == 1 else ""
    assert vec["dir"] == "D" and vec["n"] in (0, 1)
    answer = _endpoint(tool, "A", _D["hello_frame"] + _D["auth_frame"] + before + vec["bytes"])
    assert answer.endswith(f" CLOSE:{vec['code']}"), answer
    assert " ACTIVE" not in answer
    # Nothing of the rejected frame is delivered (the one before it, once).
    assert answer.count("MSG:") == (1 if before else 0)


def test_keyed_wrong_key_is_auth(tool: Tool) -> None:
    wrong = KEYED["wrong_key_proofs"]["key"]
    answer = _endpoint(tool, "A", _D["hello_frame"] + _D["auth_frame"], key=wrong)
    assert answer.endswith(" CLOSE:12") and "MSG:" not in answer
    # The acceptor refused before proving anything: one untagged CLOSE (fed at once, before
    # its HELLO was written, the CLOSE takes the HELLO's place), no AUTH of its own.
    written = bytes.fromhex(answer.split()[0].removeprefix("OUT:"))
    (length,) = struct.unpack(">I", written[4:8])
    assert written[2] == 7 and len(written) == 20 + length and written[16] == 12
    answer = _endpoint(tool, "D", _A["hello_frame"] + _A["auth_frame"], key=wrong)
    assert answer.endswith(" CLOSE:12")


@pytest.mark.parametrize(
    "vec", KEYED["invalid_hellos_keyed_side"], ids=_ids(KEYED["invalid_hellos_keyed_side"])
)
def test_keyed_invalid_hello_vector(tool: Tool, vec: dict[str, Any]) -> None:
    assert tool.ask(f"hello_keyed {vec['payload']}") == f"ERR:{vec['code']}", vec["error"]
    # And the device session core closes with that code.
    answer = _endpoint(tool, "A", _py_frame(1, bytes.fromhex(vec["payload"]), 0, 0))
    assert answer.endswith(f" CLOSE:{vec['code']}"), answer


def test_tool_reports_bad_commands(tool: Tool) -> None:
    # The harness must fail loudly on a malformed command, never hang or guess.
    assert tool.ask("decode 4096 0 zz").startswith("BAD:")
    assert tool.ask("nonsense").startswith("BAD:")


# --- properties ----------------------------------------------------------------------------


def _py_frame(ftype: int, payload: bytes, seq: int, ack: int) -> bytes:
    body = b"WS" + struct.pack(">BBIII", ftype, 0, len(payload), seq, ack) + payload
    return body + struct.pack(">I", zlib.crc32(body))


u32 = st.integers(min_value=0, max_value=0xFFFFFFFF)


@st.composite
def valid_frames(draw: st.DrawFn) -> tuple[int, bytes, int, int]:
    ftype = draw(st.sampled_from([1, 2, 3, 4, 5, 6, 7]))
    ack = draw(u32)
    if ftype in (2, 3):
        return ftype, draw(st.binary(max_size=300)), draw(st.integers(1, 0xFFFFFFFF)), ack
    low, high = {1: (32, 64), 4: (0, 0), 5: (8, 8), 6: (8, 8), 7: (1, 124)}[ftype]
    n = draw(st.integers(low, high))
    return ftype, draw(st.binary(min_size=n, max_size=n)), 0, ack


@settings(max_examples=150)
@given(frames=st.lists(valid_frames(), max_size=6), chunk=st.integers(0, 40))
def test_property_valid_streams_decode(
    tool: Tool, frames: list[tuple[int, bytes, int, int]], chunk: int
) -> None:
    stream = b"".join(_py_frame(*f) for f in frames)
    expected = [f"F:{t}:0:{s}:{a}:{p.hex()}" for t, p, s, a in frames] + ["END:0"]
    assert _decode(tool, 4096, chunk, stream) == expected


@settings(max_examples=100)
@given(frame=valid_frames())
def test_property_encode_matches_zlib(tool: Tool, frame: tuple[int, bytes, int, int]) -> None:
    ftype, payload, seq, ack = frame
    assert tool.ask(f"encode {ftype} {seq} {ack} {payload.hex()}") == _py_frame(*frame).hex()


@st.composite
def damaged_streams(draw: st.DrawFn) -> bytes:
    """Valid frames with a few bytes overwritten, cut or inserted: the decoder's error paths."""
    data = bytearray(b"".join(_py_frame(*f) for f in draw(st.lists(valid_frames(), max_size=3))))
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["set", "insert", "cut"]))
        pos = draw(st.integers(0, len(data)))
        if op == "set" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif op == "cut":
            del data[pos:]
    return bytes(data)


@settings(max_examples=200)
@given(
    data=damaged_streams(),
    chunk=st.integers(1, 23),
    max_message=st.sampled_from([1, 64, 300, 4096]),
)
def test_property_agrees_with_python_codec(
    tool: Tool, data: bytes, chunk: int, max_message: int
) -> None:
    frame_mod = pytest.importorskip("harness.wifisocket.frame")
    frames, error = frame_mod.FrameDecoder(max_message).decode(data)
    expected = [f"F:{int(f.type)}:0:{f.seq}:{f.ack}:{f.payload.hex()}" for f in frames]
    whole = _decode(tool, max_message, 0, data)
    assert whole[:-1] == expected
    if error is not None:
        assert whole[-1] == f"ERR:{error.code}"
    else:
        assert whole[-1].startswith("END:")
    # Chunking never changes the outcome.
    assert _decode(tool, max_message, chunk, data) == whole


# --- session ------------------------------------------------------------------------------


def test_cpp_session_suite() -> None:
    exe = build("test_session", [FW / "test" / "test_session.cpp", *CORE_SOURCES])
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    assert "FAIL" not in report, report
    # Guard against a runner that silently ran nothing (or lost tests on the way).
    passed = [line for line in proc.stdout.splitlines() if line.startswith("PASS ")]
    assert len(passed) >= 37, report
    for name in (
        "restarted_peer_that_learned_our_id_does_not_get_the_old_stream",
        "random_schedule_with_reboots",
        "full_slots_evict_the_oldest_without_hello",
        "slow_senders_are_bounded_by_whole_frames",
        "keyed_resume_across_reconnect",
        "keyed_stranger_cannot_replay_replace_or_hold_slots",
        "keyed_tampered_replayed_or_injected_frames_are_bad_tag",
        "keyed_random_schedule_with_reboots",
    ):
        assert f"PASS {name}" in passed, report
