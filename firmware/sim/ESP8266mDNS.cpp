// The twin's mDNS responder (ESP8266mDNS.h): a UDP socket on the twin's address, port 5353,
// read by update(). Every length in a query is checked against the datagram before use;
// answers are built in a fixed buffer that refuses to overflow.
#include "ESP8266mDNS.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sim_internal.h"

MDNSResponder MDNS;

namespace {

constexpr uint16_t kPort = 5353;
constexpr size_t kDatagram = 1472;
constexpr size_t kNameText = 256;  // a DNS name as dotted text, at most 255 octets
constexpr size_t kMaxQuestions = 8;
constexpr uint16_t kTypeA = 1, kTypePtr = 12, kTypeTxt = 16, kTypeSrv = 33, kTypeAny = 255;
constexpr uint16_t kClassIn = 1;
constexpr uint32_t kTtl = 120;

bool valid_label(const char* s, size_t max) {
  const size_t n = strlen(s);
  if (n == 0 || n > max) return false;
  for (size_t i = 0; i < n; i++) {
    if (!isalnum(static_cast<unsigned char>(s[i])) && s[i] != '-' && s[i] != '_') return false;
  }
  return true;
}

// A name of the query at `at`, compressed or not, as lower-case dotted text. Returns the
// offset just past the name where it started (0: malformed).
size_t read_name(const uint8_t* msg, size_t len, size_t at, char* out) {
  size_t written = 0;
  size_t after = 0;
  for (int jumps = 0;;) {
    if (at >= len) return 0;
    const uint8_t label = msg[at];
    if ((label & 0xC0) == 0xC0) {  // a pointer to an earlier name
      if (at + 1 >= len || ++jumps > 16) return 0;
      if (after == 0) after = at + 2;
      at = static_cast<size_t>(label & 0x3F) << 8 | msg[at + 1];
      continue;
    }
    if (label & 0xC0) return 0;  // reserved label types
    if (label == 0) {
      if (after == 0) after = at + 1;
      break;
    }
    if (at + 1 + label > len || written + label + 2 > kNameText) return 0;
    if (written) out[written++] = '.';
    for (size_t i = 0; i < label; i++) {
      out[written++] = static_cast<char>(tolower(msg[at + 1 + i]));
    }
    at += 1 + label;
  }
  out[written] = '\0';
  return after;
}

// A DNS message being built; `ok` turns false (and stays) at the first write past the end.
struct Message {
  uint8_t buf[kDatagram];
  size_t n = 0;
  bool ok = true;

