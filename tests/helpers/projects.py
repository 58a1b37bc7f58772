"""User projects that tests build: an Arduino sketch of .ino files with an installed lib_deps
library (tests/sim/test_project.py runs it on the twin, test_xtensa_size.py for the ESP8266),
and one-file sketches that answer each WiFiSocket message (the twin's I2C and LittleFS)."""

from __future__ import annotations

from pathlib import Path

# An Arduino sketch as .ino files: no #include <Arduino.h>, functions used above their
# definitions, a helper in a second file, a C file beside them, and a library in C from
# lib_deps, not lib/.
INO_MAIN = """\
#include <EspHil.h>
#include "suffix.h"
#include <WiFiSocket.h>
#include <Answer.h>

WiFiSocketT<64, 512, 512> service;

void setup() {
  EspHil.begin("answer/1.0");
  service.begin(ANSWER_PORT);
  EspHil.ready(ANSWER_PORT, service.maxMessage());
}

void loop() {
  EspHil.loop();
  service.loop();
  char text[65];
  if (service.receive(text) < 0) return;
  service.send(decorated(text));
}
"""
INO_HELPERS = """\
static char reply[80];

const char* decorated(const char* asked) {
  snprintf(reply, sizeof reply, "%s:%s%s", answer(), asked, suffix());
  return reply;
}
"""


_C_HEADER = """\
#pragma once
#ifdef __cplusplus
extern "C" {{
#endif
{decl}
#ifdef __cplusplus
}}
#endif
"""


def ino_project(root: Path) -> Path:
    """Write the project at ``root``: env ``plain``, port 7001; each message is answered
    with ``42:<message>!``."""
    (root / "src").mkdir(parents=True)
    (root / "src" / "answer.ino").write_text(INO_MAIN)
    (root / "src" / "helpers.ino").write_text(INO_HELPERS)
    (root / "src" / "suffix.h").write_text(_C_HEADER.format(decl="const char* suffix(void);"))
    (root / "src" / "suffix.c").write_text(
        '#include "suffix.h"\nconst char* suffix(void) { return "!"; }\n')
    # Where `pio pkg install` puts lib_deps for env 'plain'.
    lib = root / ".pio" / "libdeps" / "plain" / "Answer" / "src"
    lib.mkdir(parents=True)
    (lib / "Answer.h").write_text(_C_HEADER.format(decl="const char* answer(void);"))
    (lib / "Answer.c").write_text(
        '#include "Answer.h"\nconst char* answer(void) { return "42"; }\n')
    (root / "platformio.ini").write_text(
        "[env:plain]\nbuild_flags = -DANSWER_PORT=7001\nlib_deps = someone/Answer@^1.0\n")
    return root


def answering_project(root: Path, *, includes: str, setup: str, answer: str,
                      globals_: str = "") -> Path:
    """A project at ``root`` whose sketch serves WiFiSocket on port 7001: ``setup`` runs
    before the agent's begin(), ``answer`` for each message (in ``char text[65]``) and
    sends the reply. ``includes`` and ``globals_`` go above."""
    (root / "src").mkdir(parents=True)
    (root / "src" / "main.cpp").write_text(f"""\
#include <Arduino.h>
#include <EspHil.h>
#include <WiFiSocket.h>
{includes}

WiFiSocketT<64, 512, 512> service;
{globals_}

void setup() {{
{setup}
  EspHil.begin("answering/1.0");
  service.begin(7001);
  EspHil.ready(7001, service.maxMessage());
}}

void loop() {{
  EspHil.loop();
  service.loop();
  char text[65];
  if (service.receive(text) < 0) return;
{answer}
}}
""")
    (root / "platformio.ini").write_text("[env:node]\n")
    return root
