"""A one-client-at-a-time RFC2217 server in front of the twin's UART.

pyserial's ``PortManager`` does the Telnet/RFC2217 negotiation; its serial
object is our :class:`~harness.sim.chip.uart.BridgeSerial`, so SET_BAUDRATE and
SET_CONTROL (DTR/RTS) reach the chip as they would through a USB bridge.

Clients are served in arrival order; a second client waits in the listen
backlog until the first disconnects. When a client goes away, DTR and RTS are
deasserted, as a host's serial driver does when the port is closed.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable

from serial.rfc2217 import M_NORMAL, PortManager

from .uart import BridgeSerial

log = logging.getLogger(__name__)


class _ChipPortManager(PortManager):  # type: ignore[misc]
    """PortManager that hands over buffered data before any control request.

    ``PortManager.filter`` yields data one byte at a time; batching it is much
    faster, but data received before a SET_CONTROL must reach the chip before
    the line change does, so the batch is flushed ahead of every control event.
    """

    def __init__(self, bridge: BridgeSerial, connection: object, flush: Callable[[], None]):
        self._flush = flush
        super().__init__(bridge, connection)

    def _telnet_process_subnegotiation(self, suboption: bytes) -> None:
        self._flush()
        super()._telnet_process_subnegotiation(suboption)

    def _telnet_negotiate_option(self, command: bytes, option: bytes) -> None:
        self._flush()
        super()._telnet_negotiate_option(command, option)

    def _telnet_process_command(self, command: bytes) -> None:
        self._flush()
        super()._telnet_process_command(command)


class _Connection:
    """Thread-safe writer for one client socket (PortManager's ``connection``)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._lock = threading.Lock()
        self.closed = False

    def write(self, data: bytes) -> None:
        with self._lock:
            if self.closed:
                return
            try:
                self.sock.sendall(data)
            except OSError:
                self.closed = True


class Rfc2217Server:
    """Serves the UART on ``host:port`` (port 0 picks a free one)."""

    def __init__(
        self,
        bridge: BridgeSerial,
        on_data: Callable[[bytes], None],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_connect: Callable[[], None] | None = None,
        on_disconnect: Callable[[], None] | None = None,
    ) -> None:
        self.bridge = bridge
        self._on_data = on_data
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._listener = socket.create_server((host, port), reuse_port=False)
        self.host = host
        self.port: int = self._listener.getsockname()[1]
        self._client: _Connection | None = None
        self._manager: _ChipPortManager | None = None
        self._client_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, name=f"rfc2217-{self.port}", daemon=True
        )

    @property
    def url(self) -> str:
        """The ``rfc2217://`` URL clients open."""
        return f"rfc2217://{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        """True while a client is being served."""
        return self._client is not None

    def start(self) -> None:
        """Start accepting clients."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Close the listener and the current client; wait for the thread."""
        self._stopping.set()
        # close() alone does not wake a thread blocked in accept(); shutdown does.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._client_lock:
            client = self._client
        if client is not None:
            with contextlib.suppress(OSError):
                client.sock.shutdown(socket.SHUT_RDWR)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def send(self, data: bytes) -> None:
        """Transmit chip output to the client; dropped when none is connected."""
        with self._client_lock:
            client, manager = self._client, self._manager
        if client is None or manager is None or not data:
            return
        client.write(data.replace(b"\xff", b"\xff\xff"))

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _addr = self._listener.accept()
            except OSError:
                return
            try:
                self._handle(sock)
            except Exception:  # a broken client must never take the server down
                log.exception("rfc2217 client handler failed")
            finally:
                with contextlib.suppress(OSError):
                    sock.close()

    def _handle(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Connection(sock)
        pending = bytearray()

        def flush() -> None:
            if pending:
                data = bytes(pending)
                pending.clear()
                self._on_data(data)

        manager = _ChipPortManager(self.bridge, conn, flush)
        with self._client_lock:
            self._client, self._manager = conn, manager
        if self._on_connect is not None:
            self._on_connect()
        try:
            while not self._stopping.is_set():
                try:
                    data = sock.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                if manager.mode == M_NORMAL and manager.suboption is None and b"\xff" not in data:
                    self._on_data(data)  # the common case: plain data, no Telnet
                    continue
                for byte in manager.filter(data):
                    pending += byte
                flush()
        finally:
            conn.closed = True
            with self._client_lock:
                self._client, self._manager = None, None
            # The host closed the port: its driver drops DTR and RTS.
            self.bridge.set_lines(dtr=False, rts=False)
            if self._on_disconnect is not None:
                self._on_disconnect()
