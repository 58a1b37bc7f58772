// The twin's HTTP client (ESP8266HTTPClient.h) on the shim's WiFiClient. Every wait is
// bounded by the client's timeout (setTimeout, 5 s by default), letting the system run.
#include "ESP8266HTTPClient.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

namespace {

constexpr size_t kMaxLine = 1024;  // a status or header line

String base64(const char* in) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  String out;
  const size_t n = strlen(in);
  for (size_t i = 0; i < n; i += 3) {
    const uint32_t b0 = static_cast<uint8_t>(in[i]);
    const uint32_t b1 = i + 1 < n ? static_cast<uint8_t>(in[i + 1]) : 0;
    const uint32_t b2 = i + 2 < n ? static_cast<uint8_t>(in[i + 2]) : 0;
    const uint32_t v = b0 << 16 | b1 << 8 | b2;
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += i + 1 < n ? kAlphabet[v >> 6 & 63] : '=';
    out += i + 2 < n ? kAlphabet[v & 63] : '=';
  }
  return out;
}

}  // namespace

bool HTTPClient::begin(WiFiClient& client, const String& url) {
  const char* u = url.c_str();
  if (strncasecmp(u, "http://", 7) != 0) return false;  // https: no WiFiClientSecure here
  u += 7;
  const char* slash = strchr(u, '/');
  const String authority = slash ? url.substring(7, 7 + (slash - u)) : String(u);
  const String path = slash ? String(slash) : String("/");
  const int colon = authority.indexOf(':');
  if (colon < 0) return begin(client, authority, 80, path);
  const long port = authority.substring(colon + 1).toInt();
  if (port <= 0 || port > 65535) return false;
  return begin(client, authority.substring(0, colon), static_cast<uint16_t>(port), path);
}

bool HTTPClient::begin(WiFiClient& client, const String& host, uint16_t port, const String& uri,
                       bool https) {
  if (https || host.length() == 0) return false;
  end();
  client_ = &client;
  host_ = host;
  port_ = port;
  uri_ = uri.length() ? uri : String("/");
  headers_ = String();
  return true;
}

void HTTPClient::end() {
  if (client_) client_->stop();
  client_ = nullptr;
  size_ = -1;
  chunked_ = false;
  body_read_ = false;
}

void HTTPClient::setAuthorization(const char* user, const char* password) {
  if (!user || !password) return;
  authorization_ = base64((String(user) + ":" + password).c_str());
}

void HTTPClient::addHeader(const String& name, const String& value, bool first, bool replace) {
  // As the core: the headers it writes itself are not added twice.
  if (name.equalsIgnoreCase("Connection") || name.equalsIgnoreCase("User-Agent") ||
      name.equalsIgnoreCase("Host") ||
      (name.equalsIgnoreCase("Authorization") && authorization_.length())) {
    return;
  }
  const String line = name + ": " + value + "\r\n";
  if (replace) {
    const int at = headers_.indexOf(name + ": ");
    if (at >= 0) {
      const int end = headers_.indexOf("\r\n", at);
      headers_.remove(at, end - at + 2);
    }
  }
  headers_ = first ? line + headers_ : headers_ + line;
}

void HTTPClient::collectHeaders(const char* headerKeys[], size_t headerKeysCount) {
  n_collected_ = 0;
  for (size_t i = 0; i < headerKeysCount && n_collected_ < kMaxCollected; i++) {
    collect_[n_collected_] = headerKeys[i];
    collected_[n_collected_] = String();
    n_collected_++;
  }
}

String HTTPClient::header(const char* name) {
  for (size_t i = 0; i < n_collected_; i++) {
    if (collect_[i].equalsIgnoreCase(name)) return collected_[i];
  }
  return String();
}
String HTTPClient::header(size_t i) { return i < n_collected_ ? collected_[i] : String(); }
String HTTPClient::headerName(size_t i) { return i < n_collected_ ? collect_[i] : String(); }
bool HTTPClient::hasHeader(const char* name) { return header(name).length() > 0; }

bool HTTPClient::write_all(const uint8_t* data, size_t size) {
  const unsigned long start = millis();
  size_t done = 0;
  while (done < size) {
    const size_t took = client_->write(data + done, size - done);
    done += took;
    if (took == 0) {
      if (!client_->connected() || millis() - start > timeout_ms_) return false;
      delay(1);
    }
  }
  return true;
}

// One line without its "\r\n"; false on timeout, a closed connection or a line too long.
bool HTTPClient::read_line(String& line) {
  line = String();
  const unsigned long start = millis();
  while (line.length() < kMaxLine) {
    const int c = client_->read();
    if (c < 0) {
      if ((!client_->connected() && client_->available() == 0) || millis() - start > timeout_ms_) {
        return false;
      }
      delay(1);
      continue;
    }
    if (c == '\n') {
      if (line.endsWith("\r")) line.remove(line.length() - 1);
      return true;
    }
    line += static_cast<char>(c);
  }
  return false;
}

