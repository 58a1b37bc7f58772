"""The twin's ESP8266WebServer (firmware/sim/ESP8266WebServer.cpp): a user's sketch serving
HTTP, tested with the PC's own HTTP client, as a test of a sketch's web API would be."""

from __future__ import annotations

import base64
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.backends import open_device
from harness.device.base import Device
from harness.device.options import DeviceOptions

pytestmark = pytest.mark.twin

PORT = 8080  # a port below 1024 needs root on the PC (ip_unprivileged_port_start)

SKETCH = """\
#include <Arduino.h>
#include <EspHil.h>
#include <ESP8266WebServer.h>

ESP8266WebServer server(8080);
int hits = 0;

void setup() {
  server.on("/", HTTP_GET, [] {
    hits++;
    server.send(200, "text/plain", "hello");
  });
  server.on("/echo", HTTP_POST, [] { server.send(200, "application/json", server.arg("plain")); });
  server.on("/sum", [] {
    server.send(200, "text/plain", String(server.arg("a").toInt() + server.arg("b").toInt()));
  });
  server.on("/args", [] {
    String out;
    for (int i = 0; i < server.args(); i++) out += server.argName(i) + "=" + server.arg(i) + ";";
    server.send(200, "text/plain", out);
  });
  server.on("/secret", [] {
    if (!server.authenticate("admin", "pw")) return server.requestAuthentication();
    server.send(200, "text/plain", "in");
  });
  server.on("/hits", [] {
    server.sendHeader("X-Hits", String(hits));
    server.send(200, "text/plain", server.header("User-Agent"));
  });
  server.onNotFound([] { server.send(404, "text/plain", "nope " + server.uri()); });
  server.begin();
  EspHil.begin("web/1.0");
  EspHil.ready(8080, 0);
}

void loop() {
  EspHil.loop();
  server.handleClient();
}
"""


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Device]:
    root = tmp_path_factory.mktemp("web")
    (root / "src").mkdir()
    (root / "src" / "main.cpp").write_text(SKETCH)
    (root / "platformio.ini").write_text("[env:node]\n")
    with open_device(DeviceOptions(spec="sim-direct", project=root)) as dev:
        yield dev


def _get(dev: Device, path: str, data: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"http://{dev.ip}:{PORT}{path}", data=data,
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_routes_methods_and_not_found(web: Device) -> None:
    assert web.port == PORT
    assert _get(web, "/")[::2] == (200, b"hello")
    assert _get(web, "/", data=b"x")[0] == 404  # "/" is GET only: a POST falls through
    assert _get(web, "/missing?x=1")[::2] == (404, b"nope /missing")


def test_arguments_from_the_query_and_the_form_body(web: Device) -> None:
    assert _get(web, "/sum?a=2&b=40")[2] == b"42"
    assert _get(web, "/sum", data=b"a=1&b=2",
                headers={"Content-Type": "application/x-www-form-urlencoded"})[2] == b"3"
    assert _get(web, "/args?q=a%20b+c&e=")[2] == b"q=a b c;e=;"
    status, headers, body = _get(web, "/echo", data=b'{"on": true}',
                                 headers={"Content-Type": "application/json"})
    assert (status, headers["Content-Type"], body) == (200, "application/json", b'{"on": true}')


def test_basic_authentication(web: Device) -> None:
    status, headers, _ = _get(web, "/secret")
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="Login Required"'
    good = base64.b64encode(b"admin:pw").decode()
    assert _get(web, "/secret", headers={"Authorization": f"Basic {good}"})[::2] == (200, b"in")
    bad = base64.b64encode(b"admin:nope").decode()
    assert _get(web, "/secret", headers={"Authorization": f"Basic {bad}"})[0] == 401


def test_headers_both_ways(web: Device) -> None:
    _get(web, "/")
    status, headers, body = _get(web, "/hits", headers={"User-Agent": "pytest"})
    assert status == 200 and body == b"pytest" and int(headers["X-Hits"]) >= 1
    assert headers["Connection"] == "close" and headers["Content-Length"] == "6"


def _raw(dev: Device, request: bytes) -> bytes:
    with socket.create_connection((dev.ip, PORT), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks)


def test_requests_past_the_limits_get_an_error_and_the_server_goes_on(web: Device) -> None:
    big = b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 3000 + b"\r\n\r\n"
    assert _raw(web, big).startswith(b"HTTP/1.1 431 ")
    too_long = b"POST /echo HTTP/1.1\r\nContent-Length: 100000\r\n\r\n"
    assert _raw(web, too_long).startswith(b"HTTP/1.1 413 ")
    assert _raw(web, b"BREW / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 501 ")
    assert _raw(web, b"nonsense\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert _get(web, "/")[::2] == (200, b"hello")


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # one server for all
@given(garbage=st.binary(max_size=300))
def test_any_bytes_get_an_answer_or_a_close_and_the_server_goes_on(
    web: Device, garbage: bytes
) -> None:
    reply = _raw(web, garbage + b"\r\n\r\n")
    assert reply == b"" or reply.startswith(b"HTTP/1.1 ")
    assert _get(web, "/")[::2] == (200, b"hello")
