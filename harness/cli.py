"""The esp-hil command: run a twin, flash, monitor, reset, query and benchmark a device.

Environment: ESP_HIL_WIFI_SSID and ESP_HIL_WIFI_PASSWORD are the WiFi credentials a board is
provisioned with; ESP_HIL_CACHE moves the cache (twin builds, board locks).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import NoReturn

from harness.device.errors import DeviceError
from harness.device.options import DeviceOptions
from harness.device.ready import parse_link_key
from harness.sim.defaults import DEFAULT_PASSWORD, DEFAULT_SSID


class UsageError(Exception):
    """A command-line value the command cannot use; reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _env_help(text: str, var: str) -> str:
    return f"{text} (default: ${var}{', now set' if os.environ.get(var) else ''})"


def _device_args(p: argparse.ArgumentParser, *, twins: bool = True) -> None:
    from harness.backends import BACKENDS, BOARD

    if twins:
        names = ", ".join(f"'{name}' ({b.summary})" for name, b in BACKENDS.items())
        p.add_argument(
            "--device",
            default="sim",
            help=f"the device: {names}, or {BOARD.summary} (default: sim)",
        )
    else:
        p.add_argument("--device", required=True, help=BOARD.summary)
    p.add_argument(
        "--wifi-ssid",
        default=os.environ.get("ESP_HIL_WIFI_SSID"),
        metavar="SSID",
        help=_env_help("WiFi network a board is provisioned with", "ESP_HIL_WIFI_SSID"),
    )
    p.add_argument(
        "--wifi-password",
        default=os.environ.get("ESP_HIL_WIFI_PASSWORD"),
        metavar="PASSWORD",
        help=_env_help("its password", "ESP_HIL_WIFI_PASSWORD"),
    )
    p.add_argument(
        "--firmware",
        default=None,
        metavar="PATH",
        help="image to flash: a .bin file, or 'native' for the twin's build "
        "(default: the twin's build for a twin, else PlatformIO builds firmware/)",
    )
    p.add_argument(
        "--flash",
        choices=("auto", "always", "never"),
        default="auto",
        help="flash when the image's MD5 differs from the board's (auto, the default), "
        "always, or never",
    )
    p.add_argument(
        "--project",
        default=None,
        metavar="PATH",
        help="PlatformIO project to build and run (default: esp-hil's test firmware)",
    )
    if twins:
        p.add_argument(
            "--link-key",
            default=os.environ.get("ESP_HIL_LINK_KEY", "auto"),
            type=_link_key,
            metavar="auto|none|HEX",
            help=_env_help(
                "the links' pre-shared key: auto (a fresh random key for this run, when the "
                "firmware takes keys), none (keyless), or 32..64 hex digits",
                "ESP_HIL_LINK_KEY",
            ),
        )
    p.add_argument(
        "--pio-env",
        default=None,
        metavar="ENV",
        help="its PlatformIO environment (default: the project's default_envs, else its first)",
    )


def _options(args: argparse.Namespace) -> DeviceOptions:
    return DeviceOptions(
        spec=args.device,
        ssid=args.wifi_ssid,
        password=args.wifi_password,
        firmware=args.firmware,
        flash=args.flash,
        project=args.project,
        pio_env=args.pio_env,
        link_key=getattr(args, "link_key", "auto"),
    )


