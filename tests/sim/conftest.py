"""Fixtures of the twin's insides."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cache import cache_root
from harness.device.base import Device
from harness.sim.build import build_firmware
from harness.sim.chip import Twin
from tests.helpers.chip import standin_twin
from tests.helpers.cpp import ROOT
from tests.helpers.shim import SKETCH, Console, booted_console

CACHE = cache_root()  # now, at collection: pytester moves HOME during a test


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[Twin]:
    """A started twin with an erased flash whose firmware is the stand-in (no compiler)."""
    t = standin_twin(flash_path=tmp_path / "flash.bin")
    try:
        yield t
    finally:
        t.stop()


@pytest.fixture(scope="module")
def sketch() -> Path:
    """The shim's test sketch (``firmware/sim/test/shim_test_sketch.cpp``), built."""
    return build_firmware(sketch=SKETCH)


@pytest.fixture
def console(sketch: Path, tmp_path: Path) -> Iterator[Console]:
    """The test sketch booted on a flash file of its own, its console."""
    with booted_console(sketch, tmp_path / "flash.bin") as con:
        yield con


@pytest.fixture
def keyless(device: Device) -> Iterator[Device]:
    """The session's device with its link key cleared for one test (protocol version 1 on
    the wire), then given back."""
    key = device.key
    if key is None:
        yield device
        return
    device.set_up_key("none")
    try:
        yield device
    finally:
        device.set_up_key(key)


@pytest.fixture
def this_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make pytester's subprocesses import this checkout's harness and share this machine's
    build cache (pytester moves HOME): without it each one compiles every twin from cold,
    minutes of CPU taken from the timing-bound tests running beside it."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("ESP_HIL_CACHE", str(CACHE))