int HTTPClient::sendRequest(const char* type, const uint8_t* payload, size_t size) {
  if (!client_) return HTTPC_ERROR_NOT_CONNECTED;
  size_ = -1;
  chunked_ = false;
  body_read_ = false;
  for (size_t i = 0; i < n_collected_; i++) collected_[i] = String();
  if (!client_->connect(host_.c_str(), port_)) return HTTPC_ERROR_CONNECTION_FAILED;
  String head = String(type) + " " + uri_ + (http10_ ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
  head += "Host: " + host_ + (port_ != 80 ? ":" + String(port_) : String()) + "\r\n";
  head += "User-Agent: " + user_agent_ + "\r\nConnection: close\r\n";
  if (authorization_.length()) head += "Authorization: Basic " + authorization_ + "\r\n";
  if (payload && size) head += "Content-Length: " + String(static_cast<unsigned>(size)) + "\r\n";
  head += headers_ + "\r\n";
  if (!write_all(reinterpret_cast<const uint8_t*>(head.c_str()), head.length())) {
    return HTTPC_ERROR_SEND_HEADER_FAILED;
  }
  if (payload && size && !write_all(payload, size)) return HTTPC_ERROR_SEND_PAYLOAD_FAILED;

  String line;
  if (!read_line(line)) return client_->connected() ? HTTPC_ERROR_READ_TIMEOUT
                                                    : HTTPC_ERROR_CONNECTION_LOST;
  if (!line.startsWith("HTTP/1.") || line.length() < 12) return HTTPC_ERROR_NO_HTTP_SERVER;
  const int code = line.substring(9, 12).toInt();
  if (code < 100) return HTTPC_ERROR_NO_HTTP_SERVER;
  while (read_line(line) && line.length()) {
    const int colon = line.indexOf(':');
    if (colon <= 0) continue;
    const String name = line.substring(0, colon);
    String value = line.substring(colon + 1);
    value.trim();
    if (name.equalsIgnoreCase("Content-Length")) size_ = static_cast<int>(value.toInt());
    if (name.equalsIgnoreCase("Transfer-Encoding") && value.equalsIgnoreCase("chunked")) {
      chunked_ = true;
    }
    for (size_t i = 0; i < n_collected_; i++) {
      if (collect_[i].equalsIgnoreCase(name)) collected_[i] = value;
    }
  }
  return code;
}

// The body into a String or a Stream (as it comes), at most kMaxBody bytes: bytes read, or
// an HTTPC_ERROR.
int HTTPClient::read_body(String* into, Stream* stream) {
  if (!client_ || body_read_) return HTTPC_ERROR_NO_STREAM;
  body_read_ = true;
  size_t total = 0;
  uint8_t buf[512];
  const unsigned long start = millis();
  auto take = [&](size_t want) -> bool {  // `want` bytes (or until the close when SIZE_MAX)
    while (want > 0) {
      if (total >= kMaxBody) return false;
      size_t ask = want < sizeof buf ? want : sizeof buf;
      if (ask > kMaxBody - total) ask = kMaxBody - total;
      const int got = client_->read(buf, ask);
      if (got <= 0) {
        if (!client_->connected() && client_->available() == 0) return want == SIZE_MAX;
        if (millis() - start > timeout_ms_) return false;
        delay(1);
        continue;
      }
      if (into) into->concat(reinterpret_cast<const char*>(buf), static_cast<unsigned>(got));
      if (stream) stream->write(buf, static_cast<size_t>(got));
      total += static_cast<size_t>(got);
      if (want != SIZE_MAX) want -= static_cast<size_t>(got);
    }
    return true;
  };
  if (chunked_) {
    String line;
    for (;;) {
      if (!read_line(line)) return HTTPC_ERROR_READ_TIMEOUT;
      const long chunk = strtol(line.c_str(), nullptr, 16);
      if (chunk < 0) return HTTPC_ERROR_ENCODING;
      if (chunk == 0) break;
      if (!take(static_cast<size_t>(chunk))) return HTTPC_ERROR_TOO_LESS_RAM;
      if (!read_line(line)) return HTTPC_ERROR_READ_TIMEOUT;  // the chunk's CRLF
    }
  } else if (!take(size_ >= 0 ? static_cast<size_t>(size_) : SIZE_MAX)) {
    return total >= kMaxBody ? HTTPC_ERROR_TOO_LESS_RAM : HTTPC_ERROR_READ_TIMEOUT;
  }
  return static_cast<int>(total);
}

String HTTPClient::getString() {
  String body;
  read_body(&body, nullptr);
  return body;
}

int HTTPClient::writeToStream(Stream* stream) {
  if (!stream) return HTTPC_ERROR_NO_STREAM;
  return read_body(nullptr, stream);
}

String HTTPClient::errorToString(int error) {
  switch (error) {
    case HTTPC_ERROR_CONNECTION_FAILED: return "connection failed";
    case HTTPC_ERROR_SEND_HEADER_FAILED: return "send header failed";
    case HTTPC_ERROR_SEND_PAYLOAD_FAILED: return "send payload failed";
    case HTTPC_ERROR_NOT_CONNECTED: return "not connected";
    case HTTPC_ERROR_CONNECTION_LOST: return "connection lost";
    case HTTPC_ERROR_NO_STREAM: return "no stream";
    case HTTPC_ERROR_NO_HTTP_SERVER: return "no HTTP server";
    case HTTPC_ERROR_TOO_LESS_RAM: return "too less ram";
    case HTTPC_ERROR_ENCODING: return "Transfer-Encoding not supported";
    case HTTPC_ERROR_STREAM_WRITE: return "Stream write error";
    case HTTPC_ERROR_READ_TIMEOUT: return "read Timeout";
    default: return String();
  }
}
