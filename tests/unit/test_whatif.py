"""benchmarks/whatif.py's patches still apply to this tree (they rot silently otherwise)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
PATCHES = sorted((ROOT / "benchmarks" / "whatif").glob("*.patch"))


def _whatif() -> ModuleType:
    spec = importlib.util.spec_from_file_location("whatif", ROOT / "benchmarks" / "whatif.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(shutil.which("patch") is None, reason="needs patch(1)")
@pytest.mark.parametrize("patch", PATCHES, ids=[p.stem for p in PATCHES])
def test_the_patch_applies_to_a_copy_of_the_tree(patch: Path, tmp_path: Path) -> None:
    copy = _whatif().make_copy(tmp_path / "copy", [patch])
    changed = [line[4:].split("\t")[0] for line in patch.read_text().splitlines()
               if line.startswith("+++ ")]
    assert changed
    for name in changed:
        rel = name.split("/", 1)[1]
        assert (copy / rel).read_bytes() != (ROOT / rel).read_bytes(), rel


def test_there_are_patches() -> None:
    assert PATCHES
