// The twin's ArduinoOTA (ArduinoOTA.h): the service announced over mDNS, no updates taken.
#include "ArduinoOTA.h"

#include <stdio.h>

#include "ESP8266mDNS.h"
#include "Esp.h"

ArduinoOTAClass ArduinoOTA;

void ArduinoOTAClass::begin(bool useMDNS) {
  if (begun_) return;
  begun_ = true;
  if (hostname_.length() == 0) {
    char name[32];
    snprintf(name, sizeof name, "esp8266-%06x", static_cast<unsigned>(ESP.getChipId()));
    hostname_ = name;  // the core's default
  }
  mdns_ = useMDNS;
  if (!mdns_ || !MDNS.begin(hostname_.c_str())) return;
  // The service and TXT items the core's MDNS.enableArduino() announces.
  auto service = MDNS.addService(nullptr, "arduino", "tcp", port_);
  MDNS.addServiceTxt(service, "tcp_check", "no");
  MDNS.addServiceTxt(service, "ssh_upload", "no");
  MDNS.addServiceTxt(service, "board", "ESP8266_SIM");
  MDNS.addServiceTxt(service, "auth_upload", auth_ ? "yes" : "no");
}

void ArduinoOTAClass::end() {
  if (begun_ && mdns_) MDNS.end();
  begun_ = false;
}

void ArduinoOTAClass::handle() {
  if (begun_ && mdns_) MDNS.update();
}
