"""The shared wire vectors (tests/vectors/frames.json) through the Python codec."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import MessageTooLarge, ProtocolError
from harness.wifisocket.frame import FrameDecoder, FrameType, Hello, encode_frame

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "vectors" / "frames.json").read_text()
)
FRAMES = VECTORS["frames"]
INVALID = VECTORS["invalid"]
# Every frame vector decodes with this limit (the largest payload is 4096 bytes).
FRAME_MAX = 4096


def _name(v: dict[str, Any]) -> str:
    return v["name"]


def _reference_crc32(data: bytes) -> int:
    """A bit-by-bit CRC-32 (IEEE 802.3, reflected 0xEDB88320), independent of zlib."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _decode_in_chunks(data: bytes, cuts: list[int], max_message: int):
    """Feed ``data`` split at ``cuts``; return (frames, error, frames seen before the error)."""
    dec = FrameDecoder(max_message)
    frames = []
    bounds = [0, *sorted(set(cuts)), len(data)]
    for lo, hi in itertools.pairwise(bounds):
        got, err = dec.decode(data[lo:hi])
        frames.extend(got)
        if err is not None:
            return frames, err
    return frames, None


def test_file_shape() -> None:
    assert VECTORS["protocol_version"] == 1
    types = {v["type"] for v in FRAMES}
    # AUTH (keyed links only) has its vectors in keyed.json (tests/unit/test_keyed.py).
    assert types == {t.value for t in FrameType} - {FrameType.AUTH}, "every v1 type has one"
    assert any(v["payload"] == "" for v in FRAMES if v["type"] in (2, 3))
    assert any(v["seq"] == 0xFFFFFFFF and v["ack"] == 0xFFFFFFFF for v in FRAMES)
    assert max(len(v["payload"]) // 2 for v in FRAMES) == FRAME_MAX
    assert {v["code"] for v in INVALID} == {1, 2, 3, 4}
    assert {v["code"] for v in VECTORS["invalid_hellos"]} == {1, 5, 12}


def test_hand_checked_frame() -> None:
    """TEXT "Hi", seq 1, ack 0, written out field by field with an independent CRC."""
    header = bytes.fromhex("5753" "02" "00" "00000002" "00000001" "00000000")
    body = header + b"Hi"
    expected = body + _reference_crc32(body).to_bytes(4, "big")
    assert encode_frame(FrameType.TEXT, b"Hi", seq=1, ack=0) == expected
    assert next(v for v in FRAMES if v["name"] == "text_hi")["bytes"] == expected.hex()


@pytest.mark.parametrize("v", FRAMES[:6], ids=_name)
def test_reference_crc_agrees_with_vectors(v: dict[str, Any]) -> None:
    raw = bytes.fromhex(v["bytes"])
    assert _reference_crc32(raw[:-4]) == int.from_bytes(raw[-4:], "big")


@pytest.mark.parametrize("v", FRAMES, ids=_name)
def test_frame_vector_encodes(v: dict[str, Any]) -> None:
    raw = encode_frame(v["type"], bytes.fromhex(v["payload"]), seq=v["seq"], ack=v["ack"])
    assert raw.hex() == v["bytes"]


@pytest.mark.parametrize("v", FRAMES, ids=_name)
def test_frame_vector_decodes_split_at_every_byte(v: dict[str, Any]) -> None:
    raw = bytes.fromhex(v["bytes"])
    for cut in range(len(raw) + 1):
        frames, err = _decode_in_chunks(raw, [cut], FRAME_MAX)
        assert err is None
        assert len(frames) == 1
        f = frames[0]
        assert (f.type, f.seq, f.ack, f.payload.hex()) == (
            v["type"], v["seq"], v["ack"], v["payload"]
        )
        assert v["flags"] == 0


@given(st.data())
def test_frame_vectors_decode_in_random_chunks(data: st.DataObject) -> None:
    # All frame vectors back to back as one stream, cut anywhere.
    stream = b"".join(bytes.fromhex(v["bytes"]) for v in FRAMES)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=40))
    frames, err = _decode_in_chunks(stream, cuts, FRAME_MAX)
    assert err is None
    assert [f.payload.hex() for f in frames] == [v["payload"] for v in FRAMES]
    assert [int(f.type) for f in frames] == [v["type"] for v in FRAMES]


