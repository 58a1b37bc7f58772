// ESP8266mDNS of the twin: the core's MDNSResponder API, answering over unicast UDP on the
// twin's address, port 5353: A queries for "<hostname>.local", and DNS-SD for the services
// added (PTR "_service._proto.local", SRV and TXT of "<instance>._service._proto.local").
// Queries are read when the sketch calls update(), as on the core. Not simulated: the
// multicast group (the twin answers queries sent to its own address), probing for name
// conflicts, announcements, and the core's queries of other hosts' services.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "IPAddress.h"
#include "WString.h"

namespace esp8266 {
namespace MDNSImplementation {

class MDNSResponder {
 public:
  typedef const void* hMDNSService;
  typedef void* hMDNSTxt;

  static constexpr size_t kMaxName = 63;  // one DNS label
  static constexpr size_t kMaxServices = 4;
  static constexpr size_t kMaxTxt = 4;  // items per service
  static constexpr size_t kMaxTxtItem = 63;  // "key=value"

  ~MDNSResponder();
  bool begin(const char* hostname, const IPAddress& ip = IPAddress(), uint32_t ttl = 120);
  bool begin(const String& hostname, const IPAddress& ip = IPAddress(), uint32_t ttl = 120) {
    return begin(hostname.c_str(), ip, ttl);
  }
  bool close();
  bool end() { return close(); }
  bool setHostname(const char* hostname);
  bool setHostname(const String& hostname) { return setHostname(hostname.c_str()); }
  void setInstanceName(const char* name) { setHostname(name); }
  void setInstanceName(const String& name) { setHostname(name.c_str()); }
  bool isRunning() { return fd_ >= 0; }

  hMDNSService addService(const char* name, const char* service, const char* protocol,
                          uint16_t port);
  bool addService(const String& service, const String& protocol, uint16_t port) {
    return addService(nullptr, service.c_str(), protocol.c_str(), port) != nullptr;
  }
  bool removeService(const hMDNSService service);
  hMDNSTxt addServiceTxt(const hMDNSService service, const char* key, const char* value);
  bool addServiceTxt(const char* service, const char* protocol, const char* key,
                     const char* value);
  bool addServiceTxt(const String& service, const String& protocol, const String& key,
                     const String& value) {
    return addServiceTxt(service.c_str(), protocol.c_str(), key.c_str(), value.c_str());
  }

  bool update();  // answers the queries that came since the last call
  bool announce() { return isRunning(); }

  struct Service {
    bool used;
    char instance[kMaxName + 1];
    char service[kMaxName + 1];  // without the leading '_'
    char protocol[8];  // "tcp" or "udp"
    uint16_t port;
    char txt[kMaxTxt][kMaxTxtItem + 1];
  };

 private:
  Service* find(const char* service, const char* protocol);
  int fd_ = -1;
  char host_[kMaxName + 1] = {};
  Service services_[kMaxServices] = {};
};

}  // namespace MDNSImplementation
}  // namespace esp8266

using MDNSResponder = esp8266::MDNSImplementation::MDNSResponder;
extern MDNSResponder MDNS;
