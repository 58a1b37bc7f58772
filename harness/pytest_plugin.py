"""esp-hil's pytest plugin: ``--device``, ``--project`` and the ``device``, ``link``, ``netem``
fixtures.

``pytest`` alone runs the suite against a twin (the firmware compiled for the host);
``pytest --device=/dev/ttyUSB0`` or ``--device=rfc2217://host:port`` against a board.
Several ``--device`` options spread boards over pytest-xdist workers, one board per worker.
``--project PATH`` (or the ini key ``esp_hil_project``) names the PlatformIO project whose
firmware runs there; without it, esp-hil's own test firmware.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.backends import BACKENDS, BOARD, DeviceOptions, is_twin_spec, open_device
from harness.device.errors import DeviceError
from harness.device.postmortem import crash_reasons
from harness.device.ready import parse_link_key
from harness.figures import Figure, FigureRecorder, compare_figures, format_table, save_figures
from harness.project import ProjectError

if TYPE_CHECKING:
    from harness.device.base import Device
    from harness.netem import Proxy

_PYSERIAL_WARNINGS = r"ignore:set(Name|Daemon)\(\) is deprecated:DeprecationWarning"

#: The session's device, kept on the config for the hooks that need it.
_DEVICE_KEY = pytest.StashKey["Device | None"]()
#: Per test: the console position when it started, and its netem proxy.
_MARK_KEY = pytest.StashKey["int | None"]()
_STARTED_KEY = pytest.StashKey[float]()
_NETEM_KEY = pytest.StashKey["Any"]()
#: Whether this process already put its device's summary into a report.
_REPORTED_KEY = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("esp-hil", "esp-hil hardware-in-the-loop")
    group.addoption(
        "--device",
        action="append",
        default=[],
        metavar="DEVICE",
        help="board to test (default: sim): "
        + ", ".join(f"'{name}' ({backend.summary})" for name, backend in BACKENDS.items())
        + f", or {BOARD.summary}; repeat to spread boards over xdist workers",
    )
    group.addoption(
        "--labgrid-timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long to wait for a labgrid place someone else holds (default 600)",
    )
    group.addoption(
        "--wifi-ssid",
        default=os.environ.get("ESP_HIL_WIFI_SSID"),
        help="WiFi network the board joins (env ESP_HIL_WIFI_SSID)",
    )
    group.addoption(
        "--wifi-password",
        default=os.environ.get("ESP_HIL_WIFI_PASSWORD"),
        help="its password (env ESP_HIL_WIFI_PASSWORD)",
    )
    group.addoption(
        "--flash",
        choices=("auto", "always", "never"),
        default="auto",
        help="flash the firmware: when its MD5 differs (auto), always, or never",
    )
    group.addoption(
        "--firmware",
        default=None,
        metavar="PATH",
        help="firmware image to flash on a board (default: build the project, or esp-hil's "
        "test firmware, with PlatformIO; a twin builds its own)",
    )
    group.addoption(
        "--project",
        default=None,
        metavar="PATH",
        help="PlatformIO project (platformio.ini, src/, lib/) whose firmware is tested "
        "(default: the ini key esp_hil_project, else esp-hil's own test firmware)",
    )
    group.addoption(
        "--pio-env",
        default=None,
        metavar="ENV",
        help="the project's PlatformIO environment (default: its default_envs, else its first)",
    )
    parser.addini(
        "esp_hil_project",
        "PlatformIO project whose firmware is tested, relative to this ini file (--project)",
        default="",
    )
    group.addoption(
        "--esp-hil-save",
        default=None,
        metavar="FILE",
        help="store the figures recorded with the throughput fixture as a bench baseline "
        "(appends: a few runs build the spread)",
    )
    group.addoption(
        "--esp-hil-compare",
        default=None,
        metavar="FILE",
        help="compare the throughput fixture's figures with a stored baseline at the end; "
        "fail the run naming every figure that got worse (BENCHMARKS.md)",
    )
    group.addoption(
        "--link-key",
        default=os.environ.get("ESP_HIL_LINK_KEY", "auto"),
        metavar="auto|none|HEX",
        help="the links' pre-shared key (docs/security.md): auto, a fresh random key per test "
        "session when the firmware takes keys (device.key); none, keyless; or 32..64 hex "
        "digits (env ESP_HIL_LINK_KEY)",
    )
    group.addoption(
        "--sanitize",
        action="store_true",
        help="build the twin's firmware with AddressSanitizer + UBSan",
    )


def project_path(config: pytest.Config) -> Path | None:
    """The project to test: ``--project`` (relative to the invocation directory), else the
    ini key ``esp_hil_project`` (relative to the ini file), else None (the test firmware)."""
    option = config.getoption("--project")
    if option:
        return config.invocation_params.dir / option
    value = str(config.getini("esp_hil_project")).strip()
    if value:
        base = config.inipath.parent if config.inipath is not None else config.rootpath
        return base / value
    return None


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--project") is not None or config.getini("esp_hil_project"):
        # A project that cannot be built is the command line's mistake: say so once, now.
        try:
            device_options(config).load_project()
        except ProjectError as exc:
            raise pytest.UsageError(f"esp-hil: {exc}") from None
    try:
        parse_link_key(config.getoption("--link-key"))
    except ValueError as exc:
        raise pytest.UsageError(f"esp-hil: --link-key: {exc}") from None
    config.stash[_DEVICE_KEY] = None
    # pyserial's rfc2217 client still calls Thread.setDaemon/setName: not the user's concern.
    config.addinivalue_line("filterwarnings", _PYSERIAL_WARNINGS)
    config.pluginmanager.register(_Summary(config), "esp-hil-summary")
    config.addinivalue_line("markers", "board: needs a real ESP8266 board (skipped on a twin)")
    config.addinivalue_line("markers", "twin: needs the twin's insides (skipped on a real board)")


def device_spec(config: pytest.Config) -> str:
    """The ``--device`` this process uses: its xdist worker's share of the list."""
    specs: list[str] = config.getoption("--device") or ["sim"]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    return specs[index % len(specs)]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    twin = is_twin_spec(device_spec(config))
    for item in items:
        if twin and item.get_closest_marker("board"):
            item.add_marker(pytest.mark.skip(reason="needs a real board (--device=/dev/ttyUSB0)"))
        if not twin and item.get_closest_marker("twin"):
            item.add_marker(pytest.mark.skip(reason="needs the twin (--device=sim)"))


