"""Boards in a labgrid farm: ``--device=labgrid:PLACE``.

A :class:`PlaceLease` acquires the place through labgrid's coordinator (``LG_COORDINATOR``,
labgrid's default ``127.0.0.1:20408``) with labgrid's own client session, finds the place's
``NetworkSerialPort`` and hands out its ``rfc2217://host:port`` URL; the board is then driven
exactly as any remote board (:class:`harness.device.serial.SerialDevice`).

The coordinator keeps a place acquired when its client dies (it records only ``host/user``),
and labgrid's reservations do not help: an acquired reservation never expires. So each lease
also holds a local ``flock`` named after the coordinator and place, which the kernel drops when
the process dies. Recovery rule: a place acquired by *this* ``host/user`` whose local lock is free
was left by a killed run, and the next run on this machine releases and takes it over. A place
held by another user or host is waited for (never kicked).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from harness.device.errors import BoardBusy, DeviceError
from harness.device.lock import BoardLock
from harness.device.serial import SerialDevice

if TYPE_CHECKING:
    from harness.device.base import Device
    from harness.device.options import DeviceOptions

#: ``--device`` values that name a labgrid place start with this.
LABGRID_PREFIX = "labgrid:"
#: labgrid's own default when ``LG_COORDINATOR`` is not set.
DEFAULT_COORDINATOR = "127.0.0.1:20408"
#: Seconds between "still waiting" messages (and between looks at a held place).
WAIT_INTERVAL = 5.0
#: Bound on one exchange with the coordinator (connect, acquire, release).
RPC_TIMEOUT = 15.0
#: The resource class of a serial port in a farm (labgrid exports USB ports as this class too).
SERIAL_CLASS = "NetworkSerialPort"

T = TypeVar("T")


def coordinator_address() -> str:
    """The coordinator labgrid's tools use: ``$LG_COORDINATOR``, else labgrid's default."""
    return os.environ.get("LG_COORDINATOR") or DEFAULT_COORDINATOR


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _run(coro_factory: Callable[[], Coroutine[Any, Any, T]], timeout: float) -> T:
    """Run a coroutine on a private event loop in its own thread.

    Keeps labgrid's asyncio session away from whatever loop the caller's thread has (pytest's,
    anyio's), and bounds the whole exchange.
    """
    result: list[Any] = []

    def target() -> None:
        try:
            result.append((True, asyncio.run(asyncio.wait_for(coro_factory(), timeout))))
        except BaseException as exc:  # handed to the caller's thread
            result.append((False, exc))

    thread = threading.Thread(target=target, name="labgrid-client", daemon=True)
    thread.start()
    thread.join(timeout + 5.0)
    if not result:
        raise DeviceError(f"the labgrid coordinator did not answer within {timeout:.0f} s")
    ok, value = result[0]
    if not ok:
        if isinstance(value, asyncio.TimeoutError | TimeoutError):
            raise DeviceError(f"the labgrid coordinator did not answer within {timeout:.0f} s")
        raise value
    return value  # type: ignore[no-any-return]


class _Client:
    """labgrid's ``ClientSession`` for one exchange: connect, do, close."""

    def __init__(self, address: str) -> None:
        self.address = address

    async def __aenter__(self) -> Any:
        from labgrid.remote.client import ClientSession
        from labgrid.util.proxy import proxymanager

        address = proxymanager.get_grpc_address(self.address, default_port=20408)
        self.session = ClientSession(address, asyncio.get_running_loop())
        try:
            await self.session.start()
        except Exception as exc:
            await self._close()
            raise DeviceError(
                f"cannot reach the labgrid coordinator at {self.address} (LG_COORDINATOR): {exc}"
            ) from None
        return self.session

    async def __aexit__(self, *exc: object) -> None:
        await self._close()

    async def _close(self) -> None:
        with contextlib.suppress(Exception):
            await self.session.stop()
        with contextlib.suppress(Exception):
            await self.session.close()


def _identity(session: Any) -> str:
    """Who labgrid says we are: ``host/user`` (``LG_HOSTNAME`` / ``LG_USERNAME`` override)."""
    return f"{session.gethostname()}/{session.getuser()}"


class PlaceLease:
    """One labgrid place held by this process: ``acquire()`` waits, ``release()`` gives it back.

    ``url`` is the place's serial port as a pyserial URL once acquired.
    """

    def __init__(
        self,
        place: str,
        *,
        coordinator: str | None = None,
        timeout: float = 600.0,
        notify: Callable[[str], None] | None = None,
        interval: float = WAIT_INTERVAL,
    ) -> None:
        self.place = place
        self.coordinator = coordinator or coordinator_address()
        self.timeout = timeout
        self.interval = interval
        self.notify = notify or _stderr
        self.url: str | None = None
        # A URL for a key: never a device path, so never the same lock as a board's.
        self._local = BoardLock(f"labgrid://{self.coordinator}/{place}")
        self._held = False
        self._cancel = threading.Event()

    # -- acquire ----------------------------------------------------------------------------
    def acquire(self) -> PlaceLease:
        """Take the place (waiting up to ``timeout``) and find its serial port."""
        deadline = time.monotonic() + self.timeout
        self._lock_locally(deadline)
        self._cancel.clear()
        try:
            self.url = _run(lambda: self._acquire_place(deadline), self._remaining(deadline) + 30)
        except BaseException:
            # Also on Ctrl-C: the client thread stops (and gives back what it got) on its own.
            self._cancel.set()
            self._local.release()
            raise
        return self

    def _remaining(self, deadline: float) -> float:
        return max(0.0, deadline - time.monotonic())

    def _give_up(self, why: str) -> BoardBusy:
        return BoardBusy(f"labgrid place {self.place}: {why}; waited {self.timeout:.0f} s")

    def _lock_locally(self, deadline: float) -> None:
        t0 = time.monotonic()
        while not self._local.try_acquire(min(self.interval, self._remaining(deadline))):
            owner = self._local.holder()
            if self._remaining(deadline) <= 0:
                raise self._give_up(f"another esp-hil run here holds it ({owner})")
            self.notify(
                f"esp-hil: waiting for labgrid place {self.place}: another esp-hil run on "
                f"this machine holds it ({owner}); {time.monotonic() - t0:.0f} s of "
                f"{self.timeout:.0f} s"
            )

    async def _acquire_place(self, deadline: float) -> str:
        import grpc
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        t0 = time.monotonic()
        last_note = 0.0
        async with _Client(self.coordinator) as session:
            me = _identity(session)
            while True:
                if self._cancel.is_set():
                    raise DeviceError(f"gave up waiting for labgrid place {self.place}")
                place = session.places.get(self.place)
                if place is None:
                    known = ", ".join(sorted(session.places)) or "none"
                    raise DeviceError(
                        f"no labgrid place {self.place} on {self.coordinator} (places: {known})"
                    )
                holder = place.acquired
                if holder == me:
                    # Our local lock is free, so no live run of ours holds it: a killed run did.
                    self.notify(
                        f"esp-hil: labgrid place {self.place} was left acquired by {holder} "
                        "(a run that was killed); taking it over"
                    )
                    await self._release_with(session)
                    await session.sync_with_coordinator()
                    holder = session.places[self.place].acquired
                if holder:
                    why = f"acquired by {holder}"
                else:
                    try:
                        await session.stub.AcquirePlace(
                            pb.AcquirePlaceRequest(placename=self.place)
                        )
                    except grpc.aio.AioRpcError as exc:
                        # Someone was quicker, or a labgrid reservation of someone else.
                        why = str(exc.details())
                    else:
                        await session.sync_with_coordinator()
                        self._held = True
                        break
                if self._remaining(deadline) <= 0:
                    raise self._give_up(why)
                now = time.monotonic()
                if now - last_note >= self.interval:
                    last_note = now
                    self.notify(
                        f"esp-hil: waiting for labgrid place {self.place} ({why}); "
                        f"{now - t0:.0f} s of {self.timeout:.0f} s"
                    )
                await asyncio.sleep(min(1.0, self._remaining(deadline)))
            try:
                if self._cancel.is_set():
                    raise DeviceError(f"gave up waiting for labgrid place {self.place}")
                return self._serial_url(session, session.places[self.place])
            except BaseException:
                await self._release_with(session)
                raise

    def _serial_url(self, session: Any, place: Any) -> str:
        """The rfc2217 URL of the place's serial port, through an SSH proxy if labgrid says so."""
        from labgrid.resource import NetworkSerialPort
        from labgrid.util.proxy import proxymanager

        found = []
        for exporter, group, cls, name in place.acquired_resources:
            if cls != SERIAL_CLASS:
                continue
            entry = session.resources.get(exporter, {}).get(group, {}).get(name)
            if entry is not None:
                found.append((f"{exporter}/{group}/{cls}/{name}", entry))
        if len(found) != 1:
            what = ", ".join(path for path, _ in found) or "none"
            raise DeviceError(
                f"labgrid place {self.place} needs exactly one NetworkSerialPort; it has {what}"
            )
        path, entry = found[0]
        if not entry.avail:
            raise DeviceError(f"labgrid place {self.place}: {path} is not available (unplugged?)")
        args = entry.args
        if not args.get("port"):
            raise DeviceError(
                f"labgrid place {self.place}: {path} has no TCP port (did the exporter start "
                "ser2net? see its log)"
            )
        if args.get("protocol", "rfc2217") != "rfc2217":
            raise DeviceError(
                f"labgrid place {self.place}: {path} speaks {args.get('protocol')!r}; esp-hil "
                "needs rfc2217 (DTR/RTS for reset and flashing)"
            )
        resource = NetworkSerialPort(target=None, name=None, **args)
        resource.extra = entry.extra
        host, port = proxymanager.get_host_and_port(resource)
        if ":" in host:
            host = f"[{host}]"
        return f"rfc2217://{host}:{port}"

    # -- release ----------------------------------------------------------------------------
    def release(self) -> None:
        """Give the place back (only if still ours) and drop the local lock. Never raises."""
        try:
            if self._held:
                _run(self._release, RPC_TIMEOUT)
        except Exception as exc:
            # The lock goes anyway: the next run here takes the place over (module docstring).
            self.notify(f"esp-hil: could not release labgrid place {self.place}: {exc}")
        finally:
            self._held = False
            self._local.release()

    async def _release(self) -> None:
        async with _Client(self.coordinator) as session:
            await self._release_with(session)

    async def _release_with(self, session: Any) -> None:
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        # fromuser: a place someone kicked us from and took is left alone.
        await session.stub.ReleasePlace(
            pb.ReleasePlaceRequest(placename=self.place, fromuser=_identity(session))
        )
        self._held = False

    def __enter__(self) -> PlaceLease:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class LabgridDevice(SerialDevice):
    """A board in a labgrid place: the serial backend over the place's rfc2217 port."""

    def __init__(self, lease: PlaceLease, **options: Any) -> None:
        assert lease.url is not None, "acquire the lease first"
        super().__init__(lease.url, **options)
        self.lease = lease

    @property
    def description(self) -> str:
        return f"labgrid place {self.lease.place} ({self.port_name})"

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.lease.release()


def place_device(
    opts: DeviceOptions, make_board: Callable[[DeviceOptions], dict[str, Any]]
) -> Device:
    """Acquire the place ``opts.spec`` names; its board, not started yet. Closing it releases.

    ``make_board(opts)`` gives the serial backend's options for the place's URL (the backend
    table's choice of image and WiFi credentials).
    """
    name = opts.spec.removeprefix(LABGRID_PREFIX)
    if not name:
        raise DeviceError("--device=labgrid:PLACE needs a place name")
    if importlib.util.find_spec("labgrid") is None:
        raise DeviceError("--device=labgrid:PLACE needs labgrid: pip install 'esp-hil[labgrid]'")
    lease = PlaceLease(name, timeout=opts.place_timeout, notify=opts.notify).acquire()
    try:
        return LabgridDevice(lease, **make_board(replace(opts, spec=str(lease.url))))
    except BaseException:
        lease.release()
        raise
