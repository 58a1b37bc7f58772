// ArduinoOTA of the twin: the core's API, so a sketch that offers over-the-air updates
// builds and runs. begin() announces the "_arduino._tcp" service over the twin's mDNS
// responder (ESP8266mDNS.h) as the core does, and handle() keeps that responder answering;
// updates themselves are not simulated: invitations to the OTA port go unanswered, so an
// uploader finds no device, and the callbacks never run.
#pragma once

#include <stdint.h>

#include <functional>

#include "WString.h"

#ifndef U_FLASH
#define U_FLASH 0
#define U_FS 100
#define U_SPIFFS U_FS
#define U_AUTH 200
#endif

typedef enum { OTA_IDLE, OTA_WAITAUTH, OTA_RUNUPDATE } ota_state_t;
typedef enum {
  OTA_AUTH_ERROR,
  OTA_BEGIN_ERROR,
  OTA_CONNECT_ERROR,
  OTA_RECEIVE_ERROR,
  OTA_END_ERROR
} ota_error_t;

class ArduinoOTAClass {
 public:
  typedef std::function<void(void)> THandlerFunction;
  typedef std::function<void(ota_error_t)> THandlerFunction_Error;
  typedef std::function<void(unsigned int, unsigned int)> THandlerFunction_Progress;

  void setPort(uint16_t port) { port_ = port; }
  void setHostname(const char* hostname) { hostname_ = hostname ? hostname : ""; }
  String getHostname() { return hostname_; }
  void setPassword(const char* password) { auth_ = password && *password; }
  void setPasswordHash(const char* password) { auth_ = password && *password; }
  void setRebootOnSuccess(bool reboot) { (void)reboot; }
  void onStart(THandlerFunction fn) { on_start_ = fn; }
  void onEnd(THandlerFunction fn) { on_end_ = fn; }
  void onError(THandlerFunction_Error fn) { on_error_ = fn; }
  void onProgress(THandlerFunction_Progress fn) { on_progress_ = fn; }
  void begin(bool useMDNS = true);
  void end();
  void handle();
  int getCommand() { return U_FLASH; }

 private:
  uint16_t port_ = 8266;
  String hostname_;
  bool auth_ = false;
  bool mdns_ = false;
  bool begun_ = false;
  THandlerFunction on_start_;
  THandlerFunction on_end_;
  THandlerFunction_Error on_error_;
  THandlerFunction_Progress on_progress_;
};

extern ArduinoOTAClass ArduinoOTA;