def device_options(config: pytest.Config, **overrides: Any) -> DeviceOptions:
    """The device options of this pytest process, with ``overrides`` (e.g. ``pio_env="dial"``
    for a second device built from another env: ``harness.backends.open_device(opts)``)."""
    opts = DeviceOptions(
        spec=device_spec(config),
        ssid=config.getoption("--wifi-ssid"),
        password=config.getoption("--wifi-password"),
        firmware=config.getoption("--firmware"),
        flash=config.getoption("--flash"),
        project=project_path(config),
        pio_env=config.getoption("--pio-env"),
        sanitize=config.getoption("--sanitize"),
        link_key=config.getoption("--link-key"),
        place_timeout=config.getoption("--labgrid-timeout"),
        notify=_notifier(config),
    )
    return dataclasses.replace(opts, **overrides)


def _notifier(config: pytest.Config) -> Any:
    """Progress messages (waiting for a labgrid place) shown live, past output capturing."""
    capman = config.pluginmanager.getplugin("capturemanager")

    def notify(message: str) -> None:
        with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
            print(message, file=sys.stderr, flush=True)

    return notify


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> Iterator[Device]:
    """The board under test running the project's firmware, booted and READY (session-wide).

    Has ``.ip``, ``.port`` (the port from its READY line: the sketch's WiFiSocket service, the
    test firmware's echo service), ``.mac``, ``.fw``, ``.max_message``, ``.console``
    (timestamped lines, ``expect(pattern, timeout)``, ``send_line``), ``.info()`` (heap,
    uptime, reset reason), ``.reset()``, and on a twin ``.pins[n]`` and ``.analog``. The test
    firmware adds ``.ctrl_port`` and ``.control()``. A twin unless ``--device`` names a board.
    """
    config = request.config
    try:
        dev = open_device(device_options(config))
    except DeviceError as exc:
        failure = str(exc)
    else:
        failure = ""
    if failure:
        pytest.fail(f"the device did not come up: {failure}", pytrace=False)
    config.stash[_DEVICE_KEY] = dev
    try:
        yield dev
    finally:
        config.stash[_DEVICE_KEY] = None
        dev.close()


def _seed_for(nodeid: str) -> int:
    return zlib.crc32(nodeid.encode())


