"""Packaging: pyproject.toml holds the metadata; this adds esp-hil's firmware tree to the wheel.

The twin compiles the shim (firmware/sim, firmware/sim-core), the libraries users include
(firmware/lib) and the test firmware (firmware/src); a board build needs platformio.ini too.
They are copied into the wheel as ``harness/_firmware``, which ``harness.project.firmware_root``
finds. An editable install reads them from the checkout instead. (A copy at build time rather
than a package-dir mapping: the tree is not a Python package and keeps its own layout.)
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

FIRMWARE = Path(__file__).resolve().parent / "firmware"
#: What the twin and the board path need; not fuzz/ or test/ (the C++ tests of the repository).
PARTS = ("sim", "sim-core", "lib", "src", "platformio.ini", "board-budget.json")
SKIP = shutil.ignore_patterns(".pio", "__pycache__", "*.o", "test")


class BuildPyWithFirmware(build_py):
    """build_py, plus firmware/ copied to ``harness/_firmware`` in the build tree."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "harness" / "_firmware"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for part in PARTS:
            source = FIRMWARE / part
            if source.is_dir():
                shutil.copytree(source, target / part, ignore=SKIP)
            elif source.is_file():
                shutil.copy2(source, target / part)
            else:
                raise FileNotFoundError(f"the wheel needs {source}")


setup(cmdclass={"build_py": BuildPyWithFirmware})
