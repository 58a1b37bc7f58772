"""``esp-hil sim``'s bring-up: a twin that does not come up says what its shim logged."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from harness.device.errors import DeviceError
from harness.sim import serve
from harness.sim.firmware import ShimLog


class _NeverReady:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def start(self) -> None:
        raise DeviceError("no READY within 20 s", console_tail="ESP-HIL WIFI connecting")

    def close(self) -> None:
        pass


def _twin(*lines: str) -> Any:
    log = ShimLog()
    for line in lines:
        log.add(line)
    return SimpleNamespace(url="rfc2217://x", ssid="s", password="p", shim_log=log)


def test_a_failed_bring_up_shows_the_twin_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve, "SerialDevice", _NeverReady)
    with pytest.raises(DeviceError) as caught:
        serve._bring_up(_twin("[shim] stdout is gone"), b"")
    text = str(caught.value)
    assert text.startswith("no READY within 20 s\n--- console tail ---\nESP-HIL WIFI connecting")
    assert text.endswith("\n--- twin log ---\n[shim] stdout is gone")


def test_with_nothing_logged_the_error_is_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve, "SerialDevice", _NeverReady)
    with pytest.raises(DeviceError) as caught:
        serve._bring_up(_twin(), b"")
    assert "twin log" not in str(caught.value)