def _check_invalid(v: dict[str, Any], frames: list, err: ProtocolError | None) -> None:
    assert err is not None, "no error"
    assert err.code == v["code"], f"{err} instead of {v['error']}"
    assert len(frames) == v["frames_before"]
    if v["code"] == 3:
        assert isinstance(err, MessageTooLarge)


@pytest.mark.parametrize("v", INVALID, ids=_name)
def test_invalid_vector_whole(v: dict[str, Any]) -> None:
    raw = bytes.fromhex(v["bytes"])
    frames, err = FrameDecoder(v["max_message"]).decode(raw)
    _check_invalid(v, frames, err)
    with pytest.raises(ProtocolError) as info:
        FrameDecoder(v["max_message"]).feed(raw)
    assert info.value.code == v["code"]


@pytest.mark.parametrize("v", INVALID, ids=_name)
def test_invalid_vector_byte_by_byte_fails_on_the_last_byte(v: dict[str, Any]) -> None:
    """Each vector ends at the byte that makes it invalid: no later byte is needed."""
    raw = bytes.fromhex(v["bytes"])
    dec = FrameDecoder(v["max_message"])
    frames = []
    for i in range(len(raw)):
        got, err = dec.decode(raw[i : i + 1])
        frames.extend(got)
        if err is not None:
            break
    _check_invalid(v, frames, err)
    # Vectors that end right after the bad byte must fail exactly there.
    early = {"http_request", "bad_second_magic_byte_full_frame", "bad_first_magic_byte_swapped"}
    if v["name"] not in early:
        assert i == len(raw) - 1


@given(st.data())
def test_invalid_vectors_random_chunks(data: st.DataObject) -> None:
    v = data.draw(st.sampled_from(INVALID))
    raw = bytes.fromhex(v["bytes"])
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=8))
    frames, err = _decode_in_chunks(raw, cuts, v["max_message"])
    _check_invalid(v, frames, err)


@pytest.mark.parametrize("v", VECTORS["hellos"], ids=_name)
def test_hello_vector(v: dict[str, Any]) -> None:
    payload = bytes.fromhex(v["payload"])
    hello = Hello.decode(payload)
    assert hello == Hello(
        max_message=v["max_message"], window=v["window"], keepalive_ms=v["keepalive_ms"],
        session=int(v["session"], 16), resume=int(v["resume"], 16), version=v["version"],
    )
    assert hello.encode() == payload[:32]


@pytest.mark.parametrize("v", VECTORS["invalid_hellos"], ids=_name)
def test_invalid_hello_vector(v: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as info:
        Hello.decode(bytes.fromhex(v["payload"]))
    assert info.value.code == v["code"], str(info.value)


def test_vectors_file_is_what_the_generator_writes(tmp_path: Path, monkeypatch) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_vectors", Path(__file__).parents[1] / "vectors" / "make_vectors.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "OUT", tmp_path / "frames.json")
    mod.main()
    assert json.loads((tmp_path / "frames.json").read_text()) == VECTORS


@pytest.mark.parametrize("v", FRAMES, ids=_name)
def test_frame_vector_through_the_one_frame_shortcut(v: dict[str, Any]) -> None:
    """The session's shortcut for a read of exactly one data frame
    (``FrameDecoder.whole_data_frame``) takes the data vectors as decode() does, and leaves
    every other type to decode()."""
    frame = FrameDecoder(FRAME_MAX).whole_data_frame(bytes.fromhex(v["bytes"]))
    if v["type"] in (FrameType.TEXT, FrameType.BINARY):
        assert frame is not None
        assert (frame.type, frame.seq, frame.ack, frame.payload.hex()) == (
            v["type"], v["seq"], v["ack"], v["payload"]
        )
    else:
        assert frame is None


@pytest.mark.parametrize("v", INVALID, ids=_name)
def test_invalid_vector_is_left_to_decode_by_the_shortcut(v: dict[str, Any]) -> None:
    raw = bytes.fromhex(v["bytes"])
    dec = FrameDecoder(v["max_message"])
    assert dec.whole_data_frame(raw) is None and dec.error is None
    frames, err = dec.decode(raw)
    _check_invalid(v, frames, err)
