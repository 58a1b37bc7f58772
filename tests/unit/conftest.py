"""Fixtures of the host library's loopback tests (the scripted peer's side)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers.peer import LOCAL, WAIT


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=2) as ex:
        yield ex


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server((LOCAL, 0)) as lst:
        lst.settimeout(WAIT)
        yield lst
