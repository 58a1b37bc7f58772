"""``esp-hil``: every bad input is one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import build_parser, main


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return code, lines[0]


def test_monitor_on_a_port_that_does_not_exist(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, line = _one_line_error(capsys, ["monitor", "--device", str(tmp_path / "ttyUSB0")])
    assert code == 1
    assert line.startswith("esp-hil monitor: cannot open ")


def test_monitor_without_a_terminal_on_stdin(capsys: pytest.CaptureFixture[str]) -> None:
    # loop:// opens anywhere; pytest's captured stdin is not a terminal.
    _, line = _one_line_error(capsys, ["monitor", "--device", "loop://"])
    assert "stdin is not a terminal" in line


@pytest.mark.parametrize("mac", ["bad", "01:00:00:00:00:01", "5c:cf:7f:00:00"])
def test_sim_with_a_bad_mac(capsys: pytest.CaptureFixture[str], mac: str) -> None:
    code, line = _one_line_error(capsys, ["sim", "--mac", mac])
    assert code == 2
    assert line.startswith("esp-hil sim: --mac: ")


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_sim_with_a_bad_port(capsys: pytest.CaptureFixture[str], port: str) -> None:
    code, line = _one_line_error(capsys, ["sim", "--rfc2217-port", port])
    assert code == 2
    assert "--rfc2217-port" in line


def test_flash_without_a_device(capsys: pytest.CaptureFixture[str]) -> None:
    code, line = _one_line_error(capsys, ["flash"])
    assert code == 2
    assert "--device" in line and "sim" not in line


@pytest.mark.parametrize("spec", ["sim", "sim-direct"])
def test_flash_refuses_a_twin_spec(capsys: pytest.CaptureFixture[str], spec: str) -> None:
    code, line = _one_line_error(capsys, ["flash", "--device", spec])
    assert code == 2
    assert "rfc2217://" in line


def test_flash_with_a_missing_image(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["flash", "--device", "loop://", "--firmware", str(tmp_path / "none.bin")]
    _, line = _one_line_error(capsys, argv)
    assert "no such file" in line


@pytest.mark.parametrize(
    "argv",
    [
        ["reset", "--device", "x", "--timeout", "0"],
        ["bench", "--duration", "-1"],
        ["bench", "--duration", "soon"],
    ],
)
def test_non_positive_durations(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _ = _one_line_error(capsys, argv)
    assert code == 2


@pytest.mark.parametrize("sizes", ["nope", "0", ",", "1.5k"])
def test_bench_refuses_bad_sizes_before_bringing_up_a_device(
    capsys: pytest.CaptureFixture[str], sizes: str
) -> None:
    # One line: no "bringing up sim ..." before it (only the range needs the device).
    code, line = _one_line_error(capsys, ["bench", "--sizes", sizes])
    assert code == 2
    assert line.startswith("esp-hil bench: --sizes: ")


def test_an_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, line = _one_line_error(capsys, ["flsh"])
    assert code == 2
    assert "invalid choice" in line


def test_help_has_no_raw_rest_and_names_its_environment() -> None:
    parser = build_parser()
    assert "``" not in parser.format_help()
    sub = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    flash = sub["flash"].format_help()
    assert "ESP_HIL_WIFI_SSID" in flash and "ESP_HIL_WIFI_PASSWORD" in flash
    assert "'sim'" not in flash
    for name in ("monitor", "reset", "bench", "sim"):
        text = sub[name].format_help()
        assert "default:" in text, name
    assert "seconds" in sub["reset"].format_help()
    assert "baud" in sub["monitor"].format_help()


def test_size_of_a_directory_without_sources(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, line = _one_line_error(capsys, ["size", str(tmp_path / "nowhere")])
    assert code == 2
    assert line == f"esp-hil size: project {tmp_path / 'nowhere'}: no such directory"
    (tmp_path / "src").mkdir()
    (tmp_path / "platformio.ini").write_text("[env:a]\n")
    code, line = _one_line_error(capsys, ["size", str(tmp_path)])
    assert code == 2
    assert line == f"esp-hil size: no .cpp under {tmp_path / 'src'} or {tmp_path / 'lib'}/*/src"


def test_size_for_an_unknown_board(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "platformio.ini").write_text("[env:a]\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.cpp").write_text("void setup() {}\n")
    code, line = _one_line_error(capsys, ["size", str(tmp_path), "--board", "uno"])
    assert code == 2
    assert line.startswith("esp-hil size: unknown board 'uno'")


@pytest.mark.parametrize("key", ["short", "00" * 8, "00" * 40])
def test_a_bad_link_key(capsys: pytest.CaptureFixture[str], key: str) -> None:
    code, line = _one_line_error(capsys, ["info", "--link-key", key])
    assert code == 2
    assert "--link-key" in line and key not in line.split("--link-key", 1)[1]
