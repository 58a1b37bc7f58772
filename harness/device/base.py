"""What every device backend offers the tests: console, READY facts, control service, reset."""

from __future__ import annotations

import json
import secrets
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from harness.device.console import Console
from harness.device.errors import DeviceError, DeviceTimeout, ProvisioningError
from harness.device.postmortem import CrashWatch
from harness.device.ready import READY_RE, Ready, provision, provision_key, why_not_ready
from harness.errors import WiFiSocketError

if TYPE_CHECKING:
    from pathlib import Path

    from harness.sim.i2c import I2cBus
    from harness.sim.pins import Pins
    from harness.sim.spi import SpiBus
    from harness.sim.wifi import AccessPoint


# Control requests that change nothing on the device: sending one twice is harmless.
_SAFE_TO_RETRY = frozenset({"info", "stats", "raw stats"})


class Device(ABC):
    """A board (real or twin) running a firmware with the EspHil agent, ready to be talked to.

    Backends fill in how the console is wired and how a reset is done; everything a test
    uses — ``ip``, ``port``, ``console``, ``info()``, ``connect()`` — is here.
    """

    #: How long a boot may take from reset to the READY line.
    ready_timeout: float = 20.0

    def __init__(self, console: Console) -> None:
        self.console = console
        self._ready: Ready | None = None
        #: Seconds from the last reset (or start) to the READY line.
        self.boot_seconds: float | None = None
        #: The pre-shared key the sketch's links use (docs/protocol.md §6), None: keyless.
        #: :meth:`connect` and :meth:`control` use it; pass it to ``WiFiSocket.serve(key=)``
        #: when the sketch dials the PC.
        self.key: bytes | None = None

    # -- facts from the READY line -----------------------------------------------------------
    @property
    def ready(self) -> Ready:
        """The last READY line's facts; raises if the device never became ready."""
        if self._ready is None:
            raise DeviceError("the device has not printed READY", console_tail=self.console.tail())
        return self._ready

    @property
    def ip(self) -> str:
        """The device's IP address on the WiFi network."""
        return self.ready.ip

    @property
    def port(self) -> int:
        """The port from READY: the sketch's service (the test firmware's echo service); 0 when
        the sketch dials the PC instead."""
        return self.ready.port

    @property
    def listening_port(self) -> int:
        """:attr:`port`, or a :class:`DeviceError` saying why there is none to connect to."""
        port = self.ready.port
        if port == 0:
            dial = self.ready.extra.get("dial", "the PC")
            raise DeviceError(
                f"{self.fw} listens on no port: it dials {dial} (READY port=0); "
                "serve it with WiFiSocket.serve(port) instead of connecting"
            )
        return port

    @property
    def ctrl_port(self) -> int:
        """TCP port of the test firmware's control service (0: another firmware, none)."""
        return self.ready.ctrl_port

    @property
    def mac(self) -> str:
        """The station MAC address, lower-case ``aa:bb:cc:dd:ee:ff``."""
        return self.ready.mac

    @property
    def fw(self) -> str:
        """The firmware identity it announced (``esp-hil-testfw/<version>+<build>``)."""
        return self.ready.fw

    @property
    def max_message(self) -> int:
        """Largest message the echo service accepts."""
        return self.ready.max_message

    def summary(self) -> str:
        """One line for reports: which device, which firmware, how long it took to boot."""
        boot = f"{self.boot_seconds:.3f} s" if self.boot_seconds is not None else "?"
        return f"device: {self.description}  fw={self.fw}  ip={self.ip}  boot to READY: {boot}"

    @property
    @abstractmethod
    def description(self) -> str:
        """A short human name for reports: ``twin 127.0.0.3`` or ``/dev/ttyUSB0``."""

    # -- talking to it ----------------------------------------------------------------------
    def connect(self, port: int | None = None, *, host: str | None = None, **options: Any) -> Any:
        """A :class:`harness.WiFiSocket` connected to the READY port (or ``port``), keyed
        with :attr:`key` unless ``key=`` is given."""
        from harness.wifisocket import WiFiSocket

        options.setdefault("key", self.key)
        return WiFiSocket(host or self.ip, port or self.listening_port, **options)

    def set_up_key(self, link_key: bytes | str) -> None:
        """Give the sketch its link key over the console: ``"auto"`` a fresh random one when
        the firmware takes keys (else keyless), ``"none"`` keyless, bytes that key.

        A firmware that announced no key support is left alone (``auto``, ``none``); asking
        it for a given key is a :class:`ProvisioningError`.
        """
        if not self.ready.accepts_key:
            if isinstance(link_key, bytes):
                raise ProvisioningError(
                    f"{self.fw} takes no link key (its READY line has no auth=1: the sketch "
                    "does not call EspHil.onKey)"
                )
            self.key = None
            return
        key: bytes | None
        if isinstance(link_key, bytes):
            key = link_key
        else:
            key = secrets.token_bytes(32) if link_key == "auto" else None
        provision_key(self.console, key)
        self.key = key

    def info(self, timeout: float = 5.0) -> dict[str, Any]:
        """``info`` (heap, uptime, reset reason, ...): from the test firmware's control
        service, or from the EspHil agent's console command for any other sketch."""
        if self.ctrl_port == 0:
            mark = self.console.mark()
            self.console.send_line("info")
            m = self.console.expect(r"^ESP-HIL INFO (\{.*\})$", timeout, since=mark)
            found: dict[str, Any] = json.loads(m.group(1))
            return found
        return self.control("info", timeout=timeout)

    def control(self, command: str, timeout: float = 5.0) -> dict[str, Any]:
        """Send one command to the control service and return its JSON reply.

        A read-only request (``info``, ``stats``, ``raw stats``) whose connection fails
        before the reply is sent again while ``timeout`` lasts; any other request is sent
        at most once (the device may have run it: running it twice is not harmless).
        """
        if self.ctrl_port == 0:
            raise DeviceError(
                f"control({command!r}) needs esp-hil's test firmware: {self.fw} announced no "
                "control port (READY has no ctrl=)"
            )
        deadline = time.monotonic() + timeout
        retry = " ".join(command.split()) in _SAFE_TO_RETRY
        while True:
            left = max(0.05, deadline - time.monotonic())
            try:
                sock = self.connect(self.ctrl_port, timeout=left)
                try:
                    sock.send(command)
                    reply = sock.receive(timeout=left)
                finally:
                    sock.close()
                break
            except WiFiSocketError:
                if not retry or time.monotonic() >= deadline:
                    raise
        if not isinstance(reply, str):
            raise DeviceError(f"control service answered {command!r} with binary data")
        result: dict[str, Any] = json.loads(reply)
        return result

    # -- lifecycle --------------------------------------------------------------------------
    def wait_ready(
        self, *, since: int, timeout: float | None = None, t0: float | None = None,
        watch: CrashWatch | None = None,
    ) -> Ready:
        """Wait for a READY line after console mark ``since`` and remember its facts.

        Raises :class:`FirmwareCrashed` at once if the firmware boot-loops meanwhile.
        """
        start = time.monotonic() if t0 is None else t0
        m = self.console.expect(
            READY_RE, self.ready_timeout if timeout is None else timeout, since=since,
            watch=CrashWatch() if watch is None else watch,
        )
        try:
            self._ready = Ready.parse(m.group(0))
        except ValueError as exc:
            raise DeviceError(str(exc), console_tail=self.console.tail()) from None
        self.boot_seconds = time.monotonic() - start
        return self._ready

    def reset(self, timeout: float | None = None) -> Ready:
        """Hard-reset the device and wait until it is READY again (credentials persist)."""
        mark = self.console.mark()
        t0 = time.monotonic()
        self._ready = None
        self.hard_reset()
        try:
            return self.wait_ready(since=mark, timeout=timeout, t0=t0)
        except DeviceTimeout as exc:
            raise DeviceTimeout(
                f"no READY after reset: {exc.args[0].splitlines()[0]}",
                console_tail=self.console.tail(since=mark),
            ) from None

    def bring_up(
        self, *, since: int, ssid: str | None, password: str | None, t0: float | None = None
    ) -> Ready:
        """After a boot: wait for READY, provisioning WiFi first if the firmware asks for it.

        A board with credentials for this network stored joins by itself; one with none (or
        with credentials that fail) gets ``ssid``/``password`` over the console. Without
        credentials to give, such a board fails at once with :class:`ProvisioningError`.
        """
        start = time.monotonic() if t0 is None else t0
        watch = CrashWatch()  # one count for the whole bring-up
        try:
            m = self.console.expect(
                r"^ESP-HIL (READY|WIFI none|WIFI fail)", self.ready_timeout, since=since,
                watch=watch,
            )
            if m.group(1) == "READY":
                return self.wait_ready(since=since, t0=start)
            if ssid is None:
                raise ProvisioningError(
                    f"the board has no working WiFi credentials ({m.group(0)}): pass "
                    "--wifi-ssid and --wifi-password, or set ESP_HIL_WIFI_SSID and "
                    "ESP_HIL_WIFI_PASSWORD",
                    console_tail=self.console.tail(since=since),
                )
            self._ready = provision(self.console, ssid, password or "",
                                    timeout=self.ready_timeout, watch=watch)
        except DeviceTimeout as exc:
            if self.console.closed_reason is not None:
                raise  # the console's end says why (a twin's firmware that exited, ...)
            hint = why_not_ready([ln.text for ln in self.console.since(since)])
            if hint is None:
                raise
            raise DeviceTimeout(
                f"no READY within {self.ready_timeout:.0f} s: {hint}",
                console_tail=exc.console_tail,
            ) from None
        self.boot_seconds = time.monotonic() - start
        return self._ready

    def twin_log(self, since: float | None = None) -> list[str]:
        """A twin's own warnings from ``time.monotonic()`` value ``since`` on (see
        :meth:`harness.sim.world.TwinWorld.twin_log`); a board has none."""
        return []

    # -- pins (twin only) --------------------------------------------------------------------
    @property
    def pins(self) -> Pins:
        """GPIO 0..16: ``pins[n]`` reads what the sketch drives, ``pins[n] = 0 | 1`` drives an
        input (:class:`harness.sim.pins.Pins`). Only a twin has them."""
        raise DeviceError(f"device.pins is twin only: {self.description} is not a twin")

    @property
    def fs(self) -> Path:
        """The directory that holds the sketch's LittleFS files. Only a twin (sim,
        sim-direct) has one a test can read and fill."""
        raise DeviceError(
            f"device.fs is twin only (sim, sim-direct): {self.description} keeps its files "
            "in flash"
        )

    @property
    def i2c(self) -> I2cBus:
        """The I2C bus the sketch's ``Wire`` talks to: ``attach(address, registers)`` wires
        a register-map device (:class:`harness.sim.i2c.I2cBus`). Only a twin (sim,
        sim-direct) has one a test can wire."""
        raise DeviceError(
            f"device.i2c is twin only (sim, sim-direct): {self.description} has no bus a "
            "test can wire"
        )

    @property
    def spi(self) -> SpiBus:
        """The SPI bus the sketch's ``SPI`` talks to: ``attach(cs_gpio, registers)`` wires a
        register-map device (:class:`harness.sim.spi.SpiBus`). Only a twin (sim,
        sim-direct) has one a test can wire."""
        raise DeviceError(
            f"device.spi is twin only (sim, sim-direct): {self.description} has no bus a "
            "test can wire"
        )

    @property
    def wifi(self) -> AccessPoint:
        """The access point the device is joined to, as a test moves it: ``drop()``,
        ``restore()``, ``set_password()``, ``rssi`` (:class:`harness.sim.wifi.AccessPoint`).
        Only a twin has one."""
        raise DeviceError(
            f"device.wifi is twin only (sim, sim-direct): {self.description} has no access "
            "point a test can move"
        )

    @property
    def analog(self) -> int:
        """What ``analogRead(A0)`` returns, 0..1023 (twin only)."""
        return self.pins.analog

    @analog.setter
    def analog(self, value: int) -> None:
        self.pins.analog = value

    @abstractmethod
    def start(self) -> Device:
        """Power on or take the device (flashing if needed) and bring it to READY."""

    @abstractmethod
    def hard_reset(self) -> None:
        """Pull EN low and release it (or the twin's equivalent); return without waiting."""

    @abstractmethod
    def close(self) -> None:
        """Release the device (stop a twin, close the port, drop the lock)."""

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
