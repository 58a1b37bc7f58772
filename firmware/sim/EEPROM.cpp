#include "EEPROM.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim_internal.h"

EEPROMClass EEPROM;

namespace {

using esp_hil_sim::kEepromOffset;
using esp_hil_sim::kEepromSector;
using esp_hil_sim::kFlashSize;

bool write_all(int fd, const uint8_t* buf, size_t len, off_t offset) {
  while (len > 0) {
    ssize_t n = pwrite(fd, buf, len, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf += n;
    len -= static_cast<size_t>(n);
    offset += n;
  }
  return true;
}

// Creates an erased (0xFF) 4 MiB flash file if none exists. Built under a
// temporary name and linked into place, so a reader never sees half a file
// and an existing file is never replaced.
bool create_flash(const char* path) {
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, static_cast<int>(getpid()));
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  uint8_t erased[kEepromSector];
  memset(erased, 0xFF, sizeof erased);
  bool ok = true;
  for (size_t off = 0; ok && off < kFlashSize; off += sizeof erased) {
    ok = write_all(fd, erased, sizeof erased, static_cast<off_t>(off));
  }
  ok = ok && fsync(fd) == 0;
  close(fd);
  if (ok && link(tmp, path) != 0 && errno != EEXIST) ok = false;
  unlink(tmp);
  return ok;
}

}  // namespace

namespace esp_hil_sim {

int flash_open(int flags) {
  const char* path = esp_hil_sim::config().flash_path;
  if (!*path) return -1;
  int fd = open(path, flags | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    if (!create_flash(path)) {
      esp_hil_sim::log("cannot create flash file %s: %s", path, strerror(errno));
      return -1;
    }
    fd = open(path, flags | O_CLOEXEC);
  }
  if (fd < 0) esp_hil_sim::log("cannot open flash file %s: %s", path, strerror(errno));
  return fd;
}

bool flash_write_sector(uint32_t offset, const uint8_t* data, size_t len) {
  if (len > kEepromSector || offset % kEepromSector != 0 || offset + kEepromSector > kFlashSize) {
    return false;
  }
  int fd = flash_open(O_RDWR);
  if (fd < 0) return false;
  uint8_t sector[kEepromSector];
  memset(sector, 0xFF, sizeof sector);
  memcpy(sector, data, len);
  const bool ok = write_all(fd, sector, sizeof sector, static_cast<off_t>(offset)) && fsync(fd) == 0;
  if (!ok) log("flash write at 0x%X failed: %s", static_cast<unsigned>(offset), strerror(errno));
  close(fd);
  return ok;
}

}  // namespace esp_hil_sim

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
