"""The size budget of the device library's portable core (``tools/size_budget.py``).

With Debian's xtensa-lx106 cross compiler (and picolibc) installed: the core compiles for
the ESP8266 and stays within ``firmware/size-budget.json``, and the gate fails when a budget
is exceeded. Without the cross compiler these tests skip and say why;
``tools/ci_robustness.sh`` installs it and runs the budget check unconditionally.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "size_budget.py"
BUDGET = ROOT / "firmware" / "size-budget.json"
FIELDS = ("text", "data", "bss", "rodata", "endpoint_ram")
TIMEOUT = 300.0


def _tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True,
                          timeout=TIMEOUT)


def _missing() -> list[str]:
    sys.path.insert(0, str(TOOL.parent))
    try:
        import size_budget

        return size_budget.missing_tools()
    finally:
        sys.path.remove(str(TOOL.parent))


@pytest.fixture(scope="module")
def measured() -> dict[str, Any]:
    missing = _missing()
    if missing:
        pytest.skip("xtensa cross toolchain not installed (apt-get install "
                    + " ".join(missing) + "); tools/ci_robustness.sh installs it")
    proc = _tool("--json")
    assert proc.returncode in (0, 1), proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_budget_file_is_complete_and_has_headroom() -> None:
    doc = json.loads(BUDGET.read_text())
    for field in FIELDS:
        assert isinstance(doc["budget"][field], int)
        assert isinstance(doc["measured"][field], int)
        # The budget is what was measured plus at most 10% (rounded up), never below it.
        assert doc["measured"][field] <= doc["budget"][field]
        assert doc["budget"][field] <= -(-doc["measured"][field] * 11 // 10)


def test_core_is_within_budget(measured: dict[str, Any]) -> None:
    assert measured["over"] == [], measured["over"]
    totals = measured["totals"]
    # Every portable source was compiled, and the figures are real measurements.
    sources = sorted(p.name for p in (ROOT / "firmware/lib/WiFiSocket/src/wifisocket")
                     .glob("*.cpp"))
    assert sorted(measured["objects"]) == sources
    assert totals["text"] == sum(o["text"] for o in measured["objects"].values())
    assert totals["text"] > 1000
    assert totals["endpoint_ram"] > 0
    print(f"\nESP8266 core: text {totals['text']} data {totals['data']} bss {totals['bss']} "
          f"(rodata {totals['rodata']}), sizeof(Endpoint) {totals['endpoint_ram']}")


def test_gate_fails_above_the_budget(measured: dict[str, Any], tmp_path: Path) -> None:
    tight = {f: max(0, measured["totals"][f] - 1) for f in FIELDS}
    tight["data"] = measured["totals"]["data"]  # only some fields over: each is named
    path = tmp_path / "budget.json"
    path.write_text(json.dumps({"budget": tight}))
    proc = _tool("--budget", str(path))
    assert proc.returncode == 1
    assert "OVER BUDGET" in proc.stderr
    named = {line.split(":")[0].strip() for line in proc.stderr.splitlines()
             if " > budget " in line}
    # A field measured at 0 has a budget of 0 here too, so it is not over.
    expected = {f for f in FIELDS if f != "data" and measured["totals"][f] > 0}
    assert named == expected


def test_update_writes_measured_plus_ten_percent(measured: dict[str, Any],
                                                 tmp_path: Path) -> None:
    path = tmp_path / "budget.json"
    proc = _tool("--budget", str(path), "--update")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(path.read_text())
    assert doc["measured"] == measured["totals"]
    for field in FIELDS:
        assert doc["budget"][field] == -(-doc["measured"][field] * 11 // 10)