@pytest.fixture
def netem(request: pytest.FixtureRequest, device: Device) -> Iterator[Proxy]:
    """A fault-injecting proxy between ``link`` and the device's service (the READY port).

    Seeded from the test's id, so a failing fault schedule replays; the seed is shown when the
    test fails.
    """
    from harness.netem import Proxy

    proxy = Proxy(upstream=(device.ip, device.listening_port), seed=_seed_for(request.node.nodeid))
    proxy.start()
    request.node.stash[_NETEM_KEY] = proxy
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def link(request: pytest.FixtureRequest, device: Device) -> Iterator[Any]:
    """A :class:`harness.WiFiSocket` connected to the port from the device's READY line (the
    sketch's service; the test firmware's echo service).

    Goes through the ``netem`` proxy when the test also asks for ``netem``.
    """
    if "netem" in request.fixturenames:
        proxy = request.getfixturevalue("netem")
        host, port = proxy.address
        sock = device.connect(port, host=host)
    else:
        sock = device.connect()
    try:
        yield sock
    finally:
        sock.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    dev = item.config.stash.get(_DEVICE_KEY, None)
    item.stash[_MARK_KEY] = dev.console.mark() if dev is not None else None
    item.stash[_STARTED_KEY] = time.monotonic()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    dev = item.config.stash.get(_DEVICE_KEY, None)
    if dev is not None and call.when == "call" and not item.config.stash.get(_REPORTED_KEY, False):
        item.config.stash[_REPORTED_KEY] = True
        prop = (_DEVICE_PROPERTY, dev.summary())
        item.user_properties.append(prop)
        report.user_properties.append(prop)
    if report.failed:
        if dev is not None:
            mark = item.stash.get(_MARK_KEY, None)
            crashes = ([] if mark is None else
                       crash_reasons(ln.text for ln in dev.console.since(mark)))
            if crashes:
                # Often the cause of what the test saw (a SessionLost, a timeout): say so first.
                times = "once" if len(crashes) == 1 else f"{len(crashes)} times"
                report.sections.append((
                    f"esp-hil firmware crash ({dev.description})",
                    f"the firmware crashed {times} during this test: {', '.join(crashes)}; "
                    "its report is in the console below",
                ))
            tail = dev.console.tail(60, since=mark)
            report.sections.append((f"esp-hil console ({dev.description})", tail or "(nothing)"))
            shim = dev.twin_log(since=item.stash.get(_STARTED_KEY, None))
            if shim:
                report.sections.append((f"esp-hil twin log ({dev.description})",
                                        "\n".join(shim[-60:])))
        proxy = item.stash.get(_NETEM_KEY, None)
        if proxy is not None:
            report.sections.append(("esp-hil netem", f"seed={proxy.seed}"))
    return report


@pytest.fixture
def throughput(request: pytest.FixtureRequest) -> FigureRecorder:
    """Records performance figures: ``throughput.record(name, value, unit)`` or
    ``with throughput.measure(name, nbytes=..., messages=...):``.

    Figures appear in a table at the end of the run and as ``esp-hil:<name>`` properties in
    the JUnit XML.
    """
    return FigureRecorder(request.node.nodeid, request.node.user_properties)


#: user_property naming the device a worker used (its controller prints it in the summary).
_DEVICE_PROPERTY = "esp-hil-device"


class _Summary:
    """Gathers figures and device facts from test reports (workers' too) for the summary;
    saves or compares the figures at the end (``--esp-hil-save``, ``--esp-hil-compare``)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.figures: list[Figure] = []
        self.devices: set[str] = set()
        self.gate_lines: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == _DEVICE_PROPERTY:
                self.devices.add(str(value))
            elif report.when == "call":
                fig = Figure.from_property(report.nodeid, name, value)
                if fig is not None:
                    self.figures.append(fig)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from harness.bench.gate import GateError

        if hasattr(self.config, "workerinput"):
            return  # an xdist worker: the controller sees every worker's figures
        save = self.config.getoption("--esp-hil-save")
        compare = self.config.getoption("--esp-hil-compare")
        try:
            if compare:
                table, worse = compare_figures(self.figures, compare)
                self.gate_lines = [f"compared with {compare}:", *table]
                if worse:
                    self.gate_lines.append(f"esp-hil: worse than {compare}: {', '.join(worse)}")
                    session.exitstatus = pytest.ExitCode.TESTS_FAILED
            if save:
                save_figures(self.figures, save)
                self.gate_lines.append(f"esp-hil: figures saved to {save}")
        except GateError as exc:
            self.gate_lines.append(f"esp-hil: {exc}")
            session.exitstatus = pytest.ExitCode.USAGE_ERROR

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.figures and not self.devices and not self.gate_lines:
            return
        terminalreporter.section("esp-hil")
        for line in sorted(self.devices):
            terminalreporter.write_line(line)
        for line in format_table(self.figures):
            terminalreporter.write_line(line)
        for line in self.gate_lines:
            terminalreporter.write_line(line)


def pytest_report_header(config: pytest.Config) -> str:
    project = project_path(config)
    return f"esp-hil: device={device_spec(config)}" + (f" project={project}" if project else "")
