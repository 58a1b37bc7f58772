"""Fixtures of the twin's insides."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.sim.chip import Twin
from tests.helpers.chip import standin_twin


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[Twin]:
    """A started twin with an erased flash whose firmware is the stand-in (no compiler)."""
    t = standin_twin(flash_path=tmp_path / "flash.bin")
    try:
        yield t
    finally:
        t.stop()
