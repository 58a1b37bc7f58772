"""``Device.control`` retries only what is safe to retry (issue 17)."""

from __future__ import annotations

from typing import Any

import pytest

from harness.errors import ConnectionLost
from tests.helpers.stub import StubDevice


class _Link:
    def __init__(self, device: _Flaky) -> None:
        self.device = device

    def send(self, command: str) -> None:
        self.device.sent.append(command)

    def receive(self, timeout: float) -> str:
        if self.device.drops:
            self.device.drops -= 1
            raise ConnectionLost("connection closed by the peer")
        return '{"ok": true}'

    def close(self) -> None:
        pass


class _Flaky(StubDevice):
    """A device whose control connection drops after the request ``drops`` times."""

    def __init__(self, drops: int) -> None:  # no console: only control() is used
        self.drops = drops
        self.sent: list[str] = []

    @property
    def ctrl_port(self) -> int:
        return 8081

    def connect(self, port: int | None = None, *, host: str | None = None,
                **options: Any) -> Any:
        return _Link(self)


@pytest.mark.parametrize("command", ["stats", "info", "raw stats", " raw  stats "])
def test_a_read_only_request_is_sent_again(command: str) -> None:
    dev = _Flaky(drops=2)
    assert dev.control(command, timeout=2.0) == {"ok": True}
    assert len(dev.sent) == 3


@pytest.mark.parametrize("command", ["source 10 100", "sink", "dial 10.0.0.1 9000", "block 50"])
def test_a_request_that_changes_something_is_sent_once(command: str) -> None:
    dev = _Flaky(drops=1)
    with pytest.raises(ConnectionLost):
        dev.control(command, timeout=2.0)
    assert dev.sent == [command]
