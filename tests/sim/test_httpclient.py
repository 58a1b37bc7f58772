"""The twin's ESP8266HTTPClient (firmware/sim/ESP8266HTTPClient.cpp): a user's sketch calling
an HTTP API, tested against the test's own server on the PC."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest

from harness.backends import open_device
from harness.device.base import Device
from harness.device.options import DeviceOptions
from tests.helpers.projects import answering_project

pytestmark = pytest.mark.twin

# Each message is "<method> <url>[ <body>]"; the reply "code=<n> body=<text> seen=<header>".
CALL = """\
  char method[8] = {};
  char url[96] = {};
  int used = 0;
  sscanf(text, "%7s %95s %n", method, url, &used);
  WiFiClient tcp;
  HTTPClient http;
  const char* keys[] = {"X-Seen"};
  http.collectHeaders(keys, 1);
  http.setTimeout(2000);
  if (!http.begin(tcp, url)) {
    service.send("begin failed");
    return;
  }
  http.addHeader("Content-Type", "application/json");
  const int code = http.sendRequest(method, String(text + used));
  String reply = "code=" + String(code);
  if (code > 0) {
    reply += " body=" + http.getString() + " seen=" + http.header("X-Seen");
  } else {
    reply += " error=" + HTTPClient::errorToString(code);
  }
  http.end();
  service.send(reply.c_str());"""


class _Api(http.server.BaseHTTPRequestHandler):
    """Answers GET with the path, POST with the body; /chunked in chunks."""

    def _answer(self, body: bytes, chunked: bool = False) -> None:
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("X-Seen", self.headers.get("Content-Type", "none"))
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (body[:3], body[3:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(self.path.encode(), chunked=self.path == "/chunked")

    def do_POST(self) -> None:
        self._answer(self.rfile.read(int(self.headers["Content-Length"])))

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def api() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def caller(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Device]:
    project = answering_project(
        tmp_path_factory.mktemp("caller"), answer=CALL, setup="",
        includes="#include <ESP8266HTTPClient.h>\n#include <stdio.h>")
    with open_device(DeviceOptions(spec="sim-direct", project=project)) as dev:
        yield dev


def _call(dev: Device, request: str) -> str:
    with dev.connect(timeout=10) as link:
        link.send(request)
        return str(link.receive(timeout=10))


def test_get_post_headers_and_a_chunked_body(caller: Device, api: int) -> None:
    base = f"http://127.0.0.1:{api}"
    assert _call(caller, f"GET {base}/reading?x=1") == (
        "code=200 body=/reading?x=1 seen=application/json")
    assert _call(caller, f'POST {base}/readings {{"t": 21.5}}') == (
        'code=201 body={"t": 21.5} seen=application/json')
    assert _call(caller, f"GET {base}/chunked") == "code=200 body=/chunked seen=application/json"


def test_a_server_that_is_not_there_is_an_error_not_a_hang(caller: Device) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert _call(caller, f"GET http://127.0.0.1:{port}/") == "code=-1 error=connection failed"
    assert _call(caller, "GET https://127.0.0.1/") == "begin failed"
