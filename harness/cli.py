"""The ``esp-hil`` command: run a twin, flash, monitor, reset, query and benchmark a device."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence

from harness.device.errors import DeviceError


def _device_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="sim",
        help="'sim' (a twin here), 'sim-direct', a serial port, an rfc2217://host:port URL "
        "or labgrid:PLACE",
    )
    p.add_argument("--wifi-ssid", default=os.environ.get("ESP_HIL_WIFI_SSID"))
    p.add_argument("--wifi-password", default=os.environ.get("ESP_HIL_WIFI_PASSWORD"))
    p.add_argument(
        "--firmware",
        default=None,
        metavar="PATH",
        help="image to flash ('native' = the twin's build; default: PlatformIO's)",
    )
    p.add_argument("--flash", choices=("auto", "always", "never"), default="auto")
    p.add_argument("--pio-env", default="nodemcuv2")


def _options(args: argparse.Namespace, **overrides: object):  # type: ignore[no-untyped-def]
    from harness.device.factory import DeviceOptions

    opts = DeviceOptions(
        spec=args.device,
        ssid=args.wifi_ssid,
        password=args.wifi_password,
        firmware=args.firmware,
        flash=args.flash,
        pio_env=args.pio_env,
    )
    for key, value in overrides.items():
        setattr(opts, key, value)
    return opts


def cmd_sim(args: argparse.Namespace) -> int:
    """Run one twin in the foreground until Ctrl-C."""
    from harness.sim.native import run_twin

    if args.labgrid_exporter is not None:
        from harness.sim.labgrid_export import exporter_config, twin_groups

        try:
            groups = twin_groups(args.labgrid_exporter)
        except ValueError as exc:
            print(f"esp-hil sim: {exc}", file=sys.stderr)
            return 2
        if not groups:
            print("esp-hil sim: no twin runs here (start one with esp-hil sim)", file=sys.stderr)
            return 1
        print(exporter_config(groups), end="")
        return 0
    return run_twin(
        rfc2217_port=args.rfc2217_port,
        flash_file=args.flash_file,
        ssid=args.ssid,
        password=args.password,
        mac=args.mac,
    )


def cmd_flash(args: argparse.Namespace) -> int:
    from harness.device.factory import firmware_image, is_twin_spec
    from harness.device.flashing import flash_image
    from harness.device.lock import BoardLock
    from harness.device.serial import SerialDevice

    if is_twin_spec(args.device):
        print(
            "esp-hil flash: give a port or URL (--device=rfc2217://... for a twin)", file=sys.stderr
        )
        return 2
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


def cmd_monitor(args: argparse.Namespace) -> int:
    from harness.device.monitor import monitor

    return monitor(args.device, baud=args.baud, reset=args.reset)


def cmd_info(args: argparse.Namespace) -> int:
    from harness.device.factory import open_device

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

    return run_bench(args, _options(args, flash=args.flash))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="esp-hil", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sim", help="run one twin in the foreground (serial over rfc2217)")
    p.add_argument("--rfc2217-port", type=int, default=0, help="TCP port (0 picks a free one)")
    p.add_argument("--flash-file", default=None, help="flash contents file (kept across runs)")
    p.add_argument("--ssid", default="esp-hil", help="the simulated access point's SSID")
    p.add_argument("--password", default="esp-hil-password", help="its password")
    p.add_argument("--mac", default=None, help="station MAC, aa:bb:cc:dd:ee:ff")
    p.add_argument(
        "--labgrid-exporter",
        nargs="*",
        metavar="URL",
        help="print a labgrid exporter config for the twins running here (or those at the "
        "given rfc2217 URLs), one group twin-<port> each, and exit",
    )
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("flash", help="flash the firmware (skipped when already there)")
    _device_args(p)
    p.set_defaults(func=cmd_flash)

    p = sub.add_parser("monitor", help="show the console with timestamps (Ctrl-] leaves)")
    p.add_argument("--device", required=True)
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--reset", action="store_true", help="hard-reset the board first")
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser("reset", help="hard-reset through DTR/RTS and wait for READY")
    p.add_argument("--device", required=True)
    p.add_argument("--timeout", type=float, default=15.0)
    p.set_defaults(func=cmd_reset)

    p = sub.add_parser("info", help="bring the device up and print its control-service info")
    _device_args(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("bench", help="throughput and latency against a raw-TCP baseline")
    _device_args(p)
    p.add_argument("--json", default=None, metavar="FILE", help="write the figures as JSON")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="plot throughput vs size")
    p.add_argument("--sizes", default=None, help="message sizes, e.g. 16,64,256,1024,4096")
    p.add_argument("--duration", type=float, default=1.0, help="seconds per measurement")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except DeviceError as exc:
        print(f"esp-hil {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
