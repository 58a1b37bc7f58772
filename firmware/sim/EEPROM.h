// EEPROM emulation backed by the flash file (ESP_HIL_FLASH): the sector at
// 0x3FB000, as in the ESP8266 core's 4 MiB layouts. A fixed 4 KiB buffer.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>

class EEPROMClass {
 public:
  static constexpr size_t kMaxSize = 4096;

  // Reads the first size bytes of the sector (size 1..4096, rounded up to 4).
  void begin(size_t size);
  uint8_t read(int address) const;
  void write(int address, uint8_t value);
  // Erases the sector and writes it back (pwrite + fsync) if anything changed.
  bool commit();
  bool end();  // commits, then forgets the data

  template <typename T>
  T& get(int address, T& t) const {
    if (address >= 0 && static_cast<size_t>(address) + sizeof(T) <= size_) memcpy(&t, data_ + address, sizeof(T));
    return t;
  }

  template <typename T>
  const T& put(int address, const T& t) {
    if (address >= 0 && static_cast<size_t>(address) + sizeof(T) <= size_ &&
        memcmp(data_ + address, &t, sizeof(T)) != 0) {
      memcpy(data_ + address, &t, sizeof(T));
      dirty_ = true;
    }
    return t;
  }

  uint8_t* getDataPtr() {
    dirty_ = true;
    return data_;
  }
  const uint8_t* getConstDataPtr() const { return data_; }
  size_t length() const { return size_; }

  // As on the core: a reference into the buffer (marks it changed). Outside begin()'s
  // size the chip would corrupt memory; here a scratch byte takes the access.
  uint8_t& operator[](int address) {
    static uint8_t scratch;
    if (address < 0 || static_cast<size_t>(address) >= size_) return scratch = 0;
    dirty_ = true;
    return data_[address];
  }
  uint8_t operator[](int address) const { return read(address); }

 private:
  uint8_t data_[kMaxSize] = {0};
  size_t size_ = 0;
  bool dirty_ = false;
};

extern EEPROMClass EEPROM;
