"""Building for a real board: PlatformIO missing, or its ESP8266 platform missing, is named."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from harness.device import flashing
from harness.device.errors import DeviceError


def _fake_pio(folder: Path, run_output: str, run_code: int) -> None:
    script = folder / "pio"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "--version" ]; then echo "PlatformIO Core, version 6.1.0"; exit 0; fi\n'
        f"echo '{run_output}'\nexit {run_code}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_no_platformio_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(flashing.sys, "executable", "/bin/false")
    with pytest.raises(DeviceError, match="pip install platformio"):
        flashing.build_with_platformio("nodemcuv2", tmp_path)


def test_missing_esp8266_platform_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_pio(tmp_path, "Error: Could not install platform espressif8266: not installed", 1)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(DeviceError, match="ESP8266 platform is missing"):
        flashing.build_with_platformio("nodemcuv2", tmp_path)


def test_build_returns_the_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_pio(tmp_path, "SUCCESS", 0)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(DeviceError, match=r"firmware\.bin is missing"):
        flashing.build_with_platformio("d1_mini", tmp_path)
    image = tmp_path / ".pio" / "build" / "d1_mini" / "firmware.bin"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"\xe9")
    assert flashing.build_with_platformio("d1_mini", tmp_path) == image


def test_image_md5_matches_esptool_format() -> None:
    assert flashing.image_md5(b"") == "d41d8cd98f00b204e9800998ecf8427e"
