"""A labgrid farm on loopback for tests: coordinator, twins, exporter, places.

Every process is started in its own process group and stopped (TERM, then KILL) on exit, so a
failing test leaves no coordinator, exporter or twin behind.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from tests.helpers.net import free_port

#: The worktree root: subprocesses run from it so they import this checkout's ``harness``.
ROOT = Path(__file__).resolve().parents[2]


def group_alive(pgid: int) -> bool:
    """Whether any process of process group ``pgid`` is still there."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@contextmanager
def process(cmd: list[str], log: Path, **kwargs: Any) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` in a process group of its own, output in ``log``; stop the group on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kwargs
        )
    try:
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """TERM the process group, KILL it after ``grace`` seconds."""
    if proc.poll() is None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(grace)
                break
            except subprocess.TimeoutExpired:
                continue
    proc.wait(grace)


def wait_for_line(log: Path, pattern: str, proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The first match of ``pattern`` in ``log`` (group 1), waiting up to ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(pattern, log.read_text(errors="replace"), re.M)
        if m:
            return m.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"no {pattern!r} in {log} within {timeout} s:\n{log.read_text()}")


def run_client(address: str, coro_fn: Any, *, who: str | None = None, timeout: float = 30.0) -> Any:
    """Run ``coro_fn(session)`` with a labgrid ClientSession connected to ``address``.

    ``who`` (``host/user``) poses as another client, as ``LG_HOSTNAME``/``LG_USERNAME`` would.
    """
    from labgrid.remote.client import ClientSession

    async def main() -> Any:
        session = ClientSession(address, asyncio.get_running_loop())
        if who is not None:
            host, user = who.split("/")
            session.gethostname = lambda: host
            session.getuser = lambda: user
        await session.start()
        try:
            return await coro_fn(session)
        finally:
            await session.stop()
            await session.close()

    return asyncio.run(asyncio.wait_for(main(), timeout))


def create_place(address: str, name: str, group: str) -> None:
    """Create place ``name`` matching the exporter group ``group``'s NetworkSerialPort."""
    from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

    async def create(session: Any) -> None:
        await session.stub.AddPlace(pb.AddPlaceRequest(name=name))
        await session.stub.AddPlaceMatch(
            pb.AddPlaceMatchRequest(placename=name, pattern=f"*/{group}/NetworkSerialPort")
        )
        await session.sync_with_coordinator()

    run_client(address, create)


def place_holder(address: str, name: str) -> str | None:
    """Who holds place ``name`` now (``host/user``), None when it is free."""

    async def look(session: Any) -> str | None:
        holder = session.places[name].acquired
        return str(holder) if holder else None

    return run_client(address, look)  # type: ignore[no-any-return]


def acquire_as(address: str, name: str, who: str) -> None:
    """Acquire place ``name`` as client ``who`` (someone else, on another machine)."""
    from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

    async def acquire(session: Any) -> None:
        await session.stub.AcquirePlace(pb.AcquirePlaceRequest(placename=name))

    run_client(address, acquire, who=who)


def release_as(address: str, name: str, who: str) -> None:
    """Release place ``name`` held by ``who``."""
    from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

    async def release(session: Any) -> None:
        await session.stub.ReleasePlace(pb.ReleasePlaceRequest(placename=name, fromuser=who))

    run_client(address, release, who=who)


def wait_for_resources(address: str, count: int, timeout: float = 30.0) -> None:
    """Wait until the coordinator lists ``count`` available NetworkSerialPorts."""

    async def seen(session: Any) -> int:
        return sum(
            1
            for groups in session.resources.values()
            for group in groups.values()
            for entry in group.values()
            if entry.cls == "NetworkSerialPort" and entry.avail
        )

    deadline = time.monotonic() + timeout
    while run_client(address, seen) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"the exporter published fewer than {count} serial ports")
        time.sleep(0.2)


def pytest_command(*args: str) -> list[str]:
    """A quiet ``python -m pytest`` of this checkout."""
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]


def run_pytest(args: list[str], log: Path, env: dict[str, str], timeout: float) -> tuple[int, str]:
    """``python -m pytest args`` from the worktree root: exit code and output.

    Killed with its whole process group (xdist workers too) when it outlives ``timeout``.
    """
    with process(pytest_command(*args), log, cwd=ROOT, env=env) as proc:
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = -1
    return code, log.read_text(errors="replace")


class Farm:
    """Coordinator + ``twins`` twins (``esp-hil sim``) + exporter + one place per twin."""

    def __init__(self, workdir: Path, places: list[str]) -> None:
        self.workdir = workdir
        self.places = places
        self.address = ""
        self.urls: dict[str, str] = {}
        #: Process groups started (coordinator, twins, exporter), for the orphan check.
        self.groups: list[int] = []
        self._stack = ExitStack()

    def __enter__(self) -> Farm:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a client of this farm."""
        env = dict(os.environ, LG_COORDINATOR=self.address, **extra)
        env.pop("PYTEST_XDIST_WORKER", None)
        return env

    def _run(self, cmd: list[str], log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = self._stack.enter_context(process(cmd, log, **kwargs))
        self.groups.append(proc.pid)
        return proc

    def _start(self) -> None:
        wd = self.workdir
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        log = wd / "coordinator.log"
        coord = self._run(["labgrid-coordinator", "-l", self.address], log, cwd=wd)
        wait_for_line(log, r"^(listening on) ", coord, 30)
        for name in self.places:
            log = wd / f"twin-{name}.log"
            cmd = [sys.executable, "-m", "harness.cli", "sim", "--flash-file", str(wd / name)]
            twin = self._run(cmd, log, cwd=ROOT)
            self.urls[name] = wait_for_line(log, r"^serial: (\S+)", twin, 120)
        config = wd / "exporter.yaml"
        out = subprocess.run(
            [sys.executable, "-m", "harness.cli", "sim", "--labgrid-exporter", *self.urls.values()],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        config.write_text(out.stdout)
        cmd = ["labgrid-exporter", "-c", self.address, "-n", "esp-hil-ci", str(config)]
        self._run(cmd, wd / "exporter.log", cwd=wd)
        wait_for_resources(self.address, len(self.places))
        for name, url in self.urls.items():
            create_place(self.address, name, f"twin-{url.rsplit(':', 1)[1]}")
