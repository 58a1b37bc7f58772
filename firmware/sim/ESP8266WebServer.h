// ESP8266WebServer of the twin: the core's HTTP server API on the shim's WiFiServer, one
// request per connection (the response says "Connection: close"). Routes match a path
// exactly (the core's UriBraces and UriRegex are not simulated), for a method or any.
// handleClient() reads a whole request (waiting as the core does, at most 5 s), calls the
// route's handler, and closes the connection once the handler returns. Limits: a request
// line and headers of kMaxHead bytes, a body of kMaxBody, kMaxArgs arguments, kMaxHeaders
// headers, kMaxRoutes routes; a request past them gets 413 or 431. Not simulated: uploads,
// serveStatic, ETags, digest authentication, keep-alive.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <functional>

#include "ESP8266WiFi.h"
#include "WString.h"
#include "WiFiClient.h"
#include "WiFiServer.h"

enum HTTPMethod { HTTP_ANY, HTTP_GET, HTTP_HEAD, HTTP_POST, HTTP_PUT, HTTP_PATCH, HTTP_DELETE,
                  HTTP_OPTIONS };
enum HTTPAuthMethod { BASIC_AUTH, DIGEST_AUTH };

#define CONTENT_LENGTH_UNKNOWN ((size_t)-1)
#define CONTENT_LENGTH_NOT_SET ((size_t)-2)

class ESP8266WebServer {
 public:
  using THandlerFunction = std::function<void(void)>;

  static constexpr size_t kMaxHead = 2048;
  static constexpr size_t kMaxBody = 4096;
  static constexpr size_t kMaxArgs = 32;
  static constexpr size_t kMaxHeaders = 16;
  static constexpr size_t kMaxRoutes = 32;

  explicit ESP8266WebServer(int port = 80);
  ESP8266WebServer(IPAddress addr, int port = 80);

  void begin();
  void begin(uint16_t port);
  void handleClient();
  void close();
  void stop() { close(); }

  void on(const String& uri, THandlerFunction handler) { on(uri, HTTP_ANY, handler); }
  void on(const String& uri, HTTPMethod method, THandlerFunction handler);
  void onNotFound(THandlerFunction handler) { not_found_ = handler; }
  void enableCORS(bool enable) { cors_ = enable; }

  const String& uri() const { return uri_; }
  HTTPMethod method() const { return method_; }
  WiFiClient& client() { return client_; }

  const String& arg(const String& name) const;
  const String& arg(int i) const;
  const String& argName(int i) const;
  int args() const { return static_cast<int>(n_args_); }
  bool hasArg(const String& name) const;

  void collectHeaders(const char* headerKeys[], size_t count) { (void)headerKeys; (void)count; }
  template <typename... Args>
  void collectHeaders(const Args&...) {}  // every header is kept (up to kMaxHeaders)
  const String& header(const String& name) const;
  const String& header(int i) const;
  const String& headerName(int i) const;
  int headers() const { return static_cast<int>(n_headers_); }
  bool hasHeader(const String& name) const;
  const String& hostHeader() const { return header(String("Host")); }

  bool authenticate(const char* username, const char* password);
  void requestAuthentication(HTTPAuthMethod mode = BASIC_AUTH, const char* realm = nullptr,
                             const String& authFailMsg = String());

  void send(int code, const char* content_type = nullptr, const String& content = String());
  void send(int code, const String& content_type, const String& content) {
    send(code, content_type.c_str(), content);
  }
  void send(int code, const char* content_type, const char* content) {
    send_P(code, content_type, content);
  }
  void send(int code, const char* content_type, const uint8_t* content, size_t length) {
    send_P(code, content_type, reinterpret_cast<const char*>(content), length);
  }
  void send_P(int code, const char* content_type, const char* content);
  void send_P(int code, const char* content_type, const char* content, size_t length);
  void sendHeader(const String& name, const String& value, bool first = false);
  void setContentLength(size_t length) { content_length_ = length; }
  void sendContent(const String& content) { sendContent(content.c_str(), content.length()); }
  void sendContent(const char* content) { sendContent(content, strlen(content)); }
  void sendContent(const char* content, size_t length);
  void sendContent_P(const char* content) { sendContent(content); }

  static String urlDecode(const String& text);
  static const char* responseCodeToString(int code);

 private:
  struct Route {
    String uri;
    HTTPMethod method;
    THandlerFunction handler;
  };
  bool read_request();
  void parse_args(const char* text, size_t len);
  void add_arg(const String& name, const String& value);
  void respond(int code, const char* content_type, const char* content, size_t length);
  void write_all(const char* data, size_t length);

  WiFiServer server_;
  WiFiClient client_;
  Route routes_[kMaxRoutes];
  size_t n_routes_ = 0;
  THandlerFunction not_found_;
  bool cors_ = false;

  // The request being handled.
  String uri_;
  HTTPMethod method_ = HTTP_ANY;
  String arg_names_[kMaxArgs];
  String arg_values_[kMaxArgs];
  size_t n_args_ = 0;
  String header_names_[kMaxHeaders];
  String header_values_[kMaxHeaders];
  size_t n_headers_ = 0;
  String extra_headers_;  // sendHeader()s for the response
  size_t content_length_ = CONTENT_LENGTH_NOT_SET;
  bool head_sent_ = false;
};
