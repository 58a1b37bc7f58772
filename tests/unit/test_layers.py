"""Dependencies point one way: plugin/CLI -> backends -> device (interfaces, board) <- sim."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import harness.device
import harness.sim

_LOADED = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in sys.modules if m == "harness" or m.startswith("harness."))))
"""


def _modules(package: object, prefix: str) -> list[str]:
    return [prefix] + [m.name for m in pkgutil.walk_packages(package.__path__, prefix + ".")]  # type: ignore[attr-defined]


def _loaded_after_importing(names: list[str]) -> set[str]:
    # A fresh interpreter: this one has every harness module loaded already (conftest.py).
    out = subprocess.run(
        [sys.executable, "-c", _LOADED, *names], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout))


def test_importing_harness_device_imports_nothing_from_sim() -> None:
    loaded = _loaded_after_importing(_modules(harness.device, "harness.device"))
    assert "harness.device.serial" in loaded  # the check sees what it imported
    above = {m for m in loaded if m.startswith(("harness.sim", "harness.backends", "harness.cli"))}
    assert above == set()


def test_the_twins_never_import_the_layer_above_them() -> None:
    loaded = _loaded_after_importing(_modules(harness.sim, "harness.sim"))
    assert "harness.sim.chip.twin" in loaded
    above = {m for m in loaded if m in ("harness.backends", "harness.cli", "harness.pytest_plugin")}
    assert above == set()
