"""lwIP's connections live in the sketch's heap (docs/twin.md, "TCP connections").

On the chip lwip2 mallocs every PCB from the same umm heap as the sketch's ``new``: a
connection takes ``sizeof(struct tcp_pcb)`` = 184 bytes (24 umm blocks), a listening
``WiFiServer`` a ``tcp_pcb_listen`` of 36 (5 blocks), and a connection the heap has no PCB
for is refused. These drive the shim's test sketch (``firmware/sim/test/shim_test_sketch.cpp``)
with a heap shrunk by ``ESP_HIL_HEAP``.
"""

from __future__ import annotations

import queue
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.net import free_port
from tests.helpers.shim import Console, booted_console

PCB = 24 * 8  # sizeof(struct tcp_pcb) = 184 bytes in umm's 8-byte blocks (the first holds 4)
LISTEN_PCB = 5 * 8  # sizeof(struct tcp_pcb_listen) = 36
HEAP = 4096
TIMEOUT = 5.0


def _heap(con: Console) -> dict[str, int]:
    return {k: int(v) for k, v in con.fields(con.command("heap", "heap ")).items()}


def _lines_until_echo(con: Console, mark: str) -> list[str]:
    """Every console line up to the answer to ``echo <mark>`` (which it sends)."""
    con.proc.write(f"echo {mark}\n".encode())
    seen: list[str] = []
    while True:
        try:
            line = con.lines.get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"no echo of {mark!r}; lines: {seen}") from None
        if line == f"echo {mark}":
            return seen
        seen.append(line)


def _echoes(sock: socket.socket, payload: bytes = b"ping") -> bool:
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(64)
        if not chunk:
            return False
        got += chunk
    return got == payload


def _is_reset(connect: Callable[[], socket.socket]) -> bool:
    """The twin reset the connection (RST) rather than serving or closing it. The reset
    can beat the end of ``connect()`` itself: the host's handshake completes at once."""
    try:
        with connect() as sock:
            sock.recv(1)  # data (served) or b"" (an orderly close)
            return False
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


class Board:
    """The sketch on a 4 KiB heap, joined, listening on ``port``."""

    def __init__(self, con: Console) -> None:
        self.con = con
        self.ip = con.join_wifi()["ip"]
        self.port = free_port(self.ip)
        con.command(f"listen {self.port}", "listen status=1")

    def connect(self) -> socket.socket:
        sock = socket.create_connection((self.ip, self.port), timeout=TIMEOUT)
        sock.settimeout(TIMEOUT)
        return sock

    def accepted(self) -> socket.socket:
        sock = self.connect()
        self.con.expect("accepted ")
        return sock

    def leave_room_for(self, pcbs: int) -> None:
        """Fills the heap with ``new`` (slots 0 and 1) until it holds ``pcbs`` PCBs and 96
        bytes more, all in one free block; ``hdel all`` gives it back."""
        figures = _heap(self.con)
        hole = figures["free"] - figures["max"]  # the one smaller free block, if any
        if hole:
            # Best fit: a block of exactly its size goes there (n bytes take (n + 4) / 8 blocks).
            assert self.con.command(f"hnew 1 {hole - 4}", "hnew ").startswith("hnew ok=1 ")
        keep = pcbs * PCB + 96
        take = figures["max"] - keep
        assert self.con.command(f"hnew 0 {take - 4}", "hnew ").startswith("hnew ok=1 ")
        left = _heap(self.con)
        assert left["free"] == left["max"] == keep, left


@pytest.fixture
def board(sketch: Path, tmp_path: Path) -> Iterator[Board]:
    with booted_console(sketch, tmp_path / "flash.bin", env={"ESP_HIL_HEAP": str(HEAP)}) as con:
        yield Board(con)


def test_each_connection_takes_a_pcb_from_the_heap(board: Board) -> None:
    before = _heap(board.con)
    socks = []
    try:
        for n in range(1, 4):
            socks.append(board.accepted())
            now = _heap(board.con)
            assert now["free"] == before["free"] - n * PCB, (n, before, now)
        # The first PCB filled the hole tcp_listen() left; the next ones come off the
        # largest free block.
        assert now["max"] == before["max"] - 2 * PCB, (before, now)
        assert all(_echoes(s) for s in socks)
    finally:
        for s in socks:
            s.close()
    for _ in socks:
        board.con.expect("closed")
    assert _heap(board.con)["free"] == before["free"]


def test_connections_beyond_the_heap_are_reset_and_closing_one_makes_room(board: Board) -> None:
    board.leave_room_for(2)
    first, second = board.accepted(), board.accepted()
    with first, second:
        assert _is_reset(board.connect), "a connection the heap had no PCB for was not reset"
        assert not [ln for ln in _lines_until_echo(board.con, "after") if ln.startswith("accepted")]
        assert _heap(board.con)["free"] == 96
        assert _echoes(first) and _echoes(second)

        first.close()
        board.con.expect("closed")
        assert _heap(board.con)["free"] == PCB + 96
        with board.accepted() as fourth:
            assert _echoes(fourth) and _echoes(second)
            assert _heap(board.con)["free"] == 96


def test_dial_without_heap_for_a_pcb_sends_nothing(board: Board) -> None:
    board.leave_room_for(0)
    with socket.socket() as peer:
        peer.bind(("127.0.0.1", 0))
        peer.listen(1)
        peer.settimeout(0.5)
        port = peer.getsockname()[1]
        assert board.con.command(f"dial 127.0.0.1 {port} x", "dial ").startswith("dial ok=0 ")
        with pytest.raises(TimeoutError):
            peer.accept()  # no SYN went out

        board.con.command("hdel all", "hdel")
        before = _heap(board.con)["free"]
        assert board.con.command(f"dial 127.0.0.1 {port} x", "dial ").startswith("dial ok=1 ")
        peer.settimeout(TIMEOUT)
        conn, _ = peer.accept()
        conn.close()
        assert _heap(board.con)["free"] == before - PCB


def test_listening_takes_a_listen_pcb(board: Board) -> None:
    listening = _heap(board.con)["free"]
    assert board.con.command("unlisten", "unlisten ") == "unlisten status=0"
    assert _heap(board.con)["free"] == listening + LISTEN_PCB
    # begin() needs a tcp_pcb and then a tcp_pcb_listen: without room for the first it
    # stays CLOSED, and connections to its port are refused by the host.
    board.leave_room_for(0)
    assert board.con.command(f"listen {board.port}", "listen ") == "listen status=0"
    with pytest.raises(ConnectionRefusedError):
        board.connect().close()
    board.con.command("hdel all", "hdel")
    assert board.con.command(f"listen {board.port}", "listen ") == "listen status=1"
    assert _heap(board.con)["free"] == listening
