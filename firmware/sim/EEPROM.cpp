#include "EEPROM.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sim_internal.h"

EEPROMClass EEPROM;

using esp_hil_sim::kEepromOffset;
using esp_hil_sim::kEepromSector;

void EEPROMClass::begin(size_t size) {
  if (size == 0 || size > kMaxSize) {
    esp_hil_sim::log("EEPROM.begin(%zu): size must be 1..%zu", size, kMaxSize);
    return;
  }
  size = (size + 3) & ~static_cast<size_t>(3);
  memset(data_, 0xFF, sizeof data_);
  size_ = size;
  dirty_ = false;
  if (!*esp_hil_sim::config().flash_path) {
    esp_hil_sim::log("ESP_HIL_FLASH is not set: EEPROM starts erased and commit() fails");
    return;
  }
  int fd = esp_hil_sim::flash_open(O_RDONLY);
  if (fd < 0) return;
  size_t got = 0;
  while (got < size) {
    ssize_t n = pread(fd, data_ + got, size - got, static_cast<off_t>(kEepromOffset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // a short file reads as erased flash
    got += static_cast<size_t>(n);
  }
  close(fd);
}

uint8_t EEPROMClass::read(int address) const {
  if (address < 0 || static_cast<size_t>(address) >= size_) return 0;
  return data_[address];
}

void EEPROMClass::write(int address, uint8_t value) {
  if (address < 0 || static_cast<size_t>(address) >= size_) return;
  if (data_[address] != value) {
    data_[address] = value;
    dirty_ = true;
  }
}

bool EEPROMClass::commit() {
  if (size_ == 0) return false;
  if (!dirty_) return true;
  // The core erases the whole sector, then writes size bytes: the rest reads 0xFF.
  const bool ok = esp_hil_sim::flash_write_sector(kEepromOffset, data_, size_);
  if (ok) dirty_ = false;
  return ok;
}

bool EEPROMClass::end() {
  bool ok = commit();
  size_ = 0;
  dirty_ = false;
  return ok;
}
