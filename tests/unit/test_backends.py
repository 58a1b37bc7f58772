"""The backend table: a spec names a row, anything else is a board."""

from __future__ import annotations

import pytest

from harness.backends import BACKENDS, Backend, backend_for, is_twin_spec, open_device
from harness.device.errors import DeviceTimeout
from harness.device.options import DeviceOptions


@pytest.mark.parametrize("spec", ["sim", "twin", "sim-direct"])
def test_the_twin_specs_have_rows(spec: str) -> None:
    assert backend_for(spec) is BACKENDS[spec]
    assert is_twin_spec(spec)


@pytest.mark.parametrize("spec", ["/dev/ttyUSB0", "rfc2217://127.0.0.1:4000", "COM3"])
def test_any_other_spec_is_a_board(spec: str) -> None:
    assert backend_for(spec).kind == "board"
    assert not is_twin_spec(spec)


class _Unborn:
    """A twin whose start fails after its shim said why, on stderr only."""

    closed = False

    def __init__(self, opts: DeviceOptions) -> None:
        pass

    def start(self) -> None:
        raise DeviceTimeout("no READY within 20 s", console_tail="ESP-HIL WIFI connecting")

    def twin_log(self, since: float | None = None) -> list[str]:
        return ["[shim] cannot listen on 127.0.0.5:8080: Address already in use"]

    def close(self) -> None:
        _Unborn.closed = True


def test_a_device_that_does_not_come_up_says_what_its_twin_logged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(BACKENDS, "unborn", Backend(_Unborn, "twin", "a test row"))
    with pytest.raises(DeviceTimeout) as caught:
        open_device(DeviceOptions(spec="unborn"))
    assert str(caught.value).endswith(
        "--- console tail ---\nESP-HIL WIFI connecting\n"
        "--- twin log ---\n[shim] cannot listen on 127.0.0.5:8080: Address already in use"
    )
    assert _Unborn.closed
