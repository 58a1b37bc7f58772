"""Putting firmware on a board: esptool's Python API, and PlatformIO for the build."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from harness.device.errors import DeviceError

#: Where the ESP8266 Arduino image goes.
APP_OFFSET = 0x0

#: Seconds esptool waits for the ROM loader's answer to MEM_END (its own default: 0.2).
MEM_END_TIMEOUT = 3.0


class FlashError(DeviceError):
    """esptool could not talk to the board's ROM loader or write its flash."""


def flash_image(port: str, image: bytes, *, mode: str = "auto", baud: int = 460800) -> bool:
    """Write ``image`` at offset 0 through esptool; return True if anything was written.

    ``mode``: ``auto`` skips the write when the flash already holds the image (esptool's MD5
    check through its stub), ``always`` writes, ``never`` does nothing. The board is left in
    its ROM loader: the caller resets it with its console open, so no boot output is missed.
    """
    if mode == "never":
        return False
    from esptool.cmds import attach_flash, detect_chip, run_stub, write_flash
    from esptool.util import FatalError

    log = io.StringIO()
    try:
        with (
            contextlib.redirect_stdout(log),
            patient_mem_end(),
            detect_chip(port, connect_mode="default-reset") as esp,
        ):
            if esp.CHIP_NAME != "ESP8266":
                raise FlashError(f"{port} is an {esp.CHIP_NAME}, not an ESP8266")
            esp = run_stub(esp)
            if baud and baud != esp.ESP_ROM_BAUD:
                esp.change_baud(baud)
            attach_flash(esp)
            if mode == "auto" and esp.flash_md5sum(APP_OFFSET, len(image)) == image_md5(image):
                return False
            write_flash(esp, [(APP_OFFSET, image)], no_progress=True)
    except FatalError as exc:
        raise FlashError(f"esptool failed on {port}: {exc}\n{log.getvalue()[-2000:]}") from None
    except OSError as exc:
        raise FlashError(f"cannot open {port}: {exc}") from None
    return True


@contextlib.contextmanager
def patient_mem_end(timeout: float = MEM_END_TIMEOUT) -> Iterator[None]:
    """Give the ROM loader ``timeout`` seconds to answer MEM_END while the block runs.

    esptool allows 0.2 s (its ``mem_end_rom_timeout`` setting) and ignores a miss, but the
    miss ends its SLIP reader, so the stub's greeting that follows can never be read: run_stub
    fails. A board answers at once; a twin on a loaded machine can take longer. Waiting longer
    costs nothing when the answer comes.
    """
    import esptool.loader

    saved = esptool.loader.MEM_END_ROM_TIMEOUT
    esptool.loader.MEM_END_ROM_TIMEOUT = max(saved, timeout)
    try:
        yield
    finally:
        esptool.loader.MEM_END_ROM_TIMEOUT = saved


def image_md5(image: bytes) -> str:
    """Hex MD5 of an image, as esptool's SPI_FLASH_MD5 reports it."""
    return hashlib.md5(image).hexdigest()


#: PlatformIO's first run downloads the ESP8266 toolchain and framework: minutes, not hours.
PIO_TIMEOUT_S = 1800.0


def build_with_platformio(env: str, project_dir: Path, lib_dir: Path | None = None) -> Path:
    """Run ``pio run -d <project_dir> -e <env>`` and return the firmware.bin it made.

    ``lib_dir``: a directory of libraries (esp-hil's ``firmware/lib``: WiFiSocket, EspHil)
    the build may use, given through ``PLATFORMIO_LIB_EXTRA_DIRS`` so the project's
    platformio.ini needs no path into esp-hil; the project's own ``lib/`` still wins.
    """
    pio = shutil.which("pio") or shutil.which("platformio")
    cmd = [pio] if pio else [sys.executable, "-m", "platformio"]
    try:
        probe = subprocess.run(
            [*cmd, "--version"], capture_output=True, text=True, check=False, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired):
        probe = None
    if probe is None or probe.returncode != 0:
        raise DeviceError(
            "PlatformIO is needed to build the firmware for a real board: "
            "pip install platformio (or pass --firmware PATH to flash a ready image)"
        )
    env_vars = dict(os.environ)
    if lib_dir is not None:
        # PlatformIO splits a multi-value option's variable on newlines (else on ", ").
        extra = os.environ.get("PLATFORMIO_LIB_EXTRA_DIRS")
        env_vars["PLATFORMIO_LIB_EXTRA_DIRS"] = "\n".join(p for p in (extra, str(lib_dir)) if p)
    argv = [*cmd, "run", "-d", str(project_dir), "-e", env]
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, check=False, env=env_vars, timeout=PIO_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise DeviceError(f"pio run -e {env} took over {PIO_TIMEOUT_S:.0f} s") from None
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr)[-3000:]
        hint = ""
        if "espressif8266" in out and ("not installed" in out.lower() or "Could not" in out):
            hint = " (PlatformIO's ESP8266 platform is missing: pio pkg install -p espressif8266)"
        raise DeviceError(f"pio run -d {project_dir} -e {env} failed{hint}:\n{out}")
    image = project_dir / ".pio" / "build" / env / "firmware.bin"
    if not image.is_file():
        raise DeviceError(f"PlatformIO built {env} but {image} is missing")
    return image
