#!/usr/bin/env python3
"""Host CPU per 4 KiB message through the sans-IO core, keyed (protocol v2) vs unkeyed.

Two :class:`~harness.wifisocket.session.Session` objects, connected in memory: one frames a
4 KiB BINARY message (``send_message``: on a keyed link, plus its tag), the other decodes
and delivers it (``receive_data``: plus the tag check), and the sender takes the ACK. No
sockets, so this is the protocol's own cost per frame, the part a key adds to it. The
minimum of ``--repeat`` runs is printed (other load on the machine inflates it least).

    python benchmarks/keyed_cost.py [--rounds 20000] [--repeat 7] [--size 4096]
"""

from __future__ import annotations

import argparse
import platform
import ssl
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.wifisocket.frame import FrameDecoder, Hello
from harness.wifisocket.session import Session

KEY = bytes(range(32))


def pair(key: bytes | None) -> tuple[Session, Session]:
    """A dialer and an acceptor, handshake done."""
    opts = {"keepalive_ms": 0, "dead_after": 0, "key": key}
    d, a = Session(**opts), Session(**opts)  # type: ignore[arg-type]
    hello_d = d.connection_made(0.0)
    (f,) = FrameDecoder(1 << 20).feed(hello_d)
    hello_a = a.connection_made(0.0, dialer=Hello.decode(f.payload, keyed=key is not None))
    a.receive_data(hello_d, 0.0)
    d.receive_data(hello_a + a.data_to_send(), 0.0)
    a.receive_data(d.data_to_send(), 0.0)  # the dialer's AUTH (keyed): the acceptor answers
    d.receive_data(a.data_to_send(), 0.0)
    assert d.is_open and a.is_open
    return d, a


def per_message_us(key: bytes | None, size: int, rounds: int, repeat: int) -> float:
    d, a = pair(key)
    msg = bytes(size)

    def one() -> None:
        a.receive_data(d.send_message(msg, 0.0), 0.0)
        d.receive_data(a.data_to_send(), 0.0)  # the ACK (tagged too, when keyed)

    best = min(timeit.repeat(one, number=rounds, repeat=repeat))
    return best / rounds * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--size", type=int, default=4096)
    args = ap.parse_args()
    print(f"{platform.machine()}, Python {platform.python_version()}, {ssl.OPENSSL_VERSION}")
    plain = per_message_us(None, args.size, args.rounds, args.repeat)
    keyed = per_message_us(KEY, args.size, args.rounds, args.repeat)
    print(f"per {args.size}-byte message (send + receive + ACK), best of {args.repeat} x "
          f"{args.rounds}:")
    print(f"  unkeyed (v1): {plain:7.2f} us  ({args.size / plain:7.1f} MB/s)")
    print(f"  keyed   (v2): {keyed:7.2f} us  ({args.size / keyed:7.1f} MB/s)")
    print(f"  the key adds: {keyed - plain:7.2f} us per message ({keyed / plain:.2f} x)")


if __name__ == "__main__":
    main()
