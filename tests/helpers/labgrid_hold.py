"""Run by tests/sim/test_labgrid.py (not collected on its own): hold the device, then hang.

``ESP_HIL_HOLD_MARKER`` names a file written once the device is up, so the test knows the
place is held before it kills this pytest.
"""

import os
import time
from pathlib import Path


def test_hold_the_device(device: object) -> None:
    Path(os.environ["ESP_HIL_HOLD_MARKER"]).write_text(str(os.getpid()))
    time.sleep(float(os.environ.get("ESP_HIL_HOLD_SECONDS", "60")))
