"""Write the seed corpus of ``fuzz_hmac`` from ``tests/vectors/hmac_sha256.json``.

Usage: ``python3 firmware/fuzz/make_hmac_corpus.py OUT_DIR`` writes ``OUT_DIR/hmac/*``: one
input per HMAC vector, in the layout documented at the top of ``fuzz_hmac.cpp`` (whole
message, and the same in 1-byte and 63-byte chunks). File names are the content's SHA-1,
so re-running changes nothing, and stale seeds are removed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from make_corpus import write  # this directory is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors" / "hmac_sha256.json"


def hmac_input(key: bytes, data: bytes, tag_length: int, chunks: tuple[int, ...]) -> bytes:
    """One fuzz_hmac input: key length, tag length (+ second message), chunks, flip, key, data."""
    if len(key) > 255 or not 1 <= tag_length <= 32 or not 1 <= len(chunks) <= 8:
        raise ValueError("outside the fuzz_hmac input layout")
    header = bytes([len(key), (tag_length - 1) | 0x20, len(chunks) - 1, *chunks, 0])
    return header + key + data


def seeds() -> list[bytes]:
    """One seed per HMAC vector and chunking."""
    vectors = json.loads(VECTORS.read_text())["hmac"]
    return [hmac_input(bytes.fromhex(vec["key"]), bytes.fromhex(vec["data"]), vec["length"],
                       chunks)
            for vec in vectors for chunks in ((0,), (1,), (63, 1))]


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="directory to write hmac/ into")
    out = parser.parse_args(argv).out
    print(f"{write(out, 'hmac', seeds())} seeds in {out / 'hmac'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
