#!/usr/bin/env python3
"""Compile a PlatformIO project for the ESP8266 and check its RAM/IRAM/flash budget.

A thin entry point for CI and for use without installing esp-hil; the work is in
harness/size.py (the accounting) and harness/xtensa.py (the compile). Usage:

    tools/xtensa/size.py [PROJECT] [--board nodemcu|d1_mini] [--budget FILE] [--json]

Exit status: 0 within budget, 1 over budget, 2 the toolchain is missing or the build failed
(any warning or error in the project's own sources).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from harness.size import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