def _link_key(text: str) -> str:
    try:
        parse_link_key(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _tcp_port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {port} (0..65535)")
    return port


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def cmd_sim(args: argparse.Namespace) -> int:
    """Run one twin in the foreground until Ctrl-C."""
    from harness.sim.chip.memory import parse_mac
    from harness.sim.serve import run_twin

    if args.labgrid_exporter is not None:
        from harness.sim.labgrid_export import exporter_config, twin_groups

        try:
            groups = twin_groups(args.labgrid_exporter)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if not groups:
            print("esp-hil sim: no twin runs here (start one with esp-hil sim)", file=sys.stderr)
            return 1
        print(exporter_config(groups), end="")
        return 0
    if args.mac is not None:
        try:
            parse_mac(args.mac)
        except ValueError as exc:
            raise UsageError(f"--mac: {exc}") from None
    return run_twin(
        rfc2217_port=args.rfc2217_port,
        flash_file=args.flash_file,
        ssid=args.ssid,
        password=args.password,
        mac=args.mac,
        blank=args.blank,
    )


def cmd_flash(args: argparse.Namespace) -> int:
    from harness.backends import BOARD, backend_for, firmware_image
    from harness.device.flashing import flash_image
    from harness.device.lock import BoardLock
    from harness.device.serial import SerialDevice

    if backend_for(args.device) is not BOARD:
        raise UsageError(
            f"--device {args.device} is not a port: give a serial port or an rfc2217:// URL "
            "(a twin of 'esp-hil sim' prints its URL)"
        )
    opts = _options(args)
    image = firmware_image(opts)
    with BoardLock(args.device, timeout=opts.lock_timeout):
        wrote = flash_image(args.device, image, mode="always" if args.flash == "always" else "auto")
    # Leave the ROM loader: boot what was flashed.
    with SerialDevice(args.device, ssid=None, password=None).attach() as board:
        board.hard_reset()
    print(
        f"{'flashed' if wrote else 'already flashed'}: {len(image)} bytes at 0x0 on {args.device}"
    )
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    from harness.device.serial import SerialDevice

    with SerialDevice(args.device, ssid=None, password=None).attach() as board:
        try:
            ready = board.reset(timeout=args.timeout)
        except DeviceError as exc:
            print(f"reset done; no READY within {args.timeout:.0f} s:\n{exc}", file=sys.stderr)
            return 1
    print(f"READY ip={ready.ip} port={ready.port} fw={ready.fw}")
    return 0


def cmd_libdir(args: argparse.Namespace) -> int:
    from harness.project import firmware_root

    print(firmware_root() / "lib")
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    from harness.device.monitor import monitor

    return monitor(args.device, baud=args.baud, reset=args.reset)


def cmd_info(args: argparse.Namespace) -> int:
    from harness.backends import open_device

    t0 = time.monotonic()
    dev = open_device(_options(args))
    try:
        info = dev.info()
        info["boot_to_ready_s"] = round(dev.boot_seconds or (time.monotonic() - t0), 3)
        info["ip"] = dev.ip
        print(json.dumps(info, indent=2))
    finally:
        dev.close()
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from harness.bench import run_bench

    return run_bench(args, _options(args))


def cmd_size(args: argparse.Namespace) -> int:
    from harness.size import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    """The ``esp-hil`` argument parser (one subcommand per verb)."""
    parser = _Parser(
        prog="esp-hil",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser(
        "sim",
        help="run one twin in the foreground (serial over rfc2217) until Ctrl-C",
        description="Run one twin until Ctrl-C: flashed with the test firmware, provisioned "
        "and READY, so WiFiSocket(ip, port) works at once. Prints its serial URL, IP and echo "
        "port.",
    )
    p.add_argument(
        "--rfc2217-port",
        type=_tcp_port,
        default=0,
        metavar="PORT",
        help="TCP port of its serial line (default: 0, a free one)",
    )
    p.add_argument(
        "--flash-file",
        default=None,
        metavar="PATH",
        help="file holding its 4 MiB flash, kept across runs (default: a temporary file)",
    )
    p.add_argument(
        "--ssid", default=None, help=f"the simulated access point's SSID (default: {DEFAULT_SSID})"
    )
    p.add_argument("--password", default=None, help=f"its password (default: {DEFAULT_PASSWORD})")
    p.add_argument(
        "--mac", default=None, help="station MAC aa:bb:cc:dd:ee:ff (default: derived, stable)"
    )
    p.add_argument(
        "--blank",
        action="store_true",
        help="start as it is: no flashing and no provisioning (an erased flash stays erased; "
        "flash it with esp-hil flash or esptool)",
    )
    p.add_argument(
        "--labgrid-exporter",
        nargs="*",
        metavar="URL",
        help="print a labgrid exporter config for the twins running here (or those at the "
        "given rfc2217 URLs), one group twin-<port> each, and exit",
    )
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser(
        "libdir",
        help="print where esp-hil's Arduino libraries (WiFiSocket, EspHil) are installed",
        description="Print the directory holding esp-hil's Arduino libraries, for "
        "PLATFORMIO_LIB_EXTRA_DIRS=$(esp-hil libdir) pio run, or arduino-cli --libraries.",
    )
    p.set_defaults(func=cmd_libdir)

    p = sub.add_parser("flash", help="flash the firmware (skipped when already there)")
    _device_args(p, twins=False)
    p.set_defaults(func=cmd_flash)

    p = sub.add_parser("monitor", help="show the console with timestamps (Ctrl-] leaves)")
    p.add_argument("--device", required=True, help="a serial port or an rfc2217://host:port URL")
    p.add_argument(
        "--baud", type=int, default=115200, help="console speed in baud (default: 115200)"
    )
    p.add_argument("--reset", action="store_true", help="hard-reset the board first")
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser("reset", help="hard-reset through DTR/RTS and wait for READY")
    p.add_argument("--device", required=True, help="a serial port or an rfc2217://host:port URL")
    p.add_argument(
        "--timeout",
        type=_positive,
        default=15.0,
        help="seconds to wait for the READY line (default: 15)",
    )
    p.set_defaults(func=cmd_reset)

    p = sub.add_parser("info", help="bring the device up and print its control-service info")
    _device_args(p)
    p.set_defaults(func=cmd_info)

    from harness.bench import add_arguments as add_bench_arguments

    p = sub.add_parser("bench", help="throughput and latency against a raw-TCP baseline")
    _device_args(p)
    add_bench_arguments(p)
    p.set_defaults(func=cmd_bench)

    from harness.size import DESCRIPTION, add_arguments

    p = sub.add_parser(
        "size",
        help="static RAM, IRAM and flash of a PlatformIO project on the ESP8266, against a budget",
        description=DESCRIPTION + " Exit status: 0 within budget, 1 over it, 2 the build "
        "failed (any warning in the project's own code) or bad input.",
    )
    add_arguments(p)
    p.set_defaults(func=cmd_size)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``esp-hil``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"esp-hil {args.command}: {exc}", file=sys.stderr)
        return 2
    except DeviceError as exc:
        print(f"esp-hil {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
