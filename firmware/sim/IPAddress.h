// IPv4 address, stored in network byte order like the ESP8266 core (lwIP).
#pragma once

#include <stdint.h>

#include "Printable.h"
#include "WString.h"

class IPAddress : public Printable {
 public:
  IPAddress() : bytes_{0, 0, 0, 0} {}
  IPAddress(uint8_t a, uint8_t b, uint8_t c, uint8_t d) : bytes_{a, b, c, d} {}
  // From the network-byte-order word of lwIP / in_addr.s_addr.
  IPAddress(uint32_t address);  // NOLINT(google-explicit-constructor): Arduino API
  explicit IPAddress(const uint8_t* address) : bytes_{address[0], address[1], address[2], address[3]} {}

  // Network-byte-order word.
  operator uint32_t() const;  // NOLINT(google-explicit-constructor): Arduino API
  uint32_t v4() const { return static_cast<uint32_t>(*this); }

  uint8_t operator[](int index) const { return bytes_[index & 3]; }
  uint8_t& operator[](int index) { return bytes_[index & 3]; }

  bool operator==(const IPAddress& other) const;
  bool operator!=(const IPAddress& other) const { return !(*this == other); }
  bool isSet() const { return v4() != 0; }

  // Strict dotted decimal "a.b.c.d", each part 0..255 with 1..3 digits.
  // On failure the address is left unchanged and false is returned.
  bool fromString(const char* text);
  bool fromString(const String& text) { return fromString(text.c_str()); }
  String toString() const;
  size_t printTo(Print& p) const override;

 private:
  uint8_t bytes_[4];
};
