"""Where the proxy's random decisions come from, so that a seed replays a fault schedule."""

from __future__ import annotations

import random


def fresh_seed() -> int:
    """A new seed from the OS, for a proxy that was not given one."""
    return random.SystemRandom().randrange(1 << 63)


def stage_rng(seed: int, connection: int, direction: str, toxic: str) -> random.Random:
    """The random source of one toxic on one direction of one connection.

    Each (connection index, direction, toxic name) gets its own generator, so how the
    threads and the kernel interleave the traffic cannot shift one stage's draws onto
    another: the same seed and the same traffic give the same decisions. The seed is a
    string, which ``random.Random`` hashes with SHA-512, so it does not depend on
    ``PYTHONHASHSEED``.
    """
    return random.Random(f"esp-hil-netem/{seed}/{connection}/{direction}/{toxic}")
