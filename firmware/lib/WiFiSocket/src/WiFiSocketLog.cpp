// The console lines of WiFiSocketT (WiFiSocket.h). Separate print calls: Print::printf may
// allocate for long lines on the core; F() keeps the constant text in flash.
#include "WiFiSocket.h"

namespace wsock_arduino {

void logClose(Print& out, uint8_t kind, uint8_t code, const char* reason) {
  if (kind == wsock::kConnectionLost) {
    out.println(F("WS LOST connection dropped"));
    return;
  }
  out.print(kind == wsock::kClosedByPeer ? F("WS PEER-CLOSE code=") : F("WS CLOSE code="));
  out.print(static_cast<unsigned>(code));
  out.print(F(" reason="));
  out.println(reason);
}

void logBusy(Print& out) { out.println(F("WS BUSY no free connection slot")); }

void logSummary(Print& out, uint32_t suppressed, uint32_t windowS, uint8_t lastKind,
                uint8_t lastCode) {
  out.print(F("WS "));
  out.print(static_cast<unsigned long>(suppressed));
  out.print(F(" more closes in the last "));
  out.print(static_cast<unsigned long>(windowS));
  out.print(F(" s (last: "));
  switch (lastKind) {
    case kLogClose: out.print(F("CLOSE code=")); break;
    case kLogPeerClose: out.print(F("PEER-CLOSE code=")); break;
    case kLogLost: out.print(F("LOST")); break;
    default: out.print(F("BUSY")); break;
  }
  if (lastKind == kLogClose || lastKind == kLogPeerClose) out.print(static_cast<unsigned>(lastCode));
  out.println(')');
}

void logDial(Print& out, const char* host, uint16_t port, uint8_t event, uint32_t ms) {
  out.print(F("WS DIAL "));
  out.print(host);
  out.print(':');
  out.print(static_cast<unsigned>(port));
  switch (event) {
    case kDialConnected: out.println(F(" connected")); return;
    case kDialFailed: out.print(F(" failed, retry in ")); break;
    default: out.print(F(" closed, redial in ")); break;
  }
  out.print(static_cast<unsigned long>(ms));
  out.println(F(" ms"));
}

}  // namespace wsock_arduino
