"""The twin's LittleFS (firmware/sim/FS.cpp): files in a directory beside the flash file,
shared with the test (``device.fs``), kept across resets, refused where a board refuses.

The sketch is the shim's test sketch (its ``fs`` console command).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.backends import open_device
from harness.device.console import Console as DeviceConsole
from harness.device.errors import DeviceError
from harness.device.options import DeviceOptions
from tests.helpers.projects import answering_project
from tests.helpers.shim import Console, booted_console
from tests.helpers.stub import StubDevice

pytestmark = pytest.mark.twin


def _fs(console: Console, args: str) -> dict[str, str]:
    line = console.command(f"fs {args}", "fs ")
    return dict(part.split("=", 1) for part in line.split()[1:] if "=" in part)


def test_files_written_read_listed_renamed_and_removed(console: Console, tmp_path: Path) -> None:
    assert _fs(console, "begin") == {"begin": "1"}
    root = tmp_path / "flash.bin.fs"
    assert _fs(console, "write /cfg/wifi.txt ssid") == {"open": "1", "wrote": "4"}
    assert (root / "cfg" / "wifi.txt").read_text() == "ssid"  # the directory was created
    assert _fs(console, "append /cfg/wifi.txt :pw")["wrote"] == "3"
    got = _fs(console, "read /cfg/wifi.txt")
    assert got == {"open": "1", "size": "7", "name": "wifi.txt", "full": "/cfg/wifi.txt",
                   "data": "ssid:pw"}
    (root / "seed.json").write_text('{"a":1}')  # the test puts a file there
    assert _fs(console, "read seed.json")["data"] == '{"a":1}'
    listing = console.command("fs ls /", "fs ls").split()[2:]
    assert sorted(listing) == ["cfg/:0", "seed.json:7"]
    assert _fs(console, "mv /seed.json /old/seed.json") == {"mv": "1"}
    assert (root / "old" / "seed.json").is_file()
    assert _fs(console, "rm /old/seed.json") == {"rm": "1"}
    assert _fs(console, "rm /old/seed.json") == {"rm": "0"}
    assert _fs(console, "read /missing") == {"open": "0"}
    info = _fs(console, "info")
    assert info["info"] == "1" and info["block"] == "8192" and int(info["used"]) >= 3 * 8192


def test_what_a_boards_littlefs_refuses(console: Console) -> None:
    assert _fs(console, "write /early.txt x") == {"open": "0", "wrote": "0"}  # not mounted
    assert _fs(console, "begin")["begin"] == "1"
    long_name = "n" * 32
    assert _fs(console, f"write /{long_name} x")["open"] == "0"
    assert _fs(console, f"write /{long_name[:31]} x")["open"] == "1"
    assert _fs(console, "write /../escape.txt x")["open"] == "0"
    assert _fs(console, "read /./x")["open"] == "0"


def test_files_outlive_a_reset_and_format_erases_them(sketch: Path, tmp_path: Path) -> None:
    flash = tmp_path / "flash.bin"
    with booted_console(sketch, flash) as con:
        con.command("fs begin", "fs ")
        assert _fs(con, "write /boot.log one")["wrote"] == "3"
    with booted_console(sketch, flash) as con:
        con.command("fs begin", "fs ")
        assert _fs(con, "read /boot.log")["data"] == "one"
        assert _fs(con, "format") == {"format": "1"}
        assert _fs(con, "read /boot.log") == {"open": "0"}


READ_NAME = """\
  LittleFS.begin();
  File f = LittleFS.open("/name.txt", "r");
  if (f) name[f.readBytes(name, sizeof name - 1)] = 0;"""
LOG_AND_ANSWER = """\
  File log = LittleFS.open("/log.txt", "a");
  log.println(text);
  log.close();
  service.send(name);"""


def test_a_users_sketch_reads_the_file_the_test_put_there(tmp_path: Path) -> None:
    project = answering_project(tmp_path, includes="#include <LittleFS.h>", setup=READ_NAME,
                                answer=LOG_AND_ANSWER, globals_='char name[32] = "nobody";')
    with open_device(DeviceOptions(spec="sim-direct", project=project)) as dev:
        (dev.fs / "name.txt").write_text("node-7")
        dev.reset()
        with dev.connect(timeout=5) as link:
            link.send("hello")
            assert link.receive(timeout=5) == "node-7"
        assert (dev.fs / "log.txt").read_bytes() == b"hello\r\n"


def test_a_board_has_no_directory_a_test_can_fill() -> None:
    board = StubDevice(DeviceConsole(lambda data: None))
    with pytest.raises(DeviceError, match=r"device\.fs is twin only"):
        board.fs  # noqa: B018


_NAMES = st.sampled_from(["/a.txt", "/b.txt", "/d/c.txt", "/d/e/f.txt"])
_TEXT = st.text(alphabet="abcxyz0189", min_size=1, max_size=12)
_FS_OPS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["write", "append"]), _NAMES, _TEXT),
        st.tuples(st.sampled_from(["read", "rm"]), _NAMES),
        st.tuples(st.just("mv"), _NAMES, _NAMES),
    ),
    min_size=1, max_size=12,
)


@settings(max_examples=30, deadline=None)
@given(ops=_FS_OPS)
def test_the_sketchs_files_against_a_dictionary_model(
    sketch: Path, tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, ...]]
) -> None:
    """Any sequence of writes, appends, reads, removals and renames leaves the files a
    dictionary of paths would hold, on the sketch's side and in device.fs alike."""
    flash = tmp_path_factory.mktemp("fs") / "flash.bin"
    model: dict[str, str] = {}
    with booted_console(sketch, flash) as con:
        assert _fs(con, "begin") == {"begin": "1"}
        for op in ops:
            if op[0] in ("write", "append"):
                _, path, text = op
                assert _fs(con, f"{op[0]} {path} {text}")["wrote"] == str(len(text))
                model[path] = (model.get(path, "") if op[0] == "append" else "") + text
            elif op[0] == "read":
                got = _fs(con, f"read {op[1]}")
                if op[1] in model:
                    assert (got["open"], got["data"]) == ("1", model[op[1]])
                else:
                    assert got == {"open": "0"}
            elif op[0] == "rm":
                assert _fs(con, f"rm {op[1]}") == {"rm": "1" if op[1] in model else "0"}
                model.pop(op[1], None)
            else:
                _, src, dst = op
                moved = _fs(con, f"mv {src} {dst}")["mv"] == "1"
                assert moved == (src in model and not (dst.startswith(src + "/")))
                if moved and src != dst:
                    model[dst] = model.pop(src)
    root = Path(f"{flash}.fs")
    on_disk = {"/" + str(p.relative_to(root)): p.read_text()
               for p in root.rglob("*") if p.is_file()}
    assert on_disk == model