  void put(const void* data, size_t size) {
    if (!ok || n + size > sizeof buf) {
      ok = false;
      return;
    }
    memcpy(buf + n, data, size);
    n += size;
  }
  void u8(uint8_t v) { put(&v, 1); }
  void u16(uint16_t v) {
    const uint8_t b[2] = {static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
    put(b, 2);
  }
  void u32(uint32_t v) {
    u16(static_cast<uint16_t>(v >> 16));
    u16(static_cast<uint16_t>(v));
  }
  void name(const char* dotted) {  // labels of 1..63 octets, no compression
    for (const char* p = dotted; *p;) {
      const char* dot = strchr(p, '.');
      const size_t len = dot ? static_cast<size_t>(dot - p) : strlen(p);
      if (len == 0 || len > 63) {
        ok = false;
        return;
      }
      u8(static_cast<uint8_t>(len));
      put(p, len);
      p += len + (dot ? 1 : 0);
    }
    u8(0);
  }
  // A record's head; its RDLENGTH is filled by end_rdata() from what came after.
  size_t record(const char* owner, uint16_t type) {
    name(owner);
    u16(type);
    u16(kClassIn);
    u32(kTtl);
    const size_t at = n;
    u16(0);
    return at;
  }
  void end_rdata(size_t at) {
    if (!ok) return;
    const size_t len = n - at - 2;
    buf[at] = static_cast<uint8_t>(len >> 8);
    buf[at + 1] = static_cast<uint8_t>(len);
  }
};

void lower_case(char* out, const char* in) {
  for (; *in; in++, out++) *out = static_cast<char>(tolower(static_cast<unsigned char>(*in)));
  *out = '\0';
}

struct Question {
  char name[kNameText];
  uint16_t type;
  uint16_t klass;
};

}  // namespace

namespace esp8266 {
namespace MDNSImplementation {

MDNSResponder::~MDNSResponder() { close(); }

bool MDNSResponder::begin(const char* hostname, const IPAddress&, uint32_t) {
  if (!hostname || !setHostname(hostname)) return false;
  if (fd_ >= 0) return true;
  fd_ = esp_hil_sim::udp_open(kPort, "MDNS.begin()");
  return fd_ >= 0;
}

bool MDNSResponder::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  return true;
}

bool MDNSResponder::setHostname(const char* hostname) {
  if (!hostname || !valid_label(hostname, kMaxName)) return false;
  lower_case(host_, hostname);  // valid_label: at most kMaxName characters
  return true;
}

MDNSResponder::Service* MDNSResponder::find(const char* service, const char* protocol) {
  for (Service& s : services_) {
    if (s.used && !strcasecmp(s.service, service) && !strcasecmp(s.protocol, protocol)) return &s;
  }
  return nullptr;
}

MDNSResponder::hMDNSService MDNSResponder::addService(const char* name, const char* service,
                                                      const char* protocol, uint16_t port) {
  if (!service || !protocol) return nullptr;
  if (*service == '_') service++;
  if (*protocol == '_') protocol++;
  if (!valid_label(service, kMaxName - 1) ||
      (strcasecmp(protocol, "tcp") != 0 && strcasecmp(protocol, "udp") != 0)) {
    return nullptr;
  }
  const char* instance = name && *name ? name : host_;
  if (!*instance || strlen(instance) > kMaxName || strchr(instance, '.')) return nullptr;
  for (Service& s : services_) {
    if (s.used) continue;
    s = Service{};
    s.used = true;
    snprintf(s.instance, sizeof s.instance, "%s", instance);
    snprintf(s.service, sizeof s.service, "%s", service);
    snprintf(s.protocol, sizeof s.protocol, "%s", protocol);
    s.port = port;
    return &s;
  }
  esp_hil_sim::log("MDNS.addService(): more than %zu services", kMaxServices);
  return nullptr;
}

bool MDNSResponder::removeService(const hMDNSService service) {
  for (Service& s : services_) {
    if (&s == service && s.used) {
      s.used = false;
      return true;
    }
  }
  return false;
}

MDNSResponder::hMDNSTxt MDNSResponder::addServiceTxt(const hMDNSService service, const char* key,
                                                     const char* value) {
  Service* s = nullptr;
  for (Service& each : services_) {
    if (&each == service && each.used) s = &each;
  }
  if (!s || !key || !*key || !value || strlen(key) + 1 + strlen(value) > kMaxTxtItem) {
    return nullptr;
  }
  const size_t key_len = strlen(key);
  const size_t value_len = strlen(value);  // key_len + 1 + value_len <= kMaxTxtItem (above)
  for (char* item : s->txt) {
    if (*item) continue;
    memcpy(item, key, key_len);
    item[key_len] = '=';
    memcpy(item + key_len + 1, value, value_len);
    item[key_len + 1 + value_len] = '\0';
    return item;
  }
  return nullptr;
}

bool MDNSResponder::addServiceTxt(const char* service, const char* protocol, const char* key,
                                  const char* value) {
  if (!service || !protocol) return false;
  Service* s = find(*service == '_' ? service + 1 : service, *protocol == '_' ? protocol + 1 : protocol);
  return s && addServiceTxt(s, key, value) != nullptr;
}

bool MDNSResponder::update() {
  if (fd_ < 0) return false;
  uint8_t query[kDatagram];
  for (;;) {
    sockaddr_in from{};
    socklen_t from_len = sizeof from;
    const ssize_t got = recvfrom(fd_, query, sizeof query, MSG_DONTWAIT,
                                 reinterpret_cast<sockaddr*>(&from), &from_len);
    if (got < 0) return true;
    // The radio is off: what came meanwhile never arrived.
    if (!esp_hil_sim::wifi_connected() || !esp_hil_sim::link_up()) continue;
    const size_t len = static_cast<size_t>(got);
    if (len < 12 || (query[2] & 0x80) || (query[2] & 0x78)) continue;  // a response, or not a query
    const size_t count = static_cast<size_t>(query[4]) << 8 | query[5];
    Question questions[kMaxQuestions];
    size_t asked = 0;
    size_t at = 12;
    for (size_t i = 0; i < count && asked < kMaxQuestions; i++) {
      Question& q = questions[asked];
      at = read_name(query, len, at, q.name);
      if (at == 0 || at + 4 > len) break;
      q.type = static_cast<uint16_t>(query[at] << 8 | query[at + 1]);
      q.klass = static_cast<uint16_t>((query[at + 2] << 8 | query[at + 3]) & 0x7FFF);
      at += 4;
      asked++;
    }
    char host[kNameText];
    snprintf(host, sizeof host, "%s.local", host_);
    // Answers and additional records, counted as they are written.
    Message answers;
    Message extra;
    uint16_t n_answers = 0;
    uint16_t n_extra = 0;
    bool want_a = false;
    Question echoed[kMaxQuestions];
    size_t n_echoed = 0;
    const uint32_t ip = ntohl(esp_hil_sim::config().ip);
    auto a_record = [&](Message& m) {
      const size_t rd = m.record(host, kTypeA);
      m.u32(ip);
      m.end_rdata(rd);
    };
    for (size_t i = 0; i < asked; i++) {
      const Question& q = questions[i];
      if (q.klass != kClassIn && q.klass != 255) continue;
      const bool any = q.type == kTypeAny;
      bool answered = false;
      if (*host_ && !strcmp(q.name, host) && (any || q.type == kTypeA)) {
        a_record(answers);
        n_answers++;
        answered = true;
      }
      for (const Service& s : services_) {
        if (!s.used) continue;
        // "_" service "._" protocol ".local", then instance "." that: sized for the longest.
        char type_name[96];
        char instance_name[176];
        char lower_instance[176];
        snprintf(type_name, sizeof type_name, "_%s._%s.local", s.service, s.protocol);
        snprintf(instance_name, sizeof instance_name, "%s.%s", s.instance, type_name);
        lower_case(type_name, type_name);
        lower_case(lower_instance, instance_name);
        const bool ptr = !strcmp(q.name, type_name) && (any || q.type == kTypePtr);
        const bool srv = !strcmp(q.name, lower_instance) && (any || q.type == kTypeSrv);
        const bool txt = !strcmp(q.name, lower_instance) && (any || q.type == kTypeTxt);
        if (!ptr && !srv && !txt) continue;
        answered = true;
        if (ptr) {
          const size_t rd = answers.record(type_name, kTypePtr);
          answers.name(instance_name);
          answers.end_rdata(rd);
          n_answers++;
        }
        Message& srv_to = srv ? answers : extra;
        const size_t rd = srv_to.record(instance_name, kTypeSrv);
        srv_to.u16(0);  // priority
        srv_to.u16(0);  // weight
        srv_to.u16(s.port);
        srv_to.name(host);
        srv_to.end_rdata(rd);
        (srv ? n_answers : n_extra)++;
        Message& txt_to = txt ? answers : extra;
        const size_t rt = txt_to.record(instance_name, kTypeTxt);
        bool any_txt = false;
        for (const char* item : s.txt) {
          if (!*item) continue;
          txt_to.u8(static_cast<uint8_t>(strlen(item)));
          txt_to.put(item, strlen(item));
          any_txt = true;
        }
        if (!any_txt) txt_to.u8(0);  // an empty TXT record holds one empty string
        txt_to.end_rdata(rt);
        (txt ? n_answers : n_extra)++;
        want_a = true;
      }
      if (answered) echoed[n_echoed++] = q;
    }
    if (n_answers == 0) continue;
    if (want_a) {
      a_record(extra);
      n_extra++;
    }
    Message reply;
    reply.put(query, 2);  // the query's ID (a legacy unicast query waits for it)
    reply.u16(0x8400);  // a response, authoritative
    reply.u16(static_cast<uint16_t>(n_echoed));
    reply.u16(n_answers);
    reply.u16(0);
    reply.u16(n_extra);
    for (size_t i = 0; i < n_echoed; i++) {
      reply.name(echoed[i].name);
      reply.u16(echoed[i].type);
      reply.u16(kClassIn);
    }
    reply.put(answers.buf, answers.n);
    reply.put(extra.buf, extra.n);
    if (!reply.ok || !answers.ok || !extra.ok) {
      esp_hil_sim::log("MDNS: an answer did not fit one datagram; not sent");
      continue;
    }
    sendto(fd_, reply.buf, reply.n, 0, reinterpret_cast<sockaddr*>(&from), from_len);
  }
}

}  // namespace MDNSImplementation
}  // namespace esp8266
