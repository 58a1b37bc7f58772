// ESP8266HTTPClient of the twin: the core 3.x's HTTPClient on a WiFiClient the sketch gives
// (begin(client, url)), plain HTTP only: a request, its status and headers, then the body
// as getString() or writeToStream() reads it (Content-Length, chunked, or until the close).
// One request per connection ("Connection: close"); redirects are not followed; https://
// URLs fail begin() (WiFiClientSecure is not simulated). A body is read up to kMaxBody.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "Arduino.h"
#include "WString.h"
#include "WiFiClient.h"

#define HTTPCLIENT_DEFAULT_TCP_TIMEOUT (5000)

#define HTTPC_ERROR_CONNECTION_FAILED (-1)
#define HTTPC_ERROR_CONNECTION_REFUSED (-1)
#define HTTPC_ERROR_SEND_HEADER_FAILED (-2)
#define HTTPC_ERROR_SEND_PAYLOAD_FAILED (-3)
#define HTTPC_ERROR_NOT_CONNECTED (-4)
#define HTTPC_ERROR_CONNECTION_LOST (-5)
#define HTTPC_ERROR_NO_STREAM (-6)
#define HTTPC_ERROR_NO_HTTP_SERVER (-7)
#define HTTPC_ERROR_TOO_LESS_RAM (-8)
#define HTTPC_ERROR_ENCODING (-9)
#define HTTPC_ERROR_STREAM_WRITE (-10)
#define HTTPC_ERROR_READ_TIMEOUT (-11)

enum t_http_codes {
  HTTP_CODE_OK = 200,
  HTTP_CODE_CREATED = 201,
  HTTP_CODE_NO_CONTENT = 204,
  HTTP_CODE_MOVED_PERMANENTLY = 301,
  HTTP_CODE_FOUND = 302,
  HTTP_CODE_NOT_MODIFIED = 304,
  HTTP_CODE_BAD_REQUEST = 400,
  HTTP_CODE_UNAUTHORIZED = 401,
  HTTP_CODE_FORBIDDEN = 403,
  HTTP_CODE_NOT_FOUND = 404,
  HTTP_CODE_INTERNAL_SERVER_ERROR = 500,
  HTTP_CODE_SERVICE_UNAVAILABLE = 503,
};

class HTTPClient {
 public:
  static constexpr size_t kMaxBody = 16384;
  static constexpr size_t kMaxCollected = 8;

  ~HTTPClient() { end(); }

  bool begin(WiFiClient& client, const String& url);
  bool begin(WiFiClient& client, const String& host, uint16_t port, const String& uri = "/",
             bool https = false);
  void end();
  bool connected() { return client_ && client_->connected(); }

  void setReuse(bool reuse) { (void)reuse; }  // one request per connection on the twin
  void setUserAgent(const String& userAgent) { user_agent_ = userAgent; }
  void setAuthorization(const char* user, const char* password);
  void setAuthorization(const char* auth) { authorization_ = auth ? auth : ""; }
  void setTimeout(uint16_t timeout) { timeout_ms_ = timeout; }
  void useHTTP10(bool http10 = true) { http10_ = http10; }

  int GET() { return sendRequest("GET"); }
  int POST(const uint8_t* payload, size_t size) { return sendRequest("POST", payload, size); }
  int POST(const String& payload) { return sendRequest("POST", payload); }
  int PUT(const uint8_t* payload, size_t size) { return sendRequest("PUT", payload, size); }
  int PUT(const String& payload) { return sendRequest("PUT", payload); }
  int PATCH(const uint8_t* payload, size_t size) { return sendRequest("PATCH", payload, size); }
  int PATCH(const String& payload) { return sendRequest("PATCH", payload); }
  int sendRequest(const char* type, const String& payload) {
    return sendRequest(type, reinterpret_cast<const uint8_t*>(payload.c_str()), payload.length());
  }
  int sendRequest(const char* type, const uint8_t* payload = nullptr, size_t size = 0);

  void addHeader(const String& name, const String& value, bool first = false,
                 bool replace = true);
  void collectHeaders(const char* headerKeys[], size_t headerKeysCount);
  String header(const char* name);
  String header(size_t i);
  String headerName(size_t i);
  int headers() { return static_cast<int>(n_collected_); }
  bool hasHeader(const char* name);

  int getSize() { return size_; }
  WiFiClient& getStream() { return *client_; }
  WiFiClient* getStreamPtr() { return client_; }
  int writeToStream(Stream* stream);
  String getString();
  static String errorToString(int error);

 private:
  bool read_line(String& line);
  bool write_all(const uint8_t* data, size_t size);
  int read_body(String* into, Stream* stream);

  WiFiClient* client_ = nullptr;
  String host_;
  uint16_t port_ = 80;
  String uri_;
  String headers_;  // the request's extra "Name: value\r\n" lines
  String user_agent_ = "ESP8266HTTPClient";
  String authorization_;  // base64 of user:password
  uint16_t timeout_ms_ = HTTPCLIENT_DEFAULT_TCP_TIMEOUT;
  bool http10_ = false;
  int size_ = -1;  // the body's Content-Length, -1 if not given
  bool chunked_ = false;
  bool body_read_ = false;
  String collect_[kMaxCollected];
  String collected_[kMaxCollected];
  size_t n_collected_ = 0;
};
