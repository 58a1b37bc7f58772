// The twin's HTTP server (ESP8266WebServer.h). A request is read into fixed buffers, every
// length checked against them; the response goes out through the shim's WiFiClient, which
// takes what fits now, so writes wait (letting the system run) at most kSendWaitMs.
#include "ESP8266WebServer.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

namespace {

constexpr unsigned long kRequestWaitMs = 5000;  // the core's HTTP_MAX_DATA_WAIT
constexpr unsigned long kSendWaitMs = 5000;  // the core's HTTP_MAX_SEND_WAIT
constexpr unsigned long kLingerMs = 500;
constexpr unsigned long kLingerQuietMs = 50;
const String kEmpty;

struct MethodName {
  const char* name;
  HTTPMethod method;
};
constexpr MethodName kMethods[] = {
    {"GET", HTTP_GET},     {"HEAD", HTTP_HEAD},     {"POST", HTTP_POST},
    {"PUT", HTTP_PUT},     {"PATCH", HTTP_PATCH},   {"DELETE", HTTP_DELETE},
    {"OPTIONS", HTTP_OPTIONS},
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Base64 (RFC 4648) of `in` into `out` (at most out_size - 1 bytes); false if malformed.
bool base64_decode(const char* in, char* out, size_t out_size) {
  size_t n = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (; *in && *in != '='; in++) {
    const char c = *in;
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+') v = 62;
    else if (c == '/') v = 63;
    else return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (n + 1 >= out_size) return false;
      out[n++] = static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  out[n] = '\0';
  return true;
}

}  // namespace

ESP8266WebServer::ESP8266WebServer(int port) : server_(static_cast<uint16_t>(port)) {}
ESP8266WebServer::ESP8266WebServer(IPAddress addr, int port)
    : server_(addr, static_cast<uint16_t>(port)) {}

void ESP8266WebServer::begin() { server_.begin(); }
void ESP8266WebServer::begin(uint16_t port) { server_.begin(port); }
void ESP8266WebServer::close() {
  server_.close();
  client_.stop();
}

void ESP8266WebServer::on(const String& uri, HTTPMethod method, THandlerFunction handler) {
  if (n_routes_ == kMaxRoutes) return;  // as a board out of heap: the route is not added
  routes_[n_routes_++] = Route{uri, method, handler};
}

const char* ESP8266WebServer::responseCodeToString(int code) {
  switch (code) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "";
  }
}

String ESP8266WebServer::urlDecode(const String& text) {
  String out;
  const char* s = text.c_str();
  const size_t n = text.length();
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < n && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

void ESP8266WebServer::add_arg(const String& name, const String& value) {
  if (n_args_ == kMaxArgs) return;
  arg_names_[n_args_] = name;
  arg_values_[n_args_] = value;
  n_args_++;
}

void ESP8266WebServer::parse_args(const char* text, size_t len) {
  size_t at = 0;
  while (at < len) {
    size_t end = at;
    while (end < len && text[end] != '&') end++;
    size_t eq = at;
    while (eq < end && text[eq] != '=') eq++;
    if (end > at) {
      const String name = urlDecode(String(text + at).substring(0, eq - at));
      const String value = eq < end ? urlDecode(String(text + eq + 1).substring(0, end - eq - 1))
                                    : String();
      add_arg(name, value);
    }
    at = end + 1;
  }
}

const String& ESP8266WebServer::arg(const String& name) const {
  for (size_t i = 0; i < n_args_; i++) {
    if (arg_names_[i] == name) return arg_values_[i];
  }
  return kEmpty;
}
const String& ESP8266WebServer::arg(int i) const {
  return i >= 0 && static_cast<size_t>(i) < n_args_ ? arg_values_[i] : kEmpty;
}
const String& ESP8266WebServer::argName(int i) const {
  return i >= 0 && static_cast<size_t>(i) < n_args_ ? arg_names_[i] : kEmpty;
}
bool ESP8266WebServer::hasArg(const String& name) const {
  for (size_t i = 0; i < n_args_; i++) {
    if (arg_names_[i] == name) return true;
  }
  return false;
}

const String& ESP8266WebServer::header(const String& name) const {
  for (size_t i = 0; i < n_headers_; i++) {
    if (header_names_[i].equalsIgnoreCase(name)) return header_values_[i];
  }
  return kEmpty;
}
const String& ESP8266WebServer::header(int i) const {
  return i >= 0 && static_cast<size_t>(i) < n_headers_ ? header_values_[i] : kEmpty;
}
const String& ESP8266WebServer::headerName(int i) const {
  return i >= 0 && static_cast<size_t>(i) < n_headers_ ? header_names_[i] : kEmpty;
}
bool ESP8266WebServer::hasHeader(const String& name) const {
  for (size_t i = 0; i < n_headers_; i++) {
    if (header_names_[i].equalsIgnoreCase(name)) return true;
  }
  return false;
}

bool ESP8266WebServer::authenticate(const char* username, const char* password) {
  const String& given = header(String("Authorization"));
  if (!given.startsWith("Basic ")) return false;
  char decoded[256];
  if (!base64_decode(given.c_str() + 6, decoded, sizeof decoded)) return false;
  const char* colon = strchr(decoded, ':');
  if (!colon || !username || !password) return false;
  const size_t user_len = static_cast<size_t>(colon - decoded);
  return user_len == strlen(username) && !strncmp(decoded, username, user_len) &&
         !strcmp(colon + 1, password);
}

void ESP8266WebServer::requestAuthentication(HTTPAuthMethod, const char* realm,
                                             const String& authFailMsg) {
  sendHeader(String("WWW-Authenticate"),
             String("Basic realm=\"") + (realm ? realm : "Login Required") + "\"");
  send(401, "text/html", authFailMsg);
}

void ESP8266WebServer::sendHeader(const String& name, const String& value, bool first) {
  const String line = name + ": " + value + "\r\n";
  extra_headers_ = first ? line + extra_headers_ : extra_headers_ + line;
}

void ESP8266WebServer::write_all(const char* data, size_t length) {
  const unsigned long start = millis();
  size_t done = 0;
  while (done < length) {
    const size_t took = client_.write(reinterpret_cast<const uint8_t*>(data + done), length - done);
    done += took;
    if (took == 0) {
      if (!client_.connected() || millis() - start > kSendWaitMs) return;
      delay(1);
    }
  }
}

void ESP8266WebServer::respond(int code, const char* content_type, const char* content,
                               size_t length) {
  char head[256];
  int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n", code, responseCodeToString(code));
  write_all(head, static_cast<size_t>(n));
  if (content_type && *content_type) {
    n = snprintf(head, sizeof head, "Content-Type: %.200s\r\n", content_type);
    write_all(head, static_cast<size_t>(n));
  }
  if (content_length_ != CONTENT_LENGTH_UNKNOWN) {
    const size_t announced = content_length_ == CONTENT_LENGTH_NOT_SET ? length : content_length_;
    n = snprintf(head, sizeof head, "Content-Length: %zu\r\n", announced);
    write_all(head, static_cast<size_t>(n));
  }
  static const char kClose[] = "Connection: close\r\n";
  write_all(kClose, sizeof kClose - 1);
  if (cors_) {
    static const char kCors[] = "Access-Control-Allow-Origin: *\r\n";
    write_all(kCors, sizeof kCors - 1);
  }
  write_all(extra_headers_.c_str(), extra_headers_.length());
  write_all("\r\n", 2);
  head_sent_ = true;
  if (method_ != HTTP_HEAD && length) write_all(content, length);
}

void ESP8266WebServer::send(int code, const char* content_type, const String& content) {
  respond(code, content_type, content.c_str(), content.length());
}

void ESP8266WebServer::send_P(int code, const char* content_type, const char* content) {
  respond(code, content_type, content, content ? strlen(content) : 0);
}

void ESP8266WebServer::send_P(int code, const char* content_type, const char* content,
                              size_t length) {
  respond(code, content_type, content, length);
}

void ESP8266WebServer::sendContent(const char* content, size_t length) {
  if (method_ != HTTP_HEAD) write_all(content, length);
}

// Reads one request into uri_, method_, the headers and the arguments; false if there is
// none to handle (the connection ended or timed out, or an error was answered already).
bool ESP8266WebServer::read_request() {
  static char buf[kMaxHead + kMaxBody + 1];
  size_t n = 0;
  size_t head_end = 0;  // just past "\r\n\r\n"
  const unsigned long start = millis();
  while (head_end == 0) {
    const int got = client_.read(reinterpret_cast<uint8_t*>(buf + n), kMaxHead - n);
    if (got > 0) {
      const size_t from = n >= 3 ? n - 3 : 0;
      n += static_cast<size_t>(got);
      for (size_t i = from; i + 3 < n; i++) {
        if (!memcmp(buf + i, "\r\n\r\n", 4)) {
          head_end = i + 4;
          break;
        }
      }
      if (head_end == 0 && n == kMaxHead) {
        send(431, "text/plain", String("Request header fields too large"));
        return false;
      }
      continue;
    }
    if (!client_.connected() || millis() - start > kRequestWaitMs) return false;
    delay(1);
  }
  buf[head_end - 2] = '\0';  // the head as text, without its blank line

  // The request line: METHOD SP TARGET SP VERSION.
  char* line_end = strstr(buf, "\r\n");
  if (line_end) *line_end = '\0';
  char* sp1 = strchr(buf, ' ');
  char* sp2 = sp1 ? strchr(sp1 + 1, ' ') : nullptr;
  if (!sp1 || !sp2) {
    send(400, "text/plain", String("Bad request"));
    return false;
  }
  *sp1 = '\0';
  *sp2 = '\0';
  method_ = HTTP_ANY;
  for (const MethodName& m : kMethods) {
    if (!strcmp(buf, m.name)) method_ = m.method;
  }
  if (method_ == HTTP_ANY) {
    send(501, "text/plain", String("Not implemented"));
    return false;
  }
  char* target = sp1 + 1;
  char* query = strchr(target, '?');
  if (query) *query++ = '\0';
  uri_ = target;

  // Headers: "Name: value" lines.
  size_t body_length = 0;
  for (char* line = line_end ? line_end + 2 : nullptr; line && *line;) {
    char* next = strstr(line, "\r\n");
    if (next) *next = '\0';
    char* colon = strchr(line, ':');
    if (colon) {
      *colon = '\0';
      const char* value = colon + 1;
      while (*value == ' ' || *value == '\t') value++;
      if (!strcasecmp(line, "Content-Length")) body_length = strtoul(value, nullptr, 10);
      if (n_headers_ < kMaxHeaders) {
        header_names_[n_headers_] = line;
        header_values_[n_headers_] = value;
        n_headers_++;
      }
    }
    line = next ? next + 2 : nullptr;
  }
  if (body_length > kMaxBody) {
    send(413, "text/plain", String("Payload too large"));
    return false;
  }

  // The body: what came with the head, then the rest (at most kMaxBody).
  char* body = buf + head_end;
  size_t have = n - head_end;
  if (have > body_length) have = body_length;
  while (have < body_length) {
    const int got = client_.read(reinterpret_cast<uint8_t*>(body + have), body_length - have);
    if (got > 0) {
      have += static_cast<size_t>(got);
      continue;
    }
    if (!client_.connected() || millis() - start > kRequestWaitMs) return false;
    delay(1);
  }
  body[body_length] = '\0';

  if (query) parse_args(query, strlen(query));
  if (body_length) {
    if (header(String("Content-Type")).startsWith("application/x-www-form-urlencoded")) {
      parse_args(body, body_length);
    } else {
      add_arg(String("plain"), String(body));  // as the core: the raw body is arg("plain")
    }
  }
  return true;
}

void ESP8266WebServer::handleClient() {
  if (!client_) {
    client_ = server_.accept();
    if (!client_) return;
  }
  n_args_ = 0;
  n_headers_ = 0;
  extra_headers_ = String();
  content_length_ = CONTENT_LENGTH_NOT_SET;
  head_sent_ = false;
  const bool complete = read_request();
  if (complete) {
    bool handled = false;
    for (size_t i = 0; i < n_routes_ && !handled; i++) {
      const Route& r = routes_[i];
      if (r.uri == uri_ && (r.method == HTTP_ANY || r.method == method_)) {
        r.handler();
        handled = true;
      }
    }
    if (!handled) {
      if (not_found_) {
        not_found_();
      } else {
        send(404, "text/plain", String("Not found: ") + uri_);
      }
    }
  }
  // What a rejected request had left unread would make the close a reset, which can
  // reach the client before the answer: read it away first, until it has been quiet for
  // kLingerQuietMs (at most kLingerMs).
  uint8_t rest[256];
  const unsigned long linger = millis();
  unsigned long quiet = linger;
  while (!complete && head_sent_ && millis() - linger < kLingerMs &&
         millis() - quiet < kLingerQuietMs) {
    if (client_.read(rest, sizeof rest) > 0) {
      quiet = millis();
    } else {
      delay(1);
    }
  }
  client_.stop();  // one request per connection
  client_ = WiFiClient();
}
