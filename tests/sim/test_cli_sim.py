"""``esp-hil sim`` as the README uses it: a twin that answers at once, or one clear error."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from harness import WiFiSocket
from harness.cli import main


def test_a_busy_port_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert main(["sim", "--rfc2217-port", str(port)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"esp-hil sim: cannot serve the twin's serial line on port {port}")
    assert "in use" in lines[0]


def test_the_readme_flow_a_twin_that_echoes_right_away() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "sim"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 90
        found = None
        while found is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            found = re.match(r"echo: ([\d.]+):(\d+)", line)
        assert found is not None, proc.stderr.read() if proc.poll() is not None else "no echo"
        with WiFiSocket(found.group(1), int(found.group(2))) as link:
            link.send(b"first hour")
            assert link.receive(timeout=10) == b"first hour"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
