"""Polling for a condition another thread or process brings about, with a bound."""

from __future__ import annotations

import time
from collections.abc import Callable

TIMEOUT = 5.0


def wait_until(cond: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Return once ``cond()`` is true; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.01)
