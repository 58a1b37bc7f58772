"""The device's C++ codec and session core, checked from pytest.

Compiles ``firmware/test/vector_tool.cpp`` and ``firmware/test/test_session.cpp`` together with
the portable core of ``firmware/lib/WiFiSocket`` using g++ with ASan/UBSan, then

- runs every vector of ``tests/vectors/frames.json`` through the C++ decoder, whole and in
  chunks, and compares with the expected frames, bytes and close codes;
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


@pytest.fixture(scope="module")
def tool() -> Iterator[Tool]:
    exe = build(
        "vector_tool", [FW / "test" / "vector_tool.cpp", CORE / "wifisocket" / "frame.cpp"]
    )
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
    exe = build(
        "test_session",
        [
            FW / "test" / "test_session.cpp",
            CORE / "wifisocket" / "frame.cpp",
            CORE / "wifisocket" / "session.cpp",
        ],
    )
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    assert "FAIL" not in report, report
    # Guard against a runner that silently ran nothing (or lost tests on the way).
    passed = [line for line in proc.stdout.splitlines() if line.startswith("PASS ")]
    assert len(passed) >= 26, report
    for name in (
        "restarted_peer_that_learned_our_id_does_not_get_the_old_stream",
        "random_schedule_with_reboots",
        "full_slots_evict_the_oldest_without_hello",
        "slow_senders_are_bounded_by_whole_frames",
    ):
        assert f"PASS {name}" in passed, report
