"""BoardLock: one lock per board however it is named, under the user's cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.device.errors import BoardBusy
from harness.device.lock import BoardLock


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("ESP_HIL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path


def test_a_symlink_and_its_target_are_one_board(tmp_path: Path) -> None:
    tty = tmp_path / "ttyUSB0"
    tty.touch()
    by_id = tmp_path / "usb-Silicon_Labs_CP2102-if00-port0"
    by_id.symlink_to(tty)
    with BoardLock(str(by_id), timeout=1), pytest.raises(BoardBusy):
        BoardLock(str(tty), timeout=0.1).acquire()


def test_two_boards_do_not_share_a_lock(tmp_path: Path) -> None:
    with BoardLock(str(tmp_path / "ttyUSB0"), timeout=1):
        BoardLock(str(tmp_path / "ttyUSB1"), timeout=0.1).acquire().release()


def test_locks_live_under_xdg_cache_home(tmp_path: Path) -> None:
    with BoardLock("rfc2217://127.0.0.1:4000", timeout=1):
        assert list((tmp_path / "xdg" / "esp-hil" / "locks").glob("*.lock"))


def test_a_busy_board_names_the_process_holding_it(tmp_path: Path) -> None:
    port = str(tmp_path / "ttyUSB0")
    with BoardLock(port, timeout=1) as held:
        other = BoardLock(port)
        assert not other.try_acquire(0.1)
        assert other.holder() == f"pid {os.getpid()}"
        with pytest.raises(BoardBusy, match=f"in use by another process \\(pid {os.getpid()}\\)"):
            BoardLock(port, timeout=0.1).acquire()
    assert held.try_acquire(0.1), "free again once released"
    held.release()
